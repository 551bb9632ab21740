//! The one path from a push request to a typed [`Event`].
//!
//! Three shapes arrive at a handler, and all decode to the same result:
//! - a Dapr push: a structured CloudEvent (`application/cloudevents+json`),
//!   our event plus Dapr's `topic`/`pubsubname`/trace extensions;
//! - a Knative Eventing push carrying our event, in binary (`ce-*` headers)
//!   or structured mode;
//! - a Knative KafkaSource push of type `dev.knative.kafka.event`, whose data
//!   is the record Dapr wrote to Kafka: our structured event again.
//!
//! Decoding does not say who delivered: a payload's shape cannot prove that
//! (anyone can add or leave out `pubsubname`). The callback guard knows it
//! from the token that admitted the request (`dapr_http::DeliveredBy`).

use chrono::{DateTime, Utc};
use cloudevents::event::{AttributesReader, ExtensionValue};
use cloudevents::{Data, Event as CloudEvent};
use http::HeaderMap;

use crate::kinds::EventKind;
use crate::payload::Event;

/// The KafkaSource type whose data is the Kafka record value.
pub const KNATIVE_KAFKA_EVENT: &str = "dev.knative.kafka.event";

/// Who delivered the push, as the token it presented proves; it decides
/// how a reply is spelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// daprd: replies are 200 with SUCCESS / RETRY / DROP.
    Dapr,
    /// Knative Eventing: 2xx acknowledges, 5xx retries, other 4xx dead-letters.
    Knative,
}

/// A decoded push: the envelope's attributes and the typed event.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub id: String,
    pub source: String,
    pub event_type: String,
    pub time: Option<DateTime<Utc>>,
    pub traceparent: Option<String>,
    pub event: Event,
}

/// Why a push is poison. Every variant is permanent: retrying cannot help.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a CloudEvent: {0}")]
    NotACloudEvent(String),
    #[error("event {id} has no data")]
    MissingData { id: String },
    #[error("event {id} data is not JSON: {reason}")]
    DataNotJson { id: String, reason: String },
    #[error("event {id} of type {event_type} has unknown schema version {schema}")]
    UnknownVersion {
        id: String,
        event_type: String,
        schema: String,
    },
    #[error("event {id} of type {event_type} does not match its schema: {reason}")]
    InvalidData {
        id: String,
        event_type: String,
        reason: String,
    },
}

/// Decodes a push request's headers and body.
pub fn decode_push(headers: &HeaderMap, body: &[u8]) -> Result<Received, DecodeError> {
    let outer = cloudevents::binding::http::to_event(headers, body.to_vec())
        .map_err(|e| DecodeError::NotACloudEvent(e.to_string()))?;
    if outer.ty() == KNATIVE_KAFKA_EVENT {
        let record = data_bytes(&outer)?;
        let inner: CloudEvent = serde_json::from_slice(&record)
            .map_err(|e| DecodeError::NotACloudEvent(format!("Kafka record: {e}")))?;
        return typed(inner);
    }
    typed(outer)
}

fn typed(event: CloudEvent) -> Result<Received, DecodeError> {
    let id = event.id().to_owned();
    let event_type = event.ty().to_owned();
    let traceparent = match event.extension("traceparent") {
        Some(ExtensionValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    let typed_event = match EventKind::parse(&event_type) {
        None => Event::Unknown {
            event_type: event_type.clone(),
        },
        Some(kind) => {
            check_version(&event, kind)?;
            let data = data_json(&event)?;
            Event::from_data(kind, data).map_err(|e| DecodeError::InvalidData {
                id: id.clone(),
                event_type: event_type.clone(),
                reason: e.to_string(),
            })?
        }
    };
    Ok(Received {
        id,
        source: event.source().to_string(),
        event_type,
        time: event.time().copied(),
        traceparent,
        event: typed_event,
    })
}

/// A missing `dataschema` is read as v1; another version is poison.
fn check_version(event: &CloudEvent, kind: EventKind) -> Result<(), DecodeError> {
    match event.dataschema() {
        Some(schema) if schema.as_str() != kind.data_schema() => Err(DecodeError::UnknownVersion {
            id: event.id().to_owned(),
            event_type: kind.as_str().to_owned(),
            schema: schema.to_string(),
        }),
        _ => Ok(()),
    }
}

fn data_bytes(event: &CloudEvent) -> Result<Vec<u8>, DecodeError> {
    match event.data() {
        None => Err(DecodeError::MissingData {
            id: event.id().to_owned(),
        }),
        Some(Data::Binary(bytes)) => Ok(bytes.clone()),
        Some(Data::String(s)) => Ok(s.clone().into_bytes()),
        Some(Data::Json(v)) => Ok(v.to_string().into_bytes()),
    }
}

fn data_json(event: &CloudEvent) -> Result<serde_json::Value, DecodeError> {
    match event.data() {
        Some(Data::Json(v)) => Ok(v.clone()),
        _ => {
            let bytes = data_bytes(event)?;
            serde_json::from_slice(&bytes).map_err(|e| DecodeError::DataNotJson {
                id: event.id().to_owned(),
                reason: e.to_string(),
            })
        }
    }
}
