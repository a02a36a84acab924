//! `cargos` and `sandboxes`.
//!
//! A cargo keeps its id and its `driver_ref` — the engine volume (Docker
//! volume or Kubernetes PVC `bay-cargo-<cargo_id>`, or a bind-mount host
//! path), which is also how Bay names a cargo's volume — so a sandbox on it
//! mounts the same files. Soft-deleted and warm-pool sandboxes are not
//! imported, nor are managed cargos whose sandbox is not (Shipyard Neo's GC
//! would delete them; their volumes are left alone). An imported sandbox has
//! no session: its runtime starts on the next call.

use std::collections::HashSet;

use sqlx::FromRow;

use super::source::Col;
use super::{Conn, Options, Source, TableReport, exists, time, time_or_now};
use crate::db::Db;
use crate::db::cargos::Cargo;
use crate::db::sandboxes::Sandbox;
use crate::ids::now_micros;

#[derive(FromRow)]
struct SandboxRow {
    id: String,
    owner: Option<String>,
    profile_id: Option<String>,
    cargo_id: Option<String>,
    expires_at: Option<String>,
    deleted_at: Option<String>,
    created_at: Option<String>,
    last_active_at: Option<String>,
    is_warm_pool: Option<i64>,
}

const SANDBOX_COLUMNS: &[(&str, Col)] = &[
    ("id", Col::Text),
    ("owner", Col::Text),
    ("profile_id", Col::Text),
    ("cargo_id", Col::Text),
    ("expires_at", Col::Time),
    ("deleted_at", Col::Time),
    ("created_at", Col::Time),
    ("last_active_at", Col::Time),
    ("is_warm_pool", Col::Bool),
];

#[derive(FromRow)]
struct CargoRow {
    id: String,
    owner: Option<String>,
    backend: Option<String>,
    driver_ref: Option<String>,
    managed: Option<i64>,
    managed_by_sandbox_id: Option<String>,
    size_limit_mb: Option<i64>,
    created_at: Option<String>,
    last_accessed_at: Option<String>,
}

const CARGO_COLUMNS: &[(&str, Col)] = &[
    ("id", Col::Text),
    ("owner", Col::Text),
    ("backend", Col::Text),
    ("driver_ref", Col::Text),
    ("managed", Col::Bool),
    ("managed_by_sandbox_id", Col::Text),
    ("size_limit_mb", Col::Int),
    ("created_at", Col::Time),
    ("last_accessed_at", Col::Time),
];

/// Imports cargos, then sandboxes; also returns the id of every sandbox the
/// source has (deleted ones included: their history is kept).
pub(super) async fn import(source: &Source, db: &Db, conn: &mut Conn, opts: &Options) -> anyhow::Result<(TableReport, TableReport, HashSet<String>)> {
    let sandboxes = source.rows::<SandboxRow>("sandboxes", SANDBOX_COLUMNS).await?.unwrap_or_default();
    let all_ids: HashSet<String> = sandboxes.iter().map(|s| s.id.clone()).collect();
    let live = |s: &SandboxRow| s.deleted_at.is_none() && s.is_warm_pool.unwrap_or(0) == 0;
    let live_ids: HashSet<&str> = sandboxes.iter().filter(|s| live(s)).map(|s| s.id.as_str()).collect();

    let mut cargos = TableReport::new("cargos");
    let mut cargo_ids = HashSet::new();
    let mut orphans = 0;
    for c in source.rows::<CargoRow>("cargos", CARGO_COLUMNS).await?.unwrap_or_default() {
        cargos.read += 1;
        if exists(db, conn, "SELECT 1 FROM cargos WHERE id = $1", &c.id).await? {
            cargos.existing += 1;
            cargo_ids.insert(c.id);
            continue;
        }
        let managed = c.managed.unwrap_or(0) != 0;
        let driver_ref = c.driver_ref.filter(|r| !r.is_empty()).unwrap_or_else(|| format!("bay-cargo-{}", c.id));
        if managed && !c.managed_by_sandbox_id.as_deref().is_some_and(|s| live_ids.contains(s)) {
            orphans += 1;
            cargos.skipped += 1;
            continue;
        }
        let created_at = time_or_now(&c.created_at);
        let cargo = Cargo {
            id: c.id.clone(),
            owner: c.owner.unwrap_or_else(|| crate::auth::DEFAULT_OWNER.to_owned()),
            backend: c.backend.unwrap_or_else(|| "docker_volume".to_owned()),
            driver_ref,
            managed: managed as i64,
            managed_by_sandbox_id: c.managed_by_sandbox_id,
            size_limit_mb: c.size_limit_mb.unwrap_or(1024),
            created_at,
            last_accessed_at: time(&c.last_accessed_at).unwrap_or(created_at),
        };
        db.insert_cargo(&mut *conn, &cargo).await?;
        cargos.imported += 1;
        cargo_ids.insert(c.id);
    }
    if orphans > 0 {
        cargos.notes.push(format!(
            "{orphans} managed cargo(s) of deleted, warm-pool or missing sandboxes not imported (their volumes are left in the engine)"
        ));
    }

    let mut boxes = TableReport::new("sandboxes");
    let (mut deleted, mut warm, mut expired) = (0, 0, 0);
    let now = now_micros();
    for s in &sandboxes {
        boxes.read += 1;
        if s.deleted_at.is_some() {
            deleted += 1;
            boxes.skipped += 1;
            continue;
        }
        if !live(s) {
            warm += 1;
            boxes.skipped += 1;
            continue;
        }
        if exists(db, conn, "SELECT 1 FROM sandboxes WHERE id = $1", &s.id).await? {
            boxes.existing += 1;
            continue;
        }
        let cargo_id = s.cargo_id.as_deref().unwrap_or_default();
        if !(cargo_ids.contains(cargo_id) || exists(db, conn, "SELECT 1 FROM cargos WHERE id = $1", cargo_id).await?) {
            boxes.skip(format!("sandbox {}: its cargo {} is missing", s.id, s.cargo_id.as_deref().unwrap_or("(none)")));
            continue;
        }
        let profile_id = s.profile_id.clone().unwrap_or_else(|| "python-default".to_owned());
        if let Some(profiles) = &opts.profiles
            && !profiles.contains(&profile_id)
        {
            boxes.notes.push(format!("sandbox {}: profile {profile_id:?} is not configured in Bay (imported; calls fail until it is)", s.id));
        }
        let expires_at = time(&s.expires_at);
        if expires_at.is_some_and(|e| e < now) {
            expired += 1;
        }
        let created_at = time_or_now(&s.created_at);
        let sandbox = Sandbox {
            id: s.id.clone(),
            owner: s.owner.clone().unwrap_or_else(|| crate::auth::DEFAULT_OWNER.to_owned()),
            profile_id,
            cargo_id: cargo_id.to_owned(),
            current_session_id: None,
            expires_at,
            idle_expires_at: None,
            deleted_at: None,
            created_at,
            last_active_at: time(&s.last_active_at).unwrap_or(created_at),
            is_warm_pool: 0,
        };
        db.insert_sandbox(&mut *conn, &sandbox).await?;
        boxes.imported += 1;
    }
    if deleted > 0 {
        boxes.notes.push(format!("{deleted} soft-deleted sandbox(es) not imported"));
    }
    if warm > 0 {
        boxes.notes.push(format!("{warm} warm-pool sandbox(es) not imported (Bay fills its own pool)"));
    }
    if expired > 0 {
        boxes.notes.push(format!("{expired} imported sandbox(es) already past their TTL: Bay's GC deletes them as Shipyard Neo's would"));
    }
    Ok((cargos, boxes, all_ids))
}
