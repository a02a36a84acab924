//! Names and labels as Kubernetes accepts them.
//!
//! - A session's Pod is named from its session id ([`pod_name`]), so any Bay
//!   process finds it again without remembering anything.
//! - Label keys keep Bay's (`bay.session_id`, …) with the configured
//!   `label_prefix` in place of `bay` ([`to_k8s_key`]); they are mapped back
//!   on the way in, so reconcile and GC see the same keys as with Docker.
//! - Label values Kubernetes would reject (an owner `alice@example.com`, more
//!   than 63 characters) are replaced by a digest (`x-<40 hex>`), and the
//!   original is kept in an annotation under the same key, from which it is
//!   read back. The digest is deterministic, so a selector on such a value
//!   still matches ([`selector_value`]).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::driver::{DriverError, Labels};

/// An object's labels or annotations, as Kubernetes keys them.
pub(crate) type Map = BTreeMap<String, String>;

/// Kubernetes' limit for a DNS-1123 label (Pod names here, container names)
/// and for a label value or the name part of a label key.
const MAX_LABEL: usize = 63;

/// The Pod of a session: `bay-<session_id>` when that is a DNS-1123 label
/// (Bay's ids, `sess-0123456789ab`, are); otherwise the id lowercased with
/// other characters as `-`, cut short and suffixed with a digest of the id,
/// so distinct ids never share a Pod.
pub(crate) fn pod_name(session_id: &str) -> String {
    let plain = format!("bay-{session_id}");
    if is_dns_label(&plain) {
        return plain;
    }
    let cleaned: String = session_id.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let digest = &hex::encode(Sha256::digest(session_id.as_bytes()))[..10];
    let mut stem = format!("bay-{}", cleaned.trim_matches('-'));
    stem.truncate(MAX_LABEL - 1 - digest.len());
    format!("{}-{digest}", stem.trim_end_matches('-'))
}

/// A DNS-1123 label: 1–63 of `a-z0-9-`, starting and ending alphanumeric.
pub(crate) fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_LABEL
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// A label value: empty, or up to 63 of `A-Za-z0-9-_.` starting and ending
/// alphanumeric.
pub(crate) fn is_label_value(s: &str) -> bool {
    let b = s.as_bytes();
    b.is_empty()
        || (b.len() <= MAX_LABEL
            && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric())
}

/// A label (or annotation) key: `[prefix/]name`, the prefix a DNS subdomain
/// of up to 253 characters, the name as a non-empty label value.
pub(crate) fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| p.len() <= 253 && p.split('.').all(is_dns_label));
    prefix_ok && !name.is_empty() && is_label_value(name)
}

/// `bay.x` → `<prefix>.x`; other keys unchanged.
pub(crate) fn to_k8s_key(prefix: &str, key: &str) -> String {
    match key.strip_prefix("bay.") {
        Some(rest) if prefix != "bay" => format!("{prefix}.{rest}"),
        _ => key.to_owned(),
    }
}

/// `<prefix>.x` → `bay.x`; other keys unchanged.
pub(crate) fn from_k8s_key(prefix: &str, key: &str) -> String {
    match key.strip_prefix(prefix).and_then(|rest| rest.strip_prefix('.')) {
        Some(rest) => format!("bay.{rest}"),
        None => key.to_owned(),
    }
}

/// A value as it is stored in a label: itself when Kubernetes accepts it,
/// else `x-` and 40 hex digits of its SHA-256.
pub(crate) fn selector_value(value: &str) -> String {
    if is_label_value(value) { value.to_owned() } else { format!("x-{}", &hex::encode(Sha256::digest(value.as_bytes()))[..40]) }
}

/// Bay's labels as a Kubernetes object's labels and annotations (the
/// annotations hold the original of every value that had to be digested).
/// A key Kubernetes cannot take is an error, not a silent rename.
pub(crate) fn to_k8s(prefix: &str, labels: &Labels) -> Result<(Map, Map), DriverError> {
    let mut out = BTreeMap::new();
    let mut originals = BTreeMap::new();
    for (k, v) in labels {
        let key = to_k8s_key(prefix, k);
        if !is_label_key(&key) {
            return Err(DriverError::Engine(format!("label key {key:?} is not valid on Kubernetes (driver.k8s.label_prefix {prefix:?})")));
        }
        let stored = selector_value(v);
        if &stored != v {
            originals.insert(key.clone(), v.clone());
        }
        out.insert(key, stored);
    }
    Ok((out, originals))
}

/// An object's labels with Bay's keys and original values back.
pub(crate) fn from_k8s(prefix: &str, labels: Option<&Map>, annotations: Option<&Map>) -> Labels {
    labels
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let original = annotations.and_then(|a| a.get(k)).filter(|o| &selector_value(o) == v);
            (from_k8s_key(prefix, k), original.unwrap_or(v).clone())
        })
        .collect()
}

/// A label selector for objects carrying all of `labels` (and every key of
/// `required`, whatever its value).
pub(crate) fn selector(prefix: &str, labels: &Labels, required: &[&str]) -> String {
    let mut terms: Vec<String> = labels.iter().map(|(k, v)| format!("{}={}", to_k8s_key(prefix, k), selector_value(v))).collect();
    for key in required {
        if !labels.contains_key(*key) {
            terms.push(to_k8s_key(prefix, key));
        }
    }
    terms.join(",")
}
