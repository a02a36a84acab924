//! The Shipyard Neo database being read: connection (read-only for SQLite),
//! the columns each table has (older Shipyard Neo versions lack some; they
//! read as NULL), and the value conversions (naive UTC datetimes to
//! [`Micros`], booleans to 0/1, enum names to Bay's lowercase values).

use std::collections::HashSet;

use anyhow::Context;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, FromRow};
use time::{PrimitiveDateTime, macros::format_description};

use crate::config::DatabaseUrl;
use crate::db::Dialect;
use crate::ids::Micros;

/// How a column is read, whatever its declared type in the source.
#[derive(Debug, Clone, Copy)]
pub enum Col {
    /// Text (enum, JSON and varchar columns too).
    Text,
    /// An integer.
    Int,
    /// A boolean, read as 0/1.
    Bool,
    /// A float.
    Float,
    /// A datetime, read as text and converted with [`parse_time`].
    Time,
}

pub struct Source {
    pool: AnyPool,
    dialect: Dialect,
}

impl Source {
    /// Connects to a Shipyard Neo database URL (SQLAlchemy or sqlx form:
    /// `sqlite+aiosqlite:////abs.db`, `sqlite:///abs.db`, `postgresql+asyncpg://…`).
    /// A SQLite file is opened read-only.
    pub async fn connect(url: &str) -> anyhow::Result<Source> {
        sqlx::any::install_default_drivers();
        let parsed = DatabaseUrl::parse(url).context("--from")?;
        let (sqlx_url, dialect) = match &parsed {
            DatabaseUrl::Sqlite(path) if path == ":memory:" => anyhow::bail!("--from: an in-memory database has nothing to import"),
            DatabaseUrl::Sqlite(path) => {
                anyhow::ensure!(std::path::Path::new(path).is_file(), "--from: no SQLite database at {path}");
                (format!("sqlite://{path}?mode=ro"), Dialect::Sqlite)
            }
            DatabaseUrl::Postgres(u) => (u.clone(), Dialect::Postgres),
        };
        let pool = AnyPoolOptions::new().max_connections(1).connect(&sqlx_url).await.context("opening the Shipyard Neo database")?;
        Ok(Source { pool, dialect })
    }

