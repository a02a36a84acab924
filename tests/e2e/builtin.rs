//! A bare `bay` serves sandboxes: the first-party runtime adapters are built
//! into the binary, so a Shipyard Neo `config.yaml` (which has no `plugins:`
//! section) run from an empty directory creates sandboxes and runs Python.

use bay_tests::{BayProcess, free_port, remove_instance};
use serde_json::json;

#[tokio::test]
async fn a_shipyard_neo_config_without_plugins_serves_from_an_empty_directory() {
    let dir = tempfile::Builder::new().prefix("bay-e2e-bare-").tempdir().unwrap();
    let port = free_port();
    let instance = "bay-e2e-bare";
    // Shipyard Neo's config.yaml shape (Shipyard Neo's contract, docs/compatibility.md), with our image names.
    let yaml = format!(
        r#"
server:
  host: "127.0.0.1"
  port: {port}
database:
  url: "sqlite+aiosqlite:///./bay.db"
driver:
  type: docker
  image_pull_policy: never
  docker:
    socket: "unix:///var/run/docker.sock"
    connect_mode: auto
    host_address: "127.0.0.1"
    publish_ports: true
security:
  api_key: "sk-e2e-process-key"
  allow_anonymous: false
gc:
  instance_id: {instance}
profiles:
  - id: python-default
    description: "Standard Python sandbox"
    image: "ship:latest"
    runtime_type: ship
    runtime_port: 8123
    resources: {{ cpus: 1.0, memory: "1g" }}
    capabilities: [filesystem, shell, python]
    idle_timeout: 1800
"#
    );
    let bay = BayProcess::spawn(dir.path(), port, &yaml);
    bay.wait_ready().await;
    let c = bay.client();
    let (status, plugins) = c.get("/v1/admin/plugins").await;
    assert_eq!(status, 200, "{plugins}");
    let builtin: Vec<&str> = plugins["items"].as_array().unwrap().iter().filter_map(|p| p["dir"].as_str()).collect();
    assert!(builtin.contains(&"builtin:ship-adapter"), "{plugins}");
    let id = c.create_sandbox().await;
    let r = c.python(&id, "print(6 * 7)", 60).await;
    assert_eq!(r["output"].as_str().unwrap().trim(), "42", "{r}");
    let (status, _) = c.post(&format!("/v1/sandboxes/{id}/filesystem/files"), json!({})).await;
    assert_eq!(status, 405);
    c.delete_sandbox(&id).await;
    drop(bay);
    remove_instance(instance);
    // Nothing but what Bay keeps in its data dir appeared there.
    let mut entries: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    entries.sort();
    assert!(
        entries.iter().all(|e| ["bay.db", "bay.db-shm", "bay.db-wal", "bay.log", "config.yaml", ".bay-cache"].contains(&e.as_str())),
        "{entries:?}"
    );
}
