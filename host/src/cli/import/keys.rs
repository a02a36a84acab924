//! `api_keys`. Shipyard Neo and Bay store the same thing: the SHA-256 hex of
//! the key (reference §4.2; `auth::hash_key`) and its first 12 characters,
//! so every key keeps working unchanged. A key whose hash Bay already has
//! (typically the configured `BAY_API_KEY`) counts as existing.

use sqlx::FromRow;

use super::source::Col;
use super::{Conn, Options, Source, TableReport, exists, time, time_or_now};
use crate::db::Db;

#[derive(FromRow)]
struct Row {
    id: String,
    key_hash: Option<String>,
    key_prefix: Option<String>,
    owner: Option<String>,
    is_active: Option<i64>,
    created_at: Option<String>,
    deactivated_at: Option<String>,
}

const COLUMNS: &[(&str, Col)] = &[
    ("id", Col::Text),
    ("key_hash", Col::Text),
    ("key_prefix", Col::Text),
    ("owner", Col::Text),
    ("is_active", Col::Bool),
    ("created_at", Col::Time),
    ("deactivated_at", Col::Time),
];

pub(super) async fn import(source: &Source, db: &Db, conn: &mut Conn, opts: &Options) -> anyhow::Result<TableReport> {
    let mut report = TableReport::new("api_keys");
    let Some(rows) = source.rows::<Row>("api_keys", COLUMNS).await? else {
        report.notes.push("no api_keys table".into());
        return Ok(report);
    };
    for r in rows {
        report.read += 1;
        let Some(hash) = r.key_hash.filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())) else {
            report.skip(format!("key {}: no SHA-256 key_hash", r.id));
            continue;
        };
        let hash = hash.to_ascii_lowercase();
        if exists(db, conn, "SELECT 1 FROM api_keys WHERE id = $1", &r.id).await?
            || exists(db, conn, "SELECT 1 FROM api_keys WHERE key_hash = $1", &hash).await?
        {
            report.existing += 1;
            continue;
        }
        let active = r.is_active.unwrap_or(1) != 0;
        let created_at = time_or_now(&r.created_at);
        db.query(
            "INSERT INTO api_keys (id, key_hash, key_prefix, owner, is_active, created_at, deactivated_at, scopes, name) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&r.id)
        .bind(&hash)
        .bind(r.key_prefix.unwrap_or_default())
        .bind(r.owner.unwrap_or_else(|| crate::auth::DEFAULT_OWNER.to_owned()))
        .bind(active as i64)
        .bind(created_at)
        .bind(if active { None } else { Some(time(&r.deactivated_at).unwrap_or(created_at)) })
        .bind(&opts.key_scope)
        .bind("imported from Shipyard Neo")
        .execute(&mut *conn)
        .await?;
        report.imported += 1;
    }
    Ok(report)
}
