//! The check of [`super`]: what arrived (mailpit, the push service),
//! what notification recorded (the history, the state store), and the
//! judgement of every (firing, target), waiting (bounded) for deliveries
//! to settle; a failed or unknown one must be on the admins' failed list
//! and on `reminders-dlq`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Context;
use e2e_tests::notify::PushService;
use e2e_tests::retry::UserApi;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::time::Instant;

use super::{Firing, Judgement, REQUEST_WAIT, Receiver, Record, SETTLE, judge};
use crate::{Env, Tally};

/// What arrived and what notification recorded, per user.
#[derive(Default)]
struct Seen {
    /// Messages per title, per channel ("email", "push").
    arrived: BTreeMap<(String, &'static str), usize>,
    /// Record status per (reminder id, fire ms, target render).
    records: BTreeMap<(String, i64, String), Record>,
}

pub(super) async fn check(
    env: &Env,
    push: &PushService,
    receivers: &[Receiver],
    firings: &[Firing],
    mut tally: Tally,
) -> anyhow::Result<Tally> {
    let until = Instant::now() + SETTLE;
    let mut verdicts = judge_all(env, push, receivers, firings).await?;
    while verdicts.iter().any(|(_, j)| unsettled(*j)) && Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(3)).await;
        verdicts = judge_all(env, push, receivers, firings).await?;
    }
    let recorded = |j: &Judgement| matches!(j, Judgement::Unknown | Judgement::FailedRecorded);
    let (listed, dead_lettered) = if verdicts.iter().any(|(_, j)| recorded(j)) {
        (failed_list(env).await?, dead_letters(env).await?)
    } else {
        Default::default()
    };
    for (what, judgement) in verdicts {
        tally.checked += 1;
        match judgement {
            Judgement::Delivered | Judgement::Superseded => {}
            Judgement::Unknown | Judgement::FailedRecorded => {
                if judgement == Judgement::Unknown {
                    tally.unknown += 1;
                } else {
                    tally.failed_recorded += 1;
                }
                if !listed.contains(&what.1) {
                    tally
                        .problems
                        .push(format!("{}: not on the failed list", what.0));
                }
                // The event id is `<record key>|<attempts>` (history.rs
                // `publish_failed`); the key is the id with `|` for `.`.
                let key = format!("delivery|{}|", what.1.replace('.', "|"));
                if !dead_lettered.iter().any(|id| id.starts_with(&key)) {
                    tally
                        .problems
                        .push(format!("{}: not on reminders-dlq", what.0));
                }
            }
            Judgement::Lost => {
                tally.lost += 1;
                tally.problems.push(format!("{}: lost", what.0));
            }
            Judgement::Duplicated => {
                tally.duplicated += 1;
                tally
                    .problems
                    .push(format!("{}: delivered more than once", what.0));
            }
            Judgement::Problem(why) => tally.problems.push(format!("{}: {why}", what.0)),
        }
    }
    Ok(tally)
}

pub(super) fn unsettled(judgement: Judgement) -> bool {
    matches!(judgement, Judgement::Lost | Judgement::Problem(_))
}

/// Every (firing, target) judged: (label, delivery id) and judgement.
pub(super) async fn judge_all(
    env: &Env,
    push: &PushService,
    receivers: &[Receiver],
    firings: &[Firing],
) -> anyhow::Result<Vec<((String, String), Judgement)>> {
    let users: BTreeSet<usize> = firings.iter().map(|f| f.user).collect();
    let mut seen = BTreeMap::new();
    for user in users {
        let Some(receiver) = receivers.get(user) else {
            continue;
        };
        seen.insert(user, observe(env, push, receiver).await?);
    }
    let mut out = Vec::new();
    for firing in firings {
        let (Some(receiver), Some(seen)) = (receivers.get(firing.user), seen.get(&firing.user))
        else {
            continue;
        };
        let reminder = firing.reminder_id.replace('-', "");
        let ms = firing.fire_at.timestamp_millis();
        for (channel, target) in [
            ("email", "email".to_owned()),
            (
                "push",
                format!("push-{}", receiver.device_id.replace('-', "")),
            ),
        ] {
            let record = match seen.records.get(&(reminder.clone(), ms, target.clone())) {
                Some(record) => *record,
                // The history index is best effort (history.rs
                // `remember`): the record itself is the truth.
                None => stored_record(env, &format!("delivery|{reminder}|{ms}|{target}")).await?,
            };
            let arrived = seen
                .arrived
                .get(&(firing.title.clone(), channel))
                .copied()
                .unwrap_or(0);
            let label = format!(
                "{} {channel} ({}, {record:?}, {arrived} arrived)",
                firing.title, receiver.user
            );
            let id = format!("{reminder}.{ms}.{target}");
            out.push(((label, id), judge(record, arrived, firing.live)));
        }
    }
    Ok(out)
}

