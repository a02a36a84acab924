//! Database URLs: Bay accepts sqlx URLs and Shipyard Neo's SQLAlchemy-style
//! ones (`sqlite+aiosqlite:///./bay.db`, `postgresql+asyncpg://…`).

use anyhow::bail;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A SQLite file (or `:memory:`).
    Sqlite(String),
    /// A PostgreSQL URL in sqlx form (`postgres://…`).
    Postgres(String),
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> anyhow::Result<DatabaseUrl> {
        let (scheme, rest) = match url.split_once("://") {
            Some(x) => x,
            None => match url.split_once(':') {
                Some(("sqlite", rest)) => ("sqlite", rest),
                _ => bail!("database.url {url:?} is not a URL"),
            },
        };
        let base = scheme.split('+').next().unwrap_or(scheme);
        match base {
            "sqlite" => {
                // SQLAlchemy: sqlite:///relative.db, sqlite:////absolute.db.
                // sqlx: sqlite://relative.db, sqlite:///absolute.db.
                let path = if scheme.contains('+') { rest.strip_prefix('/').unwrap_or(rest) } else { rest };
                let path = path.split('?').next().unwrap_or(path);
                if path.is_empty() {
                    bail!("database.url {url:?} has no file name");
                }
                Ok(DatabaseUrl::Sqlite(path.to_owned()))
            }
            "postgres" | "postgresql" => Ok(DatabaseUrl::Postgres(format!("postgres://{rest}"))),
            other => bail!("unsupported database scheme {other:?} (use sqlite or postgresql)"),
        }
    }

    /// The URL sqlx connects to.
    pub fn sqlx_url(&self) -> String {
        match self {
            DatabaseUrl::Sqlite(path) if path == ":memory:" => "sqlite::memory:".into(),
            DatabaseUrl::Sqlite(path) => format!("sqlite://{path}?mode=rwc"),
            DatabaseUrl::Postgres(url) => url.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlalchemy_urls() {
        assert_eq!(DatabaseUrl::parse("sqlite+aiosqlite:///./bay.db").unwrap(), DatabaseUrl::Sqlite("./bay.db".into()));
        assert_eq!(DatabaseUrl::parse("sqlite+aiosqlite:////var/lib/bay/bay.db").unwrap(), DatabaseUrl::Sqlite("/var/lib/bay/bay.db".into()));
        assert_eq!(DatabaseUrl::parse("postgresql+asyncpg://u:p@db:5432/bay").unwrap(), DatabaseUrl::Postgres("postgres://u:p@db:5432/bay".into()));
    }

    #[test]
    fn sqlx_urls() {
        assert_eq!(DatabaseUrl::parse("sqlite://bay.db").unwrap(), DatabaseUrl::Sqlite("bay.db".into()));
        assert_eq!(DatabaseUrl::parse("sqlite:///tmp/x.db").unwrap(), DatabaseUrl::Sqlite("/tmp/x.db".into()));
        assert_eq!(DatabaseUrl::parse("sqlite::memory:").unwrap(), DatabaseUrl::Sqlite(":memory:".into()));
        assert_eq!(DatabaseUrl::parse("postgres://h/db").unwrap().sqlx_url(), "postgres://h/db");
        assert!(DatabaseUrl::parse("mysql://h/db").is_err());
        assert_eq!(DatabaseUrl::Sqlite("./bay.db".into()).sqlx_url(), "sqlite://./bay.db?mode=rwc");
    }
}
