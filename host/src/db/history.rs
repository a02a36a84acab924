//! The `execution_history` table: every python/shell (and later browser) call.

use sqlx::FromRow;

use super::Db;
use crate::ids::Micros;

#[derive(Debug, Clone, FromRow)]
pub struct Execution {
    pub id: String,
    pub owner: String,
    pub sandbox_id: String,
    pub session_id: Option<String>,
    pub exec_type: String,
    pub code: String,
    pub success: i64,
    pub execution_time_ms: i64,
    pub output: Option<String>,
    pub error: Option<String>,
    pub payload_ref: Option<String>,
    pub description: Option<String>,
    pub tags: Option<String>,
    pub notes: Option<String>,
    pub learn_enabled: i64,
    pub learn_status: Option<String>,
    pub learn_error: Option<String>,
    pub learn_processed_at: Option<Micros>,
    pub created_at: Micros,
}

impl Db {
    pub async fn insert_execution(&self, e: &Execution) -> sqlx::Result<()> {
        self.insert_execution_with(self.pool(), e).await
    }

    pub async fn insert_execution_with<'c, E>(&self, exec: E, e: &Execution) -> sqlx::Result<()>
    where
        E: sqlx::Executor<'c, Database = sqlx::Any>,
    {
        self.query(
            "INSERT INTO execution_history (id, owner, sandbox_id, session_id, exec_type, code, success, execution_time_ms, output, error, payload_ref, description, tags, notes, learn_enabled, learn_status, learn_error, learn_processed_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
        )
        .bind(&e.id)
        .bind(&e.owner)
        .bind(&e.sandbox_id)
        .bind(&e.session_id)
        .bind(&e.exec_type)
        .bind(&e.code)
        .bind(e.success)
        .bind(e.execution_time_ms)
        .bind(&e.output)
        .bind(&e.error)
        .bind(&e.payload_ref)
        .bind(&e.description)
        .bind(&e.tags)
        .bind(&e.notes)
        .bind(e.learn_enabled)
        .bind(&e.learn_status)
        .bind(&e.learn_error)
        .bind(e.learn_processed_at)
        .bind(e.created_at)
        .execute(exec)
        .await?;
        Ok(())
    }
}

