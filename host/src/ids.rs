//! Resource identifiers and timestamps in Shipyard Neo's formats.

use time::{OffsetDateTime, PrimitiveDateTime, format_description::BorrowedFormatItem, macros::format_description};

/// `<prefix>-` followed by 12 lowercase hex characters (`uuid4().hex[:12]`).
pub fn new_id(prefix: &str) -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &hex[..12])
}

pub fn sandbox_id() -> String {
    new_id("sandbox")
}
pub fn cargo_id() -> String {
    new_id("ws")
}
pub fn session_id() -> String {
    new_id("sess")
}
pub fn execution_id() -> String {
    new_id("exec")
}

/// Timestamps are stored as microseconds since the Unix epoch (UTC): portable
/// across SQLite and PostgreSQL and trivially comparable.
pub type Micros = i64;

pub fn now_micros() -> Micros {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000) as Micros
}

/// An RFC 3339 timestamp as engines report them (`0001-01-01T00:00:00Z`,
/// their "never", is `None`).
pub fn parse_rfc3339_micros(t: &str) -> Option<Micros> {
    OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .ok()
        .filter(|t| t.year() > 1)
        .map(|t| (t.unix_timestamp_nanos() / 1000) as Micros)
}

pub fn secs(s: i64) -> Micros {
    s.saturating_mul(1_000_000)
}

/// The longest `ttl` or `extend_by` accepted, in seconds: 10 years.
pub const MAX_TTL_SECS: i64 = 10 * 365 * 24 * 3600;

/// The latest timestamp Bay stores (9999-12-31T23:59:59, the last one the
/// API's timestamp format can show).
pub const LATEST_TIMESTAMP: Micros = 253_402_300_799_000_000;

/// `base + secs` seconds, when `0 < secs <= MAX_TTL_SECS` and the result is
/// no later than [`LATEST_TIMESTAMP`]; `None` otherwise (checked arithmetic:
/// a TTL of `i64::MAX` must not wrap around to 1970).
pub fn checked_after(base: Micros, secs: i64) -> Option<Micros> {
    if secs <= 0 || secs > MAX_TTL_SECS {
        return None;
    }
    base.checked_add(secs.checked_mul(1_000_000)?).filter(|t| *t <= LATEST_TIMESTAMP)
}

const WITH_FRACTION: &[BorrowedFormatItem<'static>] = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]");
const WITHOUT_FRACTION: &[BorrowedFormatItem<'static>] = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");

/// Formats like Python's naive `datetime.isoformat()`, which Shipyard Neo's
/// clients parse: UTC without an offset, microseconds only when non-zero
/// (`2026-02-06T00:00:00.123456`, `2026-02-06T00:00:00`).
pub fn format_ts(us: Micros) -> String {
    let dt = OffsetDateTime::from_unix_timestamp_nanos(us as i128 * 1_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let naive = PrimitiveDateTime::new(dt.date(), dt.time());
    let format = if dt.microsecond() == 0 { WITHOUT_FRACTION } else { WITH_FRACTION };
    naive.format(format).unwrap_or_default()
}

pub fn format_opt_ts(us: Option<Micros>) -> Option<String> {
    us.map(format_ts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_reference_shape() {
        let id = sandbox_id();
        assert!(id.starts_with("sandbox-"));
        let hex = id.strip_prefix("sandbox-").unwrap();
        assert_eq!(hex.len(), 12);
        assert!(hex.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert!(cargo_id().starts_with("ws-"));
        assert!(execution_id().starts_with("exec-"));
    }

    #[test]
    fn expiries_use_checked_arithmetic() {
        let now = 1_770_336_000_i64 * 1_000_000;
        assert_eq!(checked_after(now, 60), Some(now + 60_000_000));
        assert_eq!(checked_after(now, MAX_TTL_SECS), Some(now + MAX_TTL_SECS * 1_000_000));
        for bad in [0, -1, i64::MIN, MAX_TTL_SECS + 1, i64::MAX] {
            assert_eq!(checked_after(now, bad), None, "{bad}");
        }
        assert_eq!(checked_after(LATEST_TIMESTAMP, 1), None);
        assert_eq!(checked_after(i64::MAX, 1), None);
        assert_eq!(format_ts(LATEST_TIMESTAMP), "9999-12-31T23:59:59");
    }

    #[test]
    fn timestamps_are_naive_iso_like_python() {
        // 2026-02-06T00:00:00.123456 UTC
        let base = 1_770_336_000_i64 * 1_000_000;
        assert_eq!(format_ts(base + 123_456), "2026-02-06T00:00:00.123456");
        assert_eq!(format_ts(base), "2026-02-06T00:00:00");
        assert_eq!(format_ts(base + 1), "2026-02-06T00:00:00.000001");
    }
}
