//! sync-gateway against the real stack: task-api writes, the relay
//! publishes through daprd to Kafka, the gateway's daprd pushes
//! `task-updates`, and real WebSocket clients (tokio-tungstenite) read.
//!
//! Each test uses users of its own, so other tests writing at the same
//! time change nothing here. A client applies an event only when its
//! offset is its own plus one (the protocol's rule); every test asserts
//! that the applied offsets are exactly 1..=N and that the gateway never
//! sent an offset the client already had.

use std::time::Duration;

use e2e_tests::Stack;
use e2e_tests::ws::{Follower, Socket, hello, next, say};
use serde_json::json;
use tokio::net::TcpSocket;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use uuid::Uuid;

/// Where the gateway listens (scripts/test sets it).
fn gateway() -> String {
    e2e_tests::ws::gateway_url("SYNC_GATEWAY_URL", "http://127.0.0.1:8090")
}

/// Opens `/ws/tasks`, with the token in the header or in the first message.
async fn connect(token: &str, in_header: bool) -> Result<Socket, WsError> {
    e2e_tests::ws::connect(&gateway(), token, in_header).await
}

async fn create(stack: &Stack, user: &str, n: usize) {
    for i in 0..n {
        stack
            .create_task(user, &json!({"title": format!("t{i}")}))
            .await;
    }
}

/// A user of this test run.
fn user(tag: &str) -> String {
    format!("ws-{tag}-{}", Uuid::now_v7())
}

