//! The `/ws/tasks` channel of the AsyncAPI document
//! (`shared/contracts/asyncapi.json`) against the protocol's code: every
//! message type a client may send (read from `ClientMessage`'s own
//! deserializer) is received by the gateway there, every message the
//! gateway sends (`ServerMessage`, every variant) is sent there, both ways
//! with nothing extra, and every close code (`Close`) is listed with
//! whether the client resumes after it.

use contracts::asyncapi::{channel, document, operation_message_names};
use contracts::{TaskSyncData, testing::task_snapshot};
use serde_json::Value;
use sync_gateway::protocol::{Close, ServerMessage, parse};

fn socket() -> (Value, String) {
    let doc = document().expect("asyncapi.json is JSON");
    let (id, _) = channel(&doc, "/ws/tasks").expect("a channel for /ws/tasks");
    let id = id.to_owned();
    (doc, id)
}

/// The client message types, as serde's derive lists them when it refuses
/// an unknown tag ("unknown variant `…`, expected one of `a`, `b`").
fn client_types() -> Vec<String> {
    let error = parse(r#"{"type":"no such type"}"#)
        .expect_err("an unknown type is refused")
        .to_string();
    let list = error
        .split_once("expected one of")
        .unwrap_or_else(|| panic!("serde's message changed: {error}"))
        .1;
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// One of every server message. The match makes a new variant a compile
/// error here until it is added (and so checked against the document).
fn every_server_message(data: &TaskSyncData) -> Vec<ServerMessage<'_>> {
    let all = vec![
        ServerMessage::Hello {
            epoch: "e1",
            offset: 0,
        },
        ServerMessage::Event {
            epoch: "e1",
            offset: 1,
            data,
        },
        ServerMessage::Reset {
            epoch: "e1",
            offset: 0,
        },
        ServerMessage::Pong,
    ];
    for message in &all {
        match message {
            ServerMessage::Hello { .. }
            | ServerMessage::Event { .. }
            | ServerMessage::Reset { .. }
            | ServerMessage::Pong => {}
        }
    }
    all
}

/// Every close code, kept complete the same way.
fn every_close() -> Vec<Close> {
    let all = vec![
        Close::GoingAway,
        Close::TooBig,
        Close::TryAgainLater,
        Close::BadMessage,
        Close::Unauthenticated,
        Close::TokenExpired,
        Close::Idle,
        Close::TooSlow,
    ];
    for close in &all {
        match close {
            Close::GoingAway
            | Close::TooBig
            | Close::TryAgainLater
            | Close::BadMessage
            | Close::Unauthenticated
            | Close::TokenExpired
            | Close::Idle
            | Close::TooSlow => {}
        }
    }
    all
}

fn sorted<T: AsRef<str>>(names: &[T]) -> Vec<String> {
    let mut names: Vec<String> = names.iter().map(|n| n.as_ref().to_owned()).collect();
    names.sort();
    names
}

#[test]
fn every_client_message_type_is_received_by_the_gateway() {
    let (doc, id) = socket();
    let code = client_types();
    assert!(!code.is_empty(), "no types read from serde");
    let documented = operation_message_names(&doc, &id, "receive");
    assert_eq!(sorted(&documented), sorted(&code));
}

#[test]
fn every_server_message_type_is_sent_by_the_gateway() {
    let (doc, id) = socket();
    let task_id = uuid::Uuid::from_u128(7);
    let data = TaskSyncData {
        task_id,
        user_id: "alice".into(),
        sequence: 1,
        epoch: "e1".into(),
        offset: 1,
        op: "created".into(),
        task: Some(task_snapshot(task_id, "alice", 1)),
        changed: vec![],
    };
    let code: Vec<String> = every_server_message(&data)
        .iter()
        .map(|m| {
            let json: Value = serde_json::from_str(&m.to_text()).expect("JSON");
            json["type"].as_str().expect("a type").to_owned()
        })
        .collect();
    let documented = operation_message_names(&doc, &id, "send");
    assert_eq!(sorted(&documented), sorted(&code));
}

#[test]
fn every_close_code_is_documented_with_what_the_client_does() {
    let (doc, id) = socket();
    let listed = doc["channels"][&id]["x-close-codes"]
        .as_array()
        .expect("x-close-codes on the socket's channel");
    let closes = every_close();
    assert_eq!(listed.len(), closes.len(), "one entry per close code");
    for close in closes {
        let entry = listed
            .iter()
            .find(|e| e["code"] == close.code())
            .unwrap_or_else(|| panic!("close code {} is not documented", close.code()));
        assert_eq!(entry["resume"], close.resumable(), "{}", close.code());
    }
}

#[test]
fn socket_examples_are_messages_the_code_reads_or_writes() {
    let (doc, _) = socket();
    let mut checked = 0;
    for message in doc["components"]["messages"].as_object().unwrap().values() {
        let Some(examples) = message["examples"].as_array() else {
            continue;
        };
        for example in examples {
            let payload = &example["payload"];
            let kind = payload["type"].as_str().unwrap_or_default();
            if client_types().iter().any(|t| t == kind) {
                parse(&payload.to_string())
                    .unwrap_or_else(|e| panic!("example {kind} is refused by the gateway: {e}"));
            } else if kind == "hello" {
                let hello = ServerMessage::Hello {
                    epoch: payload["epoch"].as_str().unwrap(),
                    offset: payload["offset"].as_i64().unwrap(),
                };
                let written: Value = serde_json::from_str(&hello.to_text()).unwrap();
                assert_eq!(&written, payload);
            } else {
                continue; // an event example: shared/contracts/tests/asyncapi.rs
            }
            checked += 1;
        }
    }
    assert!(checked >= 3, "the socket's examples were not found");
}
