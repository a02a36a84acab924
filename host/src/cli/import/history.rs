//! `execution_history`. Rows of soft-deleted sandboxes are kept (skill
//! candidates cite them and release health reads them); a row whose sandbox
//! Shipyard Neo does not have at all is reported and skipped.

use std::collections::HashSet;

use sqlx::FromRow;

use super::source::{Col, enum_value};
use super::{Conn, Source, TableReport, exists, time, time_or_now};
use crate::db::Db;
use crate::db::history::{Execution, normalize_tags};

#[derive(FromRow)]
struct Row {
    id: String,
    owner: Option<String>,
    sandbox_id: Option<String>,
    session_id: Option<String>,
    exec_type: Option<String>,
    code: Option<String>,
    success: Option<i64>,
    execution_time_ms: Option<i64>,
    output: Option<String>,
    error: Option<String>,
    payload_ref: Option<String>,
    description: Option<String>,
    tags: Option<String>,
    notes: Option<String>,
    learn_enabled: Option<i64>,
    learn_status: Option<String>,
    learn_error: Option<String>,
    learn_processed_at: Option<String>,
    created_at: Option<String>,
}

const COLUMNS: &[(&str, Col)] = &[
    ("id", Col::Text),
    ("owner", Col::Text),
    ("sandbox_id", Col::Text),
    ("session_id", Col::Text),
    ("exec_type", Col::Text),
    ("code", Col::Text),
    ("success", Col::Bool),
    ("execution_time_ms", Col::Int),
    ("output", Col::Text),
    ("error", Col::Text),
    ("payload_ref", Col::Text),
    ("description", Col::Text),
    ("tags", Col::Text),
    ("notes", Col::Text),
    ("learn_enabled", Col::Bool),
    ("learn_status", Col::Text),
    ("learn_error", Col::Text),
    ("learn_processed_at", Col::Time),
    ("created_at", Col::Time),
];

pub(super) async fn import(source: &Source, db: &Db, conn: &mut Conn, sandboxes: &HashSet<String>) -> anyhow::Result<TableReport> {
    let mut report = TableReport::new("execution_history");
    for r in source.rows::<Row>("execution_history", COLUMNS).await?.unwrap_or_default() {
        report.read += 1;
        if exists(db, conn, "SELECT 1 FROM execution_history WHERE id = $1", &r.id).await? {
            report.existing += 1;
            continue;
        }
        let sandbox_id = r.sandbox_id.unwrap_or_default();
        if !(sandboxes.contains(&sandbox_id) || exists(db, conn, "SELECT 1 FROM sandboxes WHERE id = $1", &sandbox_id).await?) {
            report.skip(format!("execution {}: its sandbox {sandbox_id:?} is missing", r.id));
            continue;
        }
        let e = Execution {
            id: r.id,
            owner: r.owner.unwrap_or_else(|| crate::auth::DEFAULT_OWNER.to_owned()),
            sandbox_id,
            // Kept as a record; the session itself is not imported.
            session_id: r.session_id,
            exec_type: enum_value(r.exec_type).unwrap_or_else(|| "python".to_owned()),
            code: r.code.unwrap_or_default(),
            success: r.success.unwrap_or(0),
            execution_time_ms: r.execution_time_ms.unwrap_or(0),
            output: r.output,
            error: r.error,
            payload_ref: r.payload_ref,
            description: r.description,
            tags: normalize_tags(r.tags.as_deref()),
            notes: r.notes,
            learn_enabled: r.learn_enabled.unwrap_or(0),
            learn_status: enum_value(r.learn_status),
            learn_error: r.learn_error,
            learn_processed_at: time(&r.learn_processed_at),
            created_at: time_or_now(&r.created_at),
        };
        db.insert_execution_with(&mut *conn, &e).await?;
        report.imported += 1;
    }
    Ok(report)
}