/// Normalises comma-separated tags: trimmed, deduplicated, sorted, joined by
/// `,`; nothing left → `None`.
pub fn normalize_tags(tags: Option<&str>) -> Option<String> {
    let mut parts: Vec<&str> = tags?.split(',').map(str::trim).filter(|t| !t.is_empty()).collect();
    parts.sort_unstable();
    parts.dedup();
    if parts.is_empty() { None } else { Some(parts.join(",")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_normalised() {
        assert_eq!(normalize_tags(Some(" b, a ,b,, ")).as_deref(), Some("a,b"));
        assert_eq!(normalize_tags(Some(" , ")), None);
        assert_eq!(normalize_tags(None), None);
    }
}

/// Writes history rows off the request path.
///
/// An execution's row is not needed to answer the execution itself, so the
/// handler hands it to this writer and returns; the writer commits whatever
/// has queued in one transaction (group commit), usually within a
/// millisecond. Reads of the history call [`HistoryWriter::flush`] first, so
/// a client always sees its own executions. Graceful shutdown flushes; only
/// a hard crash in that millisecond can lose a row (never sandbox state).
#[derive(Clone)]
pub struct HistoryWriter {
    tx: tokio::sync::mpsc::Sender<WriterMsg>,
}

enum WriterMsg {
    Row(Box<Execution>),
    Flush(tokio::sync::oneshot::Sender<()>),
}

impl HistoryWriter {
    pub fn spawn(db: Db) -> HistoryWriter {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<WriterMsg>(4096);
        tokio::spawn(async move {
            let mut batch = Vec::new();
            let mut waiters = Vec::new();
            while let Some(first) = rx.recv().await {
                let mut next = Some(first);
                while let Some(msg) = next.take().or_else(|| rx.try_recv().ok()) {
                    match msg {
                        WriterMsg::Row(e) => batch.push(e),
                        WriterMsg::Flush(w) => waiters.push(w),
                    }
                    if batch.len() >= 256 {
                        break;
                    }
                }
                if !batch.is_empty() {
                    if let Err(e) = Self::commit(&db, &batch).await {
                        tracing::error!(error = %e, rows = batch.len(), "cannot write execution history; retrying row by row");
                        for row in &batch {
                            if let Err(e) = db.insert_execution(row).await {
                                tracing::error!(error = %e, execution_id = %row.id, "execution history row lost");
                            }
                        }
                    }
                    batch.clear();
                }
                for w in waiters.drain(..) {
                    let _ = w.send(());
                }
            }
        });
        HistoryWriter { tx }
    }

    async fn commit(db: &Db, rows: &[Box<Execution>]) -> sqlx::Result<()> {
        let mut tx = db.begin().await?;
        for row in rows {
            db.insert_execution_with(&mut *tx, row).await?;
        }
        tx.commit().await
    }

    /// Queues a row (waits only when thousands are already queued).
    pub async fn record(&self, row: Execution) {
        if self.tx.send(WriterMsg::Row(Box::new(row))).await.is_err() {
            tracing::error!("execution history writer is gone");
        }
    }

    /// Returns once every row queued before the call is committed.
    pub async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.send(WriterMsg::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// Filters of `GET …/history` (Shipyard Neo's contract, docs/compatibility.md).
#[derive(Debug, Default, Clone)]
pub struct HistoryFilter {
    pub exec_type: Option<String>,
    pub success_only: bool,
    pub tags: Option<String>,
    pub has_notes: bool,
    pub has_description: bool,
}

const EXECUTION_COLUMNS: &str = "id, owner, sandbox_id, session_id, exec_type, code, success, execution_time_ms, output, error, payload_ref, description, tags, notes, learn_enabled, learn_status, learn_error, learn_processed_at, created_at";

impl Db {
    /// A sandbox's executions, newest first, and the total matching.
    pub async fn list_executions(
        &self,
        owner: &str,
        sandbox_id: &str,
        filter: &HistoryFilter,
        limit: i64,
        offset: i64,
    ) -> sqlx::Result<(Vec<Execution>, i64)> {
        // Built from fixed fragments; every value is a bound parameter.
        let mut clauses = vec!["owner = $1".to_owned(), "sandbox_id = $2".to_owned()];
        let mut binds: Vec<String> = vec![owner.to_owned(), sandbox_id.to_owned()];
        if let Some(t) = &filter.exec_type {
            binds.push(t.clone());
            clauses.push(format!("exec_type = ${}", binds.len()));
        }
        if filter.success_only {
            clauses.push("success = 1".into());
        }
        if filter.has_notes {
            clauses.push("notes IS NOT NULL AND notes <> ''".into());
        }
        if filter.has_description {
            clauses.push("description IS NOT NULL AND description <> ''".into());
        }
        if let Some(tags) = normalize_tags(filter.tags.as_deref()) {
            let mut any = Vec::new();
            for tag in tags.split(',') {
                binds.push(format!("%{}%", tag.to_lowercase()));
                any.push(format!("LOWER(tags) LIKE ${}", binds.len()));
            }
            clauses.push(format!("({})", any.join(" OR ")));
        }
        let filter_sql = clauses.join(" AND ");
        let fix = |sql: String| {
            if self.dialect() == super::Dialect::Sqlite { sql.replace('$', "?") } else { sql }
        };
        let count_sql = fix(format!("SELECT COUNT(*) FROM execution_history WHERE {filter_sql}"));
        let mut count = sqlx::query_as::<_, (i64,)>(sqlx::AssertSqlSafe(count_sql));
        for b in &binds {
            count = count.bind(b.clone());
        }
        let total = count.fetch_one(self.pool()).await?.0;
        let n = binds.len();
        let page_sql = fix(format!(
            "SELECT {EXECUTION_COLUMNS} FROM execution_history WHERE {filter_sql} ORDER BY created_at DESC, id DESC LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        ));
        let mut page = sqlx::query_as::<_, Execution>(sqlx::AssertSqlSafe(page_sql));
        for b in &binds {
            page = page.bind(b.clone());
        }
        let rows = page.bind(limit).bind(offset).fetch_all(self.pool()).await?;
        Ok((rows, total))
    }

    pub async fn execution(&self, owner: &str, sandbox_id: &str, id: &str) -> sqlx::Result<Option<Execution>> {
        sqlx::query_as(self.sql(
            "SELECT id, owner, sandbox_id, session_id, exec_type, code, success, execution_time_ms, output, error, payload_ref, description, tags, notes, learn_enabled, learn_status, learn_error, learn_processed_at, created_at FROM execution_history WHERE id = $1 AND owner = $2 AND sandbox_id = $3",
        ))
        .bind(id)
        .bind(owner)
        .bind(sandbox_id)
        .fetch_optional(self.pool())
        .await
    }

    /// Updates the annotations that are given (`None` leaves a field as it is).
    pub async fn annotate_execution(&self, id: &str, description: Option<&str>, tags: Option<&str>, notes: Option<&str>) -> sqlx::Result<()> {
        self.query(
            "UPDATE execution_history SET description = COALESCE($1, description), tags = CASE WHEN $2 = 1 THEN $3 ELSE tags END, notes = COALESCE($4, notes) WHERE id = $5",
        )
        .bind(description)
        .bind(tags.is_some() as i64)
        .bind(tags.and_then(|t| normalize_tags(Some(t))))
        .bind(notes)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

/// Learning states of a browser execution (`learn_status`).
pub mod learn {
    pub const PROCESSED: &str = "processed";
    pub const SKIPPED: &str = "skipped";
    pub const ERROR: &str = "error";
}

impl Db {
    /// Learn-enabled browser and browser_batch executions still waiting
    /// (`learn_status` pending or null), oldest first.
    pub async fn pending_learning(&self, limit: i64) -> sqlx::Result<Vec<Execution>> {
        sqlx::query_as(self.sql(
            "SELECT id, owner, sandbox_id, session_id, exec_type, code, success, execution_time_ms, output, error, payload_ref, description, tags, notes, learn_enabled, learn_status, learn_error, learn_processed_at, created_at FROM execution_history WHERE learn_enabled = 1 AND exec_type IN ('browser', 'browser_batch') AND (learn_status IS NULL OR learn_status = 'pending') ORDER BY created_at ASC, id ASC LIMIT $1",
        ))
        .bind(limit)
        .fetch_all(self.pool())
        .await
    }

    /// Moves a waiting execution to `processing`; false when it is no longer
    /// waiting (another replica took it).
    pub async fn claim_learning(&self, id: &str) -> sqlx::Result<bool> {
        let r = self
            .query("UPDATE execution_history SET learn_status = 'processing', learn_error = NULL, learn_processed_at = NULL WHERE id = $1 AND (learn_status IS NULL OR learn_status = 'pending')")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Records the outcome of learning from an execution.
    pub async fn set_learning(&self, id: &str, status: &str, error: Option<&str>, processed_at: Option<Micros>) -> sqlx::Result<()> {
        self.query("UPDATE execution_history SET learn_status = $1, learn_error = $2, learn_processed_at = $3 WHERE id = $4")
            .bind(status)
            .bind(error)
            .bind(processed_at)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
