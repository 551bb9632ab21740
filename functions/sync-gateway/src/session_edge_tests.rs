//! Session tests of the edges (session_tests.rs has the harness): stalled
//! writers, tokens at and past their expiry, positions outside the
//! contract, a position given with the auth, the unprompted catch-ups, and
//! the per-user, resume and replay limits.

use std::time::Duration;

use auth::Authenticator;
use auth::testing::{TEST_SECRET, sign, test_config, token_for};
use serde_json::json;
use uuid::Uuid;

use crate::protocol::Close;
use crate::session::End;
use crate::session_tests::{Client, Harness, MemFeed, USER};

/// A socket whose client reads nothing, after three live events (far
/// fewer than the queue holds).
async fn stalled(h: &Harness) -> Client {
    let client = h.connect_with(Some(h.verified(USER).await), 0);
    tokio::task::yield_now().await;
    for event in h.feed.commit(3) {
        h.hub.publish(USER, event);
    }
    tokio::task::yield_now().await;
    client
}

/// A client that stops reading with fewer events than its queue holds:
/// the queue never overflows, so no kick comes; the write deadline (and
/// shutdown, and expiry) must end the session all the same.
#[tokio::test(start_paused = true)]
async fn a_stalled_client_below_its_queue_is_closed_within_the_write_timeout() {
    let h = Harness::new(MemFeed::with(0), 256);
    let Client {
        session,
        from_server: _unread,
        to_server: _open,
        ..
    } = stalled(&h).await;
    let started = tokio::time::Instant::now();
    let bound = h.config.write_timeout + crate::session::CLOSE_WRITE_TIMEOUT * 2;
    let end = tokio::time::timeout(bound, session)
        .await
        .expect("the write deadline ends the session")
        .unwrap();
    assert_eq!(end, End::Closed(Close::TooSlow));
    assert!(started.elapsed() >= h.config.write_timeout);

    // A stalled write does not hold off shutdown either.
    let Client {
        session,
        from_server: _unread,
        to_server: _open,
        ..
    } = stalled(&h).await;
    h.shutdown.send(true).unwrap();
    let end = tokio::time::timeout(crate::session::CLOSE_WRITE_TIMEOUT * 2, session)
        .await
        .expect("shutdown ends a session whose write is stuck")
        .unwrap();
    assert_eq!(end, End::Closed(Close::GoingAway));
}

