//! The AsyncAPI document against the code: every event type the code emits
//! (`EventKind::ALL`) is a message on its topic's channel and on that
//! topic's dead-letter channel, published by a `send` operation, with its
//! payload pinned to its `type` and `dataschema` and its `data` referring
//! to the schema file whose `$id` the code names; every topic and
//! dead-letter topic (`Topic::ALL`) is a channel keyed by `user_id`; every
//! report a function publishes to a dead-letter topic (`REPORT_KINDS`) is
//! a message there, sent by its function and pinned the same way; and
//! nothing in the document names a type the code does not know.

use std::path::Path;

use contracts::asyncapi::{
    channel, channel_message_names, document, message, operation_message_names,
};
use contracts::{EventKind, REPORT_KINDS, ReportKind, Topic};
use serde_json::Value;

fn doc() -> Value {
    document().expect("asyncapi.json is JSON")
}

/// The `$id` of the schema file a payload `$ref` (relative to the document)
/// names.
fn schema_id(reference: &Value) -> String {
    let file = reference["$ref"].as_str().expect("a file $ref");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let schema: Value = serde_json::from_str(&text).expect("schema JSON");
    schema["$id"].as_str().expect("$id").to_owned()
}

/// The component message of an event type.
fn message_of<'a>(doc: &'a Value, event_type: &str) -> &'a Value {
    doc["components"]["messages"]
        .as_object()
        .expect("components.messages")
        .values()
        .find(|m| m["name"] == event_type)
        .unwrap_or_else(|| panic!("{event_type} is not a message of asyncapi.json"))
}

/// What a message pins on top of the envelope schema, after checking that
/// it is a CloudEvent keyed by the user id on `cloudevent.json`.
fn pinned_properties<'a>(message: &'a Value, event_type: &str) -> &'a Value {
    assert_eq!(message["contentType"], "application/cloudevents+json");
    assert_eq!(
        message["bindings"]["kafka"]["key"]["type"], "string",
        "{event_type}: the record key is the user id"
    );
    let parts = message["payload"]["allOf"].as_array().expect("allOf");
    assert_eq!(schema_id(&parts[0]), "urn:todo-events:schema:cloudevent:v1");
    let pinned = &parts[1]["properties"];
    assert_eq!(pinned["type"]["const"], event_type);
    pinned
}

/// Checks every example of a message against the schemas; how many.
fn check_examples(doc: &Value, event_type: &str) -> usize {
    let mut checked = 0;
    for example in message_of(doc, event_type)["examples"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let payload = &example["payload"];
        assert_eq!(payload["type"], event_type);
        contracts::schema::validate_cloudevent(payload)
            .unwrap_or_else(|e| panic!("example of {event_type}: {e}"));
        checked += 1;
    }
    checked
}

/// The types a channel may carry: its topic's event kinds, and on a
/// dead-letter topic also the reports published there and the Knative
/// envelope of a dead letter in the scale-to-zero profile.
fn known_on(topic: Topic, dead_letter: bool, name: &str) -> bool {
    let event = EventKind::parse(name).is_some_and(|k| k.topic() == topic);
    let report = ReportKind::parse(name).is_some_and(|r| r.topic == topic);
    event || (dead_letter && (report || name == "dev.knative.kafka.event" || name == POISON))
}

/// The message of a dead-letter channel that stands for any record a
/// subscriber dropped (not a CloudEvents type).
const POISON: &str = "poison";

#[test]
fn every_dead_letter_topic_admits_any_dropped_record() {
    let doc = doc();
    for topic in Topic::ALL {
        let address = topic.dead_letter();
        let (id, dead_letters) = channel(&doc, address).expect("channel");
        assert!(
            channel_message_names(&doc, dead_letters).contains(&POISON),
            "{address} does not admit a poison record"
        );
        assert!(
            operation_message_names(&doc, id, "send").contains(&POISON),
            "no operation dead-letters a poison record on {address}"
        );
        let (main_id, main) = channel(&doc, topic.name()).expect("channel");
        assert!(
            !channel_message_names(&doc, main).contains(&POISON),
            "{main_id}: a poison record is only a dead letter"
        );
    }
    let payload = &message_of(&doc, POISON)["payload"];
    assert!(
        payload.get("type").is_none() && payload.get("$ref").is_none(),
        "a poison record's payload is any bytes"
    );
}

