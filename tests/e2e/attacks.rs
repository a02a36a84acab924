//! What an attack run against a live Bay tried, and what Bay answers now
//! (docs/security.md): oversized bodies, fields, URIs and headers get the
//! JSON envelope; arithmetic on user numbers is checked; roles, keys and
//! quotas hold; early errors reach clients that send their whole body first;
//! memory returns near idle after bursts of large requests. Most cases need
//! no container: sandboxes are created (a volume each) but never started.

use std::time::{Duration, Instant};

use bay_tests::{BayProcess, Client, anonymous, free_port, strict};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MIB: usize = 1 << 20;

fn code(r: &Value) -> &str {
    r["error"]["code"].as_str().unwrap_or_default()
}

/// The envelope, with a request id.
fn assert_envelope(status: u16, r: &Value, want_status: u16, want_code: &str) {
    assert_eq!((status, code(r)), (want_status, want_code), "{r}");
    assert!(r["error"]["message"].is_string(), "{r}");
    assert!(r["error"]["request_id"].is_string(), "{r}");
}

fn host_port(base: &str) -> String {
    base.trim_start_matches("http://").to_owned()
}

/// One HTTP/1.1 exchange on a raw connection, kept for more.
struct Raw {
    stream: TcpStream,
    buffered: Vec<u8>,
}

struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

impl Raw {
    async fn connect(base: &str) -> Raw {
        Raw { stream: TcpStream::connect(host_port(base)).await.unwrap(), buffered: Vec::new() }
    }

    /// Writes the head and then the whole body, without reading anything
    /// in between (as httpx does), then reads one response.
    async fn send(&mut self, head: &str, body: &[u8]) -> RawResponse {
        self.stream.write_all(head.as_bytes()).await.unwrap();
        for chunk in body.chunks(MIB) {
            self.stream.write_all(chunk).await.expect("Bay read the whole body before answering");
        }
        self.read_response().await
    }

    async fn read_response(&mut self) -> RawResponse {
        let deadline = Instant::now() + Duration::from_secs(60);
        let head_end = loop {
            if let Some(i) = self.buffered.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill(deadline).await;
        };
        let head = String::from_utf8(self.buffered[..head_end].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once(':').unwrap();
                (k.trim().to_owned(), v.trim().to_owned())
            })
            .collect();
        let len: usize = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-length")).map(|(_, v)| v.parse().unwrap()).unwrap_or(0);
        while self.buffered.len() < head_end + len {
            self.fill(deadline).await;
        }
        let body = self.buffered[head_end..head_end + len].to_vec();
        self.buffered.drain(..head_end + len);
        let body = serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        RawResponse { status, headers, body }
    }

    async fn fill(&mut self, deadline: Instant) {
        let mut buf = vec![0u8; 64 * 1024];
        let n = tokio::time::timeout_at(deadline.into(), self.stream.read(&mut buf)).await.expect("response in time").expect("read");
        assert!(n > 0, "connection closed; got so far: {:?}", String::from_utf8_lossy(&self.buffered));
        self.buffered.extend_from_slice(&buf[..n]);
    }
}

fn post_head(path: &str, auth: &str, content_type: &str, len: usize) -> String {
    format!("POST {path} HTTP/1.1\r\nhost: bay\r\nauthorization: Bearer {auth}\r\ncontent-type: {content_type}\r\ncontent-length: {len}\r\n\r\n")
}

fn json_with_string(field: &str, len: usize) -> Vec<u8> {
    let mut body = format!("{{\"{field}\": \"").into_bytes();
    body.resize(body.len() + len, b'a');
    body.extend_from_slice(b"\"}");
    body
}

fn multipart(boundary: &str, path: &[u8], file: &[u8]) -> Vec<u8> {
    let mut b = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"path\"\r\n\r\n").into_bytes();
    b.extend_from_slice(path);
    b.extend_from_slice(format!("\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n").as_bytes());
    b.extend_from_slice(file);
    b.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    b
}

