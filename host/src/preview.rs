//! Port-preview tokens: a signed, expiring grant to one port of one sandbox
//! (`POST /v1/sandboxes/{id}/ports/{port}/token`, host/src/api/ports/mod.rs).
//!
//! Signed rather than stored, so the proxy checks each request — a page's
//! every asset — without a database round trip. The key is one random
//! secret in the database, shared by every replica; a grant names its
//! sandbox, port and owner, and the proxy still looks the sandbox up as
//! that owner, so deleting the sandbox revokes every token for it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::db::Db;

/// Tokens start with this, so a reader can tell one from an API key.
const PREFIX: &str = "bpv1.";

/// What a token grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PreviewGrant {
    #[serde(rename = "s")]
    pub sandbox_id: String,
    #[serde(rename = "p")]
    pub port: u16,
    #[serde(rename = "o")]
    pub owner: String,
    /// Unix seconds.
    #[serde(rename = "e")]
    pub expires_at: i64,
}

/// Why a token was refused (said in the 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PreviewRefusal {
    #[error("the preview token is malformed")]
    Malformed,
    #[error("the preview token's signature is not valid")]
    BadSignature,
    #[error("the preview token has expired")]
    Expired,
}

pub(crate) struct PreviewSigner {
    key: Vec<u8>,
}

impl PreviewSigner {
    /// The key every replica shares (created by the first to start).
    pub async fn load(db: &Db) -> sqlx::Result<PreviewSigner> {
        let fresh = hex::encode(rand::random::<[u8; 32]>());
        let key = db.secret_or_insert("preview_signing_key", &fresh).await?;
        Ok(PreviewSigner { key: key.into_bytes() })
    }

    fn mac(&self, payload: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(payload.as_bytes());
        mac
    }

    pub fn sign(&self, grant: &PreviewGrant) -> String {
        let payload = B64.encode(serde_json::to_vec(grant).expect("a grant serializes"));
        let sig = B64.encode(self.mac(&payload).finalize().into_bytes());
        format!("{PREFIX}{payload}.{sig}")
    }

    /// The grant of a token signed here and not expired at `now` (unix seconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<PreviewGrant, PreviewRefusal> {
        let rest = token.strip_prefix(PREFIX).ok_or(PreviewRefusal::Malformed)?;
        let (payload, sig) = rest.split_once('.').ok_or(PreviewRefusal::Malformed)?;
        let sig = B64.decode(sig).map_err(|_| PreviewRefusal::Malformed)?;
        // Compared in constant time.
        self.mac(payload).verify_slice(&sig).map_err(|_| PreviewRefusal::BadSignature)?;
        let grant: PreviewGrant = B64.decode(payload).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or(PreviewRefusal::Malformed)?;
        if grant.expires_at <= now {
            return Err(PreviewRefusal::Expired);
        }
        Ok(grant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(key: &str) -> PreviewSigner {
        PreviewSigner { key: key.as_bytes().to_vec() }
    }

    fn grant() -> PreviewGrant {
        PreviewGrant { sandbox_id: "sandbox-1".into(), port: 8000, owner: "alice".into(), expires_at: 1_000 }
    }

    #[test]
    fn a_token_grants_what_it_was_signed_for_until_it_expires() {
        let s = signer("k1");
        let t = s.sign(&grant());
        assert!(t.starts_with("bpv1."));
        assert_eq!(s.verify(&t, 999), Ok(grant()));
        assert_eq!(s.verify(&t, 1_000), Err(PreviewRefusal::Expired));
    }

    #[test]
    fn a_changed_or_foreign_token_is_refused() {
        let s = signer("k1");
        let t = s.sign(&grant());
        assert_eq!(signer("k2").verify(&t, 0), Err(PreviewRefusal::BadSignature));
        // Another grant's payload under this signature: a port or owner swapped.
        let other = s.sign(&PreviewGrant { port: 22, ..grant() });
        let (payload, _) = other["bpv1.".len()..].split_once('.').unwrap();
        let (_, sig) = t["bpv1.".len()..].split_once('.').unwrap();
        assert_eq!(s.verify(&format!("bpv1.{payload}.{sig}"), 0), Err(PreviewRefusal::BadSignature));
        for bad in ["", "bpv1.", "bpv1.x", "sk-bay-123", "bpv1.e30.!!"] {
            assert_eq!(s.verify(bad, 0), Err(PreviewRefusal::Malformed), "{bad}");
        }
    }
}
