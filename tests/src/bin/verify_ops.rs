//! The measured target "concurrent task operations, lost or duplicated:
//! 10,000, none": runs N concurrent creates, updates (some conditional),
//! completes, reopens and deletes over many users against task-api, then
//! checks end to end that nothing was lost or duplicated (see
//! `e2e_tests::verify`). Processes may be killed meanwhile: lost answers
//! are retried like a real client's (`Idempotency-Key`, `If-Match`). Prints a Markdown report; exits non-zero on any
//! error, loss, duplicate or gap.
//!
//! ```text
//! set -a; . .dev/env; set +a
//! cargo build --release -p e2e-tests --bin verify_ops
//! $CARGO_TARGET_DIR/release/verify_ops --ops 10000 --concurrency 32
//! ```
//! Flags: `--url` (default `TASK_API_URL` or http://127.0.0.1:8080; loopback
//! only), `--database-url` (default `DATABASE_URL` or the local stack's),
//! `--ops N` (10000), `--concurrency N` (32), `--users N` (40),
//! `--settle SECONDS` (180, the bound on each wait), `--retry-for SECONDS`
//! (300: how long a lost answer is retried, e.g. through a task-api
//! restart; what stays unknown is reported, accepted by the checker as
//! applied once or not at all). Needs
//! `JWT_HS256_SECRET` (and `JWT_AUDIENCE`/`JWT_ISSUER` if task-api checks
//! them).

use std::time::Duration;

use anyhow::{Context, bail};
use e2e_tests::verify::{Config, run};

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn parse_args() -> anyhow::Result<Config> {
    let secret = std::env::var("JWT_HS256_SECRET").context("JWT_HS256_SECRET must be set")?;
    let mut config = Config::new(
        &env_or("TASK_API_URL", "http://127.0.0.1:8080"),
        &env_or("DATABASE_URL", "postgres://todo:todo@127.0.0.1:5432/todo"),
        &secret,
    );
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--url" => config.task_api = value.trim_end_matches('/').to_owned(),
            "--database-url" => config.database_url = value,
            "--ops" => config.ops = value.parse()?,
            "--concurrency" => config.concurrency = value.parse()?,
            "--users" => config.users = value.parse()?,
            "--settle" => config.settle = Duration::from_secs(value.parse()?),
            "--retry-for" => config.retry_for = Duration::from_secs(value.parse()?),
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(config)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = parse_args()?;
    let report = run(&config).await?;
    print!("{}", report.markdown());
    if !report.passed() {
        std::process::exit(1);
    }
    Ok(())
}
