//! `driver.image_pull_policy` against a registry on 127.0.0.1 (Debian's
//! `docker-registry`, which `./dev test` installs) into which the test pushes
//! our own image: `if_not_present` pulls a missing image, `always` pulls on
//! every launch, `never` fails clearly, and a failed pull says why.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bay_tests::{BayProcess, free_port, remove_instance};
use serde_json::json;

const INSTANCE: &str = "bay-e2e-pull";

struct Registry {
    child: Child,
    _dir: tempfile::TempDir,
    addr: String,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_registry() -> Registry {
    let dir = tempfile::Builder::new().prefix("bay-e2e-registry-").tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n", dir.path().join("data").display()),
    )
    .unwrap();
    let mut child = Command::new("docker-registry")
        .args(["serve"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("registry.log")).unwrap())
        .spawn()
        .expect("docker-registry (Debian's package; ./dev test installs it)");
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if http.get(format!("http://{addr}/v2/")).send().await.is_ok_and(|r| r.status().is_success()) {
            return Registry { child, _dir: dir, addr };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the registry did not start on {addr}");
}

fn docker(args: &[&str]) -> bool {
    Command::new("docker").args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap().success()
}

fn image_present(image: &str) -> bool {
    docker(&["image", "inspect", image])
}

/// A Bay with `policy`, whose `pulled` profile uses `image`.
async fn bay_with(dir: &std::path::Path, policy: &str, image: &str) -> BayProcess {
    let profiles = format!("profiles:\n  - {{id: pulled, image: \"{image}\"}}\n");
    let port = free_port();
    // The built-in driver on Docker, whatever engine the rest of the suite uses.
    let driver = format!("driver: {{image_pull_policy: {policy}, docker: {{connect_mode: host_port}}}}");
    let base: String = BayProcess::base_config(dir, INSTANCE, port)
        .lines()
        .map(|l| if l.starts_with("driver:") { driver.clone() + "\n" } else { l.to_owned() + "\n" })
        .collect();
    let bay = BayProcess::spawn(dir, port, &(base + &profiles));
    bay.wait_ready().await;
    bay
}

async fn python_in_new_sandbox(bay: &BayProcess) -> (u16, serde_json::Value) {
    let c = bay.client();
    let (status, s) = c.post("/v1/sandboxes", json!({"profile": "pulled"})).await;
    assert_eq!(status, 201, "{s}");
    let id = s["id"].as_str().unwrap();
    c.post(&format!("/v1/sandboxes/{id}/python/exec"), json!({"code": "print(1 + 1)", "timeout": 60})).await
}

#[tokio::test]
async fn images_are_pulled_as_the_policy_says() {
    let registry = start_registry().await;
    let image = format!("{}/bay/ship:e2e", registry.addr);
    assert!(docker(&["tag", "ship:latest", &image]));
    assert!(docker(&["push", &image]), "pushing our image to the test registry");
    assert!(docker(&["rmi", &image]));
    assert!(!image_present(&image));

    // never: the missing image fails the start, saying so.
    let dir = tempfile::tempdir().unwrap();
    let bay = bay_with(dir.path(), "never", &image).await;
    let (status, r) = python_in_new_sandbox(&bay).await;
    assert_eq!(status, 500, "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains(&image), "{r}");
    assert!(!image_present(&image));
    drop(bay);

    // if_not_present: pulled once, with progress in the log.
    let dir = tempfile::tempdir().unwrap();
    let bay = bay_with(dir.path(), "if_not_present", &image).await;
    let (status, r) = python_in_new_sandbox(&bay).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["output"], "2");
    assert!(image_present(&image));
    let log = std::fs::read_to_string(&bay.log).unwrap();
    assert!(log.contains(&format!("pulling {image}")), "pull progress is logged");
    drop(bay);

    // always: pulled again for every session, even though it is present.
    let dir = tempfile::tempdir().unwrap();
    let bay = bay_with(dir.path(), "always", &image).await;
    let (status, r) = python_in_new_sandbox(&bay).await;
    assert_eq!(status, 200, "{r}");
    let log = std::fs::read_to_string(&bay.log).unwrap();
    assert!(log.contains(&format!("pulling {image}")), "pulled although present");
    drop(bay);

    // A pull that fails (no such tag) says why.
    let dir = tempfile::tempdir().unwrap();
    let missing = format!("{}/bay/ship:no-such-tag", registry.addr);
    let bay = bay_with(dir.path(), "if_not_present", &missing).await;
    let (status, r) = python_in_new_sandbox(&bay).await;
    assert_eq!(status, 500, "{r}");
    let msg = r["error"]["message"].as_str().unwrap();
    assert!(msg.contains("pull failed") && msg.contains("no-such-tag"), "{msg}");
    drop(bay);

    let _ = docker(&["rmi", &image]);
    remove_instance(INSTANCE);
}
