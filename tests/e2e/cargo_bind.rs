//! Cargo bind mounts (Shipyard Neo's bind-mount mode, host/src/driver/bind.rs):
//! with `cargo.host_root_path` set, each cargo is a directory under it that
//! the engine bind-mounts at `/workspace` — files written through the API
//! are on the host and the other way round, no engine volume is made, a
//! deleted cargo's directory goes, and one a crashed create left behind is
//! removed at the next start.

use bay_tests::{BayProcess, engine, free_port, remove_instance};
use serde_json::json;

#[tokio::test]
async fn cargos_are_host_directories_bind_mounted_at_the_workspace() {
    let dir = tempfile::Builder::new().prefix("bay-e2e-bind-").tempdir().unwrap();
    let root = dir.path().join("cargos");
    let instance = "bay-e2e-bind";
    // What a create that died before storing its row leaves: a labelled
    // directory with no cargo in the database, made by a process of this host
    // that is gone (with replicas on PostgreSQL only such ones are removed).
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = gone.id();
    gone.wait().unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_owned();
    std::fs::create_dir_all(root.join(".bay-volumes")).unwrap();
    std::fs::create_dir_all(root.join("bay-cargo-ws-crashed")).unwrap();
    std::fs::write(
        root.join(".bay-volumes/bay-cargo-ws-crashed.json"),
        json!({"bay.managed": "true", "bay.instance_id": instance, "bay.cargo_id": "ws-crashed", "bay.replica": format!("{host}-{dead_pid}-0badc0de")})
            .to_string(),
    )
    .unwrap();
    let yaml = format!("cargo: {{root_path: \"{r}\", host_root_path: \"{r}\"}}\n", r = root.display());
    let bay = BayProcess::start_with(dir.path(), instance, free_port(), &yaml);
    bay.wait_ready().await;
    let c = bay.client();
    assert!(!root.join("bay-cargo-ws-crashed").exists(), "the orphan directory is removed at start");
    assert!(!root.join(".bay-volumes/bay-cargo-ws-crashed.json").exists());

    let (status, s) = c.post("/v1/sandboxes", json!({"profile": "python-default"})).await;
    assert_eq!(status, 201, "{s}");
    let id = s["id"].as_str().unwrap().to_owned();
    let cargo_id = s["cargo_id"].as_str().unwrap().to_owned();
    let on_host = root.join(format!("bay-cargo-{cargo_id}"));
    assert!(on_host.is_dir(), "{}", on_host.display());

    // API → host.
    let r = c.shell(&id, "echo from-sandbox > made-inside.txt && id -u && stat -c %u /workspace").await;
    assert_eq!(r["exit_code"], 0, "{r}");
    assert_eq!(r["output"].as_str().unwrap().split_whitespace().collect::<Vec<_>>(), ["1000", "1000"], "{r}");
    assert_eq!(std::fs::read_to_string(on_host.join("made-inside.txt")).unwrap(), "from-sandbox\n");
    // Host → API.
    std::fs::write(on_host.join("made-outside.txt"), "from-host").unwrap();
    let (status, f) = c.get(&format!("/v1/sandboxes/{id}/filesystem/files?path=made-outside.txt")).await;
    assert_eq!(status, 200, "{f}");
    assert_eq!(f["content"], "from-host");
    // No engine volume was made for it.
    let inspect = engine::cli().args(["volume", "inspect", &format!("bay-cargo-{cargo_id}")]).output().unwrap();
    assert!(!inspect.status.success(), "a named volume exists for a bind-mounted cargo");

    // An external cargo is a directory too, and goes with its delete.
    let (status, cargo) = c.post("/v1/cargos", json!({})).await;
    assert_eq!(status, 201, "{cargo}");
    let external = root.join(format!("bay-cargo-{}", cargo["id"].as_str().unwrap()));
    assert!(external.is_dir());
    let (status, _) = c.json(reqwest::Method::DELETE, &format!("/v1/cargos/{}", cargo["id"].as_str().unwrap()), None).await;
    assert_eq!(status, 204);
    assert!(!external.exists());

    c.delete_sandbox(&id).await;
    assert!(!on_host.exists(), "the sandbox's cargo directory is removed with it");
    drop(bay);
    remove_instance(instance);
}
