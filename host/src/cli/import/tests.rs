//! Imports `fixture.sql` (a Shipyard Neo SQLite database) into an in-memory Bay.

use sqlx::Executor;

use super::*;
use crate::db::test_db;

const FIXTURE: &str = include_str!("fixture.sql");

/// The fixture as a SQLite file; the directory must outlive the source.
async fn fixture() -> (tempfile::TempDir, Source) {
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shipyard-neo.db");
    let pool = sqlx::AnyPool::connect(&format!("sqlite://{}?mode=rwc", path.display())).await.unwrap();
    pool.execute(FIXTURE).await.unwrap();
    pool.close().await;
    // SQLAlchemy's form of an absolute path: four slashes.
    let source = Source::connect(&format!("sqlite+aiosqlite:///{}", path.display())).await.unwrap();
    (dir, source)
}

fn options(dry_run: bool) -> Options {
    Options { dry_run, key_scope: "admin".into(), profiles: Some(["python-default".to_owned()].into()) }
}

/// (read, imported, existing, skipped) of a table.
fn counts(r: &Report, table: &str) -> (u64, u64, u64, u64) {
    let t = r.table(table);
    (t.read, t.imported, t.existing, t.skipped)
}

async fn count(db: &Db, table: &str) -> i64 {
    let row: (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}"))).fetch_one(db.pool()).await.unwrap();
    row.0
}

const TABLES: [&str; 8] =
    ["api_keys", "cargos", "sandboxes", "execution_history", "artifact_blobs", "skill_candidates", "skill_evaluations", "skill_releases"];

#[tokio::test]
async fn imports_every_table_and_reports_what_it_skips() {
    let (_dir, source) = fixture().await;
    let db = test_db().await;
    let r = import(&source, &db, &options(false), &|_| {}).await.unwrap();
    assert_eq!(counts(&r, "api_keys"), (2, 2, 0, 0));
    // The deleted sandbox's and the warm sandbox's managed cargos are not imported.
    assert_eq!(counts(&r, "cargos"), (4, 2, 0, 2));
    // Deleted, warm-pool, and the one whose cargo is missing.
    assert_eq!(counts(&r, "sandboxes"), (5, 2, 0, 3));
    assert_eq!(counts(&r, "execution_history"), (4, 3, 0, 1));
    assert_eq!(counts(&r, "artifact_blobs"), (1, 1, 0, 0));
    assert_eq!(counts(&r, "skill_candidates"), (2, 2, 0, 0));
    assert_eq!(counts(&r, "skill_evaluations"), (2, 1, 0, 1));
    assert_eq!(counts(&r, "skill_releases"), (1, 1, 0, 0));
    let notes = |t: &str| r.table(t).notes.join("\n");
    assert!(notes("sandboxes").contains("sandbox-eeeeeeeeeeee: its cargo ws-eeeeeeeeeeee is missing"), "{}", notes("sandboxes"));
    assert!(notes("sandboxes").contains("1 soft-deleted") && notes("sandboxes").contains("1 warm-pool"));
    assert!(notes("execution_history").contains("exec-ffffffffffff: its sandbox \"sandbox-ffffffffffff\" is missing"));
    assert!(notes("skill_evaluations").contains("se-ffffffffffff"));
    assert!(!r.dry_run);
}

