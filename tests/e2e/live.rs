//! Live exec against a real Ship: streamed shell output (Server-Sent Events),
//! background processes with stdin, signals and resumable output, the
//! terminal WebSocket, and their error envelopes.

use std::time::Duration;

use bay_tests::{Client, strict};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// One Server-Sent Event: its name, id and JSON data.
#[derive(Debug)]
struct Sse {
    event: String,
    id: Option<u64>,
    data: Value,
}

/// Reads SSE events off a response as they arrive.
struct SseReader {
    resp: reqwest::Response,
    buf: String,
}

impl SseReader {
    fn new(resp: reqwest::Response) -> SseReader {
        assert_eq!(resp.status(), 200);
        let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with("text/event-stream"), "{ct}");
        SseReader { resp, buf: String::new() }
    }

    /// The next event, or None at the end of the stream (keep-alive comments skipped).
    async fn next(&mut self) -> Option<Sse> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut event, mut id, mut data) = ("message".to_owned(), None, String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if data.is_empty() {
                    continue;
                }
                return Some(Sse { event, id, data: serde_json::from_str(&data).unwrap_or(Value::String(data)) });
            }
            let chunk = tokio::time::timeout(Duration::from_secs(60), self.resp.chunk()).await.expect("an event within 60 s").expect("stream")?;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

async fn stream_shell(c: &Client, id: &str, command: &str) -> SseReader {
    let resp = c
        .req(reqwest::Method::POST, &format!("/v1/sandboxes/{id}/shell/exec"))
        .header("accept", "text/event-stream")
        .json(&json!({ "command": command, "timeout": 30 }))
        .send()
        .await
        .unwrap();
    SseReader::new(resp)
}

#[tokio::test]
async fn streamed_shell_output_arrives_while_the_command_runs() {
    let c = strict().client();
    let id = c.create_sandbox().await;
    // The command waits for a file that only this test creates, after it has
    // seen the first line: a Bay that held output back until the end would
    // never deliver "waiting" in time, and the command would time out.
    let cmd =
        "echo waiting; for i in $(seq 200); do [ -e /workspace/go ] && break; sleep 0.1; done; [ -e /workspace/go ] && echo released; echo oops >&2";
    let mut s = stream_shell(&c, &id, cmd).await;
    let first = s.next().await.expect("an event");
    assert_eq!((first.event.as_str(), first.id), ("stdout", Some(1)), "{first:?}");
    assert_eq!(first.data["data"], "waiting\n");
    let out = c.shell(&id, "touch /workspace/go").await;
    assert_eq!(out["success"], true, "{out}");

    let (mut seqs, mut stdout, mut stderr, mut result) = (vec![1], String::from("waiting\n"), String::new(), None);
    while let Some(e) = s.next().await {
        match e.event.as_str() {
            "stdout" => stdout.push_str(e.data["data"].as_str().unwrap()),
            "stderr" => stderr.push_str(e.data["data"].as_str().unwrap()),
            "result" => {
                result = Some(e.data);
                break;
            }
            other => panic!("unexpected event {other}: {:?}", e.data),
        }
        seqs.push(e.id.expect("every runtime event has an id"));
    }
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "ids count up without holes");
    assert_eq!((stdout.as_str(), stderr.as_str()), ("waiting\nreleased\n", "oops\n"));
    // The last event is the non-streamed answer, and it is in the history.
    let result = result.expect("a result event");
    assert_eq!(result["success"], true, "{result}");
    assert_eq!(result["output"], "waiting\nreleased", "{result}");
    let (_, history) = c.get(&format!("/v1/sandboxes/{id}/history?exec_type=shell")).await;
    assert!(history["entries"].as_array().unwrap().iter().any(|h| h["code"].as_str() == Some(cmd)), "{history}");
    c.delete_sandbox(&id).await;
}

