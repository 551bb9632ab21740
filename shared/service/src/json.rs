//! A JSON body extractor whose rejections are problem documents with the
//! precise status: 400 malformed, 413 too large, 415 wrong media type,
//! 422 well-formed but wrong (types, unknown or missing fields).

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::problem::Problem;

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
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(problem_for(rejection)),
        }
    }
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
}