    /// The columns of `table` (empty when the table does not exist).
    pub async fn columns(&self, table: &str) -> sqlx::Result<HashSet<String>> {
        let sql = match self.dialect {
            Dialect::Sqlite => "SELECT name FROM pragma_table_info(?1)",
            Dialect::Postgres => {
                "SELECT CAST(column_name AS TEXT) FROM information_schema.columns WHERE table_name = $1 AND table_schema = current_schema()"
            }
        };
        let rows: Vec<(String,)> = sqlx::query_as(sql).bind(table).fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Every row of `table`, each column converted as `cols` says (a column
    /// the table lacks reads as NULL); `None` when the table does not exist.
    pub async fn rows<T>(&self, table: &str, cols: &[(&str, Col)]) -> anyhow::Result<Option<Vec<T>>>
    where
        T: for<'r> FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    {
        let present = self.columns(table).await?;
        if present.is_empty() {
            return Ok(None);
        }
        let select: Vec<String> = cols
            .iter()
            .map(|(name, col)| {
                if !present.contains(*name) {
                    return format!("NULL AS {name}");
                }
                let expr = match col {
                    Col::Text | Col::Time => format!("CAST({name} AS TEXT)"),
                    Col::Int => format!("CAST({name} AS BIGINT)"),
                    Col::Bool => format!("CAST(CASE WHEN {name} IS NULL THEN NULL WHEN {name} THEN 1 ELSE 0 END AS BIGINT)"),
                    Col::Float => format!("CAST({name} AS DOUBLE PRECISION)"),
                };
                format!("{expr} AS {name}")
            })
            .collect();
        let order = if present.contains("created_at") { "created_at, id" } else { "id" };
        let sql = format!("SELECT {} FROM {table} ORDER BY {order}", select.join(", "));
        let rows = sqlx::query_as::<_, T>(sqlx::AssertSqlSafe(sql)).fetch_all(&self.pool).await.with_context(|| format!("reading {table}"))?;
        Ok(Some(rows))
    }
}

/// A Shipyard Neo datetime (naive UTC, as SQLAlchemy stores it on SQLite —
/// `2026-02-06 00:00:00.123456` — or PostgreSQL prints it; a `T` separator
/// and a trailing `Z`/`+00:00` offset are accepted) in microseconds.
pub fn parse_time(s: &str) -> Option<Micros> {
    let s = s.trim();
    if s.len() < 19 || !s.is_char_boundary(19) {
        return None;
    }
    let (main, rest) = s.split_at(19);
    let main = main.replacen('T', " ", 1);
    let base = PrimitiveDateTime::parse(&main, format_description!("[year]-[month]-[day] [hour]:[minute]:[second]")).ok()?.assume_utc();
    // Fraction, then an optional offset.
    let (fraction, offset) = match rest.strip_prefix('.') {
        Some(r) => {
            let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            (&r[..end], &r[end..])
        }
        None => ("", rest),
    };
    let mut micros: i64 = 0;
    for (i, c) in fraction.chars().take(6).enumerate() {
        micros += i64::from(c.to_digit(10)?) * 10_i64.pow(5 - i as u32);
    }
    let offset_secs = parse_offset(offset.trim())?;
    let unix = base.unix_timestamp() - offset_secs;
    unix.checked_mul(1_000_000)?.checked_add(micros)
}

/// `""`, `Z`, `+HH`, `+HH:MM`, `+HHMM` (and `-`) in seconds east of UTC.
fn parse_offset(o: &str) -> Option<i64> {
    if o.is_empty() || o == "Z" {
        return Some(0);
    }
    let (sign, digits) = match o.as_bytes()[0] {
        b'+' => (1, &o[1..]),
        b'-' => (-1, &o[1..]),
        _ => return None,
    };
    let digits: String = digits.chars().filter(|c| *c != ':').collect();
    let (h, m) = match digits.len() {
        2 => (digits.parse::<i64>().ok()?, 0),
        4 => (digits[..2].parse::<i64>().ok()?, digits[2..].parse::<i64>().ok()?),
        _ => return None,
    };
    Some(sign * (h * 3600 + m * 60))
}

/// A stored enum value as Bay spells it: SQLAlchemy may store an enum's
/// name (`PROMOTED`) rather than its value (`promoted`).
pub fn enum_value(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_lowercase())
}

/// `source_execution_ids` as Bay stores it, comma-joined (as Shipyard Neo
/// stores it too; a JSON list, should a version have stored one, is joined).
pub fn comma_joined(v: Option<String>) -> String {
    let v = v.unwrap_or_default();
    match serde_json::from_str::<Vec<String>>(&v) {
        Ok(ids) if v.trim_start().starts_with('[') => ids.join(","),
        _ => v.split(',').map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(","),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("1970-01-01 00:00:01"), Some(1_000_000));
        assert_eq!(parse_time("1970-01-01T00:00:01.5"), Some(1_500_000));
        assert_eq!(parse_time("1970-01-01 00:00:01.123456"), Some(1_123_456));
        assert_eq!(parse_time("1970-01-01 00:00:01.1234567"), Some(1_123_456));
        assert_eq!(parse_time("1970-01-01 01:00:01+01"), Some(1_000_000));
        assert_eq!(parse_time("1970-01-01 01:00:01.25+01:00"), Some(1_250_000));
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Some(1_000_000));
        assert_eq!(parse_time("2026-02-06 00:00:00"), Some(1_770_336_000_000_000));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("2026-02-06 00:00:00 junk"), None);
    }

    #[test]
    fn execution_id_lists() {
        assert_eq!(comma_joined(Some("exec-a,exec-b".into())), "exec-a,exec-b");
        assert_eq!(comma_joined(Some(" exec-a, exec-b ,".into())), "exec-a,exec-b");
        assert_eq!(comma_joined(Some(r#"["exec-a", "exec-b"]"#.into())), "exec-a,exec-b");
        assert_eq!(comma_joined(None), "");
    }

    #[test]
    fn enums() {
        assert_eq!(enum_value(Some("PROMOTED_CANARY".into())).as_deref(), Some("promoted_canary"));
        assert_eq!(enum_value(None), None);
    }
}