#[tokio::test]
async fn background_processes_take_stdin_signals_and_resume_their_output() {
    let c = strict().client();
    let id = c.create_sandbox().await;
    let (status, p) = c.post(&format!("/v1/sandboxes/{id}/processes"), json!({ "command": "while read l; do echo got:$l; done; echo eof" })).await;
    assert_eq!(status, 201, "{p}");
    let pid = p["id"].as_str().unwrap().to_owned();
    assert_eq!(p["status"], "running", "{p}");

    let base = format!("/v1/sandboxes/{id}/processes/{pid}");
    let (status, r) = c.post(&format!("{base}/stdin"), json!({ "data": "one\ntwo\n" })).await;
    assert_eq!(status, 200, "{r}");
    // Follow the output live: both lines arrive while the process still runs.
    let resp = c.req(reqwest::Method::GET, &format!("{base}/output?follow=true")).header("accept", "text/event-stream").send().await.unwrap();
    let mut s = SseReader::new(resp);
    let mut text = String::new();
    let mut last = 0;
    while !text.contains("got:two") {
        let e = s.next().await.expect("output");
        text.push_str(e.data["data"].as_str().unwrap_or_default());
        last = e.id.unwrap();
    }
    drop(s);
    assert_eq!(text, "got:one\ngot:two\n");

    // Close stdin: the loop ends. Resuming after the last event seen gives
    // only what came after it.
    let (status, r) = c.post(&format!("{base}/stdin"), json!({ "data": "three\n", "eof": true })).await;
    assert_eq!(status, 200, "{r}");
    let resp = c
        .req(reqwest::Method::GET, &format!("{base}/output?follow=true"))
        .header("accept", "text/event-stream")
        .header("last-event-id", last.to_string())
        .send()
        .await
        .unwrap();
    let mut s = SseReader::new(resp);
    let mut rest = String::new();
    let mut exit = None;
    while let Some(e) = s.next().await {
        assert!(e.id.is_none_or(|i| i > last), "{e:?} replayed");
        match e.event.as_str() {
            "exit" => exit = Some(e.data),
            _ => rest.push_str(e.data["data"].as_str().unwrap_or_default()),
        }
    }
    assert_eq!(rest, "got:three\neof\n");
    assert_eq!(exit.expect("an exit event")["exit_code"], 0);
    let (_, info) = c.get(&base).await;
    assert_eq!((info["status"].as_str(), info["exit_code"].as_i64()), (Some("exited"), Some(0)), "{info}");

    // A process killed by a signal reports it.
    let (_, p) = c.post(&format!("/v1/sandboxes/{id}/processes"), json!({ "command": "sleep 300" })).await;
    let sleeper = format!("/v1/sandboxes/{id}/processes/{}", p["id"].as_str().unwrap());
    let (status, r) = c.post(&format!("{sleeper}/signal"), json!({ "signal": "TERM" })).await;
    assert_eq!(status, 200, "{r}");
    let mut info = Value::Null;
    for _ in 0..100 {
        info = c.get(&sleeper).await.1;
        if info["status"] == "exited" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(info["exit_code"], -15, "{info}");
    let (_, list) = c.get(&format!("/v1/sandboxes/{id}/processes")).await;
    assert_eq!(list["processes"].as_array().map(Vec::len), Some(2), "{list}");
    c.delete_sandbox(&id).await;
}

#[tokio::test]
async fn live_errors_are_envelopes() {
    let c = strict().client();
    let id = c.create_sandbox().await;
    let (status, e) = c.get(&format!("/v1/sandboxes/{id}/processes/p-nope")).await;
    assert_eq!(status, 404, "{e}");
    assert!(e["error"]["message"].is_string(), "{e}");
    let (status, e) = c.post(&format!("/v1/sandboxes/{id}/processes"), json!({ "command": "true", "cwd": "../etc" })).await;
    assert!(status == 400 || status == 403, "{status} {e}");
    assert!(e["error"]["code"].is_string(), "{e}");
    let (_, p) = c.post(&format!("/v1/sandboxes/{id}/processes"), json!({ "command": "echo x" })).await;
    let pid = p["id"].as_str().unwrap();
    let (status, e) = c.get(&format!("/v1/sandboxes/{id}/processes/{pid}/output?from_seq=1000")).await;
    assert_eq!(status, 400, "{e}");
    let (status, e) = c.post(&format!("/v1/sandboxes/{id}/processes/{pid}/resize"), json!({ "cols": 0, "rows": 24 })).await;
    assert_eq!(status, 422, "{e}");
    assert_eq!(e["error"]["details"]["errors"][0]["loc"], json!(["body", "cols"]), "{e}");
    // A signal by number works like one by name; an id that cannot exist is 404.
    let (_, p) = c.post(&format!("/v1/sandboxes/{id}/processes"), json!({ "command": "sleep 300" })).await;
    let (status, r) = c.post(&format!("/v1/sandboxes/{id}/processes/{}/signal", p["id"].as_str().unwrap()), json!({ "signal": 9 })).await;
    assert_eq!(status, 200, "{r}");
    let (status, e) = c.get(&format!("/v1/sandboxes/{id}/processes/a.b")).await;
    assert_eq!((status, e["error"]["code"].as_str()), (404, Some("not_found")), "{e}");
    // The terminal is a WebSocket; a plain GET says so.
    let (status, e) = c.get(&format!("/v1/sandboxes/{id}/terminal")).await;
    assert_eq!(status, 400, "{e}");
    assert_eq!(e["error"]["details"]["reason"], "websocket_required", "{e}");
    // The tutorial's lite runtime streams shell output (its adapter's
    // `live` maps that one operation) and has no background processes:
    // asking for one says so.
    let (_, lite) = c.post("/v1/sandboxes", json!({ "profile": "lite" })).await;
    let lite = lite["id"].as_str().unwrap().to_owned();
    let mut s = stream_shell(&c, &lite, "echo one; echo two >&2; exit 3").await;
    let (mut out, mut result) = (String::new(), None);
    while let Some(e) = s.next().await {
        match e.event.as_str() {
            "stdout" | "stderr" => out.push_str(e.data["data"].as_str().unwrap()),
            "result" => result = Some(e.data),
            other => panic!("unexpected event {other}"),
        }
    }
    let result = result.expect("a result event");
    assert_eq!((result["exit_code"].as_i64(), result["success"].as_bool()), (Some(3), Some(false)), "{result}");
    assert!(out.contains("one\n") && out.contains("two\n"), "{out}");
    let (status, e) = c.post(&format!("/v1/sandboxes/{lite}/processes"), json!({ "command": "sleep 1" })).await;
    assert_eq!((status, e["error"]["code"].as_str()), (400, Some("capability_not_supported")), "{e}");
    c.delete_sandbox(&lite).await;
    // Someone else's sandbox is not found.
    let (status, _) = strict().owner("mallory").get(&format!("/v1/sandboxes/{id}/processes")).await;
    assert!(status == 401 || status == 404, "{status}");
    c.delete_sandbox(&id).await;
}

#[tokio::test]
async fn the_terminal_runs_a_shell_over_a_websocket() {
    let c = strict().client();
    let id = c.create_sandbox().await;
    let url = format!("{}/v1/sandboxes/{id}/terminal?cols=100&rows=30", c.base.replacen("http", "ws", 1));
    let mut req = url.into_client_request().unwrap();
    let (k, v) = c.auth.clone().unwrap();
    req.headers_mut().insert(reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("terminal");
    ws.send(Message::text("echo size=$(stty size) sum=$((6*7))\r")).await.unwrap();
    let mut screen = String::new();
    while !screen.contains("size=30 100 sum=42") {
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next()).await.expect("output within 30 s").expect("open").unwrap();
        match msg {
            Message::Text(t) => screen.push_str(&t),
            Message::Binary(b) => screen.push_str(&String::from_utf8_lossy(&b)),
            _ => {}
        }
    }
    ws.send(Message::text(json!({ "type": "resize", "cols": 120, "rows": 40 }).to_string())).await.unwrap();
    ws.send(Message::text("echo now=$(stty size)\r")).await.unwrap();
    while !screen.contains("now=40 120") {
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next()).await.expect("output within 30 s").expect("open").unwrap();
        if let Message::Text(t) = msg {
            screen.push_str(&t);
        } else if let Message::Binary(b) = msg {
            screen.push_str(&String::from_utf8_lossy(&b));
        }
    }
    ws.close(None).await.unwrap();
    c.delete_sandbox(&id).await;
}

