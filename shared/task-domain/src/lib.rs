//! The task domain, shared by `task-api` and `recurring`: the model and its
//! validation, the recurrence engine, reminders, the repository that changes
//! tasks, the per-user streams, and the transactional outbox with the relay
//! that publishes it through Dapr.
//!
//! This crate is the only owner of the task tables: every change goes
//! through [`repo::TaskRepository`], which commits the change and the events
//! it causes in one transaction.

pub mod changes;
pub mod ics;
pub mod idempotency;
pub mod input;
pub mod model;
pub mod outbox;
pub mod prune;
pub mod query;
pub mod recurrence;
pub mod relay;
pub mod reminder;
pub mod repo;
pub mod rrule;
pub mod series;
pub mod stream;

pub use input::{NewTask, ParseError, TaskInput, TaskPatch};
pub use model::{Priority, Status, Task, ValidationError};
pub use recurrence::Recurrence;
pub use relay::{Relay, RelayConfig};
pub use repo::{RepoError, TaskRepository};
pub use series::{Occurrence, SeriesStart};

/// The history table of this crate's migrations.
pub const MIGRATION_TABLE: &str = "refinery_history_task_domain";

/// The versioned migrations of the task tables.
pub fn migrations() -> refinery::Runner {
    mod embedded {
        refinery::embed_migrations!("migrations");
    }
    embedded::migrations::runner()
}

/// The name events from this domain carry as their emitter.
pub const EMITTER: &str = "task-api";
