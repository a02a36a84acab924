//! `GET /ready`: whether this Bay can serve sandboxes now — its database
//! answers, its container engine answers, and a runtime adapter is loaded
//! for every runtime type a profile names. `/health` stays liveness (the
//! process answers); a load balancer or Kubernetes sends traffic by this.

use std::time::Duration;

use serde::Serialize;

use super::SandboxManager;
use crate::driver::Labels;

/// How long one check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Serialize)]
pub struct Readiness {
    /// `ok`, or why not, per check: `database`, `engine`, `adapters`.
    pub checks: std::collections::BTreeMap<&'static str, String>,
}

impl Readiness {
    pub fn ready(&self) -> bool {
        self.checks.values().all(|v| v == "ok")
    }

    /// The failed checks as `name: reason`.
    pub fn reasons(&self) -> Vec<String> {
        self.checks.iter().filter(|(_, v)| *v != "ok").map(|(k, v)| format!("{k}: {v}")).collect()
    }
}

async fn within<F: std::future::Future<Output = Result<(), String>>>(f: F) -> String {
    match tokio::time::timeout(CHECK_TIMEOUT, f).await {
        Ok(Ok(())) => "ok".into(),
        Ok(Err(e)) => e,
        Err(_) => format!("no answer within {} s", CHECK_TIMEOUT.as_secs()),
    }
}

impl SandboxManager {
    /// Runs the three checks concurrently.
    pub async fn readiness(&self) -> Readiness {
        let database = within(async { self.db.ping().await.map_err(|e| e.to_string()) });
        // Any query the engine must answer; a label nothing carries keeps it small.
        let engine = within(async {
            let none = Labels::from([(crate::driver::labels::MANAGED.to_owned(), "readiness-probe".to_owned())]);
            self.driver.list_volumes(&none).await.map(drop).map_err(|e| e.to_string())
        });
        let adapters = async {
            let mut missing: Vec<String> = self
                .profiles()
                .iter()
                .flat_map(|p| p.containers().into_iter().map(move |c| (p.id.clone(), c.runtime_type)))
                .filter(|(_, rt)| self.plugins.adapter(rt).is_none())
                .map(|(profile, rt)| format!("{rt} (profile {profile})"))
                .collect();
            missing.dedup();
            if missing.is_empty() { "ok".to_owned() } else { format!("no adapter plugin serves {}", missing.join(", ")) }
        };
        let (database, engine, adapters) = tokio::join!(database, engine, adapters);
        Readiness { checks: [("database", database), ("engine", engine), ("adapters", adapters)].into_iter().collect() }
    }
}
