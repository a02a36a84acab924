//! Authentication and roles (Shipyard Neo's contract (docs/compatibility.md); docs/security.md).
//!
//! At startup an API key is provisioned: `BAY_API_KEY`, else
//! `security.api_key`, else any active key already in the database, else (on
//! first boot) a generated `sk-bay-…` key written to `credentials.json` (mode
//! 0600). That key belongs to owner `default` and has the `admin` scope. More
//! keys are created and revoked through `/v1/admin/keys` or `bay keys`
//! ([`crate::keys`]). Only SHA-256 hashes are stored.
//!
//! Requests carry `Authorization: Bearer <key>`. With `allow_anonymous`, a
//! request without a bearer token acts as the owner named by `X-Owner` (or
//! `default`) with the `user` scope — only when it comes from a loopback peer,
//! unless `anonymous_from_network` says otherwise: a sandbox that reaches Bay
//! over a bridge network must not be able to act as any owner it names.
//!
//! Active keys are cached for [`KEY_CACHE_TTL`]: a key created or revoked
//! through this process takes effect at once; one created or revoked by
//! another replica or by `bay keys` takes effect here within that time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::db::Db;
use crate::db::api_keys::{ActiveKey, NewKeyRow};
use crate::error::BayError;
use crate::ids::{format_ts, now_micros};
use crate::keys::{Scope, parse_scopes};

/// The owner the provisioned key (and anonymous callers without `X-Owner`) act as.
pub const DEFAULT_OWNER: &str = "default";

/// How long the set of active keys is trusted before it is read again.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(5);

pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Who is calling: the owner every query filters by, and whether the caller
/// may use `/v1/admin/*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub owner: String,
    pub admin: bool,
    /// The key's id (`None` for anonymous callers).
    pub key_id: Option<String>,
}

#[derive(Debug, Clone)]
struct CachedKey {
    id: String,
    owner: String,
    admin: bool,
}

#[derive(Debug)]
struct KeyCache {
    /// By SHA-256 of the key. Looking a digest up in a map reveals nothing
    /// usable about a key: an attacker controls the input, not the digests.
    keys: HashMap<[u8; 32], CachedKey>,
    loaded_at: Instant,
}

/// Verifies requests against the active keys.
pub struct Auth {
    /// `None` in unit tests: the cache is then all there is.
    db: Option<Db>,
    cache: RwLock<KeyCache>,
    reload: tokio::sync::Mutex<()>,
    allow_anonymous: bool,
    anonymous_from_network: bool,
}

/// What provisioning did, for the startup log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provisioned {
    FromEnvironment,
    FromConfig,
    Existing,
    Generated { credentials_file: PathBuf },
}

fn digest_of(hash_hex: &str) -> Option<[u8; 32]> {
    hex::decode(hash_hex).ok()?.try_into().ok()
}

fn cache_of(keys: Vec<ActiveKey>) -> HashMap<[u8; 32], CachedKey> {
    keys.into_iter()
        .filter_map(|k| {
            let digest = digest_of(&k.key_hash)?;
            let admin = parse_scopes(&k.scopes).contains(&Scope::Admin);
            Some((digest, CachedKey { id: k.id, owner: k.owner, admin }))
        })
        .collect()
}

/// True for 127.0.0.0/8, ::1 and IPv4-mapped loopback.
pub fn is_loopback(peer: &SocketAddr) -> bool {
    peer.ip().to_canonical().is_loopback()
}

impl Auth {
    /// An `Auth` over a fixed set of keys (no database).
    pub fn new(keys: Vec<ActiveKey>, allow_anonymous: bool, anonymous_from_network: bool) -> Auth {
        Auth {
            db: None,
            cache: RwLock::new(KeyCache { keys: cache_of(keys), loaded_at: Instant::now() }),
            reload: tokio::sync::Mutex::new(()),
            allow_anonymous,
            anonymous_from_network,
        }
    }

