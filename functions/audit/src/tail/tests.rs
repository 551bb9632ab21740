//! The tail against the real PostgreSQL: a late entry is handed out after
//! the cursor passed its time, a row committed before an older transaction
//! is held back until that one ends, and concurrent writers' rows all reach
//! a client that follows the cursor, each once.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use tokio_postgres::{GenericClient, NoTls};
use uuid::Uuid;

use super::*;
use crate::query::Cursor;
use crate::testing::{TestEntry, database_url, test_store};

/// How long another writing transaction in the shared cluster may hold the
/// horizon before a test gives up.
const SETTLE: Duration = Duration::from_secs(60);

fn of_user(user: &str) -> Filter {
    Filter {
        user_id: Some(user.to_owned()),
        ..Filter::default()
    }
}

fn ids(page: &Page) -> Vec<String> {
    page.items.iter().map(|r| r.event_id.clone()).collect()
}

/// Follows the tail from `cursor` until a page comes back short; returns
/// the ids seen and where to continue.
async fn follow(
    store: &AuditStore,
    user: &str,
    mut cursor: Option<IngestCursor>,
    page_size: i64,
) -> (Vec<String>, Option<IngestCursor>) {
    let mut seen = Vec::new();
    loop {
        let page = store
            .tail(&of_user(user), cursor.as_ref(), page_size)
            .await
            .unwrap();
        seen.extend(ids(&page));
        cursor = page.next_cursor.map(|c| IngestCursor::decode(&c).unwrap());
        if (page.items.len() as i64) < page_size {
            return (seen, cursor);
        }
    }
}

