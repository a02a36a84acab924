//! Live exec rows: time to the first streamed byte, stream throughput
//! through Bay vs straight from Ship, many open streams at once, resume.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

use crate::{Api, KEY, Row, Stats, fmt, row, rss_kib, runtime_endpoint, time_n};

/// Bytes of one streamed stdout (Ship caps a streamed exec at 8 MiB per
/// stream; this stays under it).
const STREAM_BYTES: usize = 8_000_000;

/// A streamed shell request on Bay.
fn stream(api: &Api, id: &str, command: &str) -> reqwest::RequestBuilder {
    api.http
        .post(format!("{}/v1/sandboxes/{id}/shell/exec", api.base))
        .bearer_auth(KEY)
        .header("accept", "text/event-stream")
        .json(&json!({ "command": command, "timeout": 120 }))
}

/// Reads a response to its end: (bytes, time to its first chunk).
async fn drain(mut resp: reqwest::Response, started: Instant) -> anyhow::Result<(usize, Duration)> {
    anyhow::ensure!(resp.status().is_success(), "{}", resp.status());
    let (mut n, mut first) = (0, None);
    while let Some(chunk) = resp.chunk().await? {
        first.get_or_insert_with(|| started.elapsed());
        n += chunk.len();
    }
    Ok((n, first.unwrap_or_default()))
}

fn mb_per_s(bytes: usize, d: Duration) -> String {
    format!("{:.0} MB/s", bytes as f64 / 1e6 / d.as_secs_f64().max(1e-9))
}

pub(crate) async fn rows(api: &Api, bay_pid: u32, quick: bool) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let n = if quick { 10 } else { 50 };
    let id = api.create().await?;
    api.shell(&id, "true").await?;

    // Time to the first streamed event vs the whole non-streamed answer.
    let whole = time_n(n, 3, || async {
        let t = Instant::now();
        drain(stream(api, &id, "echo hi").send().await?, t).await.map(drop)
    })
    .await?;
    let mut firsts = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let (_, first) = drain(stream(api, &id, "echo hi; sleep 0.2").send().await?, t).await?;
        firsts.push(first);
    }
    let firsts = Stats::new(firsts);
    let plain = time_n(n, 3, || async { api.shell(&id, "echo hi").await.map(drop) }).await?;
    rows.push(row("live: streamed `echo`, first byte", &firsts, format!("non-streamed exec p50 {}", fmt(plain.p50()))));
    rows.push(row("live: streamed `echo`, whole stream", &whole, String::new()));

    // Throughput: 8 MB of stdout streamed through Bay, and straight from Ship.
    let cmd = format!("head -c {STREAM_BYTES} /dev/zero | tr '\\0' x");
    let (endpoint, direct) = runtime_endpoint(&id)?;
    let rss_before = rss_kib(bay_pid);
    let (mut via_bay, mut via_ship) = (Vec::new(), Vec::new());
    let (mut bay_bytes, mut ship_bytes) = (0, 0);
    for _ in 0..(if quick { 2 } else { 5 }) {
        let t = Instant::now();
        bay_bytes = drain(stream(api, &id, &cmd).send().await?, t).await?.0;
        via_bay.push(t.elapsed());
        let t = Instant::now();
        let resp = direct.post(format!("{endpoint}/shell/exec/stream")).json(&json!({ "command": cmd, "timeout": 120 })).send().await?;
        ship_bytes = drain(resp, t).await?.0;
        via_ship.push(t.elapsed());
    }
    let rss_after = rss_kib(bay_pid);
    let (via_bay, via_ship) = (Stats::new(via_bay), Stats::new(via_ship));
    rows.push(row(
        "live: 8 MB stdout streamed via Bay",
        &via_bay,
        format!(
            "{} ({} SSE bytes); Bay RSS {:.0} → {:.0} MB",
            mb_per_s(STREAM_BYTES, via_bay.p50()),
            bay_bytes,
            rss_before as f64 / 1024.0,
            rss_after as f64 / 1024.0
        ),
    ));
    rows.push(row(
        "live: 8 MB stdout straight from Ship",
        &via_ship,
        format!("{} ({ship_bytes} NDJSON bytes)", mb_per_s(STREAM_BYTES, via_ship.p50())),
    ));

    // Many open streams at once, across sandboxes (a sandbox's pids limit
    // bounds its own).
    let open: usize = if quick { 40 } else { 200 };
    let sandboxes: Vec<String> = {
        let mut v = vec![id.clone()];
        for _ in 1..open.div_ceil(50) {
            let s = api.create().await?;
            api.shell(&s, "true").await?;
            v.push(s);
        }
        v
    };
    let rss_idle = rss_kib(bay_pid);
    let mut streams = Vec::new();
    for i in 0..open {
        let resp = stream(api, &sandboxes[i % sandboxes.len()], "echo up; sleep 15; echo down").send().await?;
        anyhow::ensure!(resp.status().is_success(), "stream {i}: {}", resp.status());
        streams.push(resp);
    }
    let cpu_before = cpu_ticks(bay_pid);
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let cpu = (cpu_ticks(bay_pid) - cpu_before) as f64 / 100.0 / t.elapsed().as_secs_f64();
    let rss_open = rss_kib(bay_pid);
    let all = futures::future::join_all(streams.into_iter().map(|r| drain(r, Instant::now()))).await;
    let done = all.iter().filter(|r| r.is_ok()).count();
    rows.push(Row {
        name: format!("live: {open} streams open at once"),
        n: open,
        p50: String::new(),
        p90: String::new(),
        p99: String::new(),
        note: format!(
            "Bay RSS {:.0} MB idle → {:.0} MB open, CPU {:.1}% while they wait; {done}/{open} finished",
            rss_idle as f64 / 1024.0,
            rss_open as f64 / 1024.0,
            cpu * 100.0
        ),
    });

    // Resume: a background process's output from the middle of its scrollback.
    let p: Value = api.call(reqwest::Method::POST, &format!("/v1/sandboxes/{id}/processes"), Some(json!({"command": "seq 1 20000"}))).await?;
    let pid = p["id"].as_str().context("process id")?.to_owned();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let resume = time_n(n, 2, || async {
        let t = Instant::now();
        let resp = api
            .http
            .get(format!("{}/v1/sandboxes/{id}/processes/{pid}/output?follow=true", api.base))
            .bearer_auth(KEY)
            .header("accept", "text/event-stream")
            .header("last-event-id", "1")
            .send()
            .await?;
        drain(resp, t).await.map(drop)
    })
    .await?;
    rows.push(row("live: resume a finished process's output", &resume, "Last-Event-ID, replay to the end".into()));
    for s in &sandboxes {
        api.delete(s).await?;
    }
    Ok(rows)
}

/// utime + stime of a process, in clock ticks (100 per second on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1;
            let f: Vec<&str> = after.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}
