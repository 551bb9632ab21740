//! daprd's bulk publish: many structured CloudEvents of one topic and one
//! partition key in one HTTP call, with a per-entry report of what failed.
//!
//! What daprd 1.18.2 does with such a call (read in its source):
//! - `pkg/api/http/http.go` `onBulkPublish`: the body is a JSON array of
//!   `{entryId, event, contentType}`; entry ids must be unique and present.
//!   With `contentType: application/cloudevents+json` each event goes
//!   through `NewCloudEvent` → components-contrib `pubsub/envelope.go`
//!   `FromCloudEvent`, exactly as a single publish with that content type:
//!   the event keeps its own `id`, `source`, `type` and `time`, and a
//!   `traceid` it already carries is kept (daprd fills it only when absent).
//!   Request metadata (`metadata.partitionKey`) applies to every entry.
//!   Success is 204; a publish failure is 500 with
//!   `{"failedEntries":[{"entryId","error"}],"errorCode":...}`; refusals
//!   before anything is sent (unknown pubsub, empty topic, topic not
//!   allowed, a malformed body) are 4xx.
//! - `pkg/runtime/pubsub/publisher/publisher.go` `BulkPublish`: Kafka has
//!   the bulk-publish feature, so the entries reach the component as one
//!   request (no fallback to parallel single publishes). With no outbound
//!   resiliency policy on the component (ours has none) nothing is retried
//!   inside daprd (`bulkpublish_resiliency.go` would retry only the failed
//!   entries, which could reorder a key: keep it that way).
//! - components-contrib 1.18.3 `common/component/kafka/producer.go`
//!   `BulkPublish`: one `sarama.ProducerMessage` per entry, in entry order,
//!   keyed by the request's `partitionKey`, handed to the sync producer's
//!   `SendMessages`; `mapKafkaProducerErrors` reports exactly the entries
//!   whose message failed (by entry id).
//! - sarama 1.48.1 `sync_producer.go` `SendMessages` feeds the messages to
//!   the async producer in order; `async_producer.go`'s `partitionMuter`
//!   keeps at most one batch in flight per partition, and a batch that
//!   fails with a retriable error is retried before anything later of that
//!   partition is sent. So one key's written entries land in its partition
//!   in entry order, and every entry before the first failed one was
//!   written. A later entry can still be written after an earlier one
//!   failed: a message failed on its own in the dispatcher (larger than
//!   `Producer.MaxMessageBytes`: `returnError`, and the next message goes
//!   on), or a batch failed by the broker with a non-retriable error or out
//!   of retries (`producerRetryMax`, default 5: `returnErrors`,
//!   `retryMessage`), after which the partition unmutes and the next batch
//!   goes. The report shows it (a failed entry followed by unlisted ones);
//!   the relay holds everything from the first failed entry on
//!   (task-domain `relay::bulk::settle`).

use serde::{Deserialize, Serialize};

use crate::client::{DaprClient, DaprError, status_error};

const CLOUDEVENTS_JSON: &str = "application/cloudevents+json";

/// One structured CloudEvent of a bulk publish.
#[derive(Debug, Clone, Serialize)]
pub struct BulkEntry {
    /// Unique within the call; daprd reports failures by it.
    #[serde(rename = "entryId")]
    pub entry_id: String,
    pub event: serde_json::Value,
    #[serde(rename = "contentType")]
    content_type: &'static str,
}

impl BulkEntry {
    /// A structured CloudEvent entry (`application/cloudevents+json`).
    pub fn cloud_event(entry_id: impl Into<String>, event: serde_json::Value) -> Self {
        Self {
            entry_id: entry_id.into(),
            event,
            content_type: CLOUDEVENTS_JSON,
        }
    }
}

/// An entry daprd reports as not published.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FailedEntry {
    #[serde(rename = "entryId")]
    pub entry_id: String,
    #[serde(default)]
    pub error: String,
}

