//! Query latency of the audit read path at one million rows.
//!
//! Seeds a throw-away schema (`audit_bench`, never the live table) with the
//! real migrations and 1,000,000 rows from one `generate_series` INSERT,
//! then times `AuditStore::list` / `tail` / `get` / `gaps` — the code the
//! API runs — per filter and prints p50/p99 and the plan's access path. The schema is
//! dropped at the end unless `BENCH_KEEP=1`.
//!
//! `DATABASE_URL=... cargo bench -p audit --bench query_latency`
//! (`BENCH_ROWS`, `BENCH_ITERATIONS` change the size and the samples.)

use std::time::Instant;

use audit::query::{Cursor, Filter, Param};
use audit::store::AuditStore;
use audit::tail::IngestCursor;
use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use uuid::Uuid;

const SCHEMA: &str = "audit_bench";
const USERS: i64 = 10_000;
const TASKS: i64 = 100_000;
const DAYS: i64 = 80;

/// Deterministic pseudo-random numbers (xorshift): no dependency, and the
/// same parameters on every run.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: i64) -> i64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as i64
    }
}

fn env_or(key: &str, default: i64) -> i64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The same database, with `search_path` on the bench schema.
fn bench_url(url: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3D{SCHEMA}")
}

const SEED: &str = "
INSERT INTO audit_logs (event_id, event_type, user_id, task_id, sequence, occurred_at, source, payload)
SELECT md5('event-' || i)::uuid::text,
       CASE seq WHEN 1 THEN 'com.todo.task.created' WHEN 10 THEN 'com.todo.task.deleted'
                WHEN 9 THEN 'com.todo.task.completed' ELSE 'com.todo.task.updated' END,
       'user-' || (t % $3::bigint),
       md5('task-' || t)::uuid,
       seq,
       -- Each task starts at its own point in the first 75 days (7919 is
       -- prime to the span, so starts spread evenly) and changes every 3 h:
       -- types and users interleave in time as they do in real traffic.
       $4::timestamptz + ((t * 7919) % $5::bigint + seq * 10800) * interval '1 second',
       '/todo-events/task-api',
       jsonb_build_object('task_id', md5('task-' || t)::uuid, 'user_id', 'user-' || (t % $3::bigint),
                          'sequence', seq, 'changed', jsonb_build_array('title'),
                          'task', jsonb_build_object('id', md5('task-' || t)::uuid, 'title', 'Task ' || t,
                                                     'status', 'pending', 'priority', 'medium',
                                                     'tags', jsonb_build_array('home'), 'sequence', seq))
FROM generate_series(1, $1::bigint) AS i,
     LATERAL (SELECT (i - 1) % $2::bigint + 1 AS t, (i - 1) / $2::bigint + 1 AS seq) AS k";

/// What the cases draw their parameters from.
struct Ctx {
    start: DateTime<Utc>,
    task_ids: Vec<Uuid>,
}

struct Case {
    name: &'static str,
    make: fn(&mut Rng, &Ctx) -> (Filter, Option<Cursor>),
}

/// Makes a tail query from the generator, the seed's transaction id and
/// the row count.
type TailCase = fn(&mut Rng, u64, i64) -> (Filter, Option<IngestCursor>);

fn user(rng: &mut Rng) -> String {
    format!("user-{}", rng.below(USERS))
}

