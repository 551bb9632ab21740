//! The last `email` claim seen per user, in the state store: the address
//! a reminder falls back to when neither the user's settings nor its own
//! events name one. The recurring function makes a task's next occurrence
//! with no token, so its reminders' events carry no claim
//! (`shared/task-domain/src/repo/successor.rs`).
//!
//! Best effort: a claim not remembered only loses that fallback, so a
//! failure here is logged and never fails the event.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::state::StateError;

/// Kept a year after it was last seen.
const TTL: Duration = Duration::from_secs(366 * 24 * 3600);

#[derive(Debug, Serialize, Deserialize)]
struct Claim {
    email: String,
}

fn key(user_id: &str) -> String {
    format!("email|{user_id}")
}

/// Remembers `email` as `user_id`'s latest claim (rewritten each time, so
/// the TTL runs from the last sighting). A concurrent writer wins: its
/// claim is as recent as this one.
pub async fn remember(state: &AppState, user_id: &str, email: &str) {
    let key = key(user_id);
    let claim = Claim {
        email: email.to_owned(),
    };
    let written = match state.state.get::<Claim>(&key).await {
        Ok(Some(current)) => state.state.replace(&key, &claim, &current.etag, TTL).await,
        Ok(None) => state.state.create(&key, &claim, TTL).await,
        Err(error) => Err(error),
    };
    match written {
        Ok(()) | Err(StateError::Conflict) => {}
        Err(error) => tracing::warn!(%error, "email claim not remembered"),
    }
}

/// The last email claim seen for `user_id`, if any.
pub async fn last(state: &AppState, user_id: &str) -> Result<Option<String>, StateError> {
    Ok(state
        .state
        .get::<Claim>(&key(user_id))
        .await?
        .map(|c| c.value.email))
}