#[tokio::test]
async fn maps_fields_times_and_owners() {
    let (_dir, source) = fixture().await;
    let db = test_db().await;
    import(&source, &db, &options(false), &|_| {}).await.unwrap();

    // Keys: same SHA-256 scheme, so the plaintext still authenticates.
    let keys = db.active_api_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].key_hash, crate::auth::hash_key("sk-bay-alpha"));
    assert_eq!((keys[0].owner.as_str(), keys[0].scopes.as_str()), ("default", "admin"));
    let revoked = db.api_key("6f1c0e0a-0000-4000-8000-000000000002").await.unwrap().unwrap();
    assert_eq!((revoked.is_active, revoked.deactivated_at), (0, Some(1_767_434_400_000_000)));
    assert_eq!(revoked.created_at, 1_767_344_400_500_000);

    let cargo = db.cargo("ws-aaaaaaaaaaaa").await.unwrap().unwrap();
    assert_eq!(cargo.driver_ref, "bay-cargo-ws-aaaaaaaaaaaa");
    assert_eq!((cargo.managed, cargo.managed_by_sandbox_id.as_deref()), (1, Some("sandbox-aaaaaaaaaaaa")));
    assert_eq!(cargo.created_at, 1_768_046_400_250_000);
    let external = db.cargo_for_owner("ws-bbbbbbbbbbbb", "alice").await.unwrap().unwrap();
    assert_eq!((external.managed, external.size_limit_mb), (0, 2048));
    assert!(db.cargo("ws-cccccccccccc").await.unwrap().is_none());

    // No session: the runtime starts on the next call.
    let s = db.sandbox_for_owner("sandbox-aaaaaaaaaaaa", "default").await.unwrap().unwrap();
    assert_eq!((s.current_session_id, s.idle_expires_at, s.expires_at), (None, None, None));
    assert_eq!((s.profile_id.as_str(), s.cargo_id.as_str(), s.is_warm_pool), ("python-default", "ws-aaaaaaaaaaaa", 0));
    let claimed = db.sandbox_for_owner("sandbox-bbbbbbbbbbbb", "alice").await.unwrap().unwrap();
    assert_eq!(claimed.expires_at, Some(4_070_908_800_000_000));
    assert!(db.sandbox("sandbox-cccccccccccc").await.unwrap().is_none());
    assert!(db.sandbox("sandbox-dddddddddddd").await.unwrap().is_none());
    assert_eq!(count(&db, "sessions").await, 0);

    let (rows, total) = db.list_executions("default", "sandbox-aaaaaaaaaaaa", &Default::default(), 10, 0).await.unwrap();
    assert_eq!(total, 2);
    let first = rows.iter().find(|e| e.id == "exec-aaaaaaaaaaa1").unwrap();
    assert_eq!((first.exec_type.as_str(), first.success, first.tags.as_deref()), ("python", 1, Some("a,b")));
    assert_eq!(first.created_at, 1_768_119_000_000_100);
    assert_eq!(first.output.as_deref(), Some("1\n"));
    let failed = rows.iter().find(|e| e.id == "exec-aaaaaaaaaaa2").unwrap();
    assert_eq!((failed.success, failed.error.as_deref(), failed.notes.as_deref()), (0, Some("exit 1"), Some("n")));
    let browser = db.execution("default", "sandbox-cccccccccccc", "exec-cccccccccccc").await.unwrap().unwrap();
    assert_eq!((browser.learn_enabled, browser.learn_status.as_deref()), (1, Some("processed")));

    let blob = db.blob_for_owner("blob-aaaaaaaaaaaa", "default").await.unwrap().unwrap();
    assert_eq!((blob.kind.as_str(), blob.payload_json.as_str()), ("browser_trace", r#"{"steps":[{"cmd":"open x"}]}"#));

    // Skills, through Bay's own skills service.
    let skills = crate::skills::Skills::new(db.clone());
    let c = serde_json::to_value(crate::skills::CandidateView::from(skills.get_candidate("default", "sc-aaaaaaaaaaaa").await.unwrap())).unwrap();
    assert_eq!(c["status"], "promoted_canary");
    assert_eq!(c["skill_type"], "browser");
    assert_eq!(c["source_execution_ids"], serde_json::json!(["exec-cccccccccccc", "exec-aaaaaaaaaaa1"]));
    assert_eq!(c["preconditions"], serde_json::json!({"url": "x"}));
    assert_eq!((c["latest_pass"].as_bool(), c["latest_score"].as_f64()), (Some(true), Some(0.9)));
    let r = serde_json::to_value(crate::skills::ReleaseView::from(skills.get_release("default", "sr-aaaaaaaaaaaa").await.unwrap())).unwrap();
    assert_eq!((r["stage"].as_str(), r["release_mode"].as_str(), r["version"].as_i64()), (Some("canary"), Some("auto"), Some(1)));
    assert_eq!(r["promoted_at"], "2026-01-11T10:05:00");
    assert_eq!(r["is_active"], true);
}

#[tokio::test]
async fn a_second_run_imports_nothing() {
    let (_dir, source) = fixture().await;
    let db = test_db().await;
    let first = import(&source, &db, &options(false), &|_| {}).await.unwrap();
    let second = import(&source, &db, &options(false), &|_| {}).await.unwrap();
    for t in TABLES {
        let (read, imported, _, _) = counts(&first, t);
        assert_eq!(counts(&second, t).1, 0, "{t}");
        assert_eq!(counts(&second, t).2, imported, "{t}: every imported row counts as existing");
        assert_eq!(counts(&second, t).0, read, "{t}");
        assert_eq!(count(&db, t).await as u64, imported, "{t}");
    }
}

#[tokio::test]
async fn dry_run_reports_the_same_and_writes_nothing() {
    let (_dir, source) = fixture().await;
    let db = test_db().await;
    let dry = import(&source, &db, &options(true), &|_| {}).await.unwrap();
    assert!(dry.dry_run);
    for t in TABLES {
        assert_eq!(count(&db, t).await, 0, "{t}");
    }
    let real = import(&source, &db, &options(false), &|_| {}).await.unwrap();
    for t in TABLES {
        assert_eq!(counts(&dry, t), counts(&real, t), "{t}");
        assert_eq!(dry.table(t).notes, real.table(t).notes, "{t}");
    }
}

#[tokio::test]
async fn what_bay_already_has_is_kept() {
    let (_dir, source) = fixture().await;
    let db = test_db().await;
    // Bay's configured key is the same key Shipyard Neo was configured with.
    let hash = crate::auth::hash_key("sk-bay-alpha");
    let key = crate::db::api_keys::NewKeyRow {
        id: "bay-own-id",
        key_hash: &hash,
        key_prefix: "sk-bay-alpha",
        owner: "default",
        scopes: "admin",
        name: None,
        created_at: 1,
    };
    db.insert_api_key(&key).await.unwrap();
    // Version 1 of the skill is already a different release in Bay.
    db.query("INSERT INTO skill_releases (id, owner, skill_key, candidate_id, version, stage, is_active, promoted_at) VALUES ('sr-bbbbbbbbbbbb', 'default', 'open-page', 'sc-x', 1, 'stable', 1, 1)")
        .execute(db.pool())
        .await
        .unwrap();
    let r = import(&source, &db, &Options { key_scope: "user".into(), ..options(false) }, &|_| {}).await.unwrap();
    assert_eq!(counts(&r, "api_keys"), (2, 1, 1, 0));
    assert_eq!(count(&db, "api_keys").await, 2);
    assert_eq!(db.api_key("6f1c0e0a-0000-4000-8000-000000000002").await.unwrap().unwrap().scopes, "user");
    assert_eq!(counts(&r, "skill_releases"), (1, 0, 0, 1));
    assert!(r.table("skill_releases").notes[0].contains("conflict"), "{:?}", r.table("skill_releases").notes);
}

#[tokio::test]
async fn unknown_profiles_and_missing_tables_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&format!("sqlite://{}?mode=rwc", path.display())).await.unwrap();
    // An old Shipyard Neo: no skills tables, no warm-pool columns.
    pool.execute(
        "CREATE TABLE cargos (id VARCHAR PRIMARY KEY, owner VARCHAR, backend VARCHAR, driver_ref VARCHAR, managed BOOLEAN, managed_by_sandbox_id VARCHAR, size_limit_mb INTEGER, created_at DATETIME, last_accessed_at DATETIME);
         CREATE TABLE sandboxes (id VARCHAR PRIMARY KEY, owner VARCHAR, profile_id VARCHAR, cargo_id VARCHAR, expires_at DATETIME, deleted_at DATETIME, created_at DATETIME, last_active_at DATETIME);
         INSERT INTO cargos VALUES ('ws-1', 'default', 'docker_volume', '/var/lib/bay/cargos/bay-cargo-ws-1', 0, NULL, 1024, '2026-01-01 00:00:00', '2026-01-01 00:00:00');
         INSERT INTO sandboxes VALUES ('sandbox-1', 'default', 'gpu', 'ws-1', '2000-01-01 00:00:00', NULL, '2026-01-01 00:00:00', '2026-01-01 00:00:00');",
    )
    .await
    .unwrap();
    pool.close().await;
    let source = Source::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    let db = test_db().await;
    let r = import(&source, &db, &options(false), &|_| {}).await.unwrap();
    assert_eq!(counts(&r, "sandboxes"), (1, 1, 0, 0));
    let notes = r.table("sandboxes").notes.join("\n");
    assert!(notes.contains("profile \"gpu\" is not configured"), "{notes}");
    assert!(notes.contains("past their TTL"), "{notes}");
    assert_eq!(db.cargo("ws-1").await.unwrap().unwrap().driver_ref, "/var/lib/bay/cargos/bay-cargo-ws-1");
    assert!(r.table("api_keys").notes[0].contains("no api_keys table"));
    assert_eq!(counts(&r, "skill_candidates"), (0, 0, 0, 0));
}

