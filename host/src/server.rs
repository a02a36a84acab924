//! Wiring: configuration → database → auth → driver → plugins → HTTP server.

use std::sync::Arc;

use anyhow::Context;

use crate::api::{self, AppState};
use crate::auth::{Auth, Provisioned};
use crate::config::{Config, DatabaseUrl, DriverType, LoadReport};
use crate::db::Db;
use crate::driver::Driver;
use crate::driver::docker::DockerDriver;
use crate::driver::plugin::PluginDriver;
use crate::gc::Gc;
use crate::idempotency::Idempotency;
use crate::plugins::PluginHost;
use crate::sandbox::SandboxManager;

/// A fully wired Bay, ready to serve.
pub struct Bay {
    pub config: Arc<Config>,
    pub state: AppState,
    pub plugins: Arc<PluginHost>,
}

impl Bay {
    pub async fn build(config: Config) -> anyhow::Result<Bay> {
        let config = Arc::new(config);
        let db = Db::connect(&DatabaseUrl::parse(&config.database.url)?, config.database.max_connections).await.context("opening the database")?;
        let data_dir = Config::data_dir();
        let (auth, provisioned) = Auth::provision(&db, &config, &data_dir).await.context("provisioning API keys")?;
        match provisioned {
            Provisioned::Generated { credentials_file } => tracing::warn!(
                file = %credentials_file.display(),
                "generated an API key on first boot; it is in the credentials file (mode 0600)"
            ),
            other => tracing::info!(source = ?other, "API key provisioned"),
        }
        let plugins = Arc::new(PluginHost::new(&config.plugins, config.plugin_cache_dir())?);
        plugins.load_builtins().await;
        if let Some(dir) = &config.plugins.dir {
            plugins.scan(dir).await;
            if config.plugins.watch_interval_ms > 0 {
                plugins.watch(dir.clone(), std::time::Duration::from_millis(config.plugins.watch_interval_ms));
            }
        }
        let driver: Arc<dyn Driver> = match config.driver.kind {
            DriverType::Docker => Arc::new(DockerDriver::connect(&config.driver.docker, config.driver.image_pull_policy).await?),
            DriverType::Plugin => Arc::new(PluginDriver::new(plugins.clone(), &config.driver.plugin)?),
            DriverType::K8s => {
                Arc::new(crate::driver::kubernetes::KubernetesDriver::connect(&config.driver.k8s, config.driver.image_pull_policy).await?)
            }
        };
        let driver = with_cargo_storage(driver, &config)?;
        if plugins.runtime_types().is_empty() {
            tracing::error!(dir = ?config.plugins.dir, "no runtime adapter plugin loaded (none built in, none in the plugins directory): sandboxes cannot start (build them with `./dev plugins`)");
        }
        for profile in config.effective_profiles() {
            for c in profile.containers() {
                if plugins.adapter(&c.runtime_type).is_none() {
                    tracing::warn!(profile = %profile.id, runtime_type = %c.runtime_type, "no plugin serves this profile's runtime type");
                }
            }
        }
        let idempotency = Idempotency::new(db.clone(), &config.idempotency);
        let previews = Arc::new(crate::preview::PreviewSigner::load(&db).await.context("loading the preview signing key")?);
        // Several replicas may share a PostgreSQL database; SQLite is one process.
        let cluster = crate::cluster::Cluster::new(db.clone(), db.dialect() == crate::db::Dialect::Postgres);
        if cluster.enabled() {
            let leader = cluster.elect().await;
            tracing::info!(replica = %cluster.replica_id(), leader, "replica mode: leases on the shared database");
            cluster.spawn_election();
        }
        let sandboxes = Arc::new(SandboxManager::new(config.clone(), db, driver, plugins.clone(), cluster));
        let report = sandboxes.reconcile().await.context("reconciling with the container engine")?;
        tracing::info!(
            kept = report.sessions_kept,
            reset = report.sessions_reset,
            orphan_sessions_removed = report.orphan_sessions_removed,
            volumes_removed = report.volumes_removed,
            errors = report.errors.len(),
            "reconciled state with the engine"
        );
        for e in &report.errors {
            tracing::warn!(error = %e, "reconcile");
        }
        sandboxes.watch_exits();
        sandboxes.spawn_warmup_workers();
        sandboxes.spawn_warm_pool();
        let gc = Gc::new(config.gc.clone(), sandboxes.clone());
        gc.spawn();
        crate::skills::learning::Learning::new(sandboxes.clone()).spawn();
        warn_about_anonymous_access(&config);
        crate::memory::spawn_trimmer();
        let limits = Arc::new(config.limits.clone());
        let state = AppState { auth: Arc::new(auth), sandboxes, idempotency, gc, limits, previews };
        Ok(Bay { config, state, plugins })
    }

