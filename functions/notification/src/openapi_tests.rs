//! `openapi.json` against the router and the code: every route [`crate::app`]
//! serves is documented and every documented operation is served
//! ([`service::openapi::drift`] probes the real app), the callbacks stay
//! out of it, every answer the app gives to a probe is one the document
//! lists (with its problem body's schema), the examples match their
//! schemas, and what the handlers serialise matches the documented
//! schemas. `scripts/test` validates the document with
//! openapi-spec-validator.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{DateTime, Utc};
use serde_json::Value;
use service::openapi::{PATH_PARAMETER_SAMPLE, answer_schema, validate_at};
use tower::ServiceExt;
use uuid::Uuid;

use crate::api::{DeliveryView, Items, OPENAPI};
use crate::app_tests::{body, router};
use crate::delivery::{DeliveryRecord, Status, Target};
use crate::store::{Device, NotificationSettings};
use crate::{api_routes, callback_routes};

fn document() -> Value {
    serde_json::from_str(OPENAPI).expect("openapi.json is JSON")
}

#[tokio::test]
async fn every_route_is_documented_and_every_documented_route_is_served() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut public = api_routes().paths().to_vec();
    public.extend(service::health::PATHS);
    let internal = callback_routes().paths().to_vec();
    assert!(internal.contains(&crate::JOB_ROUTE) && internal.contains(&crate::REMINDERS_ROUTE));
    let problems = service::openapi::drift(&router(), &doc, &public, &internal).await;
    assert!(problems.is_empty(), "openapi.json drifted: {problems:#?}");
}

#[tokio::test]
async fn the_document_is_served_as_json() {
    let request = Request::get("/openapi.json").body(Body::empty()).unwrap();
    let response = router().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    let served: Value = serde_json::from_str(&body(response).await).unwrap();
    assert_eq!(served, document());
}

#[test]
fn every_example_matches_its_schema() {
    // Requests, answers and problems of every operation have examples.
    service::openapi::assert_examples_hold(&document(), 40);
}

/// Each documented `/api` operation, asked without a token, by a user and
/// by an admin, with an incomplete body: the app (its database and daprd
/// at a closed port) answers each with a status the operation documents,
/// and an error's body is the documented problem.
#[tokio::test]
async fn every_answer_to_a_probe_is_documented() {
    let doc = document();
    let callers = [
        None,
        Some(auth::testing::token_for("alice", false)),
        Some(auth::testing::token_for("root", true)),
    ];
    let mut probes = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/api/") {
            continue;
        }
        for (method, operation) in item.as_object().unwrap() {
            // A path parameter as its example gives it (a delivery id as
            // the failed list shows it), else a UUID.
            let sample = operation["parameters"][0]["example"]
                .as_str()
                .unwrap_or(PATH_PARAMETER_SAMPLE);
            let uri = path.replace("{id}", sample);
            for caller in &callers {
                let mut request = Request::builder()
                    .method(method.to_uppercase().as_str())
                    .uri(&uri)
                    .header(header::CONTENT_TYPE, "application/json");
                if let Some(token) = caller {
                    request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
                }
                let response = router()
                    .oneshot(request.body(Body::from("{}")).unwrap())
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
                let text = body(response).await;
                let documented = operation["responses"].get(status.to_string()).is_some();
                assert!(
                    documented,
                    "{method} {uri} answered {status}, not documented: {text}"
                );
                if status >= 400 {
                    assert_eq!(content_type.unwrap(), "application/problem+json");
                    let (schema, _) = answer_schema(&doc, path, method, status).unwrap();
                    let answer: Value = serde_json::from_str(&text).unwrap();
                    validate_at(&doc, &schema, &answer)
                        .unwrap_or_else(|e| panic!("{method} {uri} {status}: {e}"));
                }
                probes += 1;
            }
        }
    }
    assert_eq!(probes, 8 * 3, "every /api operation probed by each caller");
}

/// A new variant fails to compile here until it is listed (and documented).
fn every_status() -> [Status; 7] {
    let all = [
        Status::Sending,
        Status::Sent,
        Status::Retrying,
        Status::Failed,
        Status::Unknown,
        Status::Missed,
        Status::Skipped,
    ];
    for status in all {
        match status {
            Status::Sending
            | Status::Sent
            | Status::Retrying
            | Status::Failed
            | Status::Unknown
            | Status::Missed
            | Status::Skipped => {}
        }
    }
    all
}

fn record(target: Target, status: Status) -> DeliveryRecord {
    DeliveryRecord {
        reminder_id: Uuid::now_v7(),
        task_id: Uuid::now_v7(),
        user_id: "alice".into(),
        fire_at: DateTime::from_timestamp_millis(1_796_029_200_000).unwrap(),
        target,
        title: "Water the plants".into(),
        status,
        attempts: 2,
        last_error: (status == Status::Failed)
            .then(|| "push failed: push service answered 503".into()),
        updated_at: Utc::now(),
    }
}

#[test]
fn what_the_handlers_write_matches_the_documented_schemas() {
    let doc = document();
    let schema = |name: &str| format!("/components/schemas/Notification{name}");
    let check = |name: &str, value: Value| {
        validate_at(&doc, &schema(name), &value).unwrap_or_else(|e| panic!("{name}: {e}\n{value}"));
    };
    let statuses = &doc["components"]["schemas"]["NotificationDeliveryStatus"]["enum"];
    assert_eq!(
        statuses.as_array().unwrap().len(),
        every_status().len(),
        "documented statuses: {statuses}"
    );
    let mut items = Vec::new();
    for status in every_status() {
        for target in [Target::Email, Target::Push(Uuid::now_v7())] {
            let record = record(target, status);
            items.push(DeliveryView {
                id: record.id(),
                record,
            });
        }
    }
    check(
        "DeliveryList",
        serde_json::to_value(Items { items }).unwrap(),
    );
    let device = Device {
        id: Uuid::now_v7(),
        endpoint: "https://push.example.net/send/abc".into(),
        p256dh: "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM".into(),
        auth: "tBHItJI5svbpez7KI4CCXg".into(),
        created_at: Utc::now(),
    };
    check(
        "DeviceList",
        serde_json::to_value(Items {
            items: vec![device],
        })
        .unwrap(),
    );
    check(
        "Settings",
        serde_json::to_value(NotificationSettings::default()).unwrap(),
    );
    let saved = NotificationSettings {
        email: Some("alice@example.com".into()),
        ..NotificationSettings::default()
    };
    check("Settings", serde_json::to_value(saved).unwrap());
}

/// The delivery ids in the examples are ones the retry route accepts.
#[test]
fn example_delivery_ids_name_deliveries() {
    let doc = document();
    let mut ids = Vec::new();
    collect_ids(&doc["paths"], &mut ids);
    assert!(ids.len() >= 4, "{ids:?}");
    for id in ids {
        let key = DeliveryRecord::key_from_id(&id).unwrap_or_else(|| panic!("{id}"));
        assert_eq!(key.trim_start_matches("delivery|").replace('|', "."), id);
    }
    let retry = &doc["paths"]["/api/notifications/failed/{id}/retry"]["post"];
    let example = retry["parameters"][0]["example"].as_str().unwrap();
    assert!(DeliveryRecord::key_from_id(example).is_some());
}

fn collect_ids(node: &Value, out: &mut Vec<String>) {
    match node {
        Value::Object(map) => {
            if let (Some(Value::String(id)), Some(_)) = (map.get("id"), map.get("reminder_id")) {
                out.push(id.clone());
            }
            map.values().for_each(|v| collect_ids(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_ids(v, out)),
        _ => {}
    }
}
