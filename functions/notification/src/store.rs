//! notification's tables: push devices and notification settings.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};
use service::db::conn::Conn;
use uuid::Uuid;

/// At most this many devices per user.
pub const MAX_DEVICES: i64 = 20;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("the user already has {MAX_DEVICES} devices")]
    TooManyDevices,
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        StoreError::Unavailable(error.to_string())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Device {
    pub id: Uuid,
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationSettings {
    /// Overrides the address from the token that scheduled the reminder.
    pub email: Option<String>,
    pub email_enabled: bool,
    pub push_enabled: bool,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        Self {
            email: None,
            email_enabled: true,
            push_enabled: true,
        }
    }
}

#[derive(Clone)]
pub struct Store {
    pool: Pool,
}

impl Store {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    async fn client(&self) -> Result<Conn, StoreError> {
        self.pool
            .get()
            .await
            .map(Conn::new)
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    /// Registers `endpoint` for `user_id`. An endpoint registered by
    /// another user moves to this one (with a new id, so the old owner's
    /// id no longer names it). Returns the device and whether it is new to
    /// this user. The per-user limit is checked under a lock on the user's
    /// settings row, so two concurrent registrations cannot both pass it.
    pub async fn register_device(
        &self,
        user_id: &str,
        endpoint: &str,
        p256dh: &str,
        auth: &str,
    ) -> Result<(Device, bool), StoreError> {
        // A transaction needs the plain pooled object; the statements are
        // short and the lock is on one user's row.
        let mut client = self
            .pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let tx = client.transaction().await?;
        tx.execute(
            "INSERT INTO notification_settings (user_id) VALUES ($1) ON CONFLICT DO NOTHING",
            &[&user_id],
        )
        .await?;
        tx.execute(
            "SELECT 1 FROM notification_settings WHERE user_id = $1 FOR UPDATE",
            &[&user_id],
        )
        .await?;
        let mine = tx
            .query_opt(
                "SELECT id FROM push_devices WHERE endpoint = $1 AND user_id = $2",
                &[&endpoint, &user_id],
            )
            .await?;
        if mine.is_none() {
            let count: i64 = tx
                .query_one(
                    "SELECT count(*) FROM push_devices WHERE user_id = $1",
                    &[&user_id],
                )
                .await?
                .get(0);
            if count >= MAX_DEVICES {
                return Err(StoreError::TooManyDevices);
            }
        }
        let row = tx
            .query_one(
                "INSERT INTO push_devices (endpoint, id, user_id, p256dh, auth)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (endpoint) DO UPDATE SET
                   id = CASE WHEN push_devices.user_id = EXCLUDED.user_id
                             THEN push_devices.id ELSE EXCLUDED.id END,
                   created_at = CASE WHEN push_devices.user_id = EXCLUDED.user_id
                             THEN push_devices.created_at ELSE now() END,
                   user_id = EXCLUDED.user_id, p256dh = EXCLUDED.p256dh, auth = EXCLUDED.auth
                 RETURNING id, endpoint, p256dh, auth, created_at",
                &[&endpoint, &Uuid::now_v7(), &user_id, &p256dh, &auth],
            )
            .await?;
        tx.commit().await?;
        Ok((device(&row), mine.is_none()))
    }

    pub async fn devices(&self, user_id: &str) -> Result<Vec<Device>, StoreError> {
        let mut client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, endpoint, p256dh, auth, created_at FROM push_devices
                 WHERE user_id = $1 ORDER BY created_at, id",
                &[&user_id],
            )
            .await?;
        Ok(rows.iter().map(device).collect())
    }

    /// The device with `id` if it is `user_id`'s.
    pub async fn device(&self, user_id: &str, id: Uuid) -> Result<Option<Device>, StoreError> {
        let mut client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT id, endpoint, p256dh, auth, created_at FROM push_devices
                 WHERE user_id = $1 AND id = $2",
                &[&user_id, &id],
            )
            .await?;
        Ok(row.as_ref().map(device))
    }

    /// Removes `user_id`'s device `id`; `false` if there was none.
    pub async fn remove_device(&self, user_id: &str, id: Uuid) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let n = client
            .execute(
                "DELETE FROM push_devices WHERE user_id = $1 AND id = $2",
                &[&user_id, &id],
            )
            .await?;
        Ok(n == 1)
    }

    pub async fn settings(&self, user_id: &str) -> Result<NotificationSettings, StoreError> {
        let mut client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT email, email_on, push_on FROM notification_settings WHERE user_id = $1",
                &[&user_id],
            )
            .await?;
        Ok(
            row.map_or_else(NotificationSettings::default, |r| NotificationSettings {
                email: r.get(0),
                email_enabled: r.get(1),
                push_enabled: r.get(2),
            }),
        )
    }

    pub async fn put_settings(
        &self,
        user_id: &str,
        settings: &NotificationSettings,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        client
            .execute(
                "INSERT INTO notification_settings (user_id, email, email_on, push_on, updated_at)
                 VALUES ($1, $2, $3, $4, now())
                 ON CONFLICT (user_id) DO UPDATE SET email = $2, email_on = $3, push_on = $4, updated_at = now()",
                &[&user_id, &settings.email, &settings.email_enabled, &settings.push_enabled],
            )
            .await?;
        Ok(())
    }
}

fn device(row: &tokio_postgres::Row) -> Device {
    Device {
        id: row.get("id"),
        endpoint: row.get("endpoint"),
        p256dh: row.get("p256dh"),
        auth: row.get("auth"),
        created_at: row.get("created_at"),
    }
}
