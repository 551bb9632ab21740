//! sync-gateway's edges against the real stack (task-api, its relay,
//! daprd, Kafka, the gateway's daprd and the gateway): the largest event a
//! task can make, a position given with the auth, positions outside the
//! protocol, and a token whose `exp` has a fraction.
//!
//! Each test uses users of its own, so other tests writing at the same
//! time change nothing here.

use std::time::Duration;

use e2e_tests::Stack;
use e2e_tests::ws::{Follower, Socket, hello, next, say};
use serde_json::{Value, json};
use uuid::Uuid;

fn gateway() -> String {
    e2e_tests::ws::gateway_url("SYNC_GATEWAY_URL", "http://127.0.0.1:8090")
}

async fn connect(token: &str, in_header: bool) -> Socket {
    e2e_tests::ws::connect(&gateway(), token, in_header)
        .await
        .expect("the gateway accepts the socket")
}

fn user(tag: &str) -> String {
    format!("ws-{tag}-{}", Uuid::now_v7())
}

const LIVE: Duration = Duration::from_secs(30);

/// task-domain's MAX_DESCRIPTION_CHARS of a 4-byte character: a ~40 KB
/// event, more than any client message and than the socket's write
/// buffer. Before the fix every socket died on it without a close, and
/// every resume died again at the same offset.
#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn the_largest_task_reaches_the_socket_live_and_on_resume() {
    let stack = Stack::from_env();
    let alice = user("big");
    let token = stack.token(&alice, false);
    let mut socket = connect(&token, true).await;
    let epoch = hello(&mut socket).await["epoch"]
        .as_str()
        .unwrap()
        .to_owned();
    let description = "\u{1F600}".repeat(task_domain::model::MAX_DESCRIPTION_CHARS);
    stack.create_task(&alice, &json!({"title": "small"})).await;
    stack
        .create_task(&alice, &json!({"title": "big", "description": description}))
        .await;
    stack.create_task(&alice, &json!({"title": "after"})).await;
    let mut f = Follower {
        user: alice.clone(),
        epoch: epoch.clone(),
        ..Default::default()
    };
    let mut big = None;
    while f.last() < 3 {
        let frame = next(&mut socket, LIVE).await.expect("the next event");
        assert_eq!(frame["type"], "event", "{}", brief(&frame));
        assert!(f.apply(&frame), "a gap: {}", brief(&frame));
        if frame["offset"] == 2 {
            big = Some(frame);
        }
    }
    let big = big.expect("the big event");
    assert_eq!(big["data"]["task"]["description"], description.as_str());
    assert!(f.duplicates.is_empty(), "{:?}", f.duplicates);

    let mut again = connect(&token, false).await;
    hello(&mut again).await;
    say(
        &mut again,
        json!({"type": "resume", "epoch": epoch, "offset": 1}),
    )
    .await;
    let replayed = next(&mut again, LIVE).await.expect("the replay");
    assert_eq!(replayed["offset"], 2, "{}", brief(&replayed));
    assert_eq!(
        replayed["data"]["task"]["description"],
        description.as_str()
    );
    assert_eq!(next(&mut again, LIVE).await.expect("3")["offset"], 3);
}

/// A frame's type and offset, not its 40 KB.
fn brief(frame: &Value) -> String {
    format!(
        "{} {} {}",
        frame["type"],
        frame["offset"],
        frame.get("close").unwrap_or(&Value::Null)
    )
}

/// The position in the auth message is replayed before any live event:
/// the wire carries each offset once, in order.
#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_position_given_with_the_auth_puts_each_offset_on_the_wire_once() {
    let stack = Stack::from_env();
    let alice = user("authpos");
    let token = stack.token(&alice, false);
    let mut first = connect(&token, true).await;
    let epoch = hello(&mut first).await["epoch"]
        .as_str()
        .unwrap()
        .to_owned();
    for i in 0..3 {
        stack
            .create_task(&alice, &json!({"title": format!("t{i}")}))
            .await;
    }
    let mut f = Follower::new(&alice);
    assert_eq!(f.follow(&mut first, 3, LIVE).await, None);

    let (mut socket, _) = tokio_tungstenite::connect_async(gateway()).await.unwrap();
    say(
        &mut socket,
        json!({"type": "auth", "token": token, "resume": {"epoch": epoch, "offset": 1}}),
    )
    .await;
    assert_eq!(hello(&mut socket).await["offset"], 3);
    // Writes go on while the replay runs.
    let writer = {
        let (stack, alice) = (stack.clone(), alice.clone());
        tokio::spawn(async move {
            for i in 3..6 {
                stack
                    .create_task(&alice, &json!({"title": format!("t{i}")}))
                    .await;
            }
        })
    };
    let mut wire = Vec::new();
    while wire.last() != Some(&6) {
        let frame = next(&mut socket, LIVE).await.expect("the stream");
        assert_eq!(frame["type"], "event", "{frame}");
        wire.push(frame["offset"].as_i64().unwrap());
    }
    writer.await.unwrap();
    assert_eq!(wire, vec![2, 3, 4, 5, 6], "each offset once, in order");
}

/// Positions outside the protocol are 4400 (not 1013, which a client
/// retries forever); a well-formed position of another epoch is a reset.
#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn positions_outside_the_protocol_are_4400_and_another_epoch_is_a_reset() {
    let stack = Stack::from_env();
    let alice = user("badpos");
    let token = stack.token(&alice, false);
    stack.create_task(&alice, &json!({"title": "one"})).await;
    for bad in [
        json!({"type": "resume", "epoch": "e", "offset": -1}),
        json!({"type": "resume", "epoch": "", "offset": 0}),
    ] {
        let mut socket = connect(&token, true).await;
        hello(&mut socket).await;
        say(&mut socket, bad.clone()).await;
        assert_eq!(
            next(&mut socket, LIVE).await,
            Some(json!({"close": 4400})),
            "{bad}"
        );
    }
    let mut socket = connect(&token, true).await;
    let epoch = hello(&mut socket).await["epoch"].clone();
    say(
        &mut socket,
        json!({"type": "resume", "epoch": "not-a-uuid", "offset": 0}),
    )
    .await;
    assert_eq!(
        next(&mut socket, LIVE).await,
        Some(json!({"type": "reset", "epoch": epoch, "offset": 1}))
    );
}

/// RFC 7519 lets `exp` have a fraction; such a token still closes the
/// socket (4402) when it passes, and one already past it (within the
/// leeway) is refused before any hello.
#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_fractional_exp_closes_the_socket_when_it_passes() {
    let stack = Stack::from_env();
    let alice = user("fracexp");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let token = |exp: f64| {
        let mut claims = json!({"sub": alice, "exp": exp});
        for (claim, var) in [("iss", "JWT_ISSUER"), ("aud", "JWT_AUDIENCE")] {
            if let Ok(value) = std::env::var(var) {
                claims[claim] = Value::String(value);
            }
        }
        auth::testing::sign(&claims, &stack.jwt_secret)
    };
    let mut socket = connect(&token(now + 3.5), false).await;
    hello(&mut socket).await;
    let started = std::time::Instant::now();
    assert_eq!(next(&mut socket, LIVE).await, Some(json!({"close": 4402})));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    // Past exp by 2 s, inside the leeway (default 30 s): 4402, no hello.
    let leeway: f64 = std::env::var("JWT_LEEWAY_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30.0);
    assert!(leeway >= 5.0, "the stack's JWT leeway is {leeway} s");
    let mut late = connect(&token(now - 2.0), false).await;
    assert_eq!(next(&mut late, LIVE).await, Some(json!({"close": 4402})));
}
