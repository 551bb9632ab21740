//! Hostile input under the same load, each kind counted, none accepted,
//! nothing crashing: wrong, missing, expired and unsigned tokens (and,
//! where the stack checks them, tokens without `aud` or with another
//! `iss`) at task-api; another user's task read, patched, completed and
//! deleted (404, never 403, nothing changed); malformed and oversized
//! CloudEvents pushed straight to every consumer's callback with the app
//! token (DROP/400/413, no rows) and published through daprd onto the
//! topics (each lands on its -dlq topic); junk WebSocket frames (the
//! documented close codes). At the end: every function answers `/healthz`,
//! none logged a panic, none changed pid without a kill and start of the
//! injector's (`env.processes`: else it crashed, panic logged or not), the
//! victim task is as it was, no row exists for any refused input, and the
//! dead-letter topics hold exactly the poison injected on purpose
//! ([`dlq`]).

mod checks;
mod dlq;
mod frames;
mod requests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{Env, Phase, Rng, Scale, Tally};
use checks::{check_processes, create_victim, processes, repo_root};
use frames::Junk;
use requests::{Answer, BadToken, Consumer, Expect, TokenSettings};

pub const NAME: &str = "hostile";

/// The pause between two hostile requests, so they spread over the load.
const PACE: Duration = Duration::from_millis(200);
/// Oversized kinds are sent at most this often each (2 MiB apiece).
const OVERSIZED_MAX: usize = 3;
/// Past the callbacks' body limit (dapr-http `DEFAULT_CALLBACK_MAX_BODY_BYTES`).
const CALLBACK_OVERSIZED: usize = 2 * 1024 * 1024 + 4096;
/// Past the pubsub's `maxMessageBytes` (dapr/local/pubsub.yaml, 1 MiB).
const PUBLISH_OVERSIZED: usize = 1024 * 1024 + 4096;
/// The bound on waiting for the poison to reach the -dlq topics.
const DLQ_WAIT: Duration = Duration::from_secs(120);

/// What a direct push carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Shape {
    NotJson,
    SchemaInvalid,
    UnknownType,
    Oversized,
}

/// Another user's task, and what is tried on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Cross {
    Read,
    Patch,
    Complete,
    Delete,
}

/// One kind of hostile input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Token(BadToken),
    CrossUser(Cross),
    Callback(Consumer, Shape),
    Publish(Consumer, bool),
    Frame(Junk),
}

impl Kind {
    /// Every kind the stack's settings make hostile.
    fn all(tokens: &TokenSettings) -> Vec<Kind> {
        let mut all: Vec<Kind> = BadToken::ALL
            .into_iter()
            .filter(|t| t.applies(tokens.audience.as_deref(), tokens.issuer.as_deref()))
            .map(Kind::Token)
            .collect();
        all.extend(
            [Cross::Read, Cross::Patch, Cross::Complete, Cross::Delete].map(Kind::CrossUser),
        );
        for c in Consumer::ALL {
            let shapes = [
                Shape::NotJson,
                Shape::SchemaInvalid,
                Shape::UnknownType,
                Shape::Oversized,
            ];
            // recurring acknowledges every type but completions, by design.
            let shapes = shapes
                .into_iter()
                .filter(|s| !(c == Consumer::Recurring && *s == Shape::UnknownType));
            all.extend(shapes.map(|s| Kind::Callback(c, s)));
        }
        for c in [Consumer::Audit, Consumer::Notification, Consumer::Gateway] {
            all.extend([Kind::Publish(c, false), Kind::Publish(c, true)]);
        }
        all.extend(Junk::ALL.map(Kind::Frame));
        all
    }

    fn oversized(self) -> bool {
        matches!(
            self,
            Kind::Callback(_, Shape::Oversized)
                | Kind::Publish(_, true)
                | Kind::Frame(Junk::Oversized)
        )
    }
}

