//! The browser client's page at `/`: the files compiled into `WEB_DIR`
//! (web/dist: index.html, style.css and tsc's ES modules), served on the
//! same origin as `/ws/tasks`, and `GET /config.json`, which tells the
//! page where task-api's REST API is (`WEB_API_URL`; empty means the same
//! origin, as behind the public route in the cluster).
//!
//! Files come from tower-http's `ServeDir` (it refuses `..` and answers
//! conditional requests). Every answer carries `Cache-Control: no-cache`
//! (revalidate, so a new build shows at once), `nosniff` and a
//! Content-Security-Policy that admits scripts from this origin only and
//! connections to this origin (the socket) and the API's.
//!
//! The interface documents' pages under `/docs/` (web/docs, built into
//! web/dist/docs by web/scripts/build-docs.mjs) come through the same
//! `ServeDir`: it answers `/docs` with a 307 to `/docs/` and serves a
//! directory's index.html (tower-http 0.6.11,
//! src/services/fs/serve_dir/open_file.rs `maybe_redirect_or_append_path`,
//! future.rs). Their viewers need a wider policy than the app, given by
//! path prefix only ([`Policies::for_path`]), so the app page keeps its own.

use std::path::{Path, PathBuf};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use tower_http::services::ServeDir;

/// Where the page is and what it is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebConfig {
    /// The directory holding index.html; `None` serves no page.
    pub dir: Option<PathBuf>,
    /// task-api's base URL as the browser reaches it; empty: this origin.
    pub api_url: String,
}

/// What `/config.json` answers.
#[derive(Debug, Clone, Serialize)]
struct PageConfig<'a> {
    /// Prefix of every REST call (`{api_base}/api/tasks`).
    api_base: &'a str,
    /// The socket's path on this origin.
    ws_path: &'static str,
}

#[derive(Clone)]
struct Headers {
    csp: Policies,
    config: String,
}

/// The Content-Security-Policy of each kind of page.
#[derive(Clone)]
struct Policies {
    /// The app at `/` and everything outside `/docs/`.
    app: HeaderValue,
    /// `/docs/`: the HTTP API in Scalar.
    docs: HeaderValue,
    /// `/docs/events.html`: the AsyncAPI React component.
    docs_events: HeaderValue,
}

impl Policies {
    fn new(api_url: &str) -> Self {
        let app = app_policy(api_url);
        // Scalar (a Vue app) puts its styles into <style> elements at run
        // time (vite-plugin-css-injected-by-js in its standalone bundle, and
        // its theme), which a policy without 'unsafe-inline' styles refuses
        // (seen in Chromium); styles cannot run script. The AsyncAPI
        // component's styles are a file, so its page does without.
        let docs = format!("{app}; style-src 'self' 'unsafe-inline'");
        // The AsyncAPI component's standalone bundle parses the document in
        // the page with @asyncapi/parser, whose JSON-schema validator (ajv)
        // compiles every schema with `new Function`, already while the
        // bundle loads: without 'unsafe-eval' it stops with an EvalError
        // (seen in Chromium; the parser-less bundle compiles at load too).
        // Only this one page gets it; the Scalar page does not need it
        // (web/docs/http.js turns zod's eval probe off).
        let docs_events = format!("{app}; script-src 'self' 'unsafe-eval'");
        let value = |policy: &str| {
            HeaderValue::from_str(policy).unwrap_or(HeaderValue::from_static("default-src 'self'"))
        };
        Self {
            app: value(&app),
            docs: value(&docs),
            docs_events: value(&docs_events),
        }
    }

