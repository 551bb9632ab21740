//! notification: reminders on time, by email and Web Push, each delivery
//! at most once.
//!
//! - [`ingest`]: `reminders` pushes (Dapr or Knative) update [`view`], the
//!   function's own view of each reminder in the Dapr state store, and
//!   move the firing's Dapr job ([`jobs`]).
//! - [`trigger`]: `POST /job/{name}` from the Dapr scheduler checks the view
//!   and sends through [`email`] and [`push`], guarded by [`delivery`]
//!   records; failures retry by one-shot jobs, then land in [`history`]'s
//!   failed list and on `reminders-dlq`.
//! - [`claims`]: the last `email` claim seen per user, the address of last
//!   resort (a recurring task's next occurrence carries none).
//! - [`api`]: devices, notification settings, delivery history; [`store`]
//!   holds the devices and settings tables; [`state`] speaks daprd's state
//!   API; [`error`] is the one mapping to problem+json. `openapi.json`
//!   describes the API (served at `/openapi.json`).

pub mod api;
pub mod claims;
pub mod config;
pub mod delivery;
pub mod email;
pub mod error;
pub mod history;
pub mod ingest;
pub mod jobs;
pub mod push;
pub mod state;
pub mod store;
pub mod trigger;
pub mod view;

use std::sync::Arc;
use std::time::Duration;

use auth::{Authenticator, HasAuthenticator};
use axum::Router;
use axum::routing::{delete, get, post};
use dapr_http::DaprClient;
use dapr_http::callback::AppToken;
use service::health::ReadinessCheck;
use service::openapi::RouteTable;
use telemetry::metrics::Metrics;

pub use tokio_util::task::TaskTracker;

use crate::email::EmailSender;
use crate::push::PushSender;
use crate::state::StateClient;
use crate::store::Store;
use crate::view::ReminderView;

/// The route Dapr pushes `reminders` to (dapr/kubernetes/subscriptions).
pub const REMINDERS_ROUTE: &str = "/events/reminders";
/// The route the Dapr scheduler triggers jobs at (daprd 1.18.2
/// `pkg/channel/http/http_channel.go`: `/job/<name>`).
pub const JOB_ROUTE: &str = "/job/{name}";

/// The history table of this function's migrations.
pub const MIGRATION_TABLE: &str = "refinery_history_notification";

pub fn migrations() -> refinery::Runner {
    mod embedded {
        refinery::embed_migrations!("migrations");
    }
    embedded::migrations::runner()
}

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub state: StateClient,
    pub dapr: DaprClient,
    pub pubsub: String,
    pub email: Option<EmailSender>,
    pub push: Option<PushSender>,
    pub authenticator: Arc<Authenticator>,
    pub retry_delays: Vec<Duration>,
    /// A firing further in the past than this is recorded as missed.
    pub late_limit: Duration,
    pub record_ttl: Duration,
    pub link_base: String,
    pub allow_private_endpoints: bool,
    /// Each firing's deliveries run on a task of their own, tracked here,
    /// so shutdown waits for them ([`trigger`]).
    pub tasks: TaskTracker,
}

impl AppState {
    /// A view lives until its firing is well past (plus the record TTL),
    /// so a late trigger still finds it.
    pub fn view_ttl(&self, view: &ReminderView) -> Duration {
        let until_fire = (view.fire_at - chrono::Utc::now())
            .to_std()
            .unwrap_or_default();
        until_fire + self.record_ttl
    }
}

impl HasAuthenticator for AppState {
    fn authenticator(&self) -> &Arc<Authenticator> {
        &self.authenticator
    }
}

/// The whole HTTP surface: callbacks behind the app-token guard, the user
/// API behind its timeout.
pub fn app(
    state: AppState,
    app_token: AppToken,
    checks: Vec<Box<dyn ReadinessCheck>>,
    metrics: Metrics,
    api_timeout: Duration,
) -> Router {
    let callbacks = dapr_http::behind_app_token(callback_routes().into_router(), app_token);
    let api = api_routes()
        .into_router()
        .layer(axum::middleware::from_fn(api::refuse_query_string));
    let api = service::surface::with_timeout(api, api_timeout);
    let routes = Router::new().merge(callbacks).merge(api).with_state(state);
    service::surface::finish(routes, checks, metrics)
}

/// The callbacks daprd and Knative call (subscriptions, pushes, job
/// triggers): internal, not in `openapi.json`.
pub fn callback_routes() -> RouteTable<AppState> {
    RouteTable::new()
        .route("/dapr/subscribe", get(ingest::subscriptions))
        .route(REMINDERS_ROUTE, post(ingest::reminder_event))
        .route(JOB_ROUTE, post(trigger::run_job))
}

/// The user API and its document (`openapi.json`, beside this crate,
/// served at `/openapi.json`). The health routes are documented there
/// too; a test holds the document to what [`app`] serves, both ways
/// ([`service::openapi::drift`]).
pub fn api_routes() -> RouteTable<AppState> {
    RouteTable::new()
        .route(
            "/api/devices",
            post(api::register_device).get(api::list_devices),
        )
        .route("/api/devices/{id}", delete(api::delete_device))
        .route(
            "/api/notification-settings",
            get(api::get_settings).put(api::put_settings),
        )
        .route("/api/notifications", get(api::my_notifications))
        .route("/api/notifications/failed", get(api::failed))
        .route("/api/notifications/failed/{id}/retry", post(api::retry))
        .route("/openapi.json", get(api::openapi))
}

#[cfg(test)]
mod app_tests;
#[cfg(test)]
mod openapi_tests;
