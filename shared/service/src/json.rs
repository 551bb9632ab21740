//! A JSON body extractor whose rejections are problem documents with the
//! precise status: 400 malformed, 413 too large, 415 wrong media type,
//! 422 well-formed but wrong (types, unknown or missing fields), the 422
//! naming the field that failed in `errors` as every document's Problem
//! schema promises.
//!
//! The body is parsed into a `serde_json::Value` by axum's `Json` (which
//! keeps its media-type, size and syntax rejections), then deserialized
//! through `serde_path_to_error`, which reports where in the body the
//! failure happened.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::problem::{FieldError, Problem};

/// `Json<T>` with problem+json rejections.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<serde_json::Value>::from_request(req, state)
            .await
            .map_err(problem_for)?;
        deserialize(value).map(ApiJson)
    }
}

/// `T` from a parsed body; a mismatch is a 422 whose `errors` names the
/// field (`tags`, `reminders[0].at`, `.` for the body itself) and says
/// what is wrong with it in serde's words.
pub fn deserialize<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, Problem> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let field = field_error(&error.path().to_string(), error.inner().to_string());
        Problem::unprocessable(format!(
            "the body does not fit the operation's schema: {}: {}",
            field.field, field.message
        ))
        .with_errors(vec![field])
    })
}

/// The field a deserialization error is about. A missing field is
/// reported at its object (serde names it only in the message), so its
/// name is taken from there; an unknown one is already in the path.
fn field_error(path: &str, message: String) -> FieldError {
    let named = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    let field = match (path, named) {
        (".", Some(name)) => name.to_owned(),
        (path, Some(name)) => format!("{path}.{name}"),
        (path, None) => path.to_owned(),
    };
    FieldError { field, message }
}

/// Maps axum's JSON rejections to problems.
pub fn problem_for(rejection: JsonRejection) -> Problem {
    match rejection {
        JsonRejection::JsonSyntaxError(e) => {
            Problem::bad_request(format!("malformed JSON: {}", e.body_text()))
        }
        JsonRejection::JsonDataError(e) => Problem::unprocessable(e.body_text()),
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the body as application/json",
        ),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is too large",
            )
        }
        other => Problem::new(other.status(), other.body_text()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::post;
    use tower::ServiceExt;

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Input {
        n: u32,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Nested {
        priority: Option<Priority>,
        #[serde(default)]
        reminders: Vec<Reminder>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Priority {
        High,
        Low,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Reminder {
        minutes: u32,
    }

    /// The one field error of a body that does not fit `Nested`.
    fn failing_field(body: serde_json::Value) -> (String, String, Problem) {
        let problem = deserialize::<Nested>(body).expect_err("does not fit");
        assert_eq!(problem.status, 422);
        assert_eq!(problem.errors.len(), 1, "{problem:?}");
        let FieldError { field, message } = problem.errors[0].clone();
        (field, message, problem)
    }

    #[test]
    fn a_422_names_the_field_that_failed() {
        use serde_json::json;
        let cases = [
            (
                json!({"priority": "nope"}),
                "priority",
                "unknown variant `nope`",
            ),
            (json!({"reminders": "x"}), "reminders", "invalid type"),
            (
                json!({"reminders": [{"minutes": 1}, {"minutes": -1}]}),
                "reminders[1].minutes",
                "invalid value",
            ),
            (
                json!({"reminders": [{}]}),
                "reminders[0].minutes",
                "missing field",
            ),
            (json!({"bogus": 1}), "bogus", "unknown field `bogus`"),
            (
                json!({"reminders": [{"minutes": 1, "at": 2}]}),
                "reminders[0].at",
                "unknown field `at`",
            ),
            (json!("x"), ".", "invalid type"),
        ];
        for (body, want_field, want_message) in cases {
            let (field, message, problem) = failing_field(body.clone());
            assert_eq!(field, want_field, "{body}");
            assert!(message.starts_with(want_message), "{body}: {message}");
            let detail = problem.detail.unwrap_or_default();
            assert!(
                detail.contains(&field) && !detail.contains("line"),
                "{detail}"
            );
        }
        assert!(deserialize::<Nested>(json!({"priority": "high"})).is_ok());
    }

    #[tokio::test]
    async fn the_extractor_answers_a_422_with_errors() {
        let app = Router::new().route("/", post(|ApiJson(_): ApiJson<Nested>| async { "ok" }));
        let request = Request::post("/")
            .header("content-type", "application/json")
            .body(Body::from(r#"{"priority":"nope","reminders":"x"}"#))
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["errors"][0]["field"], "priority", "{problem}");
        assert!(problem["errors"][0]["message"].is_string());
    }

    async fn status_for(body: &'static str, content_type: &str) -> StatusCode {
        let app = Router::new()
            .route("/", post(|ApiJson(_): ApiJson<Input>| async { "ok" }))
            .layer(axum::extract::DefaultBodyLimit::max(64));
        let request = Request::post("/")
            .header("content-type", content_type)
            .body(Body::from(body))
            .unwrap();
        app.oneshot(request).await.unwrap().status()
    }

    #[tokio::test]
    async fn statuses_are_precise() {
        assert_eq!(
            status_for(r#"{"n":1}"#, "application/json").await,
            StatusCode::OK
        );
        assert_eq!(
            status_for(r#"{"n":"#, "application/json").await,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status_for(r#"{"n":"x"}"#, "application/json").await,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            status_for(r#"{"n":1,"m":2}"#, "application/json").await,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            status_for(r#"{"n":1}"#, "text/plain").await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        let big =
            Box::leak(format!("{{\"n\":1,\"pad\":\"{}\"}}", "x".repeat(200)).into_boxed_str());
        assert_eq!(
            status_for(big, "application/json").await,
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }

    proptest::proptest! {
        /// Any JSON body either fits or is a 422 with exactly one named
        /// field; deserialization never panics.
        #[test]
        fn any_body_fits_or_names_one_field(text in "[\\[\\]{}:,\"a-z0-9 -]{0,40}") {
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text)
                && let Err(problem) = deserialize::<Nested>(value)
            {
                proptest::prop_assert_eq!(problem.status, 422);
                proptest::prop_assert_eq!(problem.errors.len(), 1);
                proptest::prop_assert!(!problem.errors[0].field.is_empty());
            }
        }
    }
}