    /// Provisions a key as described in the module docs and loads all active keys.
    pub async fn provision(db: &Db, config: &Config, data_dir: &Path) -> anyhow::Result<(Auth, Provisioned)> {
        let env_key = std::env::var("BAY_API_KEY").ok().filter(|k| !k.is_empty());
        let configured = env_key
            .clone()
            .map(|k| (k, Provisioned::FromEnvironment))
            .or_else(|| config.security.api_key.clone().filter(|k| !k.is_empty()).map(|k| (k, Provisioned::FromConfig)));
        let provisioned = if let Some((key, how)) = configured {
            let hash = hash_key(&key);
            if db.api_key_exists(&hash).await? {
                db.restore_admin_key(&hash).await?;
            } else {
                let prefix: String = key.chars().take(12).collect();
                insert_admin_key(db, &hash, &prefix).await?;
            }
            how
        } else if !db.active_api_keys().await?.is_empty() {
            Provisioned::Existing
        } else {
            let key = crate::keys::generate();
            insert_admin_key(db, &hash_key(&key), &key[..12]).await?;
            let file = data_dir.join("credentials.json");
            write_credentials(&file, &key, config)?;
            Provisioned::Generated { credentials_file: file }
        };
        let mut auth = Auth::new(db.active_api_keys().await?, config.security.allow_anonymous, config.security.anonymous_from_network);
        auth.db = Some(db.clone());
        Ok((auth, provisioned))
    }

    /// Who a request acts as. `peer` is the connection's remote address
    /// (unknown: treated as not loopback).
    pub async fn authenticate(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Result<Caller, BayError> {
        let bearer = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        match bearer {
            Some(token) => {
                let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
                self.refresh_if_stale().await;
                let cache = self.cache.read().expect("key cache");
                match cache.keys.get(&digest) {
                    Some(k) => Ok(Caller { owner: k.owner.clone(), admin: k.admin, key_id: Some(k.id.clone()) }),
                    None => Err(BayError::unauthorized("Invalid API key")),
                }
            }
            None if self.allow_anonymous => {
                if !self.anonymous_from_network && !peer.is_some_and(|p| is_loopback(&p)) {
                    return Err(
                        BayError::unauthorized("Authentication required").with("reason", "anonymous access is only honoured from loopback clients")
                    );
                }
                let owner = headers.get("x-owner").and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty()).unwrap_or(DEFAULT_OWNER);
                Ok(Caller { owner: owner.to_owned(), admin: false, key_id: None })
            }
            None => Err(BayError::unauthorized("Authentication required")),
        }
    }

    /// Reads the active keys again when the cache is older than [`KEY_CACHE_TTL`].
    async fn refresh_if_stale(&self) {
        let stale = || self.cache.read().expect("key cache").loaded_at.elapsed() > KEY_CACHE_TTL;
        let Some(db) = &self.db else { return };
        if !stale() {
            return;
        }
        let _one_reader = self.reload.lock().await;
        if !stale() {
            return;
        }
        match db.active_api_keys().await {
            Ok(keys) => *self.cache.write().expect("key cache") = KeyCache { keys: cache_of(keys), loaded_at: Instant::now() },
            Err(e) => {
                // Keep serving with the keys we have; try again after the TTL.
                tracing::warn!(error = %e, "cannot reload API keys; using the cached set");
                self.cache.write().expect("key cache").loaded_at = Instant::now();
            }
        }
    }

    /// A key created by this process works at once.
    pub fn key_added(&self, key: &ActiveKey) {
        if let Some(digest) = digest_of(&key.key_hash) {
            let admin = parse_scopes(&key.scopes).contains(&Scope::Admin);
            self.cache.write().expect("key cache").keys.insert(digest, CachedKey { id: key.id.clone(), owner: key.owner.clone(), admin });
        }
    }

    /// A key revoked by this process stops at once.
    pub fn key_revoked(&self, id: &str) {
        self.cache.write().expect("key cache").keys.retain(|_, k| k.id != id);
    }

    pub fn database(&self) -> Option<&Db> {
        self.db.as_ref()
    }
}

async fn insert_admin_key(db: &Db, hash: &str, prefix: &str) -> sqlx::Result<()> {
    let id = uuid::Uuid::new_v4().to_string();
    db.insert_api_key(&NewKeyRow {
        id: &id,
        key_hash: hash,
        key_prefix: prefix,
        owner: DEFAULT_OWNER,
        scopes: Scope::Admin.as_str(),
        name: Some("provisioned"),
        created_at: now_micros(),
    })
    .await
}

