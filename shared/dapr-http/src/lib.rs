//! Everything that speaks Dapr's HTTP contracts, in both directions:
//! [`client`] calls daprd (publish, jobs), [`bulk`] publishes many events
//! of one key in one call, [`callback`] is what
//! daprd calls on the app (subscriptions, replies, the app API token).

pub mod bulk;
pub mod callback;
pub mod client;

pub use bulk::{BulkEntry, BulkReport, FailedEntry};
pub use callback::{AppToken, Outcome, Subscription, reply, require_app_token};
pub use client::{DaprClient, DaprError, JobSpec};

/// The header daprd and apps use for both API tokens.
pub const API_TOKEN_HEADER: &str = "dapr-api-token";
