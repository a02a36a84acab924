//! Isolation between sandboxes (docs/security.md): single-container
//! sessions share one bridge on which the engine drops traffic between
//! containers (IPv6 off inside them, raw sockets dropped), sessions of
//! several containers get a network of their own (multi.rs); either way
//! nothing in sandbox A reaches sandbox B's runtime, and a runtime answers
//! only calls carrying its session's secret.
//! Traffic goes only between the two test containers (and their own
//! network's gateway).

use bay_tests::{BayProcess, Client, engine, free_port, remove_instance, strict};
use serde_json::json;

/// The container of a single-container sandbox.
fn container_of(id: &str) -> String {
    engine::containers_with("bay.sandbox_id", id).remove(0)
}

/// Tries a TCP connection from inside sandbox `from` (through its own shell):
/// "open" or the error.
async fn connect_from(c: &bay_tests::Client, from: &str, host: &str, port: u16) -> String {
    let code = format!(
        "import socket\ns = socket.socket()\ns.settimeout(3)\ntry:\n    s.connect(({host:?}, {port}))\n    print('open')\nexcept Exception as e:\n    print(type(e).__name__)"
    );
    let (status, r) = c.post(&format!("/v1/sandboxes/{from}/python/exec"), json!({ "code": code, "timeout": 30 })).await;
    assert_eq!(status, 200, "{r}");
    r["output"].as_str().unwrap_or_default().trim().to_owned()
}

#[tokio::test]
async fn a_sandbox_cannot_reach_another_sandboxs_runtime() {
    isolation_holds(&strict().client(), true).await;
}

#[tokio::test]
async fn a_sandbox_cannot_reach_another_sandboxs_runtime_with_a_network_each() {
    let dir = tempfile::tempdir().unwrap();
    let (instance, port) = ("bay-e2e-per-session-net", free_port());
    let base = BayProcess::base_config(dir.path(), instance, port);
    let yaml: String =
        base.lines().map(|l| if l.starts_with("driver:") { engine::driver_yaml_with("per_session") } else { l.to_owned() } + "\n").collect();
    let bay = BayProcess::spawn(dir.path(), port, &yaml);
    bay.wait_ready().await;
    isolation_holds(&bay.client(), false).await;
    drop(bay);
    remove_instance(instance);
}

/// Two sandboxes of `c`'s Bay, on the shared bridge (`shared`) or on a
/// network each: neither reaches the other's runtime.
async fn isolation_holds(c: &Client, shared: bool) {
    let a = c.create_sandbox().await;
    let b = c.create_sandbox().await;
    c.python(&a, "1", 60).await;
    c.python(&b, "1", 60).await;
    let (ca, cb) = (container_of(&a), container_of(&b));
    let net_a = engine::inspect(&ca, "{{.HostConfig.NetworkMode}}");
    let net_b = engine::inspect(&cb, "{{.HostConfig.NetworkMode}}");
    if shared {
        // Both sit on the shared session bridge, where the engine keeps
        // containers apart: inter-container traffic off, no IPv6 inside.
        assert_eq!((net_a.as_str(), net_b.as_str()), ("bay_sessions", "bay_sessions"));
        assert_eq!(engine::inspect(&net_a, "{{index .Options \"com.docker.network.bridge.enable_icc\"}}"), "false");
        for from in [&a, &b] {
            let r = c.shell(from, "cat /proc/sys/net/ipv6/conf/all/disable_ipv6; grep -c . /proc/net/if_inet6 || true").await;
            assert_eq!(r["output"].as_str().unwrap().split_whitespace().collect::<Vec<_>>(), ["1", "0"], "IPv6 is off in {from}: {r}");
        }
    } else {
        // Each session sits on a network of its own, with nothing else on it.
        assert!(net_a.starts_with("bay_net_sess-") && net_b.starts_with("bay_net_sess-"), "{net_a} {net_b}");
        assert_ne!(net_a, net_b);
        let members = engine::inspect(&net_b, "{{range .Containers}}{{.Name}} {{end}}");
        assert_eq!(members.split_whitespace().count(), 1, "B's network holds B only: {members}");
    }

    // A cannot open a connection to B's runtime port, by B's address...
    let ip_b = engine::inspect(&cb, "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}");
    assert!(!ip_b.is_empty());
    let outcome = connect_from(c, &a, &ip_b, 8123).await;
    assert_ne!(outcome, "open", "A reached B's runtime at {ip_b}:8123");
    // ...nor through the port B's runtime is published on (bound to the
    // engine host's loopback), by A's own gateway.
    let gateway_a = engine::inspect(&ca, "{{range .NetworkSettings.Networks}}{{.Gateway}}{{end}}");
    let published_b: u16 = engine::inspect(&cb, "{{(index (index .NetworkSettings.Ports \"8123/tcp\") 0).HostPort}}").parse().unwrap();
    let outcome = connect_from(c, &a, &gateway_a, published_b).await;
    assert_ne!(outcome, "open", "A reached B's published port through {gateway_a}:{published_b}");
    // A still reaches its own runtime (the check itself works).
    let ip_a = engine::inspect(&ca, "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}");
    assert_eq!(connect_from(c, &a, &ip_a, 8123).await, "open");

    // B's runtime refuses calls without its session's secret, or with A's.
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{published_b}/shell/exec");
    let secret = |container: &str| {
        engine::inspect(container, "{{range .Config.Env}}{{println .}}{{end}}")
            .lines()
            .find_map(|l| l.strip_prefix("BAY_RUNTIME_TOKEN=").map(str::to_owned))
            .expect("a session secret")
    };
    let body = json!({ "command": "id" });
    assert_eq!(http.post(&url).json(&body).send().await.unwrap().status(), 401);
    let wrong = http.post(&url).header("x-bay-token", secret(&ca)).json(&body).send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let right = http.post(&url).header("x-bay-token", secret(&cb)).json(&body).send().await.unwrap();
    assert_eq!(right.status(), 200);
    // Code inside a sandbox does not see its own secret.
    let r = c.shell(&a, "echo \"[$BAY_RUNTIME_TOKEN]\"; cat /proc/1/environ | tr '\\0' '\\n' | grep -c BAY_RUNTIME_TOKEN || true").await;
    assert_eq!(r["output"].as_str().unwrap().lines().next(), Some("[]"), "{r}");

    c.delete_sandbox(&a).await;
    c.delete_sandbox(&b).await;
    // Deleting removes the containers, and a session's own network; the
    // shared bridge stays for the others.
    for object in [ca, cb].into_iter().chain(if shared { vec![] } else { vec![net_a, net_b] }) {
        let gone = !engine::cli().args(["inspect", &object]).output().unwrap().status.success();
        assert!(gone, "{object} was removed");
    }
}
