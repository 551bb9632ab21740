//! The calendar feed's data: per-user feed tokens (only their SHA-256 is
//! stored) and the open tasks with a due date (and reminders) the feed
//! lists.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{RepoError, TaskRepository, load_reminders, task_from_row};
use crate::model::Task;

/// Most events one feed lists: a calendar app refetches the whole feed.
pub const MAX_FEED_TASKS: i64 = 5_000;

fn hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl TaskRepository {
    /// Issues a new feed token for `user_id`, replacing (and so revoking)
    /// the previous one. 244 random bits from the OS generator (two UUIDv4).
    pub async fn rotate_calendar_token(&self, user_id: &str) -> Result<String, RepoError> {
        let token = format!("cal_{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO calendar_feeds (user_id, token_hash) VALUES ($1, $2)
                 ON CONFLICT (user_id) DO UPDATE SET token_hash = $2, created_at = now()",
                &[&user_id, &hash(&token)],
            )
            .await?;
        Ok(token)
    }

    /// The user a feed token belongs to, if it is the current one.
    pub async fn calendar_user(&self, token: &str) -> Result<Option<String>, RepoError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT user_id FROM calendar_feeds WHERE token_hash = $1",
                &[&hash(token)],
            )
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// The user's pending tasks with a due date, soonest first, with their
    /// reminders.
    pub async fn open_tasks_with_due(&self, user_id: &str) -> Result<Vec<Task>, RepoError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT * FROM tasks WHERE user_id = $1 AND status = 'pending'
                   AND due_at IS NOT NULL ORDER BY due_at, id LIMIT $2",
                &[&user_id, &MAX_FEED_TASKS],
            )
            .await?;
        let mut tasks = rows
            .iter()
            .map(task_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<Uuid> = tasks.iter().map(|t| t.id).collect();
        let mut reminders = load_reminders(&client, &ids).await?;
        for task in &mut tasks {
            task.reminders = reminders.remove(&task.id).unwrap_or_default();
        }
        Ok(tasks)
    }
}