/// Counts per kind.
#[derive(Debug, Default, Clone)]
struct Count {
    sent: u64,
    refused: u64,
    unanswered: u64,
    wrong: Vec<String>,
}

/// The run's hostile state: who, what, and what came back.
struct Hostile {
    env: Arc<Env>,
    http: reqwest::Client,
    tokens: TokenSettings,
    intruder: String,
    thief: String,
    victim: String,
    victim_task: Uuid,
    injected: dlq::Injected,
    pushed: Vec<String>,
    counts: BTreeMap<Kind, Count>,
}

pub async fn run(env: Arc<Env>, scale: Scale, seed: u64, phase: Phase) -> anyhow::Result<Tally> {
    let repo = repo_root(&env);
    let start_offsets = dlq::end_offsets(&repo).await;
    let start_procs = processes(&env);
    let mut h = match Hostile::new(env.clone()).await {
        Ok(h) => h,
        Err(e) => {
            phase.driving_done();
            return Err(e);
        }
    };
    let kinds = Kind::all(&h.tokens);
    let mut order = kinds.clone();
    Rng::derive(seed, NAME).shuffle(&mut order);
    let mut sent_oversized: BTreeMap<Kind, usize> = BTreeMap::new();
    for n in 0..scale.hostile.max(kinds.len()) {
        let kind = order[n % order.len()];
        if kind.oversized() {
            let sent = sent_oversized.entry(kind).or_default();
            if *sent >= OVERSIZED_MAX {
                continue;
            }
            *sent += 1;
        }
        let answer = h.send(kind).await;
        h.record(kind, answer);
        tokio::time::sleep(PACE).await;
    }
    phase.driving_done();
    phase.wait_quiet().await;
    let mut tally = h.tally();
    tally.not_exercised = unsent(&kinds, &h.counts);
    h.check_rows(&mut tally).await;
    check_processes(&env, &start_procs, &mut tally).await;
    match start_offsets {
        Ok(start) => h.check_dlq(&repo, &start, &mut tally).await,
        Err(e) => tally
            .problems
            .push(format!("dead-letter offsets at the start: {e:#}")),
    }
    println!("{}", h.markdown());
    Ok(tally)
}

impl Hostile {
    async fn new(env: Arc<Env>) -> anyhow::Result<Hostile> {
        // What the running stack checks (scripts/faults reads it from
        // task-api's own environment).
        let tokens = TokenSettings {
            secret: env.jwt_secret.clone(),
            audience: env.jwt_audience.clone(),
            issuer: env.jwt_issuer.clone(),
        };
        let who = |role: &str| format!("faults-{}-hostile-{role}", env.run_id);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        let (victim, thief, intruder) = (who("victim"), who("thief"), who("intruder"));
        let victim_task = create_victim(&env, &http, &victim).await?;
        Ok(Hostile {
            env,
            http,
            tokens,
            intruder,
            thief,
            victim,
            victim_task,
            injected: dlq::Injected::new(),
            pushed: Vec::new(),
            counts: BTreeMap::new(),
        })
    }

    async fn send(&mut self, kind: Kind) -> Answer {
        match kind {
            Kind::Token(bad) => self.bad_token(bad).await,
            Kind::CrossUser(cross) => self.cross_user(cross).await,
            Kind::Callback(c, shape) => self.push(c, shape).await,
            Kind::Publish(c, oversized) => self.publish(c, oversized).await,
            Kind::Frame(junk) => {
                let token = self.env.token(&self.thief, false);
                let bad = match junk {
                    Junk::ExpiredToken => {
                        requests::bad_token(BadToken::Expired, &self.thief, &self.tokens)
                    }
                    _ => requests::bad_token(BadToken::WrongKey, &self.thief, &self.tokens),
                };
                let bad = bad
                    .unwrap_or_default()
                    .trim_start_matches("Bearer ")
                    .to_owned();
                frames::send(&self.env.gateway_ws(), junk, &token, &bad).await
            }
        }
    }

