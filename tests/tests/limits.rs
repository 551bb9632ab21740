//! Limits that keep a running function alive, against the real processes:
//! made-up HTTP methods cannot grow `/metrics` (each would have been a new
//! series, for good), on task-api and on audit.

use e2e_tests::Stack;
use futures::StreamExt;
use reqwest::Method;
use uuid::Uuid;

const METHODS: usize = 2_000;

async fn metrics_lines(stack: &Stack, base: &str) -> usize {
    let response = stack
        .http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{base} is not reachable: {e}"));
    assert!(response.status().is_success(), "{response:?}");
    response.text().await.unwrap_or_default().lines().count()
}

/// Sends `METHODS` requests, each with a method never seen before, to
/// `path`; returns how many lines `/metrics` grew by.
async fn growth_after_made_up_methods(stack: &Stack, base: &str, path: &str) -> usize {
    let before = metrics_lines(stack, base).await;
    let run = Uuid::new_v4().simple().to_string()[..8].to_uppercase();
    futures::stream::iter(0..METHODS)
        .for_each_concurrent(8, |n| {
            let method = Method::from_bytes(format!("PROBE{run}{n}").as_bytes()).unwrap();
            let request = stack.http.request(method, format!("{base}{path}"));
            async move {
                let response = request.send().await.expect("reachable");
                assert_eq!(response.status(), 405, "{n}");
            }
        })
        .await;
    metrics_lines(stack, base).await.saturating_sub(before)
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn made_up_methods_do_not_grow_metrics() {
    let stack = Stack::from_env();
    for (base, path) in [
        (stack.task_api.clone(), "/api/tasks"),
        (stack.audit.clone(), "/api/audit-logs"),
    ] {
        let grown = growth_after_made_up_methods(&stack, &base, path).await;
        // One new `other` series is about twenty lines (a counter and a
        // histogram); other tests' traffic may add a few more. One series
        // per method would be tens of thousands.
        assert!(grown < 300, "{base}: /metrics grew by {grown} lines");
        let text = stack
            .http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            !text.contains("PROBE"),
            "{base}: a made-up method is a label"
        );
        assert!(
            text.contains(&format!(r#"method="other",route="{path}",status="405""#)),
            "{base}"
        );
    }
}
