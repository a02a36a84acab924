//! The skills control plane (Shipyard Neo's contract, docs/compatibility.md): payload blobs, skill
//! candidates built from execution evidence, their evaluations, versioned
//! releases with rollback, and release health computed from the execution
//! history of a release.
//!
//! [`Skills`] is the domain service over the database; the HTTP layer
//! (`api::skills`) only parses requests and renders the views defined here.
//! Every query filters by owner: another owner's objects are "not found".

pub mod candidates;
pub mod health;
pub mod json;
pub mod learning;
pub mod payloads;
pub mod releases;
pub mod segments;

use sqlx::{Any, Transaction};

use crate::db::{Db, Dialect};

pub use candidates::{CandidateView, EvaluationView, NewCandidate, NewEvaluation};
pub use health::{HealthThresholds, ReleaseHealth};
pub use json::Json;
pub use payloads::{PayloadCreated, PayloadView};
pub use releases::{NewRelease, Release, ReleaseFilter, ReleaseView};

/// Candidate lifecycle states.
pub const CANDIDATE_STATUSES: [&str; 7] = ["draft", "evaluating", "promoted", "promoted_canary", "promoted_stable", "rejected", "rolled_back"];

/// Release stages.
pub const RELEASE_STAGES: [&str; 2] = ["canary", "stable"];

pub const SKILL_TYPE_CODE: &str = "code";
pub const SKILL_TYPE_BROWSER: &str = "browser";
pub const RELEASE_MODE_MANUAL: &str = "manual";
pub const RELEASE_MODE_AUTO: &str = "auto";

/// The skills service: cheap to build per request (it only holds the pool).
#[derive(Clone)]
pub struct Skills {
    db: Db,
}

/// Serialises the read-modify-write operations on candidates and releases
/// (evaluate, promote, rollback, deletes) within this process, so release
/// versions (`max + 1`) and the single active release per skill hold under
/// concurrent requests. Bay is single-process, as Shipyard Neo is.
static WRITES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Skills {
    pub fn new(db: Db) -> Skills {
        Skills { db }
    }

    #[cfg(test)]
    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    /// A transaction that will write: on SQLite it takes the write lock up
    /// front (`BEGIN IMMEDIATE`), so a read-then-write cannot fail on a
    /// snapshot that another connection's commit made stale.
    async fn write_tx(&self) -> sqlx::Result<Transaction<'static, Any>> {
        match self.db.dialect() {
            Dialect::Sqlite => self.db.pool().begin_with("BEGIN IMMEDIATE").await,
            Dialect::Postgres => self.db.begin().await,
        }
    }
}

/// Comma-joined list as stored in `source_execution_ids`.
fn split_csv(value: &str) -> Vec<String> {
    value.split(',').filter(|p| !p.is_empty()).map(str::to_owned).collect()
}

/// The response of both soft deletes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeleteView {
    pub id: String,
    pub deleted_at: String,
    pub deleted_by: Option<String>,
    pub delete_reason: Option<String>,
}

/// `{"items", "total"}` of both list endpoints.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
}

#[cfg(test)]
pub(crate) mod testutil {
    use crate::db::Db;
    use crate::db::history::Execution;
    use crate::ids::{execution_id, now_micros};

    /// Inserts a history row for `owner` and returns its id.
    pub async fn execution(db: &Db, owner: &str, success: bool, ms: i64, tags: Option<&str>, created_at: Option<i64>) -> String {
        let id = execution_id();
        db.insert_execution(&Execution {
            id: id.clone(),
            owner: owner.into(),
            sandbox_id: "sandbox-000000000000".into(),
            session_id: None,
            exec_type: "python".into(),
            code: "1+1".into(),
            success: success as i64,
            execution_time_ms: ms,
            output: None,
            error: None,
            payload_ref: None,
            description: None,
            tags: tags.map(str::to_owned),
            notes: None,
            learn_enabled: 0,
            learn_status: None,
            learn_error: None,
            learn_processed_at: None,
            created_at: created_at.unwrap_or_else(now_micros),
        })
        .await
        .unwrap();
        id
    }
}