    fn record(&mut self, kind: Kind, answer: Answer) {
        let c = self.counts.entry(kind).or_default();
        c.sent += 1;
        match answer {
            Answer::Refused => c.refused += 1,
            Answer::Unanswered(_) => c.unanswered += 1,
            Answer::Accepted(why) => c.wrong.push(format!("accepted: {why}")),
            Answer::Unexpected(why) => c.wrong.push(why),
        }
    }

    async fn answer(&self, request: reqwest::RequestBuilder, want: Expect) -> Answer {
        match request.send().await {
            Ok(r) => {
                let status = r.status();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                requests::expect(want, status, &body)
            }
            Err(e) => Answer::Unanswered(e.to_string()),
        }
    }

    /// A create or a list with a bad token: 401, and no task (checked at
    /// the end: the intruder has none).
    async fn bad_token(&self, bad: BadToken) -> Answer {
        let url = format!("{}/api/tasks", self.env.task_api);
        let create = self
            .counts
            .get(&Kind::Token(bad))
            .is_none_or(|c| c.sent % 2 == 0);
        let mut request = if create {
            self.http.post(url).json(&json!({"title": "hostile"}))
        } else {
            self.http.get(url)
        };
        if let Some(value) = requests::bad_token(bad, &self.intruder, &self.tokens) {
            request = request.header("authorization", value);
        }
        self.answer(request, Expect::Unauthorized).await
    }

    /// The thief at the victim's task: 404 whatever the method.
    async fn cross_user(&self, cross: Cross) -> Answer {
        let url = format!("{}/api/tasks/{}", self.env.task_api, self.victim_task);
        let request = match cross {
            Cross::Read => self.http.get(url),
            Cross::Patch => self.http.patch(url).json(&json!({"title": "stolen"})),
            Cross::Complete => self.http.post(format!("{url}/complete")),
            Cross::Delete => self.http.delete(url).header("if-match", "\"1\""),
        };
        let token = self.env.token(&self.thief, false);
        self.answer(request.bearer_auth(token), Expect::NotFound)
            .await
    }

    /// Poison straight to a consumer's callback, as daprd delivers.
    async fn push(&mut self, c: Consumer, shape: Shape) -> Answer {
        let id = Uuid::now_v7().to_string();
        let base = match c {
            Consumer::Audit => &self.env.audit,
            Consumer::Recurring => &self.env.recurring,
            Consumer::Notification => &self.env.notification,
            Consumer::Gateway => &self.env.gateway,
        };
        let body = match shape {
            Shape::NotJson => b"{not json".to_vec(),
            Shape::SchemaInvalid => requests::poison(&id, c.event_type(), &self.intruder, 0)
                .to_string()
                .into_bytes(),
            Shape::UnknownType => requests::poison(&id, "com.example.hostile", &self.intruder, 0)
                .to_string()
                .into_bytes(),
            Shape::Oversized => {
                requests::poison(&id, c.event_type(), &self.intruder, CALLBACK_OVERSIZED)
                    .to_string()
                    .into_bytes()
            }
        };
        self.pushed.push(id);
        let mut request = self
            .http
            .post(format!("{base}{}", c.route()))
            .header("content-type", "application/cloudevents+json")
            .body(body);
        if let Some(token) = &self.env.app_api_token {
            request = request.header("dapr-api-token", token);
        }
        self.answer(request, Expect::Dropped).await
    }