/// daprd's answer to a bulk publish that reached the broker: every entry
/// not listed in `failed` was published.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkReport {
    pub failed: Vec<FailedEntry>,
}

#[derive(Debug, Deserialize)]
struct FailureBody {
    #[serde(rename = "failedEntries", default)]
    failed_entries: Vec<FailedEntry>,
}

impl DaprClient {
    /// Publishes `entries` (structured CloudEvents) to `topic` in one call,
    /// all with `partition_key` as the Kafka message key.
    ///
    /// `Ok` means daprd handed the entries to the broker and reports which
    /// failed (none on 204). `Err(Rejected)` (4xx) means daprd refused the
    /// call before publishing anything; `Err(Unavailable)` means it is not
    /// known what was published (no answer, or a failure without a report),
    /// so the caller must treat every entry as unpublished.
    pub async fn bulk_publish_cloud_events(
        &self,
        pubsub: &str,
        topic: &str,
        partition_key: &str,
        entries: &[BulkEntry],
    ) -> Result<BulkReport, DaprError> {
        let response = self
            .request(
                reqwest::Method::POST,
                &format!("/v1.0-alpha1/publish/bulk/{pubsub}/{topic}"),
            )
            .query(&[("metadata.partitionKey", partition_key)])
            .json(entries)
            .send()
            .await
            .map_err(|e| DaprError::Unavailable(e.to_string()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(BulkReport::default());
        }
        let body = response.text().await.unwrap_or_default();
        report_of_failure(status, body)
    }
}

/// A 5xx that lists failed entries is a report (the rest were published);
/// anything else is an error for the whole call.
fn report_of_failure(status: reqwest::StatusCode, body: String) -> Result<BulkReport, DaprError> {
    if status.is_server_error()
        && let Ok(parsed) = serde_json::from_str::<FailureBody>(&body)
        && !parsed.failed_entries.is_empty()
    {
        return Ok(BulkReport {
            failed: parsed.failed_entries,
        });
    }
    Err(status_error(status, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;
    use serde_json::json;

    #[test]
    fn an_entry_serialises_as_daprd_reads_it() {
        let entry = BulkEntry::cloud_event("7", json!({"id": "e", "type": "t"}));
        assert_eq!(
            serde_json::to_value(&entry).unwrap(),
            json!({"entryId": "7", "event": {"id": "e", "type": "t"},
                   "contentType": "application/cloudevents+json"})
        );
    }

    #[test]
    fn a_500_with_failed_entries_is_a_report() {
        let body = r#"{"failedEntries":[{"entryId":"3","error":"kafka: boom"},{"entryId":"4"}],"errorCode":"ERR_PUBSUB_PUBLISH_MESSAGE"}"#;
        let report = report_of_failure(StatusCode::INTERNAL_SERVER_ERROR, body.into()).unwrap();
        assert_eq!(
            report.failed,
            vec![
                FailedEntry {
                    entry_id: "3".into(),
                    error: "kafka: boom".into()
                },
                FailedEntry {
                    entry_id: "4".into(),
                    error: String::new()
                },
            ]
        );
    }

    #[test]
    fn a_4xx_is_a_refusal_and_an_unreported_5xx_is_unavailable() {
        let refused = report_of_failure(
            StatusCode::NOT_FOUND,
            "{\"failedEntries\":[{\"entryId\":\"1\"}]}".into(),
        );
        assert!(
            matches!(refused, Err(DaprError::Rejected { status: 404, .. })),
            "{refused:?}"
        );
        for body in ["", "not json", "{\"failedEntries\":[]}"] {
            let unknown = report_of_failure(StatusCode::INTERNAL_SERVER_ERROR, body.into());
            assert!(
                matches!(unknown, Err(DaprError::Unavailable(_))),
                "{body}: {unknown:?}"
            );
        }
        let busy = report_of_failure(StatusCode::TOO_MANY_REQUESTS, String::new());
        assert!(matches!(busy, Err(DaprError::Unavailable(_))));
    }
}
