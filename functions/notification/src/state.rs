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

    /// The live values of `keys`, in the order asked, absent ones left
    /// out: one `POST /v1.0/state/{store}/bulk` (daprd 1.18.2
    /// `pkg/api/http/http.go` `onBulkGetState`, shapes in `requests.go`
    /// and `responses.go`). `state.postgresql` v2 answers it with one
    /// `key = ANY($1)` query and ignores `parallelism`, and its rows come
    /// in no particular order (components-contrib 1.18.3
    /// `state/postgresql/v2/postgresql.go`, `BulkGet`), hence the reorder.
    /// A key the store could not read fails the whole call.
    pub async fn get_bulk<T: DeserializeOwned>(
        &self,
        keys: &[String],
    ) -> Result<Vec<Versioned<T>>, StateError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let response = self
            .request(
                reqwest::Method::POST,
                &format!("/v1.0/state/{}/bulk", self.store),
            )
            .json(&serde_json::json!({ "keys": keys }))
            .send()
            .await
            .map_err(unavailable)?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(StateError::Unavailable(format!("{status}: {body}")));
        }
        let items: Vec<BulkItem> = response
            .json()
            .await
            .map_err(|e| StateError::Corrupt(e.to_string()))?;
        in_order(keys, items)
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

/// One key of daprd's bulk answer: `data` is absent for a key never
/// written or expired.
#[derive(Debug, serde::Deserialize)]
struct BulkItem {
    key: String,
    #[serde(default)]
    data: Option<serde_json::Value>,
    #[serde(default)]
    etag: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// The found values of a bulk answer in the order of `keys`.
fn in_order<T: DeserializeOwned>(
    keys: &[String],
    items: Vec<BulkItem>,
) -> Result<Vec<Versioned<T>>, StateError> {
    let mut by_key = std::collections::HashMap::with_capacity(items.len());
    for item in items {
        if let Some(error) = item.error.filter(|e| !e.is_empty()) {
            return Err(StateError::Unavailable(format!("{}: {error}", item.key)));
        }
        if let Some(data) = item.data.filter(|d| !d.is_null()) {
            by_key.insert(item.key, (data, item.etag.unwrap_or_default()));
        }
    }
    keys.iter()
        .filter_map(|key| by_key.remove(key))
        .map(|(data, etag)| {
            serde_json::from_value(data)
                .map(|value| Versioned { value, etag })
                .map_err(|e| StateError::Corrupt(e.to_string()))
        })
        .collect()
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
    use super::{BulkItem, StateError, encode, in_order};
    use proptest::prelude::*;
    use serde_json::json;

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|k| (*k).to_owned()).collect()
    }

    /// daprd's answer as it is written on the wire (`responses.go`).
    fn answer(body: serde_json::Value) -> Vec<BulkItem> {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn bulk_answers_come_back_in_the_order_asked_without_absent_keys() {
        let items = answer(json!([
            {"key": "c", "data": {"n": 3}, "etag": "7"},
            {"key": "a", "data": {"n": 1}, "etag": "5", "metadata": {"ttlExpireTime": "2026-12-01T00:00:00Z"}},
            {"key": "b"},
        ]));
        let got: Vec<super::Versioned<serde_json::Value>> =
            in_order(&keys(&["a", "b", "c"]), items).unwrap();
        let got: Vec<_> = got
            .iter()
            .map(|v| (v.value["n"].clone(), v.etag.as_str()))
            .collect();
        assert_eq!(got, vec![(json!(1), "5"), (json!(3), "7")]);
    }

    #[test]
    fn a_key_the_store_could_not_read_fails_the_read() {
        let items = answer(json!([{"key": "a", "error": "boom"}]));
        let got = in_order::<serde_json::Value>(&keys(&["a"]), items);
        assert!(matches!(got, Err(StateError::Unavailable(m)) if m.contains("boom")));
    }

    #[test]
    fn a_value_of_another_shape_is_corrupt_not_skipped() {
        let items = answer(json!([{"key": "a", "data": "text", "etag": "1"}]));
        let got = in_order::<std::collections::HashMap<String, u32>>(&keys(&["a"]), items);
        assert!(matches!(got, Err(StateError::Corrupt(_))));
    }

    proptest! {
        /// Whatever order daprd answers in, the result follows the keys
        /// asked and holds exactly the keys that had data.
        #[test]
        fn reorders_any_permutation(
            present in proptest::collection::vec(any::<bool>(), 0..40),
            seed in any::<u64>(),
        ) {
            let asked: Vec<String> = (0..present.len()).map(|i| format!("k{i}")).collect();
            let mut wire: Vec<serde_json::Value> = asked
                .iter()
                .zip(&present)
                .map(|(k, p)| if *p { json!({"key": k, "data": k, "etag": "e"}) } else { json!({"key": k}) })
                .collect();
            // A deterministic shuffle from the seed.
            let n = wire.len();
            for i in (1..n).rev() {
                let j = (seed.wrapping_mul(6364136223846793005).wrapping_add(i as u64) % (i as u64 + 1)) as usize;
                wire.swap(i, j);
            }
            let got: Vec<super::Versioned<String>> = in_order(&asked, answer(json!(wire))).unwrap();
            let expected: Vec<String> = asked
                .iter()
                .zip(&present)
                .filter(|(_, p)| **p)
                .map(|(k, _)| k.clone())
                .collect();
            prop_assert_eq!(got.into_iter().map(|v| v.value).collect::<Vec<_>>(), expected);
        }
    }

    #[test]
    fn keys_stay_one_path_segment() {
        assert_eq!(encode("view|abc-1"), "view%7Cabc-1");
        assert_eq!(encode("a/b?c"), "a%2Fb%3Fc");
    }
}