    /// The REST API plus the MCP endpoint at `/mcp` (host/src/mcp/).
    pub fn router(&self) -> axum::Router {
        crate::mcp::mount(api::router(self.state.clone()), self.state.auth.clone(), self.state.limits.clone())
    }

    /// Serves until `shutdown` resolves (`api::serve`: HTTP/1 and HTTP/2,
    /// the peer address as `ConnectInfo<SocketAddr>`, graceful shutdown).
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let app = self.router();
        let grace = std::time::Duration::from_secs(self.config.server.shutdown_grace_s);
        api::serve::serve(listener, app, &self.config.limits, grace, shutdown).await?;
        // In-flight requests are done; commit the history they queued, and
        // let another replica lead now rather than when the lease expires.
        self.state.sandboxes.history().flush().await;
        self.state.sandboxes.cluster.resign().await;
        Ok(())
    }
}

/// True when `host` only listens on loopback (`127.0.0.1`, `::1`, `localhost`).
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// Anonymous access lets a caller name any owner: say so when the network
/// can reach it.
/// Cargo bind mounts (host/src/driver/bind.rs) wrap the driver when the
/// config asks for them; Kubernetes keeps its volume claims.
fn with_cargo_storage(driver: Arc<dyn Driver>, config: &Config) -> anyhow::Result<Arc<dyn Driver>> {
    let Some((root, host_root)) = config.cargo.bind_roots() else {
        return Ok(driver);
    };
    if config.driver.kind == DriverType::K8s {
        tracing::warn!(root = %root.display(), "cargo bind mounts are not supported on Kubernetes: cargos are volume claims");
        return Ok(driver);
    }
    let bind = crate::driver::bind::BindCargos::new(driver, root.clone(), host_root.clone(), config.cargo.bind_owner_ids())
        .with_context(|| format!("preparing the cargo directory {}", root.display()))?;
    tracing::info!(root = %root.display(), host_root = %host_root.display(), "cargos are directories bind-mounted from the host");
    Ok(Arc::new(bind))
}

fn warn_about_anonymous_access(config: &Config) {
    let security = &config.security;
    if !security.allow_anonymous {
        return;
    }
    if security.anonymous_from_network {
        tracing::warn!(
            host = %config.server.host,
            "security.anonymous_from_network is on: any client that reaches Bay, sandboxes included, can act as any owner without a key"
        );
    } else if !is_loopback_host(&config.server.host) {
        tracing::warn!(
            host = %config.server.host,
            "anonymous access is on and Bay listens beyond loopback; anonymous requests are honoured from loopback clients only"
        );
    }
}

/// Logs what the configuration loader found (unknown keys once, overrides).
pub fn log_config_report(report: &LoadReport) {
    match &report.file {
        Some(f) => tracing::info!(file = %f.display(), "configuration loaded"),
        None => tracing::info!("no configuration file; using defaults"),
    }
    for key in &report.env_overrides {
        tracing::info!(%key, "configuration key set from the environment (the file leaves it out)");
    }
    for (var, key) in &report.env_ignored {
        tracing::warn!(
            env = %var,
            %key,
            "{var} is ignored: the config file sets {key}, and the file wins over the environment (as in Shipyard Neo); remove {key} from the file to take it from {var}"
        );
    }
    for key in &report.unknown_keys {
        tracing::warn!(%key, "configuration key is not used by Bay; ignored");
    }
    if !report.unused_keys.is_empty() {
        let keys = report.unused_keys.join(", ");
        tracing::warn!(%keys, "configuration keys read but not acted on by Bay (Shipyard Neo compatibility), remove them to silence this: {keys}");
    }
    for warning in &report.warnings {
        tracing::warn!("{warning}");
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_hosts() {
        for h in ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "::ffff:127.0.0.1"] {
            assert!(super::is_loopback_host(h), "{h}");
        }
        for h in ["0.0.0.0", "::", "10.0.0.1", "bay.example", "172.17.0.1"] {
            assert!(!super::is_loopback_host(h), "{h}");
        }
    }
}
