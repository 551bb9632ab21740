//! The JSON Schemas in `schemas/`, compiled once, and a check of a whole
//! outgoing CloudEvent (envelope and data) against them. Tests of every
//! emitter run their events through [`validate_cloudevent`].

use std::sync::LazyLock;

use jsonschema::{Resource, Validator};
use serde_json::Value;

const ENVELOPE: &str = include_str!("../schemas/cloudevent.json");
const TASK_SNAPSHOT: &str = include_str!("../schemas/task-snapshot.json");
const TASK_EVENT: &str = include_str!("../schemas/task-event.v1.json");
const TASK_SYNC: &str = include_str!("../schemas/task-sync.v1.json");
const REMINDER_EVENT: &str = include_str!("../schemas/reminder-event.v1.json");
const NOTIFICATION_FAILED: &str = include_str!("../schemas/notification-failed.v1.json");

/// Every schema document, by file name, for tooling and docs.
pub const SCHEMA_FILES: [(&str, &str); 6] = [
    ("cloudevent.json", ENVELOPE),
    ("task-snapshot.json", TASK_SNAPSHOT),
    ("task-event.v1.json", TASK_EVENT),
    ("task-sync.v1.json", TASK_SYNC),
    ("reminder-event.v1.json", REMINDER_EVENT),
    ("notification-failed.v1.json", NOTIFICATION_FAILED),
];

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("schema {0} does not compile: {1}")]
    Compile(&'static str, String),
    #[error("event does not match {schema}: {errors}")]
    Mismatch { schema: String, errors: String },
}

struct Compiled {
    envelope: Validator,
    data: Vec<(String, Validator)>,
}

static COMPILED: LazyLock<Result<Compiled, String>> =
    LazyLock::new(|| compile_all().map_err(|e| e.to_string()));

fn parse(name: &'static str, text: &str) -> Result<Value, SchemaError> {
    serde_json::from_str(text).map_err(|e| SchemaError::Compile(name, e.to_string()))
}

fn compile(name: &'static str, text: &str) -> Result<Validator, SchemaError> {
    let snapshot = parse("task-snapshot.json", TASK_SNAPSHOT)?;
    let resource = Resource::from_contents(snapshot)
        .map_err(|e| SchemaError::Compile("task-snapshot.json", e.to_string()))?;
    jsonschema::options()
        .should_validate_formats(true)
        .with_resource("urn:todo-events:schema:task-snapshot:v1", resource)
        .build(&parse(name, text)?)
        .map_err(|e| SchemaError::Compile(name, e.to_string()))
}

fn compile_all() -> Result<Compiled, SchemaError> {
    let mut data = Vec::new();
    for (name, text) in [
        ("task-event.v1.json", TASK_EVENT),
        ("task-sync.v1.json", TASK_SYNC),
        ("reminder-event.v1.json", REMINDER_EVENT),
        ("notification-failed.v1.json", NOTIFICATION_FAILED),
    ] {
        let id = parse(name, text)?["$id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        data.push((id, compile(name, text)?));
    }
    Ok(Compiled {
        envelope: compile("cloudevent.json", ENVELOPE)?,
        data,
    })
}

fn check(validator: &Validator, schema: &str, instance: &Value) -> Result<(), SchemaError> {
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(SchemaError::Mismatch {
            schema: schema.to_owned(),
            errors: errors.join("; "),
        })
    }
}

/// Validates a structured CloudEvent: the envelope, then `data` against the
/// schema named by its `dataschema`.
pub fn validate_cloudevent(event: &Value) -> Result<(), SchemaError> {
    let compiled = COMPILED
        .as_ref()
        .map_err(|e| SchemaError::Compile("schemas", e.clone()))?;
    check(&compiled.envelope, "cloudevent.json", event)?;
    let schema_id = event["dataschema"].as_str().unwrap_or_default();
    let (_, validator) = compiled
        .data
        .iter()
        .find(|(id, _)| id == schema_id)
        .ok_or_else(|| SchemaError::Mismatch {
            schema: schema_id.to_owned(),
            errors: "no such data schema".to_owned(),
        })?;
    check(validator, schema_id, &event["data"])
}
