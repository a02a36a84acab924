//! Generic JSON payloads (`POST/GET /v1/skills/payloads`), stored as
//! artifact blobs and referenced as `blob:<id>`.

use serde::Serialize;

use super::{Json, Skills};
use crate::db::blobs::{Blob, blob_ref, parse_blob_ref};
use crate::error::{BayError, BayResult};

#[derive(Debug, Clone, Serialize)]
pub struct PayloadCreated {
    pub payload_ref: String,
    pub kind: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PayloadView {
    pub payload_ref: String,
    pub kind: String,
    pub payload: Json,
}

impl Skills {
    /// Stores an object or array payload; returns its `blob:` reference.
    pub async fn create_payload(&self, owner: &str, kind: &str, payload: &Json) -> BayResult<PayloadCreated> {
        if !(payload.is_object() || payload.is_array()) {
            return Err(BayError::validation("payload must be a JSON object or array"));
        }
        let id = self.db.insert_blob(owner, kind, &payload.to_text()).await?;
        Ok(PayloadCreated { payload_ref: blob_ref(&id), kind: kind.to_owned() })
    }

    /// The blob behind a `blob:` reference and its decoded payload, which
    /// must be an object or an array.
    pub async fn payload_by_ref(&self, owner: &str, payload_ref: &str) -> BayResult<(Blob, Json)> {
        let id = parse_blob_ref(payload_ref)?;
        let blob = self
            .db
            .blob_for_owner(id, owner)
            .await?
            .ok_or_else(|| BayError::not_found(format!("Artifact blob not found: {}", crate::error::echo(id))))?;
        let payload = Json::parse(&blob.payload_json).map_err(|_| BayError::validation(format!("Invalid payload JSON in blob: {}", blob.id)))?;
        if !(payload.is_object() || payload.is_array()) {
            return Err(BayError::validation(format!("Unsupported payload type in blob: {}", blob.id)));
        }
        Ok((blob, payload))
    }

    /// `GET /v1/skills/payloads/{ref}`: the reference is echoed as given.
    pub async fn get_payload(&self, owner: &str, payload_ref: &str) -> BayResult<PayloadView> {
        let (blob, payload) = self.payload_by_ref(owner, payload_ref).await?;
        Ok(PayloadView { payload_ref: payload_ref.to_owned(), kind: blob.kind, payload })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::test_db;

    #[tokio::test]
    async fn payloads_round_trip_in_order_and_stay_with_their_owner() {
        let skills = Skills::new(test_db().await);
        let payload = Json::parse(r#"{"z": 1, "commands": ["open x", "click @e1"], "a": {"k": null}}"#).unwrap();
        let created = skills.create_payload("alice", "browser_segment", &payload).await.unwrap();
        assert!(created.payload_ref.starts_with("blob:blob-"), "{}", created.payload_ref);
        assert_eq!(created.kind, "browser_segment");

        let got = skills.get_payload("alice", &created.payload_ref).await.unwrap();
        assert_eq!(got.payload_ref, created.payload_ref);
        assert_eq!(got.kind, "browser_segment");
        assert_eq!(got.payload.to_text(), r#"{"z":1,"commands":["open x","click @e1"],"a":{"k":null}}"#);

        let arr = skills.create_payload("alice", "generic", &Json::parse("[1, 2]").unwrap()).await.unwrap();
        assert_eq!(skills.get_payload("alice", &arr.payload_ref).await.unwrap().payload.to_text(), "[1,2]");

        let e = skills.get_payload("bob", &created.payload_ref).await.unwrap_err();
        assert_eq!(e.status().as_u16(), 404);
        assert!(e.message.starts_with("Artifact blob not found: blob-"), "{}", e.message);
        let e = skills.get_payload("alice", "http://x").await.unwrap_err();
        assert_eq!((e.status().as_u16(), e.message.as_str()), (400, "Unsupported payload_ref: http://x"));
        let e = skills.get_payload("alice", "blob:").await.unwrap_err();
        assert_eq!(e.status().as_u16(), 400);
        assert!(skills.create_payload("alice", "generic", &Json::String("x".into())).await.is_err());
    }

    #[tokio::test]
    async fn a_blob_that_is_not_an_object_or_array_is_rejected() {
        let skills = Skills::new(test_db().await);
        let id = skills.db().insert_blob("alice", "generic", "42").await.unwrap();
        let e = skills.get_payload("alice", &format!("blob:{id}")).await.unwrap_err();
        assert_eq!(e.message, format!("Unsupported payload type in blob: {id}"));
        let id = skills.db().insert_blob("alice", "generic", "{nope").await.unwrap();
        let e = skills.get_payload("alice", &format!("blob:{id}")).await.unwrap_err();
        assert_eq!(e.message, format!("Invalid payload JSON in blob: {id}"));
    }
}