const CASES: &[Case] = &[
    Case {
        name: "admin, no filter (first page)",
        make: |_, _| (Filter::default(), None),
    },
    Case {
        name: "user_id",
        make: |rng, _| {
            (
                Filter {
                    user_id: Some(user(rng)),
                    ..Filter::default()
                },
                None,
            )
        },
    },
    Case {
        name: "task_id",
        make: |rng, ctx| {
            (
                Filter {
                    task_id: Some(ctx.task_ids[rng.below(TASKS) as usize]),
                    ..Filter::default()
                },
                None,
            )
        },
    },
    Case {
        name: "type (admin)",
        make: |rng, _| {
            let kinds = ["created", "updated", "completed", "deleted"];
            (
                Filter {
                    event_type: Some(format!("com.todo.task.{}", kinds[rng.below(4) as usize])),
                    ..Filter::default()
                },
                None,
            )
        },
    },
    Case {
        name: "user_id + type",
        make: |rng, _| {
            (
                Filter {
                    user_id: Some(user(rng)),
                    event_type: Some("com.todo.task.completed".to_owned()),
                    ..Filter::default()
                },
                None,
            )
        },
    },
    Case {
        name: "from/to (1-day window)",
        make: |rng, ctx| {
            let start = ctx.start;
            let from = start + chrono::Duration::days(rng.below(DAYS - 1));
            (
                Filter {
                    from: Some(from),
                    to: Some(from + chrono::Duration::days(1)),
                    ..Filter::default()
                },
                None,
            )
        },
    },
    Case {
        name: "user_id + from/to (7 days)",
        make: |rng, ctx| {
            let start = ctx.start;
            let from = start + chrono::Duration::days(rng.below(DAYS - 7));
            (
                Filter {
                    user_id: Some(user(rng)),
                    from: Some(from),
                    to: Some(from + chrono::Duration::days(7)),
                    ..Filter::default()
                },
                None,
            )
        },
    },
    Case {
        name: "cursor: a page deep in the table",
        make: |rng, ctx| {
            let start = ctx.start;
            let at = start + chrono::Duration::hours(rng.below(DAYS * 24));
            let cursor = Cursor {
                occurred_at: at,
                event_id: String::new(),
            };
            (Filter::default(), Some(cursor))
        },
    },
];

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| service::config::DEFAULT_DATABASE_URL.to_owned());
    let rows = env_or("BENCH_ROWS", 1_000_000);
    let iterations = env_or("BENCH_ITERATIONS", 1_000);

    let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    admin
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}"
        ))
        .await?;
    let url = bench_url(&url);
    service::db::migrate(&url, audit::migrations(), audit::MIGRATION_TABLE).await?;
    // The timed queries run under the default statement timeout, as the
    // API's do; the seed (minutes for a million rows) runs without one.
    let pool = service::db::pool(&url, 2)?;
    let unbounded = service::db::PoolSettings {
        statement_timeout: std::time::Duration::ZERO,
        ..service::db::PoolSettings::new(1)
    };
    let client = service::db::pool_with(&url, &unbounded)?.get().await?;

    let start: DateTime<Utc> = Utc::now() - chrono::Duration::days(DAYS + 1);
    let span_s: i64 = (DAYS - 5) * 86_400;
    let began = Instant::now();
    client
        .execute(SEED, &[&rows, &TASKS, &USERS, &start, &span_s])
        .await?;
    client.batch_execute("ANALYZE audit_logs").await?;
    println!(
        "seeded {rows} rows ({TASKS} tasks, {USERS} users, {DAYS} days) in {:.1}s",
        began.elapsed().as_secs_f64()
    );
    // The task ids the seed made, so task_id cases hit real tasks.
    let task_ids: Vec<Uuid> = client
        .query(
            "SELECT md5('task-' || t)::uuid FROM generate_series(1, $1::bigint) t",
            &[&TASKS],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let event_ids: Vec<String> = client
        .query(
            "SELECT event_id FROM audit_logs TABLESAMPLE SYSTEM (1) LIMIT $1",
            &[&iterations],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    drop(client);
    let ctx = Ctx { start, task_ids };

    let store = AuditStore::new(pool.clone());
    println!("\n| query (limit 100) | p50 ms | p99 ms | max ms | index used |");
    println!("|---|---|---|---|---|");
    for case in CASES {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut histogram = Histogram::<u64>::new(3)?;
        let mut plan = String::new();
        for i in 0..iterations {
            let (filter, cursor) = (case.make)(&mut rng, &ctx);
            if i == 0 {
                let (sql, params) = audit::query::list_sql(&filter, cursor.as_ref(), 100);
                plan = access_path(&pool, &sql, &params).await?;
            }
            let t = Instant::now();
            let page = store.list(&filter, cursor.as_ref(), 100).await?;
            histogram.record(t.elapsed().as_micros() as u64)?;
            assert!(page.items.len() <= 100);
        }
        print_row(case.name, &histogram, &plan);
    }

    // The ingest-ordered tail (order=ingest). The seed is one transaction,
    // so every row has its id; a deep cursor is a seq inside it.
    let seed_xid: u64 = pool
        .get()
        .await?
        .query_one("SELECT ingest_xid::text FROM audit_logs LIMIT 1", &[])
        .await?
        .get::<_, String>(0)
        .parse()?;
    let tail_cases: [(&str, TailCase); 4] = [
        ("order=ingest, admin (first page)", |_, _, _| {
            (Filter::default(), None)
        }),
        ("order=ingest, admin, cursor deep in", |rng, xid, rows| {
            let seq = rng.below(rows);
            (Filter::default(), Some(IngestCursor { xid, seq }))
        }),
        ("order=ingest, user_id (first page)", |rng, _, _| {
            (
                Filter {
                    user_id: Some(user(rng)),
                    ..Filter::default()
                },
                None,
            )
        }),
        ("order=ingest, user_id, cursor deep in", |rng, xid, rows| {
            let seq = rng.below(rows);
            (
                Filter {
                    user_id: Some(user(rng)),
                    ..Filter::default()
                },
                Some(IngestCursor { xid, seq }),
            )
        }),
    ];
    for (name, make) in tail_cases {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut histogram = Histogram::<u64>::new(3)?;
        let mut plan = String::new();
        for i in 0..iterations {
            let (filter, cursor) = make(&mut rng, seed_xid, rows);
            if i == 0 {
                let (sql, params) = audit::tail::tail_sql(&filter, cursor.as_ref(), 100);
                plan = access_path(&pool, &sql, &params).await?;
            }
            let t = Instant::now();
            let page = store.tail(&filter, cursor.as_ref(), 100).await?;
            histogram.record(t.elapsed().as_micros() as u64)?;
            assert!(page.items.len() <= 100);
        }
        print_row(name, &histogram, &plan);
    }

    let mut histogram = Histogram::<u64>::new(3)?;
    for id in &event_ids {
        let t = Instant::now();
        let found = store.get(id).await?;
        histogram.record(t.elapsed().as_micros() as u64)?;
        assert!(found.is_some(), "{id}");
    }
    print_row("GET one by event_id", &histogram, "audit_logs_pkey");

    let t = Instant::now();
    let gaps = store.gaps(&audit::gaps::GapQuery::default()).await?;
    println!(
        "\ngap check over all {TASKS} tasks: {} ms ({} tasks with holes)",
        t.elapsed().as_millis(),
        gaps.items.len()
    );

    if std::env::var("BENCH_KEEP").ok().as_deref() != Some("1") {
        admin
            .batch_execute(&format!("DROP SCHEMA {SCHEMA} CASCADE"))
            .await?;
    }
    Ok(())
}

fn print_row(name: &str, histogram: &Histogram<u64>, plan: &str) {
    let ms = |us: u64| us as f64 / 1000.0;
    println!(
        "| {name} | {:.2} | {:.2} | {:.2} | {plan} |",
        ms(histogram.value_at_quantile(0.5)),
        ms(histogram.value_at_quantile(0.99)),
        ms(histogram.max()),
    );
}

/// The indexes the plan scans, from EXPLAIN of the same SQL the store runs.
async fn access_path(
    pool: &deadpool_postgres::Pool,
    sql: &str,
    params: &[Param],
) -> anyhow::Result<String> {
    let client = pool.get().await?;
    let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    let rows = client
        .query(&format!("EXPLAIN (FORMAT TEXT) {sql}"), &refs)
        .await?;
    let mut indexes: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            let line: String = r.get(0);
            // "Index Scan using X on …" or "Bitmap Index Scan on X".
            let rest = match line.find(" using ") {
                Some(at) => &line[at + 7..],
                None => &line[line.find("Bitmap Index Scan on ")? + 21..],
            };
            Some(rest.split_whitespace().next()?.to_owned())
        })
        .collect();
    indexes.dedup();
    if rows
        .iter()
        .any(|r| r.get::<_, String>(0).contains("Seq Scan"))
    {
        indexes.push("SEQ SCAN".to_owned());
    }
    Ok(indexes.join(", "))
}
