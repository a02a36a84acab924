//! Live operations on a sandbox (streamed execution, background processes,
//! the terminal): start the session if needed, route to the container, and
//! ask its adapter which runtime request performs the operation. The
//! caller (`crate::api`) then talks to the runtime through `crate::live`.

use super::{SandboxManager, route};
use crate::adapter::{AdapterError, LiveOp, LiveRequest, RuntimeLink};
use crate::config::ProfileConfig;
use crate::db::sandboxes::Sandbox;
use crate::error::{BayError, BayResult};

/// Where and how to perform a live operation. Holding it keeps the session
/// in use, so idle GC does not remove it under a running stream.
pub(crate) struct LiveTarget {
    pub link: RuntimeLink,
    pub request: LiveRequest,
    pub session_id: String,
    _in_use: tokio::sync::OwnedRwLockReadGuard<()>,
}

/// Where a port preview tunnels to: the runtime serving `shell` in the
/// session (host/src/api/ports/mod.rs). Holding it keeps the session in use.
pub(crate) struct TunnelTarget {
    pub link: RuntimeLink,
    pub in_use: tokio::sync::OwnedRwLockReadGuard<()>,
}

impl SandboxManager {
    pub(crate) async fn live(&self, sandbox: &Sandbox, profile: &ProfileConfig, op: LiveOp) -> BayResult<LiveTarget> {
        let capability = op.capability();
        let (active, in_use) = self.session_for_call(sandbox, profile, capability == "python").await?;
        let container = route(&active, profile, capability)?;
        self.record_activity(&active, profile).await?;
        let adapter = self.plugins.adapter(&container.runtime_type).unwrap_or_else(|| container.adapter.clone());
        let request = adapter.live(op).await.map_err(|e| match e {
            AdapterError::Unsupported(m) => BayError::capability_not_supported(
                format!("The runtime of this sandbox cannot do that: {m}"),
                capability,
                &container.runtime_capabilities,
            ),
            other => other.into(),
        })?;
        Ok(LiveTarget { link: container.link.clone(), request, session_id: active.session_id.clone(), _in_use: in_use })
    }

    /// The runtime a port preview tunnels through (started or resumed if
    /// needed, like any call).
    pub(crate) async fn tunnel(&self, sandbox: &Sandbox, profile: &ProfileConfig) -> BayResult<TunnelTarget> {
        let (active, in_use) = self.session_for_call(sandbox, profile, false).await?;
        let container = route(&active, profile, "shell")?;
        self.record_activity(&active, profile).await?;
        Ok(TunnelTarget { link: container.link.clone(), in_use })
    }
}