    /// The policy for a request path, by its spelling: the wider ones for
    /// `/docs`, `/docs/...` and exactly `/docs/events.html`, the app's
    /// for anything else. `ServeDir` maps other spellings to the same file
    /// (it percent-decodes and skips `//`, `.` and a trailing slash), and
    /// those get the policy of the spelling, not of the file: the AsyncAPI
    /// page as `/docs/%65vents.html` or `/docs//events.html` gets the
    /// Scalar page's policy (no 'unsafe-eval', so it breaks), the Scalar
    /// page as `//docs/` the app's (it breaks too). A mismatch is stricter
    /// or breaks a page, never wider: the app's page cannot be reached
    /// under `/docs/`, because `ServeDir` refuses `..` and any other
    /// non-normal component, encoded or not (tower-http 0.6.11,
    /// src/services/fs/serve_dir/mod.rs `build_and_validate_path`).
    fn for_path(&self, path: &str) -> &HeaderValue {
        if path == "/docs/events.html" {
            &self.docs_events
        } else if path == "/docs" || path.starts_with("/docs/") {
            &self.docs
        } else {
            &self.app
        }
    }
}

/// `/config.json` and the files, or nothing when no page is configured.
pub fn routes(web: &WebConfig) -> Router {
    let Some(dir) = &web.dir else {
        return Router::new();
    };
    let headers = Headers {
        csp: Policies::new(&web.api_url),
        config: serde_json::to_string(&PageConfig {
            api_base: web.api_url.trim_end_matches('/'),
            ws_path: "/ws/tasks",
        })
        .unwrap_or_default(),
    };
    Router::new()
        .route("/config.json", get(page_config))
        .fallback_service(ServeDir::new(dir))
        .layer(axum::middleware::from_fn_with_state(
            headers.clone(),
            page_headers,
        ))
        .with_state(headers)
}

async fn page_config(State(headers): State<Headers>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        headers.config.clone(),
    )
        .into_response()
}

async fn page_headers(State(headers): State<Headers>, request: Request, next: Next) -> Response {
    let csp = headers.csp.for_path(request.uri().path()).clone();
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CONTENT_SECURITY_POLICY, csp);
    h.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// Scripts and styles from this origin only; connections to this origin
/// (CSP Level 3 lets 'self' match ws:/wss: of the same host) and the API.
fn app_policy(api_url: &str) -> String {
    let api = api_origin(api_url)
        .map(|origin| format!(" {origin}"))
        .unwrap_or_default();
    format!(
        "default-src 'self'; connect-src 'self'{api}; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )
}

/// The origin (`scheme://host[:port]`) of an absolute http(s) URL; the
/// URL parser's serialisation, so nothing of the setting but a valid
/// origin reaches the policy header.
pub fn api_origin(url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return None;
    }
    let origin = parsed.origin().ascii_serialization();
    // The URL standard admits `;` and `'` in a host; a CSP source may not.
    let plain = |c: char| c.is_ascii_alphanumeric() || ".-:/[]".contains(c);
    origin.chars().all(plain).then_some(origin)
}

