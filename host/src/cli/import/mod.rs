//! `bay import shipyard-neo --from <database URL>`: moves a Shipyard Neo
//! deployment's state into Bay's configured database — API keys, cargos
//! (their volumes keep their names), live sandboxes, execution history and
//! the skills control plane (payload blobs, candidates, evaluations,
//! releases). Sessions are not imported: compute is re-created on the next
//! call. Rows whose id Bay already has are skipped and counted, so a second
//! run imports nothing; rows whose parent is missing are reported and skipped.
//!
//! Everything is written in one transaction, committed at the end (or, with
//! `--dry-run`, rolled back: the same checks run and nothing is written).

mod history;
mod keys;
mod sandboxes;
mod skills;
mod source;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::config::{Config, DatabaseUrl};
use crate::db::Db;
use crate::ids::{Micros, now_micros};
pub use source::Source;

pub(crate) type Conn = sqlx::AnyConnection;

pub struct Options {
    pub dry_run: bool,
    /// The scope imported API keys get (`admin`: any Shipyard Neo key could
    /// run the admin endpoints).
    pub key_scope: String,
    /// The profile ids Bay is configured with (a sandbox on another profile
    /// is imported and reported).
    pub profiles: Option<HashSet<String>>,
}

/// What happened to one table.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableReport {
    pub table: &'static str,
    /// Rows read from Shipyard Neo.
    pub read: u64,
    /// Rows written (or, with `--dry-run`, that would be).
    pub imported: u64,
    /// Rows whose id Bay already has.
    pub existing: u64,
    /// Rows not imported for another reason (each has a note).
    pub skipped: u64,
    pub notes: Vec<String>,
}

impl TableReport {
    fn new(table: &'static str) -> TableReport {
        TableReport { table, ..Default::default() }
    }

    fn skip(&mut self, why: String) {
        self.skipped += 1;
        self.notes.push(why);
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub dry_run: bool,
    pub tables: Vec<TableReport>,
}

impl Report {
    pub fn table(&self, name: &str) -> &TableReport {
        self.tables.iter().find(|t| t.table == name).expect("a table of the report")
    }
}

fn print_table(t: &TableReport, dry_run: bool) {
    let verb = if dry_run { "would import" } else { "imported" };
    println!("{:<18} read {:>6}  {verb} {:>6}  existing {:>6}  skipped {:>6}", t.table, t.read, t.imported, t.existing, t.skipped);
    for n in &t.notes {
        println!("    {n}");
    }
}

/// Imports everything; `progress` sees each table as it is done.
pub async fn import(source: &Source, db: &Db, opts: &Options, progress: &dyn Fn(&TableReport)) -> anyhow::Result<Report> {
    // On SQLite, take the write lock up front: the checks read what the
    // inserts then rely on (a running Bay may share the database).
    let mut tx = match db.dialect() {
        crate::db::Dialect::Sqlite => db.pool().begin_with("BEGIN IMMEDIATE").await?,
        crate::db::Dialect::Postgres => db.begin().await?,
    };
    let mut tables = Vec::new();
    let mut done = |t: TableReport| {
        progress(&t);
        tables.push(t);
    };
    done(keys::import(source, db, &mut tx, opts).await?);
    let (cargos, boxes, sandbox_ids) = sandboxes::import(source, db, &mut tx, opts).await?;
    done(cargos);
    done(boxes);
    done(history::import(source, db, &mut tx, &sandbox_ids).await?);
    for t in skills::import(source, db, &mut tx).await? {
        done(t);
    }
    if opts.dry_run {
        tx.rollback().await?;
    } else {
        tx.commit().await.context("committing the import")?;
    }
    Ok(Report { dry_run: opts.dry_run, tables })
}

/// `bay import shipyard-neo`.
pub async fn run(config: Option<&Path>, from: &str, dry_run: bool, key_scope: &str) -> anyhow::Result<()> {
    anyhow::ensure!(crate::keys::Scope::parse(key_scope).is_some(), "--key-scope {key_scope:?}: expected admin or user");
    let (config, _) = Config::load(config)?;
    let source = Source::connect(from).await?;
    let db = Db::connect(&DatabaseUrl::parse(&config.database.url)?, 1).await.context("opening Bay's database")?;
    let profiles = Some(config.effective_profiles().into_iter().map(|p| p.id).collect());
    let opts = Options { dry_run, key_scope: key_scope.to_owned(), profiles };
    if dry_run {
        println!("dry run: nothing is written");
    }
    let report = import(&source, &db, &opts, &|t| print_table(t, dry_run)).await?;
    let total: u64 = report.tables.iter().map(|t| t.imported).sum();
    let existing: u64 = report.tables.iter().map(|t| t.existing).sum();
    let skipped: u64 = report.tables.iter().map(|t| t.skipped).sum();
    let verb = if dry_run { "would import" } else { "imported" };
    println!("{verb} {total} rows; {existing} already in Bay; {skipped} skipped (see the notes above)");
    println!(
        "API keys: Shipyard Neo and Bay both store the SHA-256 of a key, so imported keys keep working (scope {key_scope}); \
         a key whose hash Bay already has was left as it is"
    );
    println!("not imported: sessions (runtimes start again on the next call), idempotency keys (short-lived)");
    Ok(())
}

/// Whether the row `id` exists (`sql` selects 1 by `$1`).
async fn exists(db: &Db, conn: &mut Conn, sql: &'static str, id: &str) -> sqlx::Result<bool> {
    let row: Option<(i64,)> = sqlx::query_as(db.sql(sql)).bind(id).fetch_optional(&mut *conn).await?;
    Ok(row.is_some())
}

/// An optional Shipyard Neo datetime in microseconds.
fn time(v: &Option<String>) -> Option<Micros> {
    v.as_deref().and_then(source::parse_time)
}

/// A required one (a missing or unreadable value becomes now).
fn time_or_now(v: &Option<String>) -> Micros {
    time(v).unwrap_or_else(now_micros)
}