#[tokio::test]
async fn the_source_is_checked() {
    assert!(Source::connect("sqlite:///nonexistent/neo.db").await.is_err());
    assert!(Source::connect("mysql://h/db").await.is_err());
}

/// The fixture on PostgreSQL as SQLModel creates it there (TIMESTAMP,
/// BOOLEAN, a native enum), read through `postgresql+asyncpg://…`. Runs
/// when `BAY_TEST_POSTGRES` names a server (`./dev postgres`), in a database
/// of its own that it drops.
#[tokio::test]
async fn reads_a_postgresql_database() {
    let server = match std::env::var("BAY_TEST_POSTGRES") {
        Ok(s) if !s.is_empty() => s.trim_end_matches('/').to_owned(),
        _ => {
            eprintln!("skipped: needs PostgreSQL (BAY_TEST_POSTGRES)");
            return;
        }
    };
    sqlx::any::install_default_drivers();
    let name = crate::ids::new_id("import_neo").replace('-', "_");
    let admin = sqlx::AnyPool::connect(&format!("{server}/postgres")).await.unwrap();
    admin.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.unwrap();
    let url = format!("{server}/{name}");
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let (mut table, mut bools, mut sql) = (String::new(), Vec::new(), String::new());
    for line in FIXTURE.lines().filter(|l| !l.starts_with("--") && !l.starts_with("PRAGMA")) {
        if let Some(t) = line.strip_prefix("CREATE TABLE ") {
            table = t.trim_end_matches(" (").to_owned();
        }
        if line.contains(" BOOLEAN") {
            bools.push((table.clone(), line.split_whitespace().next().unwrap().to_owned()));
        }
        let line = line.replace("DATETIME", "TIMESTAMP").replace(" BOOLEAN", " INTEGER").replace("char(10)", "chr(10)");
        sql += &line.replace(" REFERENCES cargos (id)", "").replace(" REFERENCES sandboxes (id)", "");
        sql.push('\n');
    }
    for (t, c) in &bools {
        sql += &format!("ALTER TABLE {t} ALTER COLUMN {c} TYPE BOOLEAN USING {c} <> 0;\n");
    }
    sql += "CREATE TYPE releasestage AS ENUM ('CANARY', 'STABLE');\nALTER TABLE skill_releases ALTER COLUMN stage TYPE releasestage USING stage::releasestage;\n";
    for statement in sql.split(";\n").map(str::trim).filter(|s| !s.is_empty()) {
        pool.execute(sqlx::AssertSqlSafe(statement.to_owned())).await.unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    pool.close().await;

    // Bay's database on PostgreSQL too.
    admin.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}_bay"))).await.unwrap();
    let source = Source::connect(&url.replacen("postgres://", "postgresql+asyncpg://", 1)).await.unwrap();
    let db = Db::connect(&DatabaseUrl::Postgres(format!("{url}_bay")), 2).await.unwrap();
    let result = import(&source, &db, &options(true), &|_| {}).await;
    let dry_rows = count(&db, "sandboxes").await;
    let result = match result {
        Ok(_) => import(&source, &db, &options(false), &|_| {}).await,
        e => e,
    };
    let again = import(&source, &db, &options(false), &|_| {}).await;
    let checked = async {
        assert_eq!(dry_rows, 0);
        let r = result.unwrap();
        assert_eq!(again.unwrap().tables.iter().map(|t| t.imported).sum::<u64>(), 0);
        check_postgresql_import(&db, &r).await;
    };
    let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(checked)).await;
    drop(source);
    db.pool().close().await;
    for db in [name.clone(), format!("{name}_bay")] {
        admin.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE {db} WITH (FORCE)"))).await.unwrap();
    }
    if let Err(e) = outcome {
        std::panic::resume_unwind(e);
    }
}

