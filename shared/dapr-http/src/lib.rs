//! Everything that speaks Dapr's HTTP contracts, in both directions:
//! [`client`] calls daprd (publish, jobs), [`bulk`] publishes many events
//! of one key in one call, [`callback`] is what
//! daprd calls on the app (subscriptions, replies), and [`callback_auth`]
//! who may call it (the app API token, the Knative push token) and which
//! deliverer that makes the caller.

pub mod bulk;
pub mod callback;
pub mod callback_auth;
pub mod callback_body;
pub mod client;
pub mod jobs;

pub use bulk::{BulkEntry, BulkReport, FailedEntry};
pub use callback::{Outcome, Subscription, decode_delivery, reply};
pub use callback_auth::{AppToken, DeliveredBy, behind_app_token, require_app_token};
pub use client::{DaprClient, DaprError, JobSpec};

/// The header daprd and apps use for both API tokens.
pub const API_TOKEN_HEADER: &str = "dapr-api-token";
