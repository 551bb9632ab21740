//! Reading a user's stream from task-api's change feed
//! (`GET /api/changes`), with that user's own token: the gateway reads no
//! table, and the feed only ever shows the token's owner their own events.
//!
//! [`ChangeFeed`] is what a session needs; [`TaskApiFeed`] is the HTTP
//! client for it. Session tests use an in-memory stream instead.

use std::future::Future;
use std::time::Duration;

use contracts::TaskSyncData;
use serde::Deserialize;

/// A position in a user's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub epoch: String,
    pub offset: i64,
}

/// One page of the feed.
#[derive(Debug, Clone, PartialEq)]
pub enum Page {
    /// Events after the asked offset, in order, without a hole.
    Events(Vec<TaskSyncData>),
    /// The asked position is not in the history; the current epoch.
    Reset { epoch: String },
}

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// task-api refused the user's token (it expired meanwhile).
    #[error("the change feed refused the token")]
    Unauthorized,
    /// task-api refused the request itself (a 4xx other than 401, 408 and
    /// 429): asking again cannot help.
    #[error("the change feed refused the request: {0}")]
    Refused(reqwest::StatusCode),
    #[error("the change feed is unavailable: {0}")]
    Unavailable(String),
}

/// What a session reads from the durable log.
pub trait ChangeFeed: Clone + Send + Sync + 'static {
    /// The user's current position.
    fn head(&self, token: &str) -> impl Future<Output = Result<Position, FeedError>> + Send;
    /// At most `limit` events after `after` of `epoch`.
    fn after(
        &self,
        token: &str,
        epoch: &str,
        after: i64,
        limit: i64,
    ) -> impl Future<Output = Result<Page, FeedError>> + Send;
}

/// task-api's `GET /api/changes` over HTTP.
#[derive(Clone)]
pub struct TaskApiFeed {
    http: reqwest::Client,
    url: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Wire {
    Reset {
        reset: bool,
        epoch: String,
    },
    Events {
        epoch: String,
        events: Vec<WireEvent>,
        next_offset: i64,
    },
}

#[derive(Deserialize)]
struct WireEvent {
    data: TaskSyncData,
}

impl TaskApiFeed {
    /// The feed of the task-api at `base_url`; each call ends after
    /// `timeout`.
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: reqwest::Client::builder().timeout(timeout).build()?,
            url: format!("{}/api/changes", base_url.trim_end_matches('/')),
        })
    }

    async fn get(&self, token: &str, query: &[(&str, String)]) -> Result<Wire, FeedError> {
        let response = self
            .http
            .get(&self.url)
            .bearer_auth(token)
            .query(query)
            .send()
            .await
            .map_err(|e| FeedError::Unavailable(e.to_string()))?;
        match response.status() {
            reqwest::StatusCode::OK => response
                .json()
                .await
                .map_err(|e| FeedError::Unavailable(format!("unreadable answer: {e}"))),
            reqwest::StatusCode::UNAUTHORIZED => Err(FeedError::Unauthorized),
            status
                if status.is_client_error()
                    && status != reqwest::StatusCode::REQUEST_TIMEOUT
                    && status != reqwest::StatusCode::TOO_MANY_REQUESTS =>
            {
                Err(FeedError::Refused(status))
            }
            status => Err(FeedError::Unavailable(format!(
                "task-api answered {status}"
            ))),
        }
    }
}

impl ChangeFeed for TaskApiFeed {
    async fn head(&self, token: &str) -> Result<Position, FeedError> {
        match self.get(token, &[]).await? {
            Wire::Events {
                epoch, next_offset, ..
            } => Ok(Position {
                epoch,
                offset: next_offset,
            }),
            Wire::Reset { .. } => Err(FeedError::Unavailable(
                "task-api answered the head with a reset".into(),
            )),
        }
    }

    async fn after(
        &self,
        token: &str,
        epoch: &str,
        after: i64,
        limit: i64,
    ) -> Result<Page, FeedError> {
        let query = [
            ("epoch", epoch.to_owned()),
            ("after", after.to_string()),
            ("limit", limit.to_string()),
        ];
        Ok(match self.get(token, &query).await? {
            Wire::Reset { reset: true, epoch } => Page::Reset { epoch },
            Wire::Reset { .. } => {
                return Err(FeedError::Unavailable(
                    "reset: false is not an answer".into(),
                ));
            }
            Wire::Events { events, .. } => {
                Page::Events(events.into_iter().map(|e| e.data).collect())
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_answers_of_the_feed_are_read() {
        let reset: Wire = serde_json::from_str(r#"{"reset":true,"epoch":"e2"}"#).unwrap();
        assert!(matches!(reset, Wire::Reset { reset: true, ref epoch } if epoch == "e2"));
        let page: Wire =
            serde_json::from_str(r#"{"epoch":"e","next_offset":0,"events":[]}"#).unwrap();
        assert!(matches!(page, Wire::Events { next_offset: 0, .. }));
    }
}
