//! `bay import shipyard-neo` end to end: a cargo volume named as Shipyard
//! Neo names it (`bay-cargo-<cargo_id>`) holds a file; after the import (the
//! `bay` binary, on Shipyard Neo's SQLite database) Bay serves the imported
//! sandbox on that cargo, and the Shipyard Neo API key still authenticates.

use bay_tests::{BayProcess, engine, free_port, remove_instance};
use sqlx::Executor;

#[tokio::test]
async fn an_imported_sandbox_reads_its_shipyard_neo_cargo() {
    let dir = tempfile::Builder::new().prefix("bay-e2e-import-").tempdir().unwrap();
    let instance = "bay-e2e-import";
    let port = free_port();
    let hex = format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff);
    let (cargo, sandbox) = (format!("ws-{hex}"), format!("sandbox-{hex}"));
    let volume = format!("bay-cargo-{cargo}");

    // The volume as Shipyard Neo's Docker driver left it, with a file on it.
    let run = |args: &[&str]| {
        let out = engine::cli().args(args).output().expect("the engine's CLI");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&["volume", "create", "--label", "bay.owner=default", "--label", &format!("bay.cargo_id={cargo}"), "--label", "bay.managed=true", &volume]);
    let mount = format!("{volume}:/workspace");
    run(&[
        "run",
        "--rm",
        "--user",
        "0",
        "--entrypoint",
        "sh",
        "-v",
        &mount,
        "ship:latest",
        "-c",
        "echo kept by Shipyard Neo > /workspace/neo.txt && chmod 644 /workspace/neo.txt",
    ]);

    // Shipyard Neo's database: the key, the cargo, the sandbox (and a session, not imported).
    let neo_key = "sk-bay-e2e-shipyard-neo-key";
    let neo = dir.path().join("shipyard-neo.db");
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&format!("sqlite://{}?mode=rwc", neo.display())).await.unwrap();
    let sql = format!(
        "CREATE TABLE api_keys (id VARCHAR PRIMARY KEY, key_hash VARCHAR, key_prefix VARCHAR, owner VARCHAR, is_active BOOLEAN, created_at DATETIME, deactivated_at DATETIME);
         CREATE TABLE cargos (id VARCHAR PRIMARY KEY, owner VARCHAR, backend VARCHAR, driver_ref VARCHAR, managed BOOLEAN, managed_by_sandbox_id VARCHAR, size_limit_mb INTEGER, created_at DATETIME, last_accessed_at DATETIME);
         CREATE TABLE sandboxes (id VARCHAR PRIMARY KEY, owner VARCHAR, profile_id VARCHAR, cargo_id VARCHAR, current_session_id VARCHAR, expires_at DATETIME, idle_expires_at DATETIME, deleted_at DATETIME, version INTEGER, created_at DATETIME, last_active_at DATETIME, is_warm_pool BOOLEAN, warm_state VARCHAR);
         CREATE TABLE sessions (id VARCHAR PRIMARY KEY, sandbox_id VARCHAR, runtime_type VARCHAR, profile_id VARCHAR, container_id VARCHAR, endpoint VARCHAR, desired_state VARCHAR, observed_state VARCHAR, created_at DATETIME, last_active_at DATETIME);
         INSERT INTO api_keys VALUES ('0b0e2e00-0000-4000-8000-000000000001', '{hash}', '{prefix}', 'default', 1, '2026-01-01 00:00:00', NULL);
         INSERT INTO cargos VALUES ('{cargo}', 'default', 'docker_volume', '{volume}', 1, '{sandbox}', 1024, '2026-01-01 00:00:00', '2026-01-01 00:00:00');
         INSERT INTO sandboxes VALUES ('{sandbox}', 'default', 'python-default', '{cargo}', 'sess-{hex}', NULL, '2026-01-01 00:30:00', NULL, 1, '2026-01-01 00:00:00.123456', '2026-01-01 00:00:00', 0, NULL);
         INSERT INTO sessions VALUES ('sess-{hex}', '{sandbox}', 'ship', 'python-default', 'gone', 'http://127.0.0.1:1', 'RUNNING', 'RUNNING', '2026-01-01 00:00:00', '2026-01-01 00:00:00');",
        hash = bay::auth::hash_key(neo_key),
        prefix = &neo_key[..12],
    );
    pool.execute(sqlx::AssertSqlSafe(sql)).await.unwrap();
    pool.close().await;

    // Bay's configuration, then the import through the binary (twice: the second imports nothing).
    let yaml = BayProcess::base_config(dir.path(), instance, port);
    std::fs::write(dir.path().join("config.yaml"), &yaml).unwrap();
    let import = || {
        let out = std::process::Command::new(bay_tests::bay_binary())
            .args(["import", "shipyard-neo", "--from"])
            .arg(format!("sqlite+aiosqlite:///{}", neo.display()))
            .arg("--config")
            .arg(dir.path().join("config.yaml"))
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        stdout
    };
    let first = import();
    assert!(first.contains("imported 3 rows"), "{first}");
    let second = import();
    assert!(second.contains("imported 0 rows; 3 already in Bay"), "{second}");

    let mut bay = BayProcess::spawn(dir.path(), port, &yaml);
    bay.key = neo_key.to_owned();
    bay.wait_ready().await;
    let c = bay.client();
    let (status, s) = c.get(&format!("/v1/sandboxes/{sandbox}")).await;
    assert_eq!(status, 200, "{s}");
    assert_eq!((s["cargo_id"].as_str(), s["created_at"].as_str()), (Some(cargo.as_str()), Some("2026-01-01T00:00:00.123456")));
    let r = c.python(&sandbox, "print(open('/workspace/neo.txt').read().strip())", 120).await;
    assert_eq!(r["output"].as_str().unwrap().trim(), "kept by Shipyard Neo", "{r}");
    // Bay writes to the same volume.
    let w = c.shell(&sandbox, "echo from Bay > /workspace/bay.txt && cat /workspace/bay.txt").await;
    assert_eq!(w["success"], true, "{w}");
    c.delete_sandbox(&sandbox).await;
    drop(bay);
    remove_instance(instance);
    // The managed cargo went with its sandbox, volume included.
    let out = engine::cli().args(["volume", "inspect", &volume]).output().unwrap();
    if out.status.success() {
        let _ = engine::cli().args(["volume", "rm", "-f", &volume]).output();
        panic!("the managed cargo's volume {volume} outlived its sandbox");
    }
}