#[tokio::test]
async fn streamed_python_output_arrives_cell_by_piece_and_closing_interrupts() {
    let c = strict().client();
    let id = c.create_sandbox().await;
    let stream = |code: &str| {
        c.req(reqwest::Method::POST, &format!("/v1/sandboxes/{id}/python/exec"))
            .header("accept", "text/event-stream")
            .json(&json!({ "code": code, "timeout": 60 }))
            .send()
    };
    // As with the shell: the cell waits for a file this test creates only
    // after it has seen the first print.
    let code = "import os, time\nprint('waiting', flush=True)\nfor _ in range(300):\n    if os.path.exists('/workspace/go-py'): break\n    time.sleep(0.1)\nprint('released')\n40 + 2";
    let mut s = SseReader::new(stream(code).await.unwrap());
    let first = s.next().await.expect("an event");
    assert_eq!(
        (first.event.as_str(), first.data["name"].as_str(), first.data["data"].as_str()),
        ("stream", Some("stdout"), Some("waiting\n")),
        "{first:?}"
    );
    c.shell(&id, "touch /workspace/go-py").await;
    let (mut kinds, mut result) = (vec![], None);
    while let Some(e) = s.next().await {
        if e.event == "result" {
            result = Some(e.data);
            break;
        }
        kinds.push(e.event);
    }
    assert_eq!(kinds.last().map(String::as_str), Some("execute_result"), "{kinds:?}");
    assert!(kinds.iter().all(|k| k == "stream" || k == "execute_result"), "{kinds:?}");
    let result = result.expect("a result event");
    assert_eq!(result["success"], true, "{result}");
    assert_eq!(result["output"], "waiting\nreleased\n42", "{result}");

    // A plot streams as a display_data event carrying the PNG.
    let mut s = SseReader::new(stream("import matplotlib.pyplot as plt\nkept = 41\nplt.plot([1, 2])\nplt.show()").await.unwrap());
    let mut png = None;
    while let Some(e) = s.next().await {
        if e.event == "display_data" {
            png = e.data["data"]["image/png"].as_str().map(str::to_owned);
        }
        if e.event == "result" {
            assert_eq!(e.data["data"]["output"]["images"].as_array().map(Vec::len), Some(1), "{:?}", e.data);
            break;
        }
    }
    let png = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, png.expect("a display_data event with a PNG")).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");

    // A reader that goes away interrupts its cell: the kernel is free at
    // once (a cell still sleeping would make the next call wait 50 s more
    // than its 20 s timeout allows), and keeps its variables.
    let mut s = SseReader::new(stream("import time\nprint('sleeping', flush=True)\ntime.sleep(50)").await.unwrap());
    assert_eq!(s.next().await.expect("an event").event, "stream");
    drop(s);
    let (status, r) = c.post(&format!("/v1/sandboxes/{id}/python/exec"), json!({ "code": "kept + 1", "timeout": 20 })).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!((r["success"].as_bool(), r["output"].as_str()), (Some(true), Some("42")), "{r}");
    c.delete_sandbox(&id).await;
}

