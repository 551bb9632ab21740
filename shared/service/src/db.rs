//! The PostgreSQL pool and migrations. Each owning crate keeps its own
//! versioned migration files and its own history table, so the owners of
//! different tables never step on each other's versions.
//!
//! Every pooled connection carries a `statement_timeout`
//! (`DB_STATEMENT_TIMEOUT_MS`, below the request timeout): the server
//! itself ends a statement nobody can still be waiting for, whatever the
//! client does. [`conn::Conn`] also cancels a statement as soon as its
//! caller stops waiting (a request timeout).

pub mod conn;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("DATABASE_URL is not a valid PostgreSQL connection string: {0}")]
    BadUrl(String),
    #[error("database pool: {0}")]
    Pool(String),
    #[error(
        "PostgreSQL not reachable at {target} after {waited_s}s: {reason}. Start it with ./scripts/dev up, or point DATABASE_URL at a running server"
    )]
    Unreachable {
        target: String,
        waited_s: u64,
        reason: String,
    },
    #[error("migrations ({table}) failed: {reason}")]
    Migration { table: String, reason: String },
}

/// How a pool's connections are opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    pub max_size: usize,
    /// The server cancels any statement running longer (`0` never does).
    pub statement_timeout: Duration,
    /// Further session settings (`-c name=value`): an `application_name`,
    /// a test's private `search_path`.
    pub session: Vec<(String, String)>,
}

impl PoolSettings {
    /// `max_size` connections with the default statement timeout.
    pub fn new(max_size: usize) -> Self {
        Self {
            max_size,
            statement_timeout: Duration::from_millis(
                crate::config::DEFAULT_DB_STATEMENT_TIMEOUT_MS,
            ),
            session: Vec::new(),
        }
    }

    /// A session setting added to every connection.
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.session.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The startup `options` string: what the URL had, then ours. A value's
    /// spaces and backslashes are escaped as libpq's options parser wants.
    fn options(&self, from_url: Option<&str>) -> String {
        let escape = |v: &str| v.replace('\\', "\\\\").replace(' ', "\\ ");
        let timeout = self.statement_timeout.as_millis().to_string();
        let ours = std::iter::once(("statement_timeout", timeout.as_str()))
            .chain(self.session.iter().map(|(n, v)| (n.as_str(), v.as_str())))
            .map(|(name, value)| format!("-c {name}={}", escape(value)));
        from_url
            .filter(|o| !o.trim().is_empty())
            .map(str::to_owned)
            .into_iter()
            .chain(ours)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Builds a pool of at most `max_size` connections (created lazily), with
/// the default statement timeout.
pub fn pool(url: &str, max_size: usize) -> Result<Pool, DbError> {
    pool_with(url, &PoolSettings::new(max_size))
}

/// Builds a pool as `settings` says.
pub fn pool_with(url: &str, settings: &PoolSettings) -> Result<Pool, DbError> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| DbError::BadUrl(e.to_string()))?;
    let options = settings.options(config.get_options());
    config.options(&options);
    let max_size = settings.max_size;
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(max_size)
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(Duration::from_secs(5)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Pool(e.to_string()))
}

