//! Authentication (reference §4.2).
//!
//! At startup an API key is provisioned: `BAY_API_KEY`, else
//! `security.api_key`, else any active key already in the database, else (on
//! first boot) a generated `sk-bay-…` key written to `credentials.json` (mode
//! 0600). Only SHA-256 hashes are stored. Requests carry
//! `Authorization: Bearer <key>`; with `allow_anonymous`, a request without a
//! bearer token acts as the owner named by `X-Owner` (or `default`).

use std::path::{Path, PathBuf};

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Config;
use crate::db::Db;
use crate::error::BayError;
use crate::ids::{format_ts, now_micros};

/// The owner every API key maps to.
pub const DEFAULT_OWNER: &str = "default";

pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Verifies requests against the keys loaded at startup.
#[derive(Debug, Clone)]
pub struct Auth {
    /// `(sha256 hex, owner)` of active keys.
    keys: Vec<([u8; 32], String)>,
    allow_anonymous: bool,
}

/// What provisioning did, for the startup log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provisioned {
    FromEnvironment,
    FromConfig,
    Existing,
    Generated { credentials_file: PathBuf },
}

impl Auth {
    pub fn new(keys: Vec<(String, String)>, allow_anonymous: bool) -> Auth {
        let keys = keys
            .into_iter()
            .filter_map(|(hash, owner)| {
                let bytes: [u8; 32] = hex::decode(hash).ok()?.try_into().ok()?;
                Some((bytes, owner))
            })
            .collect();
        Auth { keys, allow_anonymous }
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
            if !db.api_key_exists(&hash).await? {
                db.insert_api_key(&hash, &key.chars().take(12).collect::<String>(), DEFAULT_OWNER, now_micros()).await?;
            }
            how
        } else if !db.active_api_keys().await?.is_empty() {
            Provisioned::Existing
        } else {
            let key = format!("sk-bay-{}", hex::encode(rand::random::<[u8; 32]>()));
            db.insert_api_key(&hash_key(&key), &key[..12], DEFAULT_OWNER, now_micros()).await?;
            let file = data_dir.join("credentials.json");
            write_credentials(&file, &key, config)?;
            Provisioned::Generated { credentials_file: file }
        };
        let auth = Auth::new(db.active_api_keys().await?, config.security.allow_anonymous);
        Ok((auth, provisioned))
    }

    /// The owner a request acts as.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<String, BayError> {
        let bearer = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        match bearer {
            Some(token) => {
                if self.keys.is_empty() {
                    return if self.allow_anonymous { Ok(DEFAULT_OWNER.to_owned()) } else { Err(BayError::unauthorized("Invalid API key")) };
                }
                let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
                // Compare against every key so timing does not reveal which matched.
                let mut owner = None;
                for (hash, key_owner) in &self.keys {
                    if bool::from(hash.ct_eq(&digest)) {
                        owner = Some(key_owner.clone());
                    }
                }
                owner.ok_or_else(|| BayError::unauthorized("Invalid API key"))
            }
            None if self.allow_anonymous => {
                Ok(headers.get("x-owner").and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty()).unwrap_or(DEFAULT_OWNER).to_owned())
            }
            None => Err(BayError::unauthorized("Authentication required")),
        }
    }
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

    fn auth(anonymous: bool) -> Auth {
        Auth::new(vec![(hash_key("sk-good"), "default".into())], anonymous)
    }

    #[test]
    fn bearer_must_match_a_key() {
        let a = auth(false);
        assert_eq!(a.authenticate(&headers(&[("authorization", "Bearer sk-good")])).unwrap(), "default");
        let err = a.authenticate(&headers(&[("authorization", "Bearer sk-bad")])).unwrap_err();
        assert_eq!(err.message, "Invalid API key");
        assert_eq!(err.status().as_u16(), 401);
    }

    #[test]
    fn strict_mode_requires_a_token() {
        let a = auth(false);
        for h in [vec![], vec![("authorization", "bearer sk-good")], vec![("authorization", "Basic x")], vec![("x-owner", "alice")]] {
            let err = a.authenticate(&headers(&h)).unwrap_err();
            assert_eq!(err.message, "Authentication required");
        }
    }

    #[test]
    fn anonymous_mode_uses_x_owner_but_still_checks_bearer() {
        let a = auth(true);
        assert_eq!(a.authenticate(&headers(&[("x-owner", "alice")])).unwrap(), "alice");
        assert_eq!(a.authenticate(&headers(&[])).unwrap(), "default");
        // A malformed scheme counts as no token.
        assert_eq!(a.authenticate(&headers(&[("authorization", "bearer x"), ("x-owner", "bob")])).unwrap(), "bob");
        // A wrong key is refused even in anonymous mode.
        assert!(a.authenticate(&headers(&[("authorization", "Bearer nope"), ("x-owner", "bob")])).is_err());
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
        assert_eq!(creds["endpoint"], "http://0.0.0.0:8114");
        let bearer = format!("Bearer {key}");
        assert_eq!(auth.authenticate(&headers(&[("authorization", &bearer)])).unwrap(), "default");
        // The plaintext key is not in the database.
        let stored = db.active_api_keys().await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_ne!(stored[0].0, key);
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
        assert!(auth.authenticate(&headers(&[("authorization", "Bearer sk-configured")])).is_ok());
        assert!(auth.authenticate(&headers(&[])).is_err());
    }
}
