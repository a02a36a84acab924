//! `limits:` (how much of a request Bay holds in memory at once) and
//! `quotas:` (how much an owner may have). Both are Bay extensions; every key
//! is documented in docs/configuration.md and docs/security.md.

use anyhow::bail;
use serde::{Deserialize, Serialize};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// Per-request limits, in bytes unless the name says otherwise. Over a body or
/// field limit a request gets 413 `payload_too_large`; over `uri_bytes` 414;
/// over `header_bytes` or `header_count` 431.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LimitsConfig {
    /// JSON bodies of every route not listed below.
    pub json_body_bytes: u64,
    /// The body of `POST /v1/skills/payloads`.
    pub skills_payload_bytes: u64,
    /// `code` of `POST …/python/exec` (the body may be this plus `json_body_bytes`).
    pub python_code_bytes: u64,
    /// `command` of `POST …/shell/exec` (body: plus `json_body_bytes`).
    pub shell_command_bytes: u64,
    /// `cmd` of `POST …/browser/exec` (body: plus `json_body_bytes`).
    pub browser_cmd_bytes: u64,
    /// All `commands` of one `POST …/browser/exec_batch` together (body: plus `json_body_bytes`).
    pub browser_batch_bytes: u64,
    /// Each text field of a multipart upload (`path`); the file part streams
    /// and has no limit here.
    pub multipart_field_bytes: u64,
    /// The headers of one multipart part (`Content-Disposition`, …).
    pub multipart_part_header_bytes: u64,
    /// The request target (path and query string).
    pub uri_bytes: u64,
    /// All request header names and values together.
    pub header_bytes: u64,
    /// Number of request headers.
    pub header_count: u64,
    /// The HTTP/1 read buffer: a request head (request line and headers) up to
    /// this size reaches Bay's own checks; a larger one is refused by the HTTP
    /// parser itself and the connection closed.
    pub head_buffer_bytes: u64,
    /// When Bay answers before reading a request's body (an early error), it
    /// reads and discards up to this much of the rest, so a client that sends
    /// its whole body before reading still gets the answer; beyond it (or
    /// after `drain_timeout_ms`) the answer carries `Connection: close`.
    pub drain_body_bytes: u64,
    pub drain_timeout_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            json_body_bytes: MIB,
            skills_payload_bytes: 8 * MIB,
            python_code_bytes: 4 * MIB,
            shell_command_bytes: MIB,
            browser_cmd_bytes: MIB,
            browser_batch_bytes: 4 * MIB,
            multipart_field_bytes: 4 * KIB,
            multipart_part_header_bytes: 16 * KIB,
            uri_bytes: 16 * KIB,
            header_bytes: 64 * KIB,
            header_count: 100,
            head_buffer_bytes: MIB,
            drain_body_bytes: 64 * MIB,
            drain_timeout_ms: 5_000,
        }
    }
}

impl LimitsConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        let positive = [
            ("json_body_bytes", self.json_body_bytes),
            ("skills_payload_bytes", self.skills_payload_bytes),
            ("python_code_bytes", self.python_code_bytes),
            ("shell_command_bytes", self.shell_command_bytes),
            ("browser_cmd_bytes", self.browser_cmd_bytes),
            ("browser_batch_bytes", self.browser_batch_bytes),
            ("multipart_field_bytes", self.multipart_field_bytes),
            ("multipart_part_header_bytes", self.multipart_part_header_bytes),
            ("uri_bytes", self.uri_bytes),
            ("header_bytes", self.header_bytes),
            ("header_count", self.header_count),
        ];
        for (key, value) in positive {
            if value == 0 {
                bail!("limits.{key} must be at least 1");
            }
        }
        // hyper refuses a read buffer under 8 KiB; a buffer smaller than the
        // head limits would make those limits unreachable.
        let head = self.uri_bytes.saturating_add(self.header_bytes);
        if self.head_buffer_bytes < 8 * KIB || self.head_buffer_bytes <= head {
            bail!("limits.head_buffer_bytes must be at least 8192 and larger than uri_bytes + header_bytes ({head})");
        }
        if self.head_buffer_bytes > 64 * MIB {
            bail!("limits.head_buffer_bytes must be at most 64 MiB");
        }
        Ok(())
    }
}

/// Per-owner quotas; 0 means unlimited. Over one, a create gets 429
/// `quota_exceeded` naming the quota, the current usage and the maximum.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct QuotasConfig {
    /// Live sandboxes an owner may have (a warm-pool claim counts as a create).
    pub max_sandboxes: u64,
    /// External cargos (`POST /v1/cargos`) an owner may have; the managed
    /// cargo of a sandbox counts under `max_sandboxes` instead.
    pub max_cargos: u64,
    /// Sum of `size_limit_mb` over all the owner's cargos, managed and external.
    pub max_cargo_mb: u64,
}

impl QuotasConfig {
    pub fn any(&self) -> bool {
        self.max_sandboxes > 0 || self.max_cargos > 0 || self.max_cargo_mb > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bounded() {
        let l = LimitsConfig::default();
        l.validate().unwrap();
        assert_eq!(l.json_body_bytes, 1 << 20);
        assert_eq!(l.multipart_field_bytes, 4096);
        assert!(!QuotasConfig::default().any());
    }

    #[test]
    fn a_head_buffer_smaller_than_the_head_limits_is_refused() {
        let l = LimitsConfig { head_buffer_bytes: 32 * 1024, ..Default::default() };
        assert!(l.validate().is_err());
        let l = LimitsConfig { json_body_bytes: 0, ..Default::default() };
        assert!(l.validate().is_err());
    }
}
