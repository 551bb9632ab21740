//! sync-gateway: every change of a user's tasks, live, on each of that
//! user's WebSockets, in order, with no gap after a reconnect.
//!
//! - [`ws`]: `GET /ws/tasks`, the upgrade (header auth, small buffers).
//! - [`session`]: one socket's life (auth, hello, live, resume, reset,
//!   heartbeats, close codes), over `Sink`/`Stream`; `ends` holds what
//!   ends it besides its loop (guarded writes, read and feed errors).
//! - [`protocol`]: the messages and close codes (schemas in
//!   `shared/contracts/schemas/sync-*.json`).
//! - [`hub`]: this replica's sockets by user, bounded queues, fan-out.
//! - [`push`]: `task-updates` from daprd (or Knative) into the hub.
//! - [`feed`]: task-api's change feed, read with the user's token.
//! - [`token`]: verified tokens and their expiry.
//! - [`config`]: the settings and their defaults.
//! - [`web`]: the browser client's page at `/` and its `/config.json`.
//! - [`openapi`]: `openapi.json`, the HTTP surface's document, served at
//!   `/openapi.json`.
//!
//! The gateway owns no table and keeps no state an event must reach:
//! every replica sees every event (a consumer group per replica) and
//! replays what a socket missed from task-api's change feed.

pub mod config;
mod ends;
pub mod feed;
pub mod hub;
pub mod openapi;
pub mod protocol;
pub mod push;
pub mod session;
pub mod token;
pub mod web;
pub mod ws;

use axum::Router;
use axum::routing::{get, post};
use dapr_http::AppToken;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use service::openapi::RouteTable;
use telemetry::metrics::Metrics;

use crate::config::SocketBuffers;
use crate::feed::TaskApiFeed;
use crate::hub::Hub;
use crate::protocol::Close;
use crate::session::Context;
use crate::ws::Sessions;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub session: Context<TaskApiFeed>,
    pub buffers: SocketBuffers,
    pub sessions: Sessions,
    pub pubsub: String,
    pub metrics: GatewayMetrics,
}

impl AppState {
    pub fn hub(&self) -> &Hub {
        &self.session.hub
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloseLabels {
    /// One of the protocol's close codes: a fixed set.
    code: u16,
}

/// What the gateway counts.
#[derive(Debug, Clone, Default)]
pub struct GatewayMetrics {
    pub received: Counter,
    pub queued: Counter,
    pub kicked: Counter,
    pub dropped: Counter,
    pub gone: Counter,
    pub closes: Family<CloseLabels, Counter>,
}

impl GatewayMetrics {
    pub fn closed(&self, close: Close) {
        self.closes
            .get_or_create(&CloseLabels { code: close.code() })
            .inc();
    }

    /// Adds the counters to the `/metrics` registry.
    pub fn register(&self, metrics: &Metrics) {
        let counters = [
            (
                "events_received",
                "task-updates events pushed",
                &self.received,
            ),
            ("events_queued", "Events queued to sockets", &self.queued),
            (
                "sockets_kicked",
                "Sockets closed because their queue was full",
                &self.kicked,
            ),
            (
                "events_dropped",
                "Poison pushes answered with DROP",
                &self.dropped,
            ),
            (
                "sockets_gone",
                "Sockets the client closed or lost",
                &self.gone,
            ),
        ];
        for (name, help, counter) in counters {
            metrics.register(name, help, counter.clone());
        }
        metrics.register(
            "sockets_closed",
            "Sockets the gateway closed, by close code",
            self.closes.clone(),
        );
    }
}

/// The whole HTTP surface: the push callbacks behind daprd's app token (or
/// the Knative push token), the WebSocket route, health and metrics.
/// Sockets live for hours, so no request timeout applies to the upgrade.
/// [`router`] adds the page.
pub fn app(state: AppState, app_token: AppToken, metrics: Metrics) -> Router {
    let callbacks = dapr_http::behind_app_token(callback_routes().into_router(), app_token);
    let routes = Router::new()
        .merge(callbacks)
        .merge(public_routes().into_router())
        .with_state(state);
    // A plain GET of /ws/tasks (axum's text/plain upgrade rejection) is
    // made a problem document too.
    service::surface::finish(routes, Vec::new(), metrics)
}

/// What `main` serves (before its CORS layer): [`app`] and the page
/// ([`web::routes`]). The page's routes bring their own fallback (its
/// static files), so bare errors are made problem documents again after
/// the merge.
pub fn router(
    state: AppState,
    app_token: AppToken,
    metrics: Metrics,
    web: &web::WebConfig,
) -> Router {
    service::problem_errors::layer(app(state, app_token, metrics).merge(web::routes(web)))
}

/// The callbacks daprd and Knative call: internal, not in `openapi.json`.
pub fn callback_routes() -> RouteTable<AppState> {
    RouteTable::new()
        .route("/dapr/subscribe", get(push::subscriptions))
        .route(push::TASK_UPDATES_ROUTE, post(push::task_update))
}

/// The socket and the document (`openapi.json`), which also describes the
/// health routes and the page ([`openapi::PAGE_ROUTES`],
/// [`openapi::FALLBACK_PATHS`]); a test holds it to what [`router`]
/// serves, both ways ([`service::openapi::drift`]).
pub fn public_routes() -> RouteTable<AppState> {
    RouteTable::new()
        .route("/ws/tasks", get(ws::upgrade))
        .route("/openapi.json", get(openapi::serve))
}

#[cfg(test)]
mod openapi_tests;
#[cfg(test)]
mod session_edge_tests;
#[cfg(test)]
mod session_tests;
#[cfg(test)]
mod socket_tests;
