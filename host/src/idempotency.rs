//! Idempotency keys (Shipyard Neo's contract, docs/compatibility.md) for create sandbox, extend TTL and create
//! cargo.
//!
//! A request carrying `Idempotency-Key` first *claims* the key: it inserts a
//! pending row for `(owner, key)` with the request's fingerprint. The one
//! request whose insert lands does the work and then stores its response; any
//! concurrent duplicate finds the pending row and waits for that response,
//! then replays it byte for byte. Unlike Shipyard Neo (where concurrent
//! duplicates may each create a resource), N parallel creates with one key
//! create exactly one sandbox. A failed request releases its claim, so a retry
//! can proceed; a claim left by a crash expires after [`STALE_CLAIM`].

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::IdempotencyConfig;
use crate::db::Db;
use crate::error::{BayError, BayResult};
use crate::ids::{Micros, now_micros};

pub const HEADER: &str = "idempotency-key";

/// A stored key: fingerprint, response snapshot, status, created and expiry times.
type StoredKey = (String, Option<String>, Option<i64>, Micros, Micros);

/// A pending claim older than this is considered abandoned (its holder crashed).
const STALE_CLAIM: Duration = Duration::from_secs(120);
/// How long a duplicate waits for the original request to finish.
const WAIT_FOR_ORIGINAL: Duration = Duration::from_secs(150);

#[derive(Clone)]
pub struct Idempotency {
    db: Db,
    enabled: bool,
    ttl_micros: Micros,
}

/// What to do with a request.
pub enum Claim {
    /// No key (or idempotency disabled): just run it.
    None,
    /// This request owns the key: run it, then [`Guard::complete`].
    Owned(Guard),
    /// The key was already used by an identical request: answer with its response.
    Replay(Response),
}

/// Ownership of a claimed key. Dropping it without completing releases the
/// key (failure, panic or a cancelled request), so a retry can proceed.
pub struct Guard {
    db: Db,
    owner: String,
    key: String,
    done: bool,
}