/// Checks the page directory at start: a configured one must hold an
/// index.html, so a broken image stops at once instead of serving 404s.
pub fn check_dir(dir: &Path) -> Result<(), String> {
    if dir.join("index.html").is_file() {
        Ok(())
    } else {
        Err(format!(
            "{} has no index.html (build it: scripts/lib/browser.sh web_build, or `npm run build` in web/)",
            dir.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    fn page_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sync-gateway-web-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("index.html"), "<!doctype html><title>t</title>").unwrap();
        std::fs::write(dir.join("app.js"), "export {};").unwrap();
        dir
    }

    async fn get(router: Router, path: &str) -> Response {
        router
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    fn web(dir: Option<PathBuf>, api_url: &str) -> WebConfig {
        WebConfig {
            dir,
            api_url: api_url.into(),
        }
    }

    #[tokio::test]
    async fn the_page_and_its_modules_are_served_with_their_types() {
        let router = routes(&web(Some(page_dir()), ""));
        let index = get(router.clone(), "/").await;
        assert_eq!(index.status(), StatusCode::OK);
        assert!(
            index.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert_eq!(index.headers()[header::CACHE_CONTROL], "no-cache");
        let script = get(router.clone(), "/app.js").await;
        assert_eq!(script.status(), StatusCode::OK);
        // Browsers refuse a module script without a JavaScript MIME type.
        assert!(
            script.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .contains("javascript")
        );
        assert_eq!(
            get(router.clone(), "/missing.js").await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get(router, "/../Cargo.toml").await.status(),
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test]
    async fn config_names_the_api_and_the_policy_admits_it() {
        let router = routes(&web(Some(page_dir()), "http://127.0.0.1:8080/"));
        let response = get(router, "/config.json").await;
        assert_eq!(response.status(), StatusCode::OK);
        let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            csp.contains("connect-src 'self' http://127.0.0.1:8080;"),
            "{csp}"
        );
        assert!(csp.starts_with("default-src 'self';"), "{csp}");
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        let config: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            config,
            serde_json::json!({"api_base": "http://127.0.0.1:8080", "ws_path": "/ws/tasks"})
        );
    }

    fn csp(response: &Response) -> String {
        response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned()
    }

    #[tokio::test]
    async fn docs_pages_get_their_own_policy_and_the_app_keeps_its_own() {
        let dir = page_dir();
        std::fs::create_dir_all(dir.join("docs")).unwrap();
        std::fs::write(
            dir.join("docs/index.html"),
            "<!doctype html><title>d</title>",
        )
        .unwrap();
        std::fs::write(
            dir.join("docs/events.html"),
            "<!doctype html><title>e</title>",
        )
        .unwrap();
        let router = routes(&web(Some(dir), "http://127.0.0.1:8080"));

        // ServeDir sends the bare directory to its slash, then index.html.
        let bare = get(router.clone(), "/docs").await;
        assert_eq!(bare.status(), StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(bare.headers()[header::LOCATION], "/docs/");
        let index = get(router.clone(), "/docs/").await;
        assert_eq!(index.status(), StatusCode::OK);
        let docs = csp(&index);
        assert!(
            docs.contains("; style-src 'self' 'unsafe-inline'"),
            "{docs}"
        );
        assert!(!docs.contains("unsafe-eval"), "{docs}");
        assert!(
            docs.starts_with("default-src 'self'; connect-src 'self' http://127.0.0.1:8080;"),
            "{docs}"
        );

        let events = csp(&get(router.clone(), "/docs/events.html").await);
        assert!(
            events.ends_with("; script-src 'self' 'unsafe-eval'"),
            "{events}"
        );
        assert!(!events.contains("unsafe-inline"), "{events}");

        // The app, and anything that only looks like /docs, stay strict.
        for path in [
            "/",
            "/app.js",
            "/docsx",
            "/docs%2Fevents.html",
            "/config.json",
        ] {
            let policy = csp(&get(router.clone(), path).await);
            assert!(!policy.contains("unsafe"), "{path}: {policy}");
            assert!(
                policy.starts_with("default-src 'self';"),
                "{path}: {policy}"
            );
        }
    }

    #[tokio::test]
    async fn no_directory_serves_no_page() {
        let router = routes(&web(None, ""));
        assert_eq!(
            get(router.clone(), "/").await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get(router, "/config.json").await.status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn api_origins_and_page_directories_are_checked() {
        let origin = |url: &str| api_origin(url);
        assert_eq!(
            origin("https://api.example.com/v1").as_deref(),
            Some("https://api.example.com")
        );
        assert_eq!(
            origin("http://127.0.0.1:8080").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(origin("http://a;script-src *"), None);
        assert_eq!(origin("http://a;script-src"), None);
        assert_eq!(
            origin("http://[::1]:8080").as_deref(),
            Some("http://[::1]:8080")
        );
        assert_eq!(origin(""), None);
        assert_eq!(origin("javascript:alert(1)"), None);
        assert!(check_dir(&page_dir()).is_ok());
        let empty =
            std::env::temp_dir().join(format!("sync-gateway-none-{}", uuid::Uuid::new_v4()));
        assert!(check_dir(&empty).unwrap_err().contains("index.html"));
    }
}
