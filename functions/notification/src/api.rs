//! The user API: `/api/devices`, `/api/notification-settings`,
//! `/api/notifications` (own history) and, for admins,
//! `/api/notifications/failed` and its retry; and `GET /openapi.json`,
//! the document that describes them ([`OPENAPI`]).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use service::ApiJson;
use service::problem::FieldError;
use uuid::Uuid;

use auth::Authenticated;

use crate::AppState;
use crate::delivery::{DeliveryRecord, Status};
use crate::error::ApiError;
use crate::history;
use crate::jobs::{JobName, one_shot};
use crate::push::{check_endpoint, ua_auth, ua_public_key};
use crate::store::{Device, NotificationSettings};
use crate::view::ReminderView;

/// The OpenAPI 3.1 document, kept in the repo beside this crate.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// `GET /openapi.json`.
/// No route under `/api` takes a query parameter, so any query string is
/// a client's mistake (`?limit=5` would otherwise seem to work): 400.
pub async fn refuse_query_string(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let has_query = request.uri().query().is_some_and(|q| !q.is_empty());
    if has_query && request.uri().path().starts_with("/api/") {
        return ApiError::QueryString.into_response();
    }
    next.run(request).await
}

pub async fn openapi() -> Response {
    service::openapi::serve(OPENAPI)
}

pub const MAX_ENDPOINT_LEN: usize = 2048;
const MAX_EMAIL_LEN: usize = 320;

/// A `PushSubscription` as a browser hands it over (its `keys` flattened).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceInput {
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
}

fn field(field: &str, message: &str) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

impl DeviceInput {
    /// A P-256 public key (65 bytes, uncompressed, a point on the curve:
    /// anything else could never be encrypted to) and a 16-byte secret, as
    /// RFC 8291 requires; the endpoint is checked by resolving it.
    fn validate(&self) -> Result<(), ApiError> {
        let mut errors = Vec::new();
        if self.endpoint.len() > MAX_ENDPOINT_LEN {
            errors.push(field("endpoint", "at most 2048 characters"));
        }
        if ua_public_key(&self.p256dh).is_none() {
            errors.push(field(
                "p256dh",
                "must be a base64url uncompressed P-256 public key (65 bytes, 0x04, on the curve)",
            ));
        }
        if ua_auth(&self.auth).is_none() {
            errors.push(field("auth", "must be a base64url 16-byte secret"));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Invalid(errors))
        }
    }
}

/// `POST /api/devices`: 201 for a new device, 200 for one already this
/// user's (keys updated). An endpoint of another user moves here.
pub async fn register_device(
    State(state): State<AppState>,
    Authenticated(user): Authenticated,
    ApiJson(input): ApiJson<DeviceInput>,
) -> Result<Response, ApiError> {
    input.validate()?;
    let (url, _) = check_endpoint(&input.endpoint, state.allow_private_endpoints).await?;
    // Stored as the URL parser writes it (scheme and host lowercased, the
    // default port dropped, IPv4 normalised): two spellings of one
    // endpoint are one device, of one user.
    let (device, new) = state
        .store
        .register_device(&user.user_id, url.as_str(), &input.p256dh, &input.auth)
        .await?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(device)).into_response())
}

#[derive(Debug, Serialize)]
pub struct Items<T> {
    pub items: Vec<T>,
}

pub async fn list_devices(
    State(state): State<AppState>,
    Authenticated(user): Authenticated,
) -> Result<Json<Items<Device>>, ApiError> {
    Ok(Json(Items {
        items: state.store.devices(&user.user_id).await?,
    }))
}

