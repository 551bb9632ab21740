//! 300 concurrent task operations, checked end to end for loss, duplicates
//! and gaps by the same code as the 10,000-operation benchmark
//! (`verify_ops`), so the checker runs against the real stack every time.

use std::time::Duration;

use e2e_tests::Stack;
use e2e_tests::verify::{Config, run};

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn concurrent_operations_lose_and_duplicate_nothing() {
    let stack = Stack::from_env();
    let mut config = Config::new(&stack.task_api, &stack.database_url, &stack.jwt_secret);
    config.ops = 300;
    config.concurrency = 16;
    config.users = 12;
    config.settle = Duration::from_secs(60);
    // Nothing is killed here: a task-api away this long is a broken stack.
    config.retry_for = Duration::from_secs(60);
    let report = run(&config)
        .await
        .unwrap_or_else(|e| panic!("the stack is not reachable: {e:#}"));
    println!("{}", report.markdown());
    assert!(report.passed(), "{}", report.markdown());
    // Nothing is killed here: every answer comes, so none is unknown.
    assert_eq!(report.unknown, 0, "{}", report.markdown());
    assert_eq!(report.changes + report.refused, 300);
}