#[tokio::test]
async fn a_background_process_outlives_a_killed_bay() {
    let dir = tempfile::Builder::new().prefix("bay-e2e-live-restart-").tempdir().unwrap();
    let (instance, port) = ("bay-e2e-live-restart", bay_tests::free_port());
    let profiles = "profiles:\n  - {id: python-default, image: \"ship:latest\"}\n";
    let mut bay = bay_tests::BayProcess::start_with(dir.path(), instance, port, profiles);
    bay.wait_ready().await;
    let c = bay.client();
    let id = c.create_sandbox().await;
    let (status, p) =
        c.post(&format!("/v1/sandboxes/{id}/processes"), json!({ "command": "for i in $(seq 1 600); do echo line-$i; sleep 0.1; done" })).await;
    assert_eq!(status, 201, "{p}");
    let base = format!("/v1/sandboxes/{id}/processes/{}", p["id"].as_str().unwrap());
    tokio::time::sleep(Duration::from_secs(1)).await;
    bay.kill();

    let bay = bay_tests::BayProcess::start_with(dir.path(), instance, port, profiles);
    bay.wait_ready().await;
    let c = bay.client();
    let (status, info) = c.get(&base).await;
    assert_eq!((status, info["status"].as_str()), (200, Some("running")), "{info}");
    // Everything it printed, from the first event, without holes.
    let (status, out) = c.get(&format!("{base}/output?from_seq=0")).await;
    assert_eq!(status, 200, "{out}");
    let events = out["events"].as_array().unwrap();
    let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "{out}");
    let text: String = events.iter().filter_map(|e| e["data"].as_str()).collect();
    let expected: String = (1..=text.lines().count()).map(|i| format!("line-{i}\n")).collect();
    assert!(text.lines().count() >= 10, "{text}");
    assert_eq!(text, expected);
    let (status, r) = c.post(&format!("{base}/signal"), json!({ "signal": "KILL" })).await;
    assert_eq!(status, 200, "{r}");
    c.delete_sandbox(&id).await;
    drop(bay);
    bay_tests::remove_instance(instance);
}