const LIVE: Duration = Duration::from_secs(30);

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn two_sockets_of_one_user_and_one_of_another_each_see_only_their_own() {
    let stack = Stack::from_env();
    let (alice, bob) = (user("alice"), user("bob"));
    let mut a1 = connect(&stack.token(&alice, false), true).await.unwrap();
    let mut a2 = connect(&stack.token(&alice, false), false).await.unwrap();
    let mut b = connect(&stack.token(&bob, false), true).await.unwrap();
    let epoch = hello(&mut a1).await["epoch"].as_str().unwrap().to_owned();
    assert_eq!(
        hello(&mut a2).await,
        json!({"type": "hello", "epoch": epoch, "offset": 0})
    );
    assert_eq!(hello(&mut b).await["offset"], 0);

    create(&stack, &alice, 3).await;
    create(&stack, &bob, 2).await;
    for (socket, who, n) in [
        (&mut a1, &alice, 3),
        (&mut a2, &alice, 3),
        (&mut b, &bob, 2),
    ] {
        let mut f = Follower {
            user: who.clone(),
            ..Default::default()
        };
        assert_eq!(f.follow(socket, n, LIVE).await, None);
        assert_eq!(f.applied, (1..=n).collect::<Vec<_>>());
        assert!(f.duplicates.is_empty(), "{f:?}");
        // Nothing more: in particular none of the other user's events.
        say(socket, json!({"type": "ping"})).await;
        assert_eq!(next(socket, LIVE).await, Some(json!({"type": "pong"})));
    }
    assert_eq!(epoch.len(), 36, "the epoch is task-api's stream epoch");
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_gateway_restart_mid_stream_loses_and_repeats_nothing_after_resume() {
    let stack = Stack::from_env();
    let alice = user("restart");
    let token = stack.token(&alice, false);
    let mut socket = connect(&token, true).await.unwrap();
    let mut f = Follower {
        user: alice.clone(),
        epoch: hello(&mut socket).await["epoch"]
            .as_str()
            .unwrap()
            .to_owned(),
        ..Default::default()
    };
    create(&stack, &alice, 3).await;
    assert_eq!(f.follow(&mut socket, 3, LIVE).await, None);

    // Writes go on before, while and after the gateway is stopped
    // (SIGTERM) and started again.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stack, alice, stop) = (stack.clone(), alice.clone(), stop.clone());
        tokio::spawn(async move {
            let mut written = 0;
            // At most 300, should the restart's build take long.
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && written < 300 {
                stack
                    .create_task(&alice, &json!({"title": format!("w{written}")}))
                    .await;
                written += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            written
        })
    };
    let restart = {
        let (stack, stop) = (stack.clone(), stop.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            stack.dev(&["restart", "sync-gateway"]).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        })
    };
    let ended = f
        .follow(&mut socket, i64::MAX, Duration::from_secs(300))
        .await;
    assert_eq!(ended, Some(json!({"close": 1001})), "going away on SIGTERM");
    assert!(f.last() > 3, "events flowed before the restart");
    restart.await.unwrap();
    let total = 3 + writer.await.unwrap();

    // Reconnect (the new process may still be binding) and resume.
    let mut socket = loop {
        match connect(&token, true).await {
            Ok(socket) => break socket,
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    say(
        &mut socket,
        json!({"type": "resume", "epoch": f.epoch, "offset": f.last()}),
    )
    .await;
    let mut gaps = 0;
    while f.last() < total {
        let frame = next(&mut socket, LIVE)
            .await
            .expect("the rest of the stream");
        match frame["type"].as_str() {
            Some("hello") => assert_eq!(frame["epoch"], f.epoch.as_str()),
            Some("event") => gaps += usize::from(!f.apply(&frame)),
            _ => panic!("unexpected {frame}"),
        }
    }
    assert_eq!(f.applied, (1..=total).collect::<Vec<_>>());
    assert!(f.duplicates.is_empty(), "sent twice: {:?}", f.duplicates);
    // At most the live events sent between hello and the resume.
    assert!(gaps <= 2, "{gaps} events ahead of the resume");
}

/// A client with a tiny receive buffer that reads one frame at a time.
async fn slow_client(token: &str) -> Socket {
    let address = gateway()
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let tcp = TcpSocket::new_v4().unwrap();
    tcp.set_recv_buffer_size(4096).unwrap();
    let stream = tcp.connect(address).await.unwrap();
    let mut request = gateway().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (socket, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream))
        .await
        .unwrap();
    socket
}

/// The gateway's count of sockets it cut off for a full queue.
async fn kicked(stack: &Stack) -> u64 {
    let url = gateway()
        .replacen("ws", "http", 1)
        .replace("/ws/tasks", "/metrics");
    let text = stack
        .http
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("todo_sync_gateway_sockets_kicked_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the kicked counter")
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_slow_client_is_cut_off_with_4429_and_resumes_without_loss() {
    let stack = Stack::from_env();
    let alice = user("slow");
    let token = stack.token(&alice, false);
    let kicked_before = kicked(&stack).await;
    let mut socket = slow_client(&token).await;
    let mut f = Follower {
        user: alice.clone(),
        epoch: hello(&mut socket).await["epoch"]
            .as_str()
            .unwrap()
            .to_owned(),
        ..Default::default()
    };
    // 600 changes of ~10 KiB each, from 4 writers, while the client reads
    // five frames a second: far more than the 256 queued per socket.
    const TOTAL: i64 = 600;
    let description = "x".repeat(9_000);
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (stack, alice, description) = (stack.clone(), alice.clone(), description.clone());
            tokio::spawn(async move {
                for i in 0..TOTAL / 4 {
                    let body = json!({"title": format!("s{w}-{i}"), "description": description});
                    stack.create_task(&alice, &body).await;
                }
            })
        })
        .collect();
    let cut = loop {
        let frame = next(&mut socket, LIVE).await.expect("events, then the cut");
        if frame["type"] != "event" {
            break frame;
        }
        assert!(f.apply(&frame), "the gateway itself never skips");
        // Slow while the writers run, then as fast as it can.
        if !writers.iter().all(|w| w.is_finished()) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    // The close frame waits behind what the kernel buffers already hold;
    // a client too slow to reach it within the gateway's 5 s sees the
    // connection end instead, and resumes all the same.
    assert!(
        cut == json!({"close": 4429}) || cut.get("gone").is_some(),
        "after {} events: {cut}",
        f.last()
    );
    assert!(f.last() < TOTAL);
    assert!(
        kicked(&stack).await > kicked_before,
        "the gateway cut a slow socket"
    );
    for writer in writers {
        writer.await.unwrap();
    }

    let mut socket = connect(&token, true).await.unwrap();
    say(
        &mut socket,
        json!({"type": "resume", "epoch": f.epoch, "offset": f.last()}),
    )
    .await;
    while f.last() < TOTAL {
        let frame = next(&mut socket, LIVE).await.expect("the rest");
        if frame["type"] == "event" {
            assert!(f.apply(&frame), "no gap after the resume: {frame}");
        }
    }
    assert_eq!(f.applied, (1..=TOTAL).collect::<Vec<_>>());
    assert!(f.duplicates.is_empty(), "{:?}", f.duplicates);
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn forged_and_expired_tokens_are_refused() {
    let stack = Stack::from_env();
    let forged = auth::testing::sign(
        &json!({"sub": "mallory", "exp": 4_000_000_000u64}),
        "not-the-stack-secret-not-the-stack-secret",
    );
    match connect(&forged, true).await {
        Err(WsError::Http(response)) => {
            assert_eq!(response.status(), 401);
            assert!(response.headers().contains_key("www-authenticate"));
        }
        other => panic!("a forged header token must get 401: {other:?}"),
    }
    let expired = auth::testing::sign(&json!({"sub": "mallory", "exp": 1_000}), &stack.jwt_secret);
    for token in [&forged, &expired] {
        let mut socket = connect(token, false).await.unwrap();
        assert_eq!(next(&mut socket, LIVE).await, Some(json!({"close": 4401})));
    }
    // No auth at all: closed once the auth time is over.
    let (mut silent, _) = tokio_tungstenite::connect_async(gateway()).await.unwrap();
    assert_eq!(next(&mut silent, LIVE).await, Some(json!({"close": 4401})));
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_resume_older_than_the_history_gets_reset() {
    let stack = Stack::from_env();
    let alice = user("reset");
    create(&stack, &alice, 3).await;
    let db = stack.db().await;
    let sent = e2e_tests::eventually(LIVE, || async {
        (e2e_tests::unsent_outbox_rows(&db, &alice).await == 0).then_some(())
    })
    .await;
    assert!(sent.is_some(), "published");
    db.execute(
        "UPDATE outbox SET created_at = now() - interval '8 days'
         WHERE partition_key = $1 AND topic = 'task-updates' AND stream_offset <= 2",
        &[&alice],
    )
    .await
    .unwrap();
    // The retention job's route, called as daprd calls it.
    let pruned = stack
        .http
        .post(format!(
            "{}/job/change-retention-{}",
            stack.task_api,
            Uuid::now_v7()
        ))
        .header(
            "dapr-api-token",
            stack.app_api_token.clone().unwrap_or_default(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(pruned.status(), 200);

    let mut socket = connect(&stack.token(&alice, false), true).await.unwrap();
    let hello = hello(&mut socket).await;
    let epoch = hello["epoch"].as_str().unwrap().to_owned();
    assert_eq!(hello["offset"], 3);
    say(
        &mut socket,
        json!({"type": "resume", "epoch": epoch, "offset": 0}),
    )
    .await;
    let reset = json!({"type": "reset", "epoch": epoch, "offset": 3});
    assert_eq!(next(&mut socket, LIVE).await, Some(reset.clone()));
    let other = Uuid::new_v4().to_string();
    say(
        &mut socket,
        json!({"type": "resume", "epoch": other, "offset": 3}),
    )
    .await;
    assert_eq!(next(&mut socket, LIVE).await, Some(reset), "another epoch");
    // What the history still holds is replayed.
    say(
        &mut socket,
        json!({"type": "resume", "epoch": epoch, "offset": 2}),
    )
    .await;
    let event = next(&mut socket, LIVE).await.unwrap();
    assert_eq!(
        (event["type"].as_str(), event["offset"].as_i64()),
        (Some("event"), Some(3))
    );
}