fn write_credentials(file: &Path, key: &str, config: &Config) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let body = serde_json::json!({
        "api_key": key,
        "endpoint": format!("http://{}:{}", config.server.host, config.server.port),
        "generated_at": format_ts(now_micros()),
    });
    let tmp = file.with_extension("json.tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(serde_json::to_string_pretty(&body)?.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, file)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn key(id: &str, secret: &str, owner: &str, scopes: &str) -> ActiveKey {
        ActiveKey { id: id.into(), key_hash: hash_key(secret), owner: owner.into(), scopes: scopes.into() }
    }

    fn auth(anonymous: bool) -> Auth {
        Auth::new(vec![key("k1", "sk-good", "default", "admin")], anonymous, false)
    }

    const LOOPBACK: Option<SocketAddr> = Some(SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 40000));

    async fn owner(a: &Auth, h: &[(&str, &str)]) -> Result<String, BayError> {
        a.authenticate(&headers(h), LOOPBACK).await.map(|c| c.owner)
    }

    #[tokio::test]
    async fn bearer_must_match_a_key() {
        let a = auth(false);
        assert_eq!(owner(&a, &[("authorization", "Bearer sk-good")]).await.unwrap(), "default");
        let err = owner(&a, &[("authorization", "Bearer sk-bad")]).await.unwrap_err();
        assert_eq!(err.message, "Invalid API key");
        assert_eq!(err.status().as_u16(), 401);
    }

    #[tokio::test]
    async fn strict_mode_requires_a_token() {
        let a = auth(false);
        for h in [vec![], vec![("authorization", "bearer sk-good")], vec![("authorization", "Basic x")], vec![("x-owner", "alice")]] {
            let err = owner(&a, &h).await.unwrap_err();
            assert_eq!(err.message, "Authentication required");
        }
    }

    #[tokio::test]
    async fn anonymous_mode_uses_x_owner_but_still_checks_bearer() {
        let a = auth(true);
        assert_eq!(owner(&a, &[("x-owner", "alice")]).await.unwrap(), "alice");
        assert_eq!(owner(&a, &[]).await.unwrap(), "default");
        // A malformed scheme counts as no token.
        assert_eq!(owner(&a, &[("authorization", "bearer x"), ("x-owner", "bob")]).await.unwrap(), "bob");
        // A wrong key is refused even in anonymous mode.
        assert!(owner(&a, &[("authorization", "Bearer nope"), ("x-owner", "bob")]).await.is_err());
    }

    #[tokio::test]
    async fn anonymous_callers_are_users_and_only_from_loopback() {
        let a = auth(true);
        let caller = a.authenticate(&headers(&[("x-owner", "alice")]), LOOPBACK).await.unwrap();
        assert!(!caller.admin);
        let v6 = Some("[::1]:5000".parse().unwrap());
        let mapped = Some("[::ffff:127.0.0.1]:5000".parse().unwrap());
        for peer in [v6, mapped] {
            assert!(a.authenticate(&headers(&[("x-owner", "alice")]), peer).await.is_ok(), "{peer:?}");
        }
        let bridge: Option<SocketAddr> = Some("172.17.0.2:40000".parse().unwrap());
        for peer in [bridge, None] {
            let err = a.authenticate(&headers(&[("x-owner", "alice")]), peer).await.unwrap_err();
            assert_eq!(err.status().as_u16(), 401, "{peer:?}");
        }
        // A key works from anywhere.
        assert!(a.authenticate(&headers(&[("authorization", "Bearer sk-good")]), bridge).await.unwrap().admin);
        // The operator may open anonymous access to the network.
        let open = Auth::new(vec![], true, true);
        assert_eq!(open.authenticate(&headers(&[("x-owner", "alice")]), bridge).await.unwrap().owner, "alice");
    }

    #[tokio::test]
    async fn scopes_and_cache_updates() {
        let a = Auth::new(vec![key("k1", "sk-admin", "default", "admin"), key("k2", "sk-user", "alice", "user")], false, false);
        let bearer = |k: &str| headers(&[("authorization", &format!("Bearer {k}"))]);
        assert!(a.authenticate(&bearer("sk-admin"), None).await.unwrap().admin);
        let alice = a.authenticate(&bearer("sk-user"), None).await.unwrap();
        assert_eq!((alice.owner.as_str(), alice.admin, alice.key_id.as_deref()), ("alice", false, Some("k2")));
        a.key_added(&key("k3", "sk-new", "bob", "user,admin"));
        assert!(a.authenticate(&bearer("sk-new"), None).await.unwrap().admin);
        a.key_revoked("k2");
        assert_eq!(a.authenticate(&bearer("sk-user"), None).await.unwrap_err().message, "Invalid API key");
    }

    #[tokio::test]
    async fn provisioning_generates_a_key_once_and_writes_credentials_0600() {
        use std::os::unix::fs::PermissionsExt;
        let db = crate::db::test_db().await;
        let dir = tempfile::tempdir().unwrap();
        let config = Config::default();
        // SAFETY-free: BAY_API_KEY is not set in the test environment.
        if std::env::var("BAY_API_KEY").is_ok() {
            return;
        }
        let (auth, how) = Auth::provision(&db, &config, dir.path()).await.unwrap();
        let file = dir.path().join("credentials.json");
        assert_eq!(how, Provisioned::Generated { credentials_file: file.clone() });
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let creds: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let key = creds["api_key"].as_str().unwrap();
        assert!(key.starts_with("sk-bay-") && key.len() == 7 + 64);
        assert_eq!(creds["endpoint"], "http://127.0.0.1:8114");
        let bearer = format!("Bearer {key}");
        let caller = auth.authenticate(&headers(&[("authorization", &bearer)]), None).await.unwrap();
        assert_eq!(caller.owner, "default");
        assert!(caller.admin, "the provisioned key is an administrator");
        // The plaintext key is not in the database.
        let stored = db.active_api_keys().await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_ne!(stored[0].key_hash, key);
        assert_eq!(stored[0].scopes, "admin");
        // Second boot: the existing key is used, nothing regenerated.
        std::fs::remove_file(&file).unwrap();
        let (_, how) = Auth::provision(&db, &config, dir.path()).await.unwrap();
        assert_eq!(how, Provisioned::Existing);
        assert!(!file.exists());
    }

    #[tokio::test]
    async fn configured_key_is_seeded_hashed() {
        if std::env::var("BAY_API_KEY").is_ok() {
            return;
        }
        let db = crate::db::test_db().await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.security.api_key = Some("sk-configured".into());
        config.security.allow_anonymous = false;
        let (auth, how) = Auth::provision(&db, &config, dir.path()).await.unwrap();
        assert_eq!(how, Provisioned::FromConfig);
        assert!(!dir.path().join("credentials.json").exists());
        assert!(auth.authenticate(&headers(&[("authorization", "Bearer sk-configured")]), None).await.unwrap().admin);
        assert!(auth.authenticate(&headers(&[]), LOOPBACK).await.is_err());
        // Revoked, it comes back with the next start: the configuration says so.
        let id = db.active_api_keys().await.unwrap()[0].id.clone();
        assert!(db.revoke_api_key(&id, now_micros()).await.unwrap());
        let (auth, _) = Auth::provision(&db, &config, dir.path()).await.unwrap();
        assert!(auth.authenticate(&headers(&[("authorization", "Bearer sk-configured")]), None).await.is_ok());
    }

    #[tokio::test]
    async fn keys_changed_in_the_database_are_seen_after_the_ttl() {
        let db = crate::db::test_db().await;
        let mut auth = Auth::new(vec![], false, false);
        auth.db = Some(db.clone());
        let created = crate::keys::create(&db, crate::keys::NewKey { owner: "carol".into(), scopes: vec![Scope::User], name: None }).await.unwrap();
        let bearer = headers(&[("authorization", &format!("Bearer {}", created.key))]);
        assert!(auth.authenticate(&bearer, None).await.is_err(), "not yet: the cache is fresh");
        auth.cache.write().unwrap().loaded_at -= KEY_CACHE_TTL + Duration::from_millis(1);
        assert_eq!(auth.authenticate(&bearer, None).await.unwrap().owner, "carol");
        crate::keys::revoke(&db, &created.id).await.unwrap();
        auth.cache.write().unwrap().loaded_at -= KEY_CACHE_TTL + Duration::from_millis(1);
        assert!(auth.authenticate(&bearer, None).await.is_err());
    }
}
