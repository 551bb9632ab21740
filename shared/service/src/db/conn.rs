//! A pooled connection whose running statement is cancelled on the server
//! when its caller stops waiting.
//!
//! Dropping a tokio-postgres query future does not stop the query: the
//! request is already on the wire, the server runs it to the end, and the
//! connection's task throws the answer away (tokio-postgres offers
//! `Client::cancel_token` for exactly this). A request timeout (tower's
//! `TimeoutLayer` drops the handler's future) would leave the query
//! running, holding its locks and a backend, and the pooled connection
//! would make its next user wait behind it.
//!
//! [`Conn`] marks itself busy for the length of each statement. Dropped
//! while busy, it takes the connection out of the pool, sends PostgreSQL's
//! cancel request for that backend, and closes the connection. Never
//! returning it to the pool matters: a cancel request names a backend, not
//! a statement, so on a reused connection it could end the next caller's
//! statement instead.

use deadpool_postgres::Object;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Error, NoTls, Row, Statement, ToStatement};

/// A pooled connection that cancels its running statement when dropped.
pub struct Conn {
    object: Option<Object>,
    busy: bool,
}

impl Conn {
    pub fn new(object: Object) -> Self {
        Self {
            object: Some(object),
            busy: false,
        }
    }

    fn client(&self) -> &tokio_postgres::Client {
        // Only Drop takes the object, and nothing runs after Drop.
        self.object
            .as_ref()
            .map(|object| &***object)
            .unwrap_or_else(|| unreachable!("Conn used after drop"))
    }

    /// Runs one statement with the busy mark set: if the caller drops the
    /// future part-way, the mark stays and [`Drop`] cancels.
    async fn busy<T>(
        &mut self,
        statement: impl AsyncFnOnce(&tokio_postgres::Client) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.busy = true;
        let result = statement(self.client()).await;
        self.busy = false;
        result
    }

    pub async fn query<T: ?Sized + ToStatement + Sync>(
        &mut self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Error> {
        self.busy(async |c| c.query(statement, params).await).await
    }

    pub async fn query_one<T: ?Sized + ToStatement + Sync>(
        &mut self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, Error> {
        self.busy(async |c| c.query_one(statement, params).await)
            .await
    }

    pub async fn query_opt<T: ?Sized + ToStatement + Sync>(
        &mut self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, Error> {
        self.busy(async |c| c.query_opt(statement, params).await)
            .await
    }

    pub async fn execute<T: ?Sized + ToStatement + Sync>(
        &mut self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, Error> {
        self.busy(async |c| c.execute(statement, params).await)
            .await
    }

    pub async fn prepare(&mut self, sql: &str) -> Result<Statement, Error> {
        self.busy(async |c| c.prepare(sql).await).await
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if !self.busy {
            return; // the object goes back to the pool as usual
        }
        let Some(object) = self.object.take() else {
            return;
        };
        let client = Object::take(object);
        let token = client.cancel_token();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    match token.cancel_query(NoTls).await {
                        Ok(()) => tracing::info!("abandoned statement cancelled"),
                        Err(error) => {
                            tracing::warn!(%error, "could not cancel an abandoned statement")
                        }
                    }
                    // Closed only now: the backend is still there to cancel.
                    drop(client);
                });
            }
            // No runtime (the process is ending): closing the connection is
            // all there is; the statement timeout ends the rest.
            Err(_) => drop(client),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::db::{PoolSettings, pool_with};
    use std::time::Duration;

    pub fn database_url() -> String {
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => panic!(
                "DATABASE_URL is not set: this test needs PostgreSQL and fails instead of \
                 passing unchecked (./scripts/test runs it)"
            ),
        }
    }

    /// Backends of `application_name` still running a statement, besides
    /// the observer's own.
    async fn active(observer: &tokio_postgres::Client, app: &str) -> i64 {
        observer
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE application_name = $1 AND state = 'active' AND pid <> pg_backend_pid()",
                &[&app],
            )
            .await
            .unwrap()
            .get(0)
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL (DATABASE_URL): ./scripts/test runs it"]
    async fn an_abandoned_statement_stops_on_the_server() {
        let url = database_url();
        let app = format!("conn-test-{}", uuid::Uuid::new_v4().simple());
        // A long server-side timeout: only the cancel can end the sleep soon.
        let settings = PoolSettings {
            statement_timeout: Duration::from_secs(60),
            ..PoolSettings::new(2).with("application_name", &app)
        };
        let pool = pool_with(&url, &settings).unwrap();
        let observer = pool.get().await.expect("PostgreSQL reachable");

        let mut conn = Conn::new(pool.get().await.unwrap());
        let abandoned = tokio::time::timeout(
            Duration::from_millis(300),
            conn.query("SELECT pg_sleep(30)", &[]),
        )
        .await;
        assert!(abandoned.is_err(), "the caller gave up");
        assert_eq!(
            active(&observer, &app).await,
            1,
            "still running before the drop"
        );
        drop(conn);

        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while active(&observer, &app).await > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the statement still runs 3 s after its caller left"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // A statement that finished leaves the connection in the pool.
        let mut conn = Conn::new(pool.get().await.unwrap());
        let row = conn.query_one("SELECT 1::int", &[]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 1);
        drop(conn);
        assert_eq!(pool.status().size, 2, "observer and the finished one");
    }
}
