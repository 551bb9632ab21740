//! daprd's state API (`/v1.0/state/{store}`) and the job deletions the
//! shared client lacks: the reminder view and the delivery log live in
//! the `statestore` component (`state.postgresql` v2).
//!
//! What the store does, read in components-contrib 1.18.3
//! `state/postgresql/v2/postgresql.go` (`Set`):
//! - with an ETag, an UPDATE of that key at that ETag; a mismatch is an
//!   `ETagMismatch`, which daprd 1.18.2 answers 409
//!   (`pkg/api/http/http.go`, `etagError`);
//! - first-write without an ETag is an upsert that updates only an expired
//!   row; on a live row it affects nothing and fails with "no item was
//!   updated", which daprd answers 500 with that text: [`StateClient::create`]
//!   reads that answer as "already there";
//! - `metadata.ttlInSeconds` sets the row's `expires_at`; an expired row
//!   reads as absent.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use dapr_http::API_TOKEN_HEADER;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state store unavailable: {0}")]
    Unavailable(String),
    /// The ETag did not match, or a first write found the key taken.
    #[error("state conflict")]
    Conflict,
    #[error("stored state unreadable: {0}")]
    Corrupt(String),
}

/// A value read with its ETag.
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    pub value: T,
    pub etag: String,
}

#[derive(Debug, Clone)]
pub struct StateClient {
    http: reqwest::Client,
    base_url: String,
    token: Option<String>,
    store: String,
}

#[derive(Serialize)]
struct Item<'a, T> {
    key: &'a str,
    value: &'a T,
    #[serde(skip_serializing_if = "Option::is_none")]
    etag: Option<&'a str>,
    options: Options,
    metadata: Metadata,
}

#[derive(Serialize)]
struct Options {
    concurrency: &'static str,
    consistency: &'static str,
}

#[derive(Serialize)]
struct Metadata {
    #[serde(rename = "ttlInSeconds")]
    ttl_in_seconds: String,
}

impl StateClient {
    pub fn new(base_url: &str, token: Option<String>, store: &str, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .unwrap_or_default();
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            token,
            store: store.to_owned(),
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self
            .http
            .request(method, format!("{}{path}", self.base_url));
        match &self.token {
            Some(token) => builder.header(API_TOKEN_HEADER, token),
            None => builder,
        }
    }

    fn key_path(&self, key: &str) -> String {
        format!("/v1.0/state/{}/{}", self.store, encode(key))
    }

    /// The value and its ETag, or `None` (never written, or expired).
    pub async fn get<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<Versioned<T>>, StateError> {
        let response = self
            .request(reqwest::Method::GET, &self.key_path(key))
            .query(&[("consistency", "strong")])
            .send()
            .await
            .map_err(unavailable)?;
        let status = response.status();
        if status == reqwest::StatusCode::NO_CONTENT {
            return Ok(None);
        }
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(StateError::Unavailable(format!("{status}: {body}")));
        }
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = response.bytes().await.map_err(unavailable)?;
        if bytes.is_empty() {
            return Ok(None);
        }
        let value =
            serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt(e.to_string()))?;
        Ok(Some(Versioned { value, etag }))
    }

    /// Writes `key` only if it holds nothing live: [`StateError::Conflict`]
    /// when it does.
    pub async fn create<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<(), StateError> {
        self.save(key, value, None, ttl).await
    }

    /// Replaces `key` if it still has `etag`: [`StateError::Conflict`] when
    /// someone wrote it since.
    pub async fn replace<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        etag: &str,
        ttl: Duration,
    ) -> Result<(), StateError> {
        self.save(key, value, Some(etag), ttl).await
    }

    async fn save<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        etag: Option<&str>,
        ttl: Duration,
    ) -> Result<(), StateError> {
        let item = Item {
            key,
            value,
            etag,
            options: Options {
                concurrency: "first-write",
                consistency: "strong",
            },
            metadata: Metadata {
                ttl_in_seconds: ttl.as_secs().max(1).to_string(),
            },
        };
        let response = self
            .request(
                reqwest::Method::POST,
                &format!("/v1.0/state/{}", self.store),
            )
            .json(&[item])
            .send()
            .await
            .map_err(unavailable)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        if status == reqwest::StatusCode::CONFLICT
            || (etag.is_none() && body.contains("no item was updated"))
        {
            return Err(StateError::Conflict);
        }
        Err(StateError::Unavailable(format!("{status}: {body}")))
    }

    /// Deletes a job of this app in the Dapr scheduler; a job that is not
    /// there (already fired, never made) is fine.
    pub async fn delete_job(&self, name: &str) -> Result<(), StateError> {
        let response = self
            .request(
                reqwest::Method::DELETE,
                &format!("/v1.0-alpha1/jobs/{}", encode(name)),
            )
            .send()
            .await
            .map_err(unavailable)?;
        let status = response.status();
        if status.is_success() || status == reqwest::StatusCode::NOT_FOUND {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(StateError::Unavailable(format!("{status}: {body}")))
    }

    /// Reads one secret (all its keys) from a Dapr secret store.
    pub async fn secret(
        &self,
        store: &str,
        name: &str,
    ) -> Result<std::collections::HashMap<String, String>, StateError> {
        let response = self
            .request(
                reqwest::Method::GET,
                &format!("/v1.0/secrets/{}/{}", encode(store), encode(name)),
            )
            .send()
            .await
            .map_err(unavailable)?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(StateError::Unavailable(format!("{status}: {body}")));
        }
        response
            .json()
            .await
            .map_err(|e| StateError::Corrupt(e.to_string()))
    }
}

fn unavailable(error: reqwest::Error) -> StateError {
    StateError::Unavailable(error.to_string())
}

/// Keys are ours (letters, digits, `-`, `|`, `.`), but encode anyway so a
/// path segment never carries a `/` or `?`.
fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn keys_stay_one_path_segment() {
        assert_eq!(encode("view|abc-1"), "view%7Cabc-1");
        assert_eq!(encode("a/b?c"), "a%2Fb%3Fc");
    }
}