async fn check_postgresql_import(db: &Db, r: &Report) {
    for (t, expected) in [
        ("api_keys", (2, 2, 0, 0)),
        ("cargos", (4, 2, 0, 2)),
        ("sandboxes", (5, 2, 0, 3)),
        ("execution_history", (4, 3, 0, 1)),
        ("skill_candidates", (2, 2, 0, 0)),
        ("skill_evaluations", (2, 1, 0, 1)),
        ("skill_releases", (1, 1, 0, 0)),
    ] {
        assert_eq!(counts(r, t), expected, "{t}");
    }
    assert_eq!(db.cargo("ws-aaaaaaaaaaaa").await.unwrap().unwrap().created_at, 1_768_046_400_250_000);
    assert_eq!(db.api_key("6f1c0e0a-0000-4000-8000-000000000002").await.unwrap().unwrap().is_active, 0);
    let (rows, _) = db.list_executions("default", "sandbox-aaaaaaaaaaaa", &Default::default(), 10, 0).await.unwrap();
    assert_eq!(rows.iter().map(|e| (e.id.as_str(), e.success)).collect::<Vec<_>>(), [("exec-aaaaaaaaaaa2", 0), ("exec-aaaaaaaaaaa1", 1)]);
    let release = crate::skills::Skills::new(db.clone()).get_release("default", "sr-aaaaaaaaaaaa").await.unwrap();
    assert_eq!((release.stage.as_str(), release.is_active), ("canary", 1));
}