/// Waits until the database answers, for at most `timeout`.
pub async fn wait_ready(pool: &Pool, url: &str, timeout: Duration) -> Result<(), DbError> {
    let started = tokio::time::Instant::now();
    loop {
        let attempt = async {
            pool.get()
                .await
                .map_err(|e| e.to_string())?
                .simple_query("SELECT 1")
                .await
                .map_err(|e| e.to_string())
        };
        match attempt.await {
            Ok(_) => return Ok(()),
            Err(reason) if started.elapsed() >= timeout => {
                return Err(DbError::Unreachable {
                    target: describe(url),
                    waited_s: timeout.as_secs(),
                    reason,
                });
            }
            Err(reason) => {
                tracing::info!(%reason, "waiting for PostgreSQL");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

/// Where the database is, without the credentials.
fn describe(url: &str) -> String {
    let Ok(config) = url.parse::<tokio_postgres::Config>() else {
        return "an unparseable DATABASE_URL".to_owned();
    };
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        Some(other) => format!("{other:?}"),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{host}:{port} (database {:?})",
        config.get_dbname().unwrap_or_default()
    )
}

/// Applies `runner`'s migrations, recording them in `history_table`, on a
/// connection of its own.
pub async fn migrate(
    url: &str,
    runner: refinery::Runner,
    history_table: &str,
) -> Result<(), DbError> {
    let (mut client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| migration_failed(history_table, e.to_string()))?;
    let driver = tokio::spawn(connection);
    let result = migrate_on(&mut client, runner, history_table).await;
    drop(client);
    let _ = driver.await;
    result.map(|_| ())
}

fn migration_failed(history_table: &str, reason: String) -> DbError {
    DbError::Migration {
        table: history_table.to_owned(),
        reason,
    }
}

/// Runs the migrations on `client` under a session advisory lock per
/// history table, so replicas starting together do not race on it. Returns
/// whether the session is back as it was (a connection still holding the
/// lock, or without its statement timeout, must not be reused).
async fn migrate_on(
    client: &mut tokio_postgres::Client,
    mut runner: refinery::Runner,
    history_table: &str,
) -> Result<bool, DbError> {
    // A migration may rewrite a big table, and the lock waits for another
    // replica's: neither is bounded by the pool's statement timeout. RESET
    // below restores the connection's own (its startup option).
    client
        .batch_execute("SET statement_timeout = 0")
        .await
        .map_err(|e| migration_failed(history_table, e.to_string()))?;
    client
        .execute("SELECT pg_advisory_lock(hashtext($1))", &[&history_table])
        .await
        .map_err(|e| migration_failed(history_table, e.to_string()))?;
    let report = runner
        .set_migration_table_name(history_table)
        .run_async(client)
        .await
        .map_err(|e| migration_failed(history_table, e.to_string()));
    let unlocked = client
        .execute("SELECT pg_advisory_unlock(hashtext($1))", &[&history_table])
        .await
        .is_ok()
        && client
            .batch_execute("RESET statement_timeout")
            .await
            .is_ok();
    for applied in report?.applied_migrations() {
        tracing::info!(
            version = applied.version(),
            name = applied.name(),
            history_table,
            "migration applied"
        );
    }
    Ok(unlocked)
}

/// `/readyz` check: the database answers a trivial query.
pub struct PostgresCheck(pub Pool);

impl crate::health::ReadinessCheck for PostgresCheck {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn check(&self) -> crate::health::CheckFuture {
        let pool = self.0.clone();
        Box::pin(async move {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            client
                .simple_query("SELECT 1")
                .await
                .map_err(|e| e.to_string())?;
            Ok(())
        })
    }
}

/// The usual start of a table-owning function: a pool, a wait until the
/// database answers, then the owner's migrations.
pub async fn connect_and_migrate(
    common: &crate::config::CommonConfig,
    migrations: refinery::Runner,
    history_table: &str,
) -> Result<Pool, DbError> {
    let settings = PoolSettings {
        max_size: common.db_pool_size,
        statement_timeout: common.db_statement_timeout,
        session: Vec::new(),
    };
    let pool = pool_with(&common.database_url, &settings)?;
    wait_ready(&pool, &common.database_url, common.db_wait).await?;
    migrate_pool(&pool, migrations, history_table).await?;
    Ok(pool)
}

/// Applies the migrations on one of `pool`'s connections (the one
/// [`wait_ready`] opened: one authentication handshake fewer on every cold
/// start), so they land where the pool's session settings say.
pub async fn migrate_pool(
    pool: &Pool,
    migrations: refinery::Runner,
    history_table: &str,
) -> Result<(), DbError> {
    let mut connection = pool.get().await.map_err(|e| DbError::Pool(e.to_string()))?;
    let restored = migrate_on(&mut connection, migrations, history_table).await?;
    if !restored {
        // Never hand a connection that may still hold the lock, or run
        // without a statement timeout, to requests.
        drop(deadpool_postgres::Object::take(connection));
    }
    Ok(())
}

/// Whether the same statement can succeed later: the connection broke, or
/// the server answered with a class that means "not now" (08 connection,
/// 40 serialization failure or deadlock, 53 insufficient resources, 57
/// operator intervention such as a restart, 58 system error). Anything else
/// is a fact about the request or the code, and retrying will not change it.
pub fn is_transient(error: &tokio_postgres::Error) -> bool {
    match error.code() {
        Some(code) => ["08", "40", "53", "57", "58"]
            .iter()
            .any(|class| code.code().starts_with(class)),
        None => {
            error.is_closed()
                || std::error::Error::source(error).is_some_and(|s| s.is::<std::io::Error>())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_connection_gets_the_statement_timeout_and_the_urls_options() {
        let settings = PoolSettings::new(2).with("application_name", "a b");
        assert_eq!(
            settings.options(None),
            "-c statement_timeout=5000 -c application_name=a\\ b"
        );
        assert_eq!(
            settings.options(Some("-c work_mem=8MB")),
            "-c work_mem=8MB -c statement_timeout=5000 -c application_name=a\\ b"
        );
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL (DATABASE_URL): ./scripts/test runs it"]
    async fn the_server_ends_a_statement_past_the_timeout() {
        let url = conn::tests::database_url();
        let settings = PoolSettings {
            statement_timeout: Duration::from_millis(200),
            ..PoolSettings::new(1)
        };
        let pool = pool_with(&url, &settings).unwrap();
        let client = pool.get().await.expect("PostgreSQL reachable");
        let shown = client
            .query_one("SHOW statement_timeout", &[])
            .await
            .unwrap();
        assert_eq!(shown.get::<_, String>(0), "200ms");
        let started = std::time::Instant::now();
        let error = client
            .simple_query("SELECT pg_sleep(30)")
            .await
            .expect_err("cancelled by the server");
        assert_eq!(
            error.code(),
            Some(&tokio_postgres::error::SqlState::QUERY_CANCELED)
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(is_transient(&error), "a timeout is worth a retry later");
    }

    #[tokio::test]
    async fn a_refused_connection_is_transient() {
        // Port 1 on loopback: nothing listens, the connect fails with io.
        let error = tokio_postgres::connect("host=127.0.0.1 port=1 user=x", NoTls)
            .await
            .err()
            .expect("nothing listens on port 1");
        assert!(is_transient(&error), "{error}");
    }
}
