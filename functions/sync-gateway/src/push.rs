//! `task-updates` pushes: decode once, fan out to the user's sockets on
//! this replica, reply once in the terms of the deliverer the request's
//! token proved ([`DeliveredBy`]).
//!
//! The fan-out never waits on a socket (a full queue kicks that socket,
//! whose client resumes from the change feed), so a push is settled as
//! soon as it is decoded: `SUCCESS`, or `DROP` for poison. There is
//! nothing to retry: the gateway keeps no state an event must reach.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use contracts::{Event, Topic, decode_push};
use dapr_http::{DeliveredBy, Outcome, Subscription, reply};

use crate::AppState;
use crate::hub::Live;
use crate::protocol::ServerMessage;

/// Where daprd (or a Knative push) delivers `task-updates`.
pub const TASK_UPDATES_ROUTE: &str = "/events/task-updates";

/// `GET /dapr/subscribe`: the local stack's subscription (the cluster
/// declares it: dapr/kubernetes/subscriptions/sync-gateway).
pub async fn subscriptions(State(state): State<AppState>) -> Json<Vec<Subscription>> {
    Json(vec![Subscription::new(
        &state.pubsub,
        Topic::TaskUpdates,
        TASK_UPDATES_ROUTE,
    )])
}

/// `POST /events/task-updates`.
#[tracing::instrument(skip_all, fields(event_id, deliverer = ?deliverer))]
pub async fn task_update(
    State(state): State<AppState>,
    DeliveredBy(deliverer): DeliveredBy,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let outcome = match decode_push(&headers, &body) {
        Ok(received) => {
            tracing::Span::current().record("event_id", received.id.as_str());
            fan_out(&state, received.event)
        }
        Err(error) => Outcome::Drop(error.to_string()),
    };
    if let Outcome::Drop(reason) = &outcome {
        tracing::warn!(%reason, "poison event dropped to the dead-letter topic");
        state.metrics.dropped.inc();
    }
    reply(&outcome, deliverer)
}

fn fan_out(state: &AppState, event: Event) -> Outcome {
    let Event::TaskSync(data) = event else {
        return Outcome::Drop("only com.todo.task.sync belongs on task-updates".to_owned());
    };
    let live = Arc::new(Live {
        epoch: data.epoch.clone(),
        offset: data.offset,
        text: ServerMessage::event(&data),
    });
    let fanout = state.hub().publish(&data.user_id, live);
    state.metrics.received.inc();
    state.metrics.queued.inc_by(fanout.queued as u64);
    state.metrics.kicked.inc_by(fanout.kicked as u64);
    if fanout.kicked > 0 {
        tracing::info!(kicked = fanout.kicked, "slow sockets closed");
    }
    Outcome::Success
}