    /// Poison published through task-api's daprd onto `c`'s topic: taken
    /// (204), then dead-lettered by the consumer. An oversized one is
    /// refused by the publish itself: daprd 1.18.2 answers 500
    /// `ERR_PUBSUB_PUBLISH_MESSAGE` ("Attempt to produce message larger
    /// than configured Producer.MaxMessageBytes", the pubsub's
    /// `maxMessageBytes`, dapr/local/pubsub.yaml), seen on the local stack;
    /// should one be taken, it is dead-lettered like the rest.
    async fn publish(&mut self, c: Consumer, oversized: bool) -> Answer {
        let id = Uuid::now_v7().to_string();
        let pad = if oversized { PUBLISH_OVERSIZED } else { 0 };
        let event = requests::poison(&id, c.event_type(), &self.intruder, pad);
        let mut request = self
            .http
            .post(format!(
                "{}/v1.0/publish/pubsub/{}",
                self.env.task_api_dapr,
                c.topic()
            ))
            .query(&[("metadata.partitionKey", self.intruder.as_str())])
            .header("content-type", "application/cloudevents+json")
            .body(event.to_string());
        if let Some(token) = &self.env.dapr_api_token {
            request = request.header("dapr-api-token", token);
        }
        let dead_letters = format!("{}-dlq", c.topic());
        match request.send().await {
            Ok(r) if r.status() == StatusCode::NO_CONTENT => {
                self.injected.insert(id, (dead_letters, true));
                Answer::Refused
            }
            Ok(r)
                if (oversized && r.status().is_client_error()) || r.status().is_server_error() =>
            {
                // Refused at the publish (or a fault's 5xx): it may still
                // have reached the broker, so it may show up, need not.
                self.injected.insert(id, (dead_letters, false));
                if oversized {
                    Answer::Refused
                } else {
                    Answer::Unanswered(r.status().to_string())
                }
            }
            Ok(r) => Answer::Unexpected(format!("publish answered {}", r.status())),
            Err(e) => {
                self.injected.insert(id, (dead_letters, false));
                Answer::Unanswered(e.to_string())
            }
        }
    }
}

/// The kinds the stack's settings make hostile that were never sent (the
/// token kinds it does not check the report names itself).
fn unsent(kinds: &[Kind], counts: &BTreeMap<Kind, Count>) -> Vec<String> {
    kinds
        .iter()
        .filter(|k| counts.get(k).is_none_or(|c| c.sent == 0))
        .map(|k| format!("hostile input {k:?}: none sent"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_never_sent_is_not_exercised() {
        let kinds = [Kind::CrossUser(Cross::Read), Kind::CrossUser(Cross::Patch)];
        let mut counts = BTreeMap::new();
        counts.insert(
            kinds[0],
            Count {
                sent: 2,
                ..Count::default()
            },
        );
        assert_eq!(
            unsent(&kinds, &counts),
            ["hostile input CrossUser(Patch): none sent"]
        );
        counts.insert(
            kinds[1],
            Count {
                sent: 1,
                ..Count::default()
            },
        );
        assert!(unsent(&kinds, &counts).is_empty());
    }

    #[test]
    fn every_kind_is_sent_and_oversized_ones_are_few() {
        let all = Kind::all(&TokenSettings::default());
        // Without a configured audience or issuer those tokens are valid.
        assert!(!all.contains(&Kind::Token(BadToken::NoAudience)));
        assert!(!all.contains(&Kind::Callback(Consumer::Recurring, Shape::UnknownType)));
        let strict = TokenSettings {
            audience: Some("a".into()),
            issuer: Some("i".into()),
            ..TokenSettings::default()
        };
        let all = Kind::all(&strict);
        assert!(all.contains(&Kind::Token(BadToken::WrongIssuer)));
        assert_eq!(all.iter().filter(|k| k.oversized()).count(), 8);
    }

    /// One of each kind against the running stack, nothing injected.
    #[tokio::test]
    #[ignore = "needs the local stack: ./scripts/faults runs the suite"]
    async fn hostile_input_is_refused_on_the_stack() {
        let scale = Scale {
            hostile: 0,
            ..Scale::SHORT
        };
        let tally =
            crate::workload::alone(1, move |env, phase| run(env, scale, 7, phase), |_| async {})
                .await;
        println!("{tally:?}");
        assert!(tally.checked >= 36, "{tally:?}");
        assert!(tally.passed(), "{tally:?}");
        assert_eq!(tally.unknown, 0, "nothing was killed: {tally:?}");
    }
}