/// Follows the tail until it has handed out `want` entries in all, within
/// [`SETTLE`] (another transaction in the cluster may hold the horizon).
async fn follow_until(
    store: &AuditStore,
    user: &str,
    cursor: Option<IngestCursor>,
    want: usize,
) -> (Vec<String>, Option<IngestCursor>) {
    let deadline = tokio::time::Instant::now() + SETTLE;
    let (mut seen, mut cursor) = (Vec::new(), cursor);
    loop {
        let (more, next) = follow(store, user, cursor, 100).await;
        seen.extend(more);
        cursor = next;
        if seen.len() >= want || tokio::time::Instant::now() >= deadline {
            return (seen, cursor);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A connection of its own, for a transaction held open.
async fn connection() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&database_url(), NoTls)
        .await
        .expect("PostgreSQL reachable");
    tokio::spawn(connection);
    client
}

/// Inserts an entry on `client` (inside whatever transaction it has open).
async fn insert_raw(client: &impl GenericClient, user: &str) -> String {
    let event_id = Uuid::now_v7().to_string();
    client
        .execute(
            "INSERT INTO audit_logs (event_id, event_type, user_id, task_id, sequence, occurred_at, source, payload)
             VALUES ($1, 'com.todo.task.updated', $2, $3, 1, now(), '/test', '{}')",
            &[&event_id, &user, &Uuid::now_v7()],
        )
        .await
        .expect("row inserted");
    event_id
}

#[test]
fn cursors_round_trip_and_refuse_forgeries() {
    let cursor = IngestCursor {
        xid: u64::MAX,
        seq: i64::MIN,
    };
    assert_eq!(IngestCursor::decode(&cursor.encode()), Ok(cursor));
    let forge = |text: &str| URL_SAFE_NO_PAD.encode(text);
    for text in [
        "ingest:18446744073709551616:1", // one past u64::MAX
        "ingest:-1:1",
        "ingest:1:9223372036854775808", // one past i64::MAX
        "ingest:1",
        "ingest::",
        "ingest:1:2:3",
        "1:2",
        "ingest:1:2\0",
        "",
    ] {
        assert_eq!(IngestCursor::decode(&forge(text)), Err(BadCursor), "{text}");
    }
    // The two kinds never pass for each other.
    let time = Cursor {
        occurred_at: Utc::now(),
        event_id: "e".into(),
    };
    assert_eq!(IngestCursor::decode(&time.encode()), Err(BadCursor));
    assert_eq!(Cursor::decode(&cursor.encode()), Err(BadCursor));
}

proptest::proptest! {
    /// Whatever a client sends as a cursor, decoding never panics, and
    /// what it accepts is in the range the database takes and encodes
    /// back to the same cursor.
    #[test]
    fn any_cursor_text_is_refused_or_in_range(text in "\\PC{0,60}", micros: i64, xid: u64, seq: i64) {
        for raw in [
            forge_text(&text),
            forge_text(&format!("ingest:{text}")),
            forge_text(&format!("{micros}:{text}")),
            forge_text(&format!("ingest:{xid}:{seq}")),
            text.clone(),
        ] {
            if let Ok(cursor) = IngestCursor::decode(&raw) {
                proptest::prop_assert_eq!(IngestCursor::decode(&cursor.encode()), Ok(cursor));
            }
            if let Ok(cursor) = Cursor::decode(&raw) {
                use chrono::Datelike;
                proptest::prop_assert!((0..=9999).contains(&cursor.occurred_at.year()));
                proptest::prop_assert!(!cursor.event_id.contains('\0'));
                proptest::prop_assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
            }
        }
    }
}

fn forge_text(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

#[test]
fn the_tail_is_bounded_by_the_horizon_and_ordered_by_transaction() {
    let cursor = IngestCursor { xid: 7, seq: 3 };
    let (sql, params) = tail_sql(&Filter::default(), Some(&cursor), 50);
    assert!(
        sql.contains(
            "WHERE ingest_xid < pg_snapshot_xmin(pg_current_snapshot()) \
             AND (ingest_xid, ingest_seq) > ($1::text::xid8, $2)"
        ),
        "{sql}"
    );
    assert!(
        sql.ends_with("ORDER BY ingest_xid, ingest_seq LIMIT 50"),
        "{sql}"
    );
    assert_eq!(params.len(), 2);
    // A user's tail leads its bound with the user, for the user's index.
    let (sql, params) = tail_sql(&of_user("u"), Some(&cursor), 50);
    assert!(
        sql.contains(
            "WHERE user_id = $1 AND ingest_xid < pg_snapshot_xmin(pg_current_snapshot()) \
             AND (user_id, ingest_xid, ingest_seq) > ($2, $3::text::xid8, $4)"
        ),
        "{sql}"
    );
    assert_eq!(params.len(), 4);
}

#[tokio::test]
#[ignore = "needs PostgreSQL (DATABASE_URL): ./scripts/test runs it"]
async fn a_late_entry_reaches_a_client_past_its_time() {
    let store = test_store().await;
    let user = format!("tail-late-{}", Uuid::now_v7());
    let now = Utc::now();
    let task = Uuid::now_v7();
    let first = TestEntry::new(&user, task, 1, now - chrono::Duration::hours(1))
        .insert(&store)
        .await;
    let second = TestEntry::new(&user, task, 2, now - chrono::Duration::minutes(30))
        .insert(&store)
        .await;
    let (seen, cursor) = follow_until(&store, &user, None, 2).await;
    assert_eq!(seen, vec![first, second.clone()]);

    // An event of ten days ago arrives now (a replay, a lagging partition).
    let late = TestEntry::new(&user, task, 3, now - chrono::Duration::days(10))
        .insert(&store)
        .await;
    let (seen, _) = follow_until(&store, &user, cursor, 1).await;
    assert_eq!(seen, vec![late], "the tail hands out the late entry");

    // The event-time listing files it behind a cursor that passed its
    // time: what the tail exists for.
    let passed = Cursor {
        occurred_at: store.get(&second).await.unwrap().unwrap().occurred_at,
        event_id: second,
    };
    let page = store
        .list(&of_user(&user), Some(&passed), 100)
        .await
        .unwrap();
    assert!(page.items.is_empty(), "{page:?}");
}

/// The case a plain sequence gets wrong: a row with a higher seq commits
/// while a lower one is in flight. Also with the seqs the other way round
/// (the older transaction inserts last).
#[tokio::test]
#[ignore = "needs PostgreSQL (DATABASE_URL): ./scripts/test runs it"]
async fn a_row_waits_until_every_older_transaction_has_ended() {
    let store = test_store().await;
    for older_inserts_first in [true, false] {
        let user = format!("tail-order-{}", Uuid::now_v7());
        let mut holder = connection().await;
        let older = holder.transaction().await.unwrap();
        // The older transaction takes its id now, before the other starts.
        older
            .execute("SELECT pg_current_xact_id()", &[])
            .await
            .unwrap();
        let early = if older_inserts_first {
            Some(insert_raw(&older, &user).await)
        } else {
            None
        };
        let committed = TestEntry::new(&user, Uuid::now_v7(), 1, Utc::now())
            .insert(&store)
            .await;
        let held = match early {
            Some(id) => id,
            None => insert_raw(&older, &user).await,
        };

        // Committed and visible, yet not handed out: the older transaction
        // could still commit a row that sorts before it.
        assert!(store.get(&committed).await.unwrap().is_some());
        let (seen, cursor) = follow(&store, &user, None, 100).await;
        assert!(seen.is_empty(), "{older_inserts_first}: {seen:?}");
        assert_eq!(cursor, None);

        older.commit().await.unwrap();
        let (seen, cursor) = follow_until(&store, &user, None, 2).await;
        assert_eq!(seen, vec![held, committed], "{older_inserts_first}");
        let (again, next) = follow(&store, &user, cursor, 100).await;
        assert!(again.is_empty(), "nothing twice");
        assert_eq!(next, cursor, "a caught-up tail keeps its place");
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL (DATABASE_URL): ./scripts/test runs it"]
async fn concurrent_writers_reach_a_following_client_once_each() {
    const WRITERS: usize = 6;
    const ROWS: usize = 20;
    let store = test_store().await;
    let user = format!("tail-race-{}", Uuid::now_v7());
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let user = user.clone();
            tokio::spawn(async move {
                let mut client = connection().await;
                let mut ids = Vec::new();
                for n in 0..ROWS {
                    let tx = client.transaction().await.unwrap();
                    ids.push(insert_raw(&tx, &user).await);
                    // Commits land in another order than the inserts.
                    let pause = ((w * 7 + n * 13) % 11) as u64;
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    tx.commit().await.unwrap();
                }
                ids
            })
        })
        .collect();

    // A client following the tail while the writers run, small pages.
    let mut seen = Vec::new();
    let mut cursor = None;
    let deadline = tokio::time::Instant::now() + SETTLE;
    while seen.len() < WRITERS * ROWS && tokio::time::Instant::now() < deadline {
        let (more, next) = follow(&store, &user, cursor, 7).await;
        seen.extend(more);
        cursor = next;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut written = HashSet::new();
    for writer in writers {
        written.extend(writer.await.unwrap());
    }
    let distinct: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(distinct.len(), seen.len(), "an entry was handed out twice");
    assert_eq!(distinct, written, "every entry reached the client");
}
