//! A user's Web Push subscriptions (endpoint, p256dh, auth), stored for the
//! notification function.

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::{ValidationError, invalid};
use crate::repo::{RepoError, TaskRepository};

pub const MAX_ENDPOINT_LEN: usize = 2048;

/// Browsers send these keys base64url, with or without padding.
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A `PushSubscription` as a browser hands it over (its `keys` flattened).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceInput {
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Device {
    pub id: Uuid,
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
    pub created_at: DateTime<Utc>,
}

impl DeviceInput {
    /// An https endpoint, a P-256 public key (65 bytes, uncompressed) and a
    /// 16-byte auth secret, as RFC 8291 requires.
    pub fn validate(&self) -> Result<(), Vec<ValidationError>> {
        let mut errors = Vec::new();
        let e = &self.endpoint;
        if !e.starts_with("https://")
            || e.len() > MAX_ENDPOINT_LEN
            || e.len() <= "https://".len()
            || e.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            errors.push(invalid(
                "endpoint",
                "must be an https URL of at most 2048 characters",
            ));
        }
        match B64URL.decode(&self.p256dh) {
            Ok(key) if key.len() == 65 && key[0] == 4 => {}
            _ => errors.push(invalid(
                "p256dh",
                "must be a base64url uncompressed P-256 public key (65 bytes)",
            )),
        }
        match B64URL.decode(&self.auth) {
            Ok(secret) if secret.len() == 16 => {}
            _ => errors.push(invalid("auth", "must be a base64url 16-byte secret")),
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

impl TaskRepository {
    /// Stores a subscription; the same endpoint again updates its keys.
    /// Returns the device and whether it is new.
    pub async fn upsert_device(
        &self,
        user_id: &str,
        input: &DeviceInput,
    ) -> Result<(Device, bool), RepoError> {
        let client = self.pool().get().await?;
        let row = client
            .query_one(
                "INSERT INTO devices (id, user_id, endpoint, p256dh, auth, created_at)
                 VALUES ($1, $2, $3, $4, $5, now())
                 ON CONFLICT (user_id, endpoint) DO UPDATE SET p256dh = EXCLUDED.p256dh, auth = EXCLUDED.auth
                 RETURNING id, endpoint, p256dh, auth, created_at, (xmax = 0) AS inserted",
                &[&Uuid::now_v7(), &user_id, &input.endpoint, &input.p256dh, &input.auth],
            )
            .await?;
        let device = Device {
            id: row.try_get("id")?,
            endpoint: row.try_get("endpoint")?,
            p256dh: row.try_get("p256dh")?,
            auth: row.try_get("auth")?,
            created_at: row.try_get("created_at")?,
        };
        Ok((device, row.try_get("inserted")?))
    }

    /// Removes the user's subscription; `false` if there is none by that id.
    pub async fn delete_device(&self, user_id: &str, id: Uuid) -> Result<bool, RepoError> {
        let client = self.pool().get().await?;
        let n = client
            .execute(
                "DELETE FROM devices WHERE id = $1 AND user_id = $2",
                &[&id, &user_id],
            )
            .await?;
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(endpoint: &str, p256dh: &str, auth: &str) -> DeviceInput {
        DeviceInput {
            endpoint: endpoint.into(),
            p256dh: p256dh.into(),
            auth: auth.into(),
        }
    }

    #[test]
    fn keys_and_endpoint_are_checked() {
        let key = B64URL.encode([4u8; 65]);
        let auth = B64URL.encode([7u8; 16]);
        assert!(
            input("https://push.example/abc", &key, &auth)
                .validate()
                .is_ok()
        );
        let errors = input("http://x", "nope", "AAAA").validate().unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["endpoint", "p256dh", "auth"]);
    }
}
