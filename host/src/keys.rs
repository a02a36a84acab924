//! API keys as resources: create (the plaintext is shown once), list and
//! revoke. Used by `/v1/admin/keys` and by `bay keys`, both working on the
//! database; [`crate::auth`] keeps the set of active keys it authenticates with.

use serde::{Deserialize, Serialize};

use crate::auth::hash_key;
use crate::db::Db;
use crate::db::api_keys::{KeyRow, NewKeyRow};
use crate::error::{BayError, BayResult, echo};
use crate::ids::{format_opt_ts, format_ts, now_micros};

/// What a key may do. `user`: the sandbox, cargo, history and skills API for
/// its owner. `admin`: also `/v1/admin/*` (GC, plugins, keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Admin,
    User,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::User => "user",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        match s.trim() {
            "admin" => Some(Scope::Admin),
            "user" => Some(Scope::User),
            _ => None,
        }
    }
}

/// The scopes stored as `admin,user`; unknown words are ignored.
pub fn parse_scopes(stored: &str) -> Vec<Scope> {
    let mut scopes: Vec<Scope> = stored.split(',').filter_map(Scope::parse).collect();
    scopes.sort();
    scopes.dedup();
    scopes
}

fn join_scopes(scopes: &[Scope]) -> String {
    scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
}

/// A new key: `sk-bay-` and 64 hex characters (256 random bits).
pub fn generate() -> String {
    format!("sk-bay-{}", hex::encode(rand::random::<[u8; 32]>()))
}

/// Longest owner or key name accepted.
pub const MAX_NAME_CHARS: usize = 128;

pub struct NewKey {
    pub owner: String,
    pub scopes: Vec<Scope>,
    pub name: Option<String>,
}

/// A key as listed (never its hash).
#[derive(Debug, Clone, Serialize)]
pub struct KeyView {
    pub id: String,
    pub prefix: String,
    pub owner: String,
    pub scopes: Vec<Scope>,
    pub name: Option<String>,
    pub active: bool,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

impl From<KeyRow> for KeyView {
    fn from(r: KeyRow) -> KeyView {
        KeyView {
            id: r.id,
            prefix: r.key_prefix,
            owner: r.owner,
            scopes: parse_scopes(&r.scopes),
            name: r.name,
            active: r.is_active != 0,
            created_at: format_ts(r.created_at),
            revoked_at: format_opt_ts(r.deactivated_at),
        }
    }
}

/// A key just created: the only time its plaintext exists outside the client.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedKey {
    pub id: String,
    pub key: String,
    pub prefix: String,
    pub owner: String,
    pub scopes: Vec<Scope>,
    pub name: Option<String>,
    pub created_at: String,
    /// For the authentication cache (not serialized).
    #[serde(skip)]
    pub key_hash: String,
}

fn check_text(value: &str, field: &str) -> BayResult<()> {
    let chars = value.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS || value.chars().any(char::is_control) || value.trim() != value {
        return Err(BayError::request_validation(
            &["body", field],
            format!("{field} must be 1 to {MAX_NAME_CHARS} characters without control characters or surrounding spaces: {}", echo(value)),
            "value_error",
        ));
    }
    Ok(())
}

/// Validates a new key's fields (422 naming the field).
pub fn validate(new: &NewKey) -> BayResult<()> {
    check_text(&new.owner, "owner")?;
    if let Some(name) = &new.name {
        check_text(name, "name")?;
    }
    if new.scopes.is_empty() {
        return Err(BayError::request_validation(&["body", "scopes"], "List should have at least 1 item", "too_short"));
    }
    Ok(())
}

pub async fn create(db: &Db, mut new: NewKey) -> BayResult<CreatedKey> {
    validate(&new)?;
    new.scopes.sort();
    new.scopes.dedup();
    let key = generate();
    let id = uuid::Uuid::new_v4().to_string();
    let prefix = key[..12].to_owned();
    let key_hash = hash_key(&key);
    let created_at = now_micros();
    let scopes = join_scopes(&new.scopes);
    db.insert_api_key(&NewKeyRow {
        id: &id,
        key_hash: &key_hash,
        key_prefix: &prefix,
        owner: &new.owner,
        scopes: &scopes,
        name: new.name.as_deref(),
        created_at,
    })
    .await?;
    tracing::info!(key_id = %id, owner = %new.owner, scopes = %scopes, "API key created");
    Ok(CreatedKey { id, key, prefix, owner: new.owner, scopes: new.scopes, name: new.name, created_at: format_ts(created_at), key_hash })
}

pub async fn list(db: &Db) -> BayResult<Vec<KeyView>> {
    Ok(db.list_api_keys().await?.into_iter().map(KeyView::from).collect())
}

/// Revokes an active key (404 when there is none with that id).
pub async fn revoke(db: &Db, id: &str) -> BayResult<KeyView> {
    if !db.revoke_api_key(id, now_micros()).await? {
        return Err(BayError::not_found(format!("API key not found: {}", echo(id))));
    }
    tracing::info!(key_id = %id, "API key revoked");
    let row = db.api_key(id).await?.ok_or_else(|| BayError::not_found(format!("API key not found: {}", echo(id))))?;
    Ok(row.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip() {
        assert_eq!(parse_scopes("user,admin,user,nonsense"), [Scope::Admin, Scope::User]);
        assert_eq!(join_scopes(&[Scope::Admin, Scope::User]), "admin,user");
        assert!(parse_scopes("").is_empty());
    }

    #[tokio::test]
    async fn keys_are_created_listed_and_revoked_hashed() {
        let db = crate::db::test_db().await;
        let created = create(&db, NewKey { owner: "alice".into(), scopes: vec![Scope::User, Scope::User], name: Some("ci".into()) }).await.unwrap();
        assert!(created.key.starts_with("sk-bay-") && created.key.len() == 71);
        assert_eq!(created.prefix, &created.key[..12]);
        assert_eq!(created.scopes, [Scope::User]);
        let listed = list(&db).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].owner.as_str(), listed[0].active), ("alice", true));
        let stored = db.active_api_keys().await.unwrap();
        assert_eq!(stored[0].key_hash, hash_key(&created.key));
        let revoked = revoke(&db, &created.id).await.unwrap();
        assert!(!revoked.active && revoked.revoked_at.is_some());
        assert!(db.active_api_keys().await.unwrap().is_empty());
        assert_eq!(revoke(&db, &created.id).await.unwrap_err().status().as_u16(), 404);
    }

    #[test]
    fn fields_are_validated() {
        let bad = [
            NewKey { owner: "".into(), scopes: vec![Scope::User], name: None },
            NewKey { owner: "a\nb".into(), scopes: vec![Scope::User], name: None },
            NewKey { owner: "x".repeat(129), scopes: vec![Scope::User], name: None },
            NewKey { owner: "a".into(), scopes: vec![], name: None },
            NewKey { owner: "a".into(), scopes: vec![Scope::User], name: Some(" padded".into()) },
        ];
        for new in bad {
            let e = validate(&new).unwrap_err();
            assert_eq!(e.status().as_u16(), 422);
            assert_eq!(e.details["errors"][0]["loc"][0], "body");
        }
    }
}