/// `DELETE /api/devices/{id}`: 204, or 404 for an id that is not one of
/// the caller's devices (a malformed id cannot name one either).
pub async fn delete_device(
    State(state): State<AppState>,
    Authenticated(user): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound)?;
    if state.store.remove_device(&user.user_id, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

pub async fn get_settings(
    State(state): State<AppState>,
    Authenticated(user): Authenticated,
) -> Result<Json<NotificationSettings>, ApiError> {
    Ok(Json(state.store.settings(&user.user_id).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsInput {
    #[serde(default)]
    pub email: Option<String>,
    pub email_enabled: bool,
    pub push_enabled: bool,
}

pub async fn put_settings(
    State(state): State<AppState>,
    Authenticated(user): Authenticated,
    ApiJson(input): ApiJson<SettingsInput>,
) -> Result<Json<NotificationSettings>, ApiError> {
    if let Some(email) = &input.email
        && (email.len() > MAX_EMAIL_LEN || email.parse::<lettre::Address>().is_err())
    {
        return Err(ApiError::Invalid(vec![field(
            "email",
            "must be an email address",
        )]));
    }
    let settings = NotificationSettings {
        email: input.email,
        email_enabled: input.email_enabled,
        push_enabled: input.push_enabled,
    };
    state.store.put_settings(&user.user_id, &settings).await?;
    Ok(Json(settings))
}

#[derive(Debug, Serialize)]
pub struct DeliveryView {
    pub id: String,
    #[serde(flatten)]
    pub record: DeliveryRecord,
}

fn views(records: Vec<DeliveryRecord>) -> Items<DeliveryView> {
    Items {
        items: records
            .into_iter()
            .map(|record| DeliveryView {
                id: record.id(),
                record,
            })
            .collect(),
    }
}

/// `GET /api/notifications`: the caller's own deliveries, newest first.
pub async fn my_notifications(
    State(state): State<AppState>,
    Authenticated(user): Authenticated,
) -> Result<Json<Items<DeliveryView>>, ApiError> {
    Ok(Json(views(history::of_user(&state, &user.user_id).await?)))
}

/// `GET /api/notifications/failed` (admins): failed deliveries and those
/// of unknown outcome, each with its `status`.
pub async fn failed(
    State(state): State<AppState>,
    Authenticated(user): Authenticated,
) -> Result<Json<Items<DeliveryView>>, ApiError> {
    if !user.admin {
        return Err(ApiError::Forbidden);
    }
    Ok(Json(views(history::failed(&state).await?)))
}

/// `POST /api/notifications/failed/{id}/retry` (admins): a failed or
/// unknown delivery goes back to `retrying` and its retry job is due now.
/// Retrying an unknown one is the admin's decision that a second message
/// is better than none. A firing whose reminder was cancelled or moved
/// since is not retried (409). If the scheduler does not take the job, the
/// record is put back as it was and the answer is 503.
pub async fn retry(
    State(state): State<AppState>,
    Authenticated(user): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !user.admin {
        return Err(ApiError::Forbidden);
    }
    let key = DeliveryRecord::key_from_id(&id).ok_or(ApiError::NotFound)?;
    let found = state
        .state
        .get::<DeliveryRecord>(&key)
        .await?
        .ok_or(ApiError::NotFound)?;
    let previous = found.value.status;
    if !matches!(previous, Status::Failed | Status::Unknown) {
        return Err(ApiError::NotFailed);
    }
    // The retry job would find the firing gone and send nothing.
    let view = state
        .state
        .get::<ReminderView>(&ReminderView::key(found.value.reminder_id))
        .await?;
    if !view.is_some_and(|v| v.value.is_live_firing(found.value.fire_at)) {
        return Err(ApiError::FiringGone);
    }
    let mut record = found.value;
    record.status = Status::Retrying;
    record.updated_at = Utc::now();
    state
        .state
        .replace(&key, &record, &found.etag, state.record_ttl)
        .await?;
    let job = JobName::Retry {
        reminder_id: record.reminder_id,
        fire_at: record.fire_at,
        target: record.target.clone(),
        attempt: record.attempts,
    };
    let spec = one_shot(
        Utc::now(),
        serde_json::json!({"reminder_id": record.reminder_id}),
    );
    if let Err(error) = state.dapr.schedule_job(&job.render(), &spec).await {
        restore(&state, &key, &record, previous).await;
        return Err(ApiError::Scheduler(error.to_string()));
    }
    Ok(StatusCode::ACCEPTED)
}

/// Puts a retry whose job was not scheduled back to `previous`, by the
/// ETag of the record as this request marked it: a record that moved on
/// since is someone else's and stays. Without the job nothing would ever
/// take a `retrying` record again, nor list it for admins.
async fn restore(state: &AppState, key: &str, marked: &DeliveryRecord, previous: Status) {
    let current = match state.state.get::<DeliveryRecord>(key).await {
        Ok(Some(current)) => current,
        Ok(None) => return,
        Err(error) => {
            tracing::error!(%error, %key, "retry not scheduled and the record not restored: it stays retrying");
            return;
        }
    };
    if current.value != *marked {
        return;
    }
    let mut back = current.value;
    back.status = previous;
    back.updated_at = Utc::now();
    if let Err(error) = state
        .state
        .replace(key, &back, &current.etag, state.record_ttl)
        .await
    {
        tracing::error!(%error, %key, "retry not scheduled and the record not restored: it stays retrying");
    }
}

#[cfg(test)]
#[path = "api_tests.rs"]
mod tests;