/// A token past its `exp` but within the JWT leeway is closed with 4402
/// before any hello (not hello then 4402, which a client would loop on);
/// a fractional `exp` still closes the socket when it passes.
#[tokio::test(start_paused = true)]
async fn an_expired_token_within_the_leeway_gets_4402_before_hello() {
    let mut h = Harness::new(MemFeed::with(0), 16);
    h.config.ping_interval = Duration::from_secs(300);
    h.config.idle_timeout = Duration::from_secs(600);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let mut lenient = test_config();
    lenient.leeway_s = 60;
    let connect = |token: String| {
        let client = h.connect_with_auth(None, 16, Authenticator::new(&lenient));
        client.say(json!({"type": "auth", "token": token}));
        client
    };
    let mut late = connect(sign(&json!({"sub": USER, "exp": now - 5.0}), TEST_SECRET));
    assert_eq!(late.next().await, json!({"close": 4402}), "no hello first");

    let mut fractional = connect(sign(&json!({"sub": USER, "exp": now + 30.5}), TEST_SECRET));
    assert_eq!(fractional.next().await["type"], "hello");
    let started = tokio::time::Instant::now();
    assert_eq!(fractional.next().await, json!({"close": 4402}));
    assert!(
        started.elapsed() <= Duration::from_secs(31),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn positions_outside_the_contract_are_4400_and_another_epoch_resets_without_a_page() {
    let h = Harness::new(MemFeed::with(4), 16);
    for bad in [
        json!({"type": "resume", "epoch": h.feed.epoch(), "offset": -1}),
        json!({"type": "resume", "epoch": "", "offset": 0}),
    ] {
        let mut client = h.connect(Some(h.verified(USER).await));
        client.next().await;
        client.say(bad.clone());
        assert_eq!(client.next().await, json!({"close": 4400}), "{bad}");
    }
    // Not this user's epoch (not even a UUID): a reset at the head, and
    // task-api is not asked for a page of it.
    let mut client = h.connect(Some(h.verified(USER).await));
    client.next().await;
    for epoch in ["not-a-uuid".to_owned(), Uuid::new_v4().to_string()] {
        client.say(json!({"type": "resume", "epoch": epoch, "offset": 2}));
        assert_eq!(
            client.next().await,
            json!({"type": "reset", "epoch": h.feed.epoch(), "offset": 4})
        );
    }
    assert_eq!(h.feed.0.lock().unwrap().pages, 0);
}

#[tokio::test(start_paused = true)]
async fn a_feed_that_refuses_the_request_closes_with_4400_not_1013() {
    let h = Harness::new(MemFeed::with(3), 16);
    let mut client = h.connect(Some(h.verified(USER).await));
    client.next().await;
    h.feed.0.lock().unwrap().refuse = Some(400);
    client.say(json!({"type": "resume", "epoch": h.feed.epoch(), "offset": 0}));
    assert_eq!(client.next().await, json!({"close": 4400}), "no retry loop");
}

/// The position in the auth message is replayed right after the hello,
/// before the live events queued meanwhile: each offset once, in order.
#[tokio::test(start_paused = true)]
async fn a_position_given_with_the_auth_is_replayed_before_live_events() {
    let h = Harness::new(MemFeed::with(6), 16);
    let mut client = h.connect(None);
    client.say(json!({
        "type": "auth",
        "token": auth::testing::token_for(USER, false),
        "resume": {"epoch": h.feed.epoch(), "offset": 2},
    }));
    assert_eq!(client.next().await["type"], "hello");
    h.publish(&h.feed.commit(2));
    assert_eq!(client.offsets(6).await, vec![3, 4, 5, 6, 7, 8]);
    client.say(json!({"type": "ping"}));
    assert_eq!(client.next().await, json!({"type": "pong"}), "nothing else");

    // A position outside the protocol in the auth: 4400, not 4401.
    let mut bad = h.connect(None);
    bad.say(json!({
        "type": "auth",
        "token": auth::testing::token_for(USER, false),
        "resume": {"epoch": h.feed.epoch(), "offset": -1},
    }));
    assert_eq!(bad.next().await, json!({"close": 4400}));

    // A position of another epoch: hello, then a reset at the head.
    let mut other = h.connect(None);
    other.say(json!({
        "type": "auth",
        "token": auth::testing::token_for(USER, false),
        "resume": {"epoch": Uuid::new_v4().to_string(), "offset": 2},
    }));
    assert_eq!(other.next().await["type"], "hello");
    assert_eq!(other.next().await["type"], "reset");
}

/// A new replica's consumer joins after it accepts sockets: an event
/// published before the join never arrives live. The settle catch-up after
/// the hello, and the head check after a quiet spell, bring it anyway.
#[tokio::test(start_paused = true)]
async fn events_no_push_brought_arrive_by_the_settle_and_head_checks() {
    let mut h = Harness::new(MemFeed::with(2), 16);
    h.config.ping_interval = Duration::from_secs(3600);
    h.config.idle_timeout = Duration::from_secs(7200);
    h.config.settle = Duration::from_secs(5);
    h.config.head_check = Duration::from_secs(300);
    let mut client = h.connect(Some(h.verified(USER).await));
    assert_eq!(client.next().await["offset"], 2);
    let started = tokio::time::Instant::now();
    h.feed.commit(1); // never pushed
    assert_eq!(client.offsets(1).await, vec![3]);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
        "{waited:?}"
    );

    h.feed.commit(1); // never pushed either
    assert_eq!(client.offsets(1).await, vec![4]);
    assert!(
        started.elapsed() >= Duration::from_secs(305),
        "{:?}",
        started.elapsed()
    );

    // Once a push has reached the replica its consumer is reading: a new
    // socket gets no settle catch-up (only the head check, much later).
    h.publish(&h.feed.commit(1));
    assert_eq!(client.offsets(1).await, vec![5]);
    let pages = h.feed.0.lock().unwrap().pages;
    let mut late = h.connect(Some(h.verified(USER).await));
    assert_eq!(late.next().await["offset"], 5);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(h.feed.0.lock().unwrap().pages, pages, "no page asked for");
}

#[tokio::test(start_paused = true)]
async fn a_user_at_the_socket_cap_gets_1013_before_hello() {
    let mut h = Harness::new(MemFeed::with(0), 16);
    h.config.max_per_user = 2;
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut client = h.connect(Some(h.verified(USER).await));
        assert_eq!(client.next().await["type"], "hello");
        open.push(client);
    }
    let mut third = h.connect(Some(h.verified(USER).await));
    assert_eq!(third.next().await, json!({"close": 1013}));
    let mut bob = h.connect(Some(h.verified("bob").await));
    assert_eq!(
        bob.next().await["type"],
        "hello",
        "other users are not held"
    );
    open.pop().unwrap().ended().await;
    let mut again = h.connect(Some(h.verified(USER).await));
    assert_eq!(
        again.next().await["type"],
        "hello",
        "a freed place is taken"
    );
}

#[tokio::test(start_paused = true)]
async fn resumes_beyond_the_rate_and_replays_without_a_slot_get_1013() {
    let mut h = Harness::new(MemFeed::with(3), 16);
    h.config.resumes_per_minute = 3;
    let mut client = h.connect(Some(h.verified(USER).await));
    client.next().await;
    for _ in 0..3 {
        client.say(json!({"type": "resume", "epoch": h.feed.epoch(), "offset": 2}));
        assert_eq!(client.offsets(1).await, vec![3]);
    }
    client.say(json!({"type": "resume", "epoch": h.feed.epoch(), "offset": 2}));
    assert_eq!(client.next().await, json!({"close": 1013}));

    // Every replay slot taken: a resume waits at most the write timeout.
    let h = Harness::new(MemFeed::with(3), 16);
    let _all = h.replays.clone().acquire_many_owned(8).await.unwrap();
    let mut client = h.connect(Some(h.verified(USER).await));
    client.next().await;
    let started = tokio::time::Instant::now();
    client.say(json!({"type": "resume", "epoch": h.feed.epoch(), "offset": 0}));
    assert_eq!(client.next().await, json!({"close": 1013}));
    assert!(started.elapsed() >= h.config.write_timeout);
}

/// A first message that is not the protocol is a client bug: 4400 (stop),
/// not 4401, which would send the client for a new token in a loop.
#[tokio::test(start_paused = true)]
async fn a_malformed_first_message_is_4400_not_4401() {
    let h = Harness::new(MemFeed::with(0), 16);
    for text in [
        "not json".to_owned(),
        json!({"type": "auth", "token": token_for(USER, false), "extra": 1}).to_string(),
        json!({"type": "auht", "token": token_for(USER, false)}).to_string(),
        json!({"type": "auth"}).to_string(),
    ] {
        let mut client = h.connect(None);
        client.say_text(&text);
        assert_eq!(client.next().await, json!({"close": 4400}), "{text}");
        assert_eq!(client.ended().await, End::Closed(Close::BadMessage));
    }
}
