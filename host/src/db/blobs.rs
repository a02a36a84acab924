//! The `artifact_blobs` table: JSON payloads referenced as `blob:<id>`
//! (skill payloads, browser traces).

use sqlx::FromRow;

use super::Db;
use crate::error::BayError;
use crate::ids::{Micros, new_id, now_micros};

/// How a blob is referenced from other rows and in the API (`blob:blob-…`).
pub const BLOB_REF_PREFIX: &str = "blob:";

#[derive(Debug, Clone, FromRow)]
pub struct Blob {
    pub id: String,
    pub owner: String,
    pub kind: String,
    pub payload_json: String,
    pub created_at: Micros,
}

/// `blob:<id>`.
pub fn blob_ref(id: &str) -> String {
    format!("{BLOB_REF_PREFIX}{id}")
}

/// The blob id of a `blob:<id>` reference: another scheme is 400
/// `"Unsupported payload_ref: …"`, an empty id 400 `"Invalid payload_ref: …"`.
pub fn parse_blob_ref(payload_ref: &str) -> Result<&str, BayError> {
    let Some(id) = payload_ref.strip_prefix(BLOB_REF_PREFIX) else {
        return Err(BayError::validation(format!("Unsupported payload_ref: {}", crate::error::echo(payload_ref))));
    };
    if id.is_empty() {
        return Err(BayError::validation(format!("Invalid payload_ref: {}", crate::error::echo(payload_ref))));
    }
    Ok(id)
}

impl Db {
    /// Stores a JSON document for `owner`; returns the new id (`blob-…`).
    pub async fn insert_blob(&self, owner: &str, kind: &str, payload_json: &str) -> sqlx::Result<String> {
        let id = new_id("blob");
        self.query("INSERT INTO artifact_blobs (id, owner, kind, payload_json, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&id)
            .bind(owner)
            .bind(kind)
            .bind(payload_json)
            .bind(now_micros())
            .execute(self.pool())
            .await?;
        Ok(id)
    }

    /// A blob of `owner` (another owner's blob is `None`, as a missing one).
    pub async fn blob_for_owner(&self, id: &str, owner: &str) -> sqlx::Result<Option<Blob>> {
        sqlx::query_as(self.sql("SELECT id, owner, kind, payload_json, created_at FROM artifact_blobs WHERE id = $1 AND owner = $2"))
            .bind(id)
            .bind(owner)
            .fetch_optional(self.pool())
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::test_db;

    #[tokio::test]
    async fn blobs_are_per_owner() {
        let db = test_db().await;
        let id = db.insert_blob("alice", "generic", r#"{"a":1}"#).await.unwrap();
        assert!(id.starts_with("blob-") && id.len() == "blob-".len() + 12);
        let blob = db.blob_for_owner(&id, "alice").await.unwrap().unwrap();
        assert_eq!((blob.kind.as_str(), blob.payload_json.as_str()), ("generic", r#"{"a":1}"#));
        assert!(db.blob_for_owner(&id, "bob").await.unwrap().is_none());
        assert!(db.blob_for_owner("blob-000000000000", "alice").await.unwrap().is_none());
    }

    #[test]
    fn refs() {
        assert_eq!(blob_ref("blob-1"), "blob:blob-1");
        assert_eq!(parse_blob_ref("blob:blob-1").unwrap(), "blob-1");
        let e = parse_blob_ref("s3://x").unwrap_err();
        assert_eq!((e.status().as_u16(), e.message.as_str()), (400, "Unsupported payload_ref: s3://x"));
        let e = parse_blob_ref("blob:").unwrap_err();
        assert_eq!((e.status().as_u16(), e.message.as_str()), (400, "Invalid payload_ref: blob:"));
    }
}
