//! Where a cold start's time goes: create answered, the engine's container
//! created and started (its own timestamps), the runtime answering a first
//! shell call, then the kernel's start and first Python answer.

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;

use crate::{Api, Row, Stats, row};

/// Seconds since midnight UTC of an engine timestamp
/// (`2026-12-01T10:53:10.123456789Z`).
fn day_seconds(rfc3339: &str) -> Option<f64> {
    let time = rfc3339.trim().split('T').nth(1)?.trim_end_matches('Z');
    let mut parts = time.split(':');
    let (h, m, s) = (parts.next()?.parse::<f64>().ok()?, parts.next()?.parse::<f64>().ok()?, parts.next()?.parse::<f64>().ok()?);
    Some(h * 3600.0 + m * 60.0 + s)
}

/// The engine's created and started times of a sandbox's container.
fn engine_times(sandbox_id: &str) -> anyhow::Result<(f64, f64)> {
    let out = Command::new("docker").args(["ps", "-q", "--filter", &format!("label=bay.sandbox_id={sandbox_id}")]).output()?;
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let out = Command::new("docker").args(["inspect", "--format", "{{.Created}} {{.State.StartedAt}}", &id]).output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut it = text.split_whitespace();
    let created = it.next().and_then(day_seconds).context("container created time")?;
    let started = it.next().and_then(day_seconds).context("container started time")?;
    Ok((created, started))
}

fn since(t0: f64, t: f64) -> Duration {
    // Across midnight the day's seconds wrap.
    Duration::from_secs_f64((t - t0).rem_euclid(86_400.0))
}

/// `n` cold starts, each: create → shell `true` → python `1+1`.
pub(crate) async fn rows(api: &Api, n: usize) -> anyhow::Result<Vec<Row>> {
    let (mut created, mut engine_created, mut engine_started, mut shell, mut python) = (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..n {
        let wall0 = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64().rem_euclid(86_400.0);
        let t = Instant::now();
        let id = api.create().await?;
        created.push(t.elapsed());
        api.shell(&id, "true").await?;
        shell.push(t.elapsed());
        let t_py = Instant::now();
        let r = api.python(&id, "1+1").await?;
        python.push(t_py.elapsed());
        anyhow::ensure!(r["output"] == "2", "unexpected output {r}");
        let (c, s) = engine_times(&id)?;
        engine_created.push(since(wall0, c));
        engine_started.push(since(wall0, s));
        api.delete(&id).await?;
    }
    Ok(vec![
        row("cold phase: create answered (lazy session)", &Stats::new(created), String::new()),
        row("cold phase: engine has created the container", &Stats::new(engine_created), "from the create request".into()),
        row("cold phase: engine has started it", &Stats::new(engine_started), "from the create request".into()),
        row("cold: create → first shell `true`", &Stats::new(shell), "target p50 ≤ 400 ms (no kernel wait)".into()),
        row("cold phase: then first python `1+1`", &Stats::new(python), "the kernel's start + the call".into()),
    ])
}
