//! A small client for daprd's HTTP API. Every call carries the Dapr API
//! token; errors say whether retrying can help.

use std::time::Duration;

use serde::Serialize;

use crate::API_TOKEN_HEADER;

const CLOUDEVENTS_JSON: &str = "application/cloudevents+json";

#[derive(Debug, thiserror::Error)]
pub enum DaprError {
    /// daprd is down, slow, or the broker behind it failed: try again later.
    #[error("daprd unavailable: {0}")]
    Unavailable(String),
    /// daprd refused the request itself (4xx): retrying the same call won't help.
    #[error("daprd rejected the request with {status}: {body}")]
    Rejected { status: u16, body: String },
}

impl DaprError {
    pub fn is_transient(&self) -> bool {
        matches!(self, DaprError::Unavailable(_))
    }
}

/// A Dapr job (scheduler) definition; see the Jobs API.
#[derive(Debug, Clone, Serialize)]
pub struct JobSpec {
    /// A cron expression (`@daily`, six-field cron) or `@every 1h`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// An RFC 3339 time or a duration from now, for one-shot jobs.
    #[serde(rename = "dueTime", skip_serializing_if = "Option::is_none")]
    pub due_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeats: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    pub data: serde_json::Value,
    /// Replace a job of the same name instead of failing.
    pub overwrite: bool,
    #[serde(rename = "failurePolicy", skip_serializing_if = "Option::is_none")]
    pub failure_policy: Option<serde_json::Value>,
}

/// Talks to the daprd sidecar of this app.
#[derive(Debug, Clone)]
pub struct DaprClient {
    http: reqwest::Client,
    base_url: String,
    api_token: Option<String>,
}

impl DaprClient {
    pub fn new(base_url: impl Into<String>, api_token: Option<String>, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(64)
            .build()
            .unwrap_or_default();
        Self {
            http,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            api_token,
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub(crate) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self
            .http
            .request(method, format!("{}{path}", self.base_url));
        match &self.api_token {
            Some(token) => builder.header(API_TOKEN_HEADER, token),
            None => builder,
        }
    }

    /// Publishes a structured CloudEvent, keeping its own id and type, with
    /// `partition_key` as the Kafka message key. Ok only on daprd's 204.
    pub async fn publish_cloud_event(
        &self,
        pubsub: &str,
        topic: &str,
        partition_key: &str,
        event: &[u8],
        traceparent: Option<&str>,
    ) -> Result<(), DaprError> {
        let mut builder = self
            .request(
                reqwest::Method::POST,
                &format!("/v1.0/publish/{pubsub}/{topic}"),
            )
            .query(&[("metadata.partitionKey", partition_key)])
            .header(http::header::CONTENT_TYPE, CLOUDEVENTS_JSON)
            .body(event.to_vec());
        if let Some(tp) = traceparent {
            builder = builder.header("traceparent", tp);
        }
        expect_success(builder.send().await).await
    }

    /// Creates or replaces a job in the Dapr scheduler.
    pub async fn schedule_job(&self, name: &str, job: &JobSpec) -> Result<(), DaprError> {
        let builder = self
            .request(reqwest::Method::POST, &format!("/v1.0-alpha1/jobs/{name}"))
            .json(job);
        expect_success(builder.send().await).await
    }
}

async fn expect_success(result: reqwest::Result<reqwest::Response>) -> Result<(), DaprError> {
    let response = result.map_err(|e| DaprError::Unavailable(e.to_string()))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    Err(status_error(status, body))
}

/// The error for a non-success answer: 5xx and 429 may pass, any other 4xx
/// is daprd refusing the request itself.
pub(crate) fn status_error(status: reqwest::StatusCode, body: String) -> DaprError {
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        DaprError::Unavailable(format!("{status}: {body}"))
    } else {
        DaprError::Rejected {
            status: status.as_u16(),
            body,
        }
    }
}