#[test]
fn every_topic_and_dead_letter_topic_is_a_channel_keyed_by_user() {
    let doc = doc();
    for topic in Topic::ALL {
        for address in [topic.name(), topic.dead_letter()] {
            let (id, channel) =
                channel(&doc, address).unwrap_or_else(|| panic!("no channel for topic {address}"));
            assert_eq!(channel["bindings"]["kafka"]["topic"], address, "{id}");
            assert!(
                channel["servers"].as_array().is_some_and(|s| !s.is_empty()),
                "{id} names its servers"
            );
        }
        let (_, main) = channel(&doc, topic.name()).unwrap_or_else(|| unreachable!());
        assert!(
            main["description"]
                .as_str()
                .is_some_and(|d| d.contains("user_id")),
            "{} states its partition key",
            topic.name()
        );
    }
}

#[test]
fn every_event_type_is_on_its_topic_pinned_to_its_schemas() {
    let doc = doc();
    for kind in EventKind::ALL {
        let topic = kind.topic();
        for address in [topic.name(), topic.dead_letter()] {
            let (id, channel) = channel(&doc, address).expect("channel");
            assert!(
                channel_message_names(&doc, channel).contains(&kind.as_str()),
                "{kind} is not a message of channel {address}"
            );
            assert!(
                operation_message_names(&doc, id, "send").contains(&kind.as_str()),
                "no operation sends {kind} on {address}"
            );
        }
        let (id, _) = channel(&doc, topic.name()).expect("channel");
        assert!(
            operation_message_names(&doc, id, "receive").contains(&kind.as_str()),
            "nobody receives {kind}"
        );

        let pinned = pinned_properties(message_of(&doc, kind.as_str()), kind.as_str());
        assert_eq!(pinned["dataschema"]["const"], kind.data_schema());
        assert_eq!(schema_id(&pinned["data"]), kind.data_schema(), "{kind}");
    }
}

#[test]
fn every_report_is_on_its_dead_letter_topic_sent_by_its_function() {
    let doc = doc();
    for report in REPORT_KINDS {
        let name = report.event_type;
        let address = report.topic.dead_letter();
        let (id, channel) = channel(&doc, address).expect("channel");
        assert!(
            channel_message_names(&doc, channel).contains(&name),
            "{name} is not a message of channel {address}"
        );
        assert!(
            operation_message_names(&doc, id, "send").contains(&name),
            "no operation sends {name} on {address}"
        );
        let pinned = pinned_properties(message_of(&doc, name), name);
        assert_eq!(pinned["dataschema"]["const"], report.data_schema);
        assert_eq!(pinned["source"]["const"], report.source);
        assert_eq!(schema_id(&pinned["data"]), report.data_schema, "{name}");
        assert!(check_examples(&doc, name) > 0, "{name} has an example");
    }
}

#[test]
fn event_examples_are_events_the_schemas_accept() {
    let doc = doc();
    let checked: usize = EventKind::ALL
        .iter()
        .map(|kind| check_examples(&doc, kind.as_str()))
        .sum();
    assert!(checked > 0, "the document has event examples");
}

#[test]
fn the_document_names_no_event_type_the_code_does_not_emit() {
    let doc = doc();
    for topic in Topic::ALL {
        for (address, dead_letter) in [(topic.name(), false), (topic.dead_letter(), true)] {
            let (_, channel) = channel(&doc, address).expect("channel");
            for name in channel_message_names(&doc, channel) {
                assert!(
                    known_on(topic, dead_letter, name),
                    "{name} on {address} is no type the code emits there"
                );
            }
        }
    }
}

#[test]
fn channel_references_lead_to_component_messages() {
    let doc = doc();
    let reference = serde_json::json!({"$ref": "#/channels/taskEvents/messages/taskCompleted"});
    let found = message(&doc, &reference).expect("resolves");
    assert_eq!(found["name"], EventKind::TaskCompleted.as_str());
}

#[test]
fn a_report_is_known_only_on_its_dead_letter_topic() {
    let name = contracts::NOTIFICATION_FAILED.event_type;
    assert!(known_on(Topic::Reminders, true, name));
    assert!(!known_on(Topic::Reminders, false, name));
    assert!(!known_on(Topic::TaskEvents, true, name));
    assert!(!known_on(
        Topic::Reminders,
        true,
        "com.todo.notification.exploded"
    ));
}