async fn observe(env: &Env, push: &PushService, receiver: &Receiver) -> anyhow::Result<Seen> {
    let mut seen = Seen::default();
    let mail: Value = env
        .http
        .get(format!("{}/api/v1/search", env.mailpit))
        .query(&[
            ("query", format!("to:\"{}\"", receiver.address)),
            ("limit", "1000".into()),
        ])
        .send()
        .await
        .context("mailpit")?
        .json()
        .await
        .context("mailpit's answer")?;
    for message in mail["messages"].as_array().into_iter().flatten() {
        if let Some(title) = message["Subject"]
            .as_str()
            .and_then(|s| s.strip_prefix("Reminder: "))
        {
            *seen.arrived.entry((title.to_owned(), "email")).or_default() += 1;
        }
    }
    for message in push.messages(&env.http, &receiver.subscription).await {
        let plain: Value = serde_json::from_str(message["plaintext"].as_str().unwrap_or_default())
            .unwrap_or(Value::Null);
        if let Some(title) = plain["title"].as_str() {
            *seen.arrived.entry((title.to_owned(), "push")).or_default() += 1;
        }
    }
    let api = crate::workload::as_user(env, &env.notification, &receiver.user);
    let history = api
        .call(
            Method::GET,
            "/api/notifications",
            None,
            &[],
            Instant::now() + REQUEST_WAIT,
        )
        .await;
    anyhow::ensure!(
        history.status() == Some(StatusCode::OK),
        "history of {}: {history:?}",
        receiver.user
    );
    for item in history.body()["items"].as_array().into_iter().flatten() {
        // The id is `<reminder>.<fire ms>.<target>` (delivery.rs `id`).
        let id = item["id"].as_str().unwrap_or_default();
        let mut parts = id.split('.');
        if let (Some(r), Some(ms), Some(t)) = (parts.next(), parts.next(), parts.next()) {
            let status = Record::parse(item["status"].as_str().unwrap_or_default());
            seen.records.insert(
                (r.to_owned(), ms.parse().unwrap_or_default(), t.to_owned()),
                status,
            );
        }
    }
    Ok(seen)
}

/// The event ids on `reminders-dlq` (`scripts/dlq list reminders`: one
/// line per record, the id first).
async fn dead_letters(env: &Env) -> anyhow::Result<Vec<String>> {
    let script = env.dev_script.with_file_name("dlq");
    let output = tokio::process::Command::new(&script)
        .args(["list", "reminders", "5000"])
        .output()
        .await
        .with_context(|| format!("running {}", script.display()))?;
    anyhow::ensure!(
        output.status.success(),
        "scripts/dlq list reminders: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split('\t').next().map(str::to_owned))
        .collect())
}

/// A delivery record read from notification's state store through its
/// daprd (`GET /v1.0/state/<store>/<key>`; 204 when there is none).
pub(crate) async fn stored_record(env: &Env, key: &str) -> anyhow::Result<Record> {
    let url = format!(
        "{}/v1.0/state/statestore/{}",
        env.notification_dapr,
        key.replace('|', "%7C")
    );
    let build = || {
        let request = env.http.get(&url);
        match &env.dapr_api_token {
            Some(token) => request.header("dapr-api-token", token),
            None => request,
        }
    };
    let answer = e2e_tests::retry::send(build, Instant::now() + REQUEST_WAIT).await;
    match answer.status() {
        Some(StatusCode::NO_CONTENT) => Ok(Record::Absent),
        Some(StatusCode::OK) => Ok(answer.body()["status"]
            .as_str()
            .map_or(Record::Absent, Record::parse)),
        _ => anyhow::bail!("notification's state store, {key}: {answer:?}"),
    }
}

/// The ids on the admins' failed list (`GET /api/notifications/failed`).
async fn failed_list(env: &Env) -> anyhow::Result<BTreeSet<String>> {
    let api = UserApi {
        http: env.http.clone(),
        base: env.notification.clone(),
        token: env.token(&format!("faults-{}-admin", env.run_id), true),
    };
    let answer = api
        .call(
            Method::GET,
            "/api/notifications/failed",
            None,
            &[],
            Instant::now() + REQUEST_WAIT,
        )
        .await;
    anyhow::ensure!(
        answer.status() == Some(StatusCode::OK),
        "failed list: {answer:?}"
    );
    Ok(answer.body()["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["id"].as_str().map(str::to_owned))
        .collect())
}