#[tokio::test]
async fn oversized_requests_get_the_envelope() {
    let bay = strict();
    let c = bay.client();

    // 413: a body over `limits.json_body_bytes`, declared…
    let resp = c
        .req(Method::POST, "/v1/sandboxes")
        .header("content-type", "application/json")
        .body(json_with_string("profile", 2 * MIB))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let r: Value = resp.json().await.unwrap();
    assert_envelope(status, &r, 413, "payload_too_large");
    assert_eq!(r["error"]["details"]["limit"], "json_body_bytes");
    assert_eq!(r["error"]["details"]["max_bytes"], MIB);
    // …or chunked, found while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..3).map(|_| Ok(vec![b' '; MIB])).collect();
    let resp = c.req(Method::POST, "/v1/cargos").body(reqwest::Body::wrap_stream(futures::stream::iter(chunks))).send().await.unwrap();
    let status = resp.status().as_u16();
    let r: Value = resp.json().await.unwrap();
    assert_envelope(status, &r, 413, "payload_too_large");

    // 413 for one field: python `code` over `limits.python_code_bytes`
    // (the body itself is within the route's limit). The sandbox is never started.
    let id = c.create_sandbox().await;
    let (status, r) = c.post(&format!("/v1/sandboxes/{id}/python/exec"), json!({"code": "x".repeat(4 * MIB + 1)})).await;
    assert_envelope(status, &r, 413, "payload_too_large");
    assert_eq!((r["error"]["details"]["field"].as_str(), r["error"]["details"]["limit"].as_str()), (Some("code"), Some("python_code_bytes")));
    let (status, r) = c.post(&format!("/v1/sandboxes/{id}/browser/exec_batch"), json!({"commands": ["x"]})).await;
    assert_eq!((status, code(&r)), (400, "capability_not_supported"), "the profile check comes first: {r}");

    // 413 for a multipart text field: the upload's `path` is read bounded.
    let form = reqwest::multipart::Form::new().text("path", "p".repeat(64 * 1024)).part("file", reqwest::multipart::Part::bytes(b"x".to_vec()));
    let resp = c.req(Method::POST, &format!("/v1/sandboxes/{id}/filesystem/upload")).multipart(form).send().await.unwrap();
    let status = resp.status().as_u16();
    let r: Value = resp.json().await.unwrap();
    assert_envelope(status, &r, 413, "payload_too_large");
    assert_eq!(r["error"]["details"]["field"], "path");

    // 415: the upload is multipart or nothing.
    let resp = c.req(Method::POST, &format!("/v1/sandboxes/{id}/filesystem/upload")).json(&json!({"path": "a"})).send().await.unwrap();
    let status = resp.status().as_u16();
    let r: Value = resp.json().await.unwrap();
    assert_envelope(status, &r, 415, "unsupported_media_type");

    // 414: a query string over `limits.uri_bytes` (16 KiB)…
    let (status, r) = c.get(&format!("/v1/sandboxes?cursor={}", "c".repeat(20 * 1024))).await;
    assert_envelope(status, &r, 414, "uri_too_long");
    assert_eq!(r["error"]["details"]["limit"], "uri_bytes");
    // …and one over hyper's own 64 KiB limit, answered by the parser.
    let mut raw = Raw::connect(&bay.base).await;
    let resp = raw.send(&format!("GET /v1/sandboxes?q={} HTTP/1.1\r\nhost: bay\r\n\r\n", "q".repeat(70 * 1024)), b"").await;
    assert_envelope(resp.status, &resp.body, 414, "uri_too_long");

    // 431: headers over `limits.header_bytes` (64 KiB)…
    let (status, r) = {
        let resp = c.req(Method::GET, "/v1/sandboxes").header("x-padding", "h".repeat(70 * 1024)).send().await.unwrap();
        (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
    };
    assert_envelope(status, &r, 431, "headers_too_large");
    assert_eq!(r["error"]["details"]["limit"], "header_bytes");
    // …too many of them…
    let mut req = c.req(Method::GET, "/v1/sandboxes");
    for i in 0..150 {
        req = req.header(format!("x-h{i}"), "1");
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let r: Value = resp.json().await.unwrap();
    assert_envelope(status, &r, 431, "headers_too_large");
    assert_eq!(r["error"]["details"]["limit"], "header_count");
    // …and a head larger than `limits.head_buffer_bytes` (1 MiB), which the
    // HTTP parser refuses itself: still the envelope, then the connection closes.
    let mut raw = Raw::connect(&bay.base).await;
    let resp = raw.send(&format!("GET /health HTTP/1.1\r\nhost: bay\r\nx-big: {}\r\n\r\n", "b".repeat(2 * MIB)), b"").await;
    assert_envelope(resp.status, &resp.body, 431, "headers_too_large");
    assert_eq!(resp.header("connection"), Some("close"));

    // 404 and 405 stay envelopes; an axum extractor's plain-text rejection
    // (a path parameter that is not UTF-8) becomes one.
    let (status, r) = c.get("/v1/no/such/route").await;
    assert_envelope(status, &r, 404, "not_found");
    let (status, r) = c.json(Method::PUT, "/v1/sandboxes", None).await;
    assert_envelope(status, &r, 405, "method_not_allowed");
    let (status, r) = c.get("/v1/sandboxes/%FF%FE").await;
    assert_eq!(status, 400, "{r}");
    assert!(r["error"]["code"].is_string() && r["error"]["request_id"].is_string(), "{r}");

    // An invalid profile name is echoed truncated, not whole.
    let (status, r) = c.post("/v1/sandboxes", json!({"profile": "p".repeat(500 * 1024)})).await;
    assert_envelope(status, &r, 400, "validation_error");
    let message = r["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("Invalid profile: ppp") && message.ends_with('…') && message.chars().count() < 200, "{}", message.len());

    c.delete_sandbox(&id).await;
}

#[tokio::test]
async fn bodies_must_be_objects_and_numbers_in_range() {
    let c = strict().client();
    for body in ["[]", "[{}]", "null", "1", "\"python-default\"", "true"] {
        let resp = c.req(Method::POST, "/v1/sandboxes").header("content-type", "application/json").body(body).send().await.unwrap();
        let status = resp.status().as_u16();
        let r: Value = resp.json().await.unwrap();
        assert_envelope(status, &r, 422, "validation_error");
        assert_eq!(r["error"]["details"]["errors"][0]["loc"], json!(["body"]), "{body}: {r}");
    }
    for (path, body, loc) in [
        ("/v1/sandboxes", json!({"ttl": 9223372036854775807_i64}), json!(["body", "ttl"])),
        ("/v1/sandboxes", json!({"ttl": 18446744073709551615_u64}), json!(["body", "ttl"])),
        ("/v1/sandboxes", json!({"ttl": 1e300}), json!(["body", "ttl"])),
        ("/v1/cargos", json!({"size_limit_mb": 65537}), json!(["body", "size_limit_mb"])),
        ("/v1/cargos", json!({"size_limit_mb": -1}), json!(["body", "size_limit_mb"])),
    ] {
        let (status, r) = c.post(path, body.clone()).await;
        assert_envelope(status, &r, 422, "validation_error");
        assert_eq!(r["error"]["details"]["errors"][0]["loc"], loc, "{body}: {r}");
    }
    for q in ["limit=99999999999999999999", "limit=-5", "limit=0"] {
        let (status, r) = c.get(&format!("/v1/sandboxes?{q}")).await;
        assert_envelope(status, &r, 422, "validation_error");
        assert_eq!(r["error"]["details"]["errors"][0]["loc"], json!(["query", "limit"]), "{q}: {r}");
    }
}

#[tokio::test]
async fn a_huge_ttl_is_refused_and_gc_deletes_nothing() {
    let c = strict().client();
    // ttl 2^63-1 used to wrap to 1970 and GC then deleted the sandbox.
    let (status, r) = c.post("/v1/sandboxes", json!({"ttl": i64::MAX})).await;
    assert_envelope(status, &r, 422, "validation_error");
    let (status, ten_years) = c.post("/v1/sandboxes", json!({"ttl": 315_360_000})).await;
    assert_eq!(status, 201, "{ten_years}");
    assert!(ten_years["expires_at"].as_str().unwrap() > "2030", "{ten_years}");
    let (status, s) = c.post("/v1/sandboxes", json!({"ttl": 3600})).await;
    assert_eq!(status, 201, "{s}");
    let id = s["id"].as_str().unwrap().to_owned();
    let expires_at = s["expires_at"].clone();
    for extend_by in [json!(i64::MAX), json!(315_360_001), json!(u64::MAX)] {
        let (status, r) = c.post(&format!("/v1/sandboxes/{id}/extend_ttl"), json!({"extend_by": extend_by})).await;
        assert_envelope(status, &r, 422, "validation_error");
        assert_eq!(r["error"]["details"]["errors"][0]["loc"], json!(["body", "extend_by"]), "{r}");
    }
    let (status, gc) = c.post("/v1/admin/gc/run", json!({})).await;
    assert!(status == 200 || status == 423, "{gc}");
    let (status, g) = c.get(&format!("/v1/sandboxes/{id}")).await;
    assert_eq!(status, 200, "GC must not have deleted it: {g}");
    assert_eq!(g["expires_at"], expires_at);
    c.delete_sandbox(&id).await;
    c.delete_sandbox(ten_years["id"].as_str().unwrap()).await;
}

#[tokio::test]
async fn roles_keys_and_revocation() {
    let bay = strict();
    let admin = bay.client();
    let (status, created) = admin.post("/v1/admin/keys", json!({"owner": "e2e-roles", "scopes": ["user"], "name": "e2e user"})).await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("sk-bay-"));
    assert_eq!(created["prefix"], &key[..12]);
    assert_eq!((created["owner"].as_str(), created["scopes"].clone()), (Some("e2e-roles"), json!(["user"])));
    let user = Client { auth: Some(("authorization".into(), format!("Bearer {key}"))), ..bay.client() };

    // A user key works at once on the user API, as its own owner…
    let (status, list) = user.get("/v1/sandboxes").await;
    assert_eq!(status, 200, "{list}");
    let id = user.create_sandbox().await;
    let (status, _) = admin.get(&format!("/v1/sandboxes/{id}")).await;
    assert_eq!(status, 404, "another owner's sandbox");
    // …and is forbidden on every admin route.
    for (method, path) in [
        (Method::GET, "/v1/admin/gc/status"),
        (Method::POST, "/v1/admin/gc/run"),
        (Method::GET, "/v1/admin/plugins"),
        (Method::GET, "/v1/admin/keys"),
        (Method::POST, "/v1/admin/keys"),
        (Method::DELETE, "/v1/admin/keys/whatever"),
    ] {
        let (status, r) = user.json(method.clone(), path, Some(json!({}))).await;
        assert_envelope(status, &r, 403, "forbidden");
        assert_eq!(r["error"]["details"]["required_scope"], "admin", "{method} {path}");
    }
    // Anonymous callers are users too.
    let (status, r) = anonymous().owner("e2e-anon").get("/v1/admin/gc/status").await;
    assert_envelope(status, &r, 403, "forbidden");

    // The listing never shows a secret; an admin key made at runtime is an admin.
    let (status, keys) = admin.get("/v1/admin/keys").await;
    assert_eq!(status, 200);
    let listed = keys["items"].as_array().unwrap().iter().find(|k| k["id"] == created["id"]).unwrap().clone();
    assert!(listed.get("key").is_none() && listed.get("key_hash").is_none(), "{listed}");
    assert_eq!(listed["active"], true);
    let (_, second) = admin.post("/v1/admin/keys", json!({"scopes": ["admin"]})).await;
    let admin2 = Client { auth: Some(("authorization".into(), format!("Bearer {}", second["key"].as_str().unwrap()))), ..bay.client() };
    let (status, _) = admin2.get("/v1/admin/gc/status").await;
    assert_eq!(status, 200);
    let (status, r) = admin.post("/v1/admin/keys", json!({"scopes": ["root"]})).await;
    assert_envelope(status, &r, 422, "validation_error");

    // Revoked: stops at once.
    user.delete_sandbox(&id).await;
    let (status, _) = admin.json(Method::DELETE, &format!("/v1/admin/keys/{}", created["id"].as_str().unwrap()), None).await;
    assert_eq!(status, 204);
    let (status, r) = user.get("/v1/sandboxes").await;
    assert_envelope(status, &r, 401, "unauthorized");
    let (status, r) = admin.json(Method::DELETE, &format!("/v1/admin/keys/{}", created["id"].as_str().unwrap()), None).await;
    assert_envelope(status, &r, 404, "not_found");
    let (status, _) = admin.json(Method::DELETE, &format!("/v1/admin/keys/{}", second["id"].as_str().unwrap()), None).await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn early_errors_reach_clients_that_send_the_whole_body_first() {
    let bay = strict();
    let c = bay.client();
    let id = c.create_sandbox().await;
    let mut raw = Raw::connect(&bay.base).await;
    let file = vec![b'f'; 8 * MIB];

    // Unknown sandbox: 404 before the body is read.
    let body = multipart("B", b"a.txt", &file);
    let resp = raw
        .send(&post_head("/v1/sandboxes/sandbox-000000000000/filesystem/upload", &bay.key, "multipart/form-data; boundary=B", body.len()), &body)
        .await;
    assert_envelope(resp.status, &resp.body, 404, "not_found");
    // A bad path: 400 once the `path` field is read, the file part unread.
    let body = multipart("B", b"/etc/passwd", &file);
    let resp =
        raw.send(&post_head(&format!("/v1/sandboxes/{id}/filesystem/upload"), &bay.key, "multipart/form-data; boundary=B", body.len()), &body).await;
    assert_envelope(resp.status, &resp.body, 400, "invalid_path");
    // A body declared over its route's limit: 413 before reading.
    let body = json_with_string("profile", 6 * MIB);
    let resp = raw.send(&post_head("/v1/sandboxes", &bay.key, "application/json", body.len()), &body).await;
    assert_envelope(resp.status, &resp.body, 413, "payload_too_large");
    assert_ne!(resp.header("connection"), Some("close"));
    // The same connection still serves the next request.
    let resp = raw.send("GET /health HTTP/1.1\r\nhost: bay\r\n\r\n", b"").await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body["status"], "ok");
    c.delete_sandbox(&id).await;
}

/// Quotas, the CLI's keys, loopback-only anonymous access and memory need
/// their own configuration: one `bay serve` child each. `replace` swaps
/// whole top-level lines of the base config (given the port).
fn child(name: &str, extra: &str, replace: impl Fn(u16) -> Vec<(&'static str, String)>) -> (BayProcess, tempfile::TempDir, String) {
    let instance = format!("bay-e2e-attacks-{name}");
    bay_tests::remove_instance(&instance);
    let dir = tempfile::Builder::new().prefix("bay-e2e-attacks-").tempdir().unwrap();
    let port = free_port();
    let replace = replace(port);
    let yaml = BayProcess::base_config(dir.path(), &instance, port)
        .lines()
        .map(|l| replace.iter().find(|(k, _)| l.starts_with(k)).map(|(_, v)| v.clone()).unwrap_or_else(|| l.to_owned()))
        .collect::<Vec<_>>()
        .join("\n")
        + "\nsessions: {warmup_on_create: false}\n"
        + extra;
    (BayProcess::spawn(dir.path(), port, &yaml), dir, instance)
}

#[tokio::test]
async fn quotas_per_owner() {
    let (bay, _dir, instance) = child("quotas", "quotas: {max_sandboxes: 2, max_cargos: 1, max_cargo_mb: 2100}\n", |_| vec![]);
    bay.wait_ready().await;
    let c = bay.client();
    let a = c.create_sandbox().await;
    let b = c.create_sandbox().await;
    let (status, r) = c.post("/v1/sandboxes", json!({})).await;
    assert_envelope(status, &r, 429, "quota_exceeded");
    let d = &r["error"]["details"];
    assert_eq!((d["quota"].as_str(), d["current"].as_u64(), d["maximum"].as_u64()), (Some("max_sandboxes"), Some(2), Some(2)), "{r}");
    // Two managed cargos of 1024 MB: 52 MB left.
    let (status, r) = c.post("/v1/cargos", json!({"size_limit_mb": 100})).await;
    assert_envelope(status, &r, 429, "quota_exceeded");
    assert_eq!((r["error"]["details"]["quota"].as_str(), r["error"]["details"]["current"].as_u64()), (Some("max_cargo_mb"), Some(2048)));
    let (status, cargo) = c.post("/v1/cargos", json!({"size_limit_mb": 50})).await;
    assert_eq!(status, 201, "{cargo}");
    let (status, r) = c.post("/v1/cargos", json!({"size_limit_mb": 1})).await;
    assert_envelope(status, &r, 429, "quota_exceeded");
    assert_eq!(r["error"]["details"]["quota"], "max_cargos");
    // Freed by a delete.
    c.delete_sandbox(&a).await;
    let (status, s) = c.post("/v1/sandboxes", json!({"cargo_id": cargo["id"]})).await;
    assert_eq!(status, 201, "{s}");
    for id in [b, s["id"].as_str().unwrap().to_owned()] {
        c.delete_sandbox(&id).await;
    }
    drop(bay);
    bay_tests::remove_instance(&instance);
}

#[tokio::test]
async fn keys_from_the_cli_work_and_stop_within_seconds() {
    let (bay, dir, instance) = child("cli-keys", "", |_| vec![]);
    bay.wait_ready().await;
    let config = dir.path().join("config.yaml");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bay_tests::bay_binary())
            .arg("keys")
            .args(args)
            .arg("--config")
            .arg(&config)
            .env("BAY_DATA_DIR", dir.path())
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(out.status.success(), "bay keys {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let created: Value = serde_json::from_str(&run(&["create", "--owner", "cli-e2e", "--scope", "user", "--name", "from the CLI"])).unwrap();
    let key = created["key"].as_str().unwrap();
    assert!(run(&["list"]).contains(created["id"].as_str().unwrap()));
    let user = Client { auth: Some(("authorization".into(), format!("Bearer {key}"))), ..bay.client() };
    let until = |want: u16| {
        let user = user.clone();
        async move {
            let started = Instant::now();
            loop {
                let (status, _) = user.get("/v1/sandboxes").await;
                if status == want {
                    return;
                }
                // The running Bay reads the keys again after auth::KEY_CACHE_TTL (5 s).
                assert!(started.elapsed() < Duration::from_secs(10), "still {status}, want {want}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    until(200).await;
    run(&["revoke", created["id"].as_str().unwrap()]);
    until(401).await;
    drop(bay);
    bay_tests::remove_instance(&instance);
}

/// A non-loopback IPv4 address of this machine, if it has one.
fn network_address() -> Option<String> {
    let out = std::process::Command::new("hostname").arg("-I").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|a| a.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| !ip.is_loopback()))
        .map(str::to_owned)
}

#[tokio::test]
async fn anonymous_access_is_honoured_from_loopback_only() {
    let Some(address) = network_address() else {
        eprintln!("no non-loopback address on this machine: skipped");
        return;
    };
    for from_network in [false, true] {
        let (bay, _dir, instance) = child(if from_network { "anon-net" } else { "anon-loop" }, "", |port| {
            vec![
                ("server:", format!("server: {{host: 0.0.0.0, port: {port}}}")),
                ("security:", format!("security: {{api_key: sk-e2e-process-key, allow_anonymous: true, anonymous_from_network: {from_network}}}")),
            ]
        });
        bay.wait_ready().await;
        let port = bay.base.rsplit(':').next().unwrap().to_owned();
        let http = reqwest::Client::new();
        let list = |base: String, auth: Option<&'static str>| {
            let http = http.clone();
            async move {
                let mut r = http.get(format!("{base}/v1/sandboxes")).header("x-owner", "anon-e2e");
                if let Some(k) = auth {
                    r = r.header("authorization", format!("Bearer {k}"));
                }
                r.send().await.unwrap().status().as_u16()
            }
        };
        let remote = format!("http://{address}:{port}");
        assert_eq!(list(bay.base.clone(), None).await, 200, "anonymous from loopback");
        assert_eq!(list(remote.clone(), None).await, if from_network { 200 } else { 401 }, "anonymous from {address}");
        assert_eq!(list(remote, Some("sk-e2e-process-key")).await, 200, "a key works from anywhere");
        let log = std::fs::read_to_string(&bay.log).unwrap();
        let warning = if from_network { "anonymous_from_network is on" } else { "anonymous access is on and Bay listens beyond loopback" };
        assert!(log.contains(warning), "{log}");
        drop(bay);
        bay_tests::remove_instance(&instance);
    }
}

fn rss_mb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    kb / 1024
}

/// Writes a request with a body of `len` bytes made of `prefix`, filler and
/// `suffix`, tolerating a connection Bay closes early; the status if any.
async fn send_big(base: &str, head: &str, prefix: &[u8], suffix: &[u8], len: usize) -> Option<u16> {
    let mut stream = TcpStream::connect(host_port(base)).await.unwrap();
    let block = vec![b'a'; MIB];
    let mut result: std::io::Result<()> = stream.write_all(head.as_bytes()).await;
    if result.is_ok() {
        result = stream.write_all(prefix).await;
    }
    let mut left = len - prefix.len() - suffix.len();
    while result.is_ok() && left > 0 {
        let n = left.min(block.len());
        result = stream.write_all(&block[..n]).await;
        left -= n;
    }
    if result.is_ok() {
        let _ = stream.write_all(suffix).await;
    }
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf)).await.ok()?.ok()?;
    std::str::from_utf8(&buf[..n]).ok()?.split(' ').nth(1)?.parse().ok()
}

/// Memory after a burst of large requests. Measured (debug build, 2 cores):
/// before the limits, idle 61 MB, 1153 MB during 20 × 64 MiB bodies, 2309 MB
/// during a 1 GiB upload `path` field, 261 MB after; now idle ~58 MB, peak
/// ~70 MB, ~60 MB after. The bounds below are generous on purpose: they catch
/// a body buffered whole again, not a few megabytes of drift.
#[tokio::test]
async fn memory_returns_near_idle_after_large_bodies() {
    let (bay, _dir, instance) = child("rss", "", |_| vec![]);
    bay.wait_ready().await;
    let c = bay.client();
    let sandbox = c.create_sandbox().await;
    let pid = bay.child.id();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_mb(pid);
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(idle));
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        tokio::spawn(async move {
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                peak.fetch_max(rss_mb(pid), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let key = bay.key.clone();
    let boundary = "XBOUNDARYX";
    let routes: Vec<(String, &'static str, Vec<u8>, Vec<u8>)> = vec![
        ("/v1/sandboxes".into(), "application/json", b"{\"profile\": \"".to_vec(), b"\"}".to_vec()),
        ("/v1/sandboxes/sandbox-000000000000/python/exec".into(), "application/json", b"{\"code\": \"".to_vec(), b"\"}".to_vec()),
        ("/v1/skills/payloads".into(), "application/json", b"{\"payload\": {\"x\": \"".to_vec(), b"\"}}".to_vec()),
        (
            format!("/v1/sandboxes/{sandbox}/filesystem/upload"),
            "multipart/form-data; boundary=XBOUNDARYX",
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"path\"\r\n\r\n").into_bytes(),
            format!("\r\n--{boundary}--\r\n").into_bytes(),
        ),
    ];
    // 20 × 64 MiB, four at a time, each worker on every route in turn.
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (routes, base, key) = (routes.clone(), bay.base.clone(), key.clone());
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for i in 0..5 {
                    let (path, ct, prefix, suffix) = &routes[(w + i) % routes.len()];
                    let head = post_head(path, &key, ct, 64 * MIB);
                    statuses.push((path.clone(), send_big(&base, &head, prefix, suffix, 64 * MIB).await));
                }
                statuses
            })
        })
        .collect();
    for w in workers {
        for (path, status) in w.await.unwrap() {
            assert_eq!(status, Some(413), "{path}");
        }
    }
    let burst_peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    // One 1 GiB body on two routes: refused early, the connection closed.
    for (path, ct, prefix, suffix) in [&routes[0], &routes[3]] {
        let _ = send_big(&bay.base, &post_head(path, &key, ct, 1 << 30), prefix, suffix, 1 << 30).await;
    }
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    sampler.await.unwrap();
    // The trimmer (bay::memory) looks every 5 s.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let after = rss_mb(pid);
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("RSS: idle {idle} MB, peak {peak} MB (burst {burst_peak} MB), after {after} MB");
    assert!(peak < idle + 250, "RSS peaked at {peak} MB (idle {idle} MB)");
    assert!(after < 150, "RSS stayed at {after} MB after the burst (idle {idle} MB, peak {peak} MB)");
    let (status, _) = c.get("/health").await;
    assert_eq!(status, 200);
    c.delete_sandbox(&sandbox).await;
    drop(bay);
    bay_tests::remove_instance(&instance);
}
