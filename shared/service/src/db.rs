//! The PostgreSQL pool and migrations. Each owning crate keeps its own
//! versioned migration files and its own history table, so the owners of
//! different tables never step on each other's versions.

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

/// Builds a pool of at most `max_size` connections (created lazily).
pub fn pool(url: &str, max_size: usize) -> Result<Pool, DbError> {
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| DbError::BadUrl(e.to_string()))?;
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
/// whether the lock was released (a connection still holding it must not be
/// reused).
async fn migrate_on(
    client: &mut tokio_postgres::Client,
    mut runner: refinery::Runner,
    history_table: &str,
) -> Result<bool, DbError> {
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
    let pool = self::pool(&common.database_url, common.db_pool_size)?;
    wait_ready(&pool, &common.database_url, common.db_wait).await?;
    // The connection wait_ready opened does the migrations too: one
    // authentication handshake fewer on every cold start.
    let mut connection = pool.get().await.map_err(|e| DbError::Pool(e.to_string()))?;
    let unlocked = migrate_on(&mut connection, migrations, history_table).await?;
    if !unlocked {
        // Never hand a connection that may still hold the lock to requests.
        drop(deadpool_postgres::Object::take(connection));
    }
    Ok(pool)
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
