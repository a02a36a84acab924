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
        .execute(self.pool())
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