fn valid_key(key: &str) -> bool {
    (1..=128).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn replay(status: i64, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(status as u16).unwrap_or(StatusCode::OK);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

impl Idempotency {
    pub fn new(db: Db, config: &IdempotencyConfig) -> Idempotency {
        Idempotency { db, enabled: config.enabled, ttl_micros: (config.ttl_hours * 3600.0 * 1e6) as Micros }
    }

    /// Claims the key of a request, if it carries one. `canonical_body` is the
    /// parsed request with defaults applied, so `{}` and the explicit defaults
    /// are the same request.
    pub async fn claim(&self, owner: &str, headers: &HeaderMap, method: &str, path: &str, canonical_body: &impl Serialize) -> BayResult<Claim> {
        let Some(raw) = headers.get(HEADER) else {
            return Ok(Claim::None);
        };
        if !self.enabled {
            return Ok(Claim::None);
        }
        let key = raw.to_str().unwrap_or("");
        if !valid_key(key) {
            // Shipyard Neo answers a malformed key with 409, not 400.
            return Err(BayError::conflict("Invalid Idempotency-Key format").with("key", key));
        }
        let body = serde_json::to_string(canonical_body).map_err(|e| BayError::internal(e.to_string()))?;
        let fingerprint = hex::encode(Sha256::digest(format!("{method}:{path}:{body}").as_bytes()));
        let started = std::time::Instant::now();
        loop {
            let now = now_micros();
            let inserted = self
                .db
                .query("INSERT INTO idempotency_keys (owner, idem_key, request_fingerprint, created_at, expires_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (owner, idem_key) DO NOTHING")
                .bind(owner)
                .bind(key)
                .bind(&fingerprint)
                .bind(now)
                .bind(now + self.ttl_micros)
                .execute(self.db.pool())
                .await?
                .rows_affected();
            if inserted == 1 {
                return Ok(Claim::Owned(Guard { db: self.db.clone(), owner: owner.into(), key: key.into(), done: false }));
            }
            let row: Option<StoredKey> = sqlx::query_as(self.db.sql(
                "SELECT request_fingerprint, response_snapshot, status_code, created_at, expires_at FROM idempotency_keys WHERE owner = $1 AND idem_key = $2",
            ))
            .bind(owner)
            .bind(key)
            .fetch_optional(self.db.pool())
            .await?;
            let Some((stored, snapshot, status, created_at, expires_at)) = row else {
                continue;
            };
            let abandoned = status.is_none() && now - created_at > STALE_CLAIM.as_micros() as Micros;
            if expires_at < now || abandoned {
                self.db
                    .query("DELETE FROM idempotency_keys WHERE owner = $1 AND idem_key = $2 AND created_at = $3")
                    .bind(owner)
                    .bind(key)
                    .bind(created_at)
                    .execute(self.db.pool())
                    .await?;
                continue;
            }
            if stored != fingerprint {
                return Err(BayError::conflict("Idempotency key already used with different request parameters")
                    .with("key", key)
                    .with("hint", "Use a new Idempotency-Key for a different request"));
            }
            if let (Some(body), Some(status)) = (snapshot, status) {
                return Ok(Claim::Replay(replay(status, body)));
            }
            if started.elapsed() > WAIT_FOR_ORIGINAL {
                return Err(BayError::conflict("A request with this Idempotency-Key is still in progress").with("key", key));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Guard {
    /// Stores the response for replays and returns it.
    pub async fn complete<T: Serialize>(mut self, status: StatusCode, body: &T) -> BayResult<Response> {
        let json = serde_json::to_string(body).map_err(|e| BayError::internal(e.to_string()))?;
        self.db
            .query("UPDATE idempotency_keys SET response_snapshot = $1, status_code = $2 WHERE owner = $3 AND idem_key = $4")
            .bind(&json)
            .bind(status.as_u16() as i64)
            .bind(&self.owner)
            .bind(&self.key)
            .execute(self.db.pool())
            .await?;
        self.done = true;
        Ok(replay(status.as_u16() as i64, json))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let (db, owner, key) = (self.db.clone(), std::mem::take(&mut self.owner), std::mem::take(&mut self.key));
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = db
                    .query("DELETE FROM idempotency_keys WHERE owner = $1 AND idem_key = $2 AND response_snapshot IS NULL")
                    .bind(owner)
                    .bind(key)
                    .execute(db.pool())
                    .await;
            });
        }
    }
}

/// Runs `work` under the request's idempotency claim: replays a stored
/// response, or runs it and stores what it answers on success.
pub async fn run<T, F>(claim: Claim, status: StatusCode, work: F) -> BayResult<Response>
where
    T: Serialize,
    F: std::future::Future<Output = BayResult<T>>,
{
    match claim {
        Claim::Replay(response) => Ok(response),
        Claim::None => Ok((status, axum::Json(work.await?)).into_response()),
        Claim::Owned(guard) => {
            let value = work.await?;
            guard.complete(status, &value).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(key: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_str(key).unwrap());
        h
    }

    async fn idem() -> Idempotency {
        Idempotency::new(crate::db::test_db().await, &IdempotencyConfig::default())
    }

    #[test]
    fn key_format() {
        assert!(valid_key("abc-DEF_123"));
        assert!(!valid_key(""));
        assert!(!valid_key("has space"));
        assert!(!valid_key(&"x".repeat(129)));
    }

    #[tokio::test]
    async fn same_request_replays_and_different_request_conflicts() {
        let i = idem().await;
        let Claim::Owned(g) = i.claim("o", &headers("k1"), "POST", "/v1/cargos", &serde_json::json!({"a": 1})).await.unwrap() else {
            panic!("first use owns the key")
        };
        g.complete(StatusCode::CREATED, &serde_json::json!({"id": "ws-1"})).await.unwrap();
        match i.claim("o", &headers("k1"), "POST", "/v1/cargos", &serde_json::json!({"a": 1})).await.unwrap() {
            Claim::Replay(r) => assert_eq!(r.status(), StatusCode::CREATED),
            _ => panic!("expected a replay"),
        }
        let err = i.claim("o", &headers("k1"), "POST", "/v1/cargos", &serde_json::json!({"a": 2})).await.err().unwrap();
        assert_eq!(err.status(), StatusCode::CONFLICT);
        // Keys are per owner.
        assert!(matches!(i.claim("p", &headers("k1"), "POST", "/v1/cargos", &serde_json::json!({"a": 2})).await.unwrap(), Claim::Owned(_)));
        let err = i.claim("o", &headers("bad key"), "POST", "/x", &()).await.err().unwrap();
        assert_eq!(err.status(), StatusCode::CONFLICT);
        assert_eq!(err.details["key"], "bad key");
    }

    #[tokio::test]
    async fn a_failed_request_releases_its_key() {
        let i = idem().await;
        let Claim::Owned(g) = i.claim("o", &headers("k2"), "POST", "/x", &1).await.unwrap() else { panic!() };
        drop(g);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(matches!(i.claim("o", &headers("k2"), "POST", "/x", &1).await.unwrap(), Claim::Owned(_)));
    }
}
