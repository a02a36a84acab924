//! The `bay` command.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use bay::config::Config;
use bay::server::{Bay, log_config_report, shutdown_signal};

#[derive(Parser)]
#[command(name = "bay", version, about = "Bay: sandboxes for AI agents")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server.
    Serve {
        /// The YAML configuration file (also `BAY_CONFIG_FILE`).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Print the effective configuration (after environment overrides) as YAML.
    Config {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Write, validate and inspect WebAssembly plugins.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Create, list and revoke API keys (on the configured database).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Import another system's state into the configured database.
    Import {
        #[command(subcommand)]
        command: ImportCommand,
    },
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Shipyard Neo: API keys, cargos, sandboxes, execution history and skills
    /// (idempotent: rows Bay already has are skipped).
    ShipyardNeo {
        /// Shipyard Neo's database URL (`sqlite:////path/bay.db`, `sqlite+aiosqlite:///…`, `postgresql+asyncpg://…`).
        #[arg(long)]
        from: String,
        /// Bay's configuration file (its `database.url` receives the rows).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Print what would be imported, and the conflicts; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// The scope imported API keys get: `admin` (what any Shipyard Neo key could do) or `user`.
        #[arg(long, default_value = "admin")]
        key_scope: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key; prints it once, with its id.
    Create {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The owner the key acts as.
        #[arg(long, default_value = bay::auth::DEFAULT_OWNER)]
        owner: String,
        /// `user` (default) or `admin`; repeat or separate with commas.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        #[arg(long)]
        name: Option<String>,
    },
    /// List keys (never their secrets).
    List {
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id.
    Revoke {
        id: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Scaffold a plugin crate from the SDK.
    New {
        name: String,
        /// `runtime-adapter` or `driver-extension`.
        #[arg(long, default_value = "runtime-adapter")]
        kind: String,
        /// An adapter: the profile `runtime_type` it serves (default: the name without `-adapter`).
        #[arg(long, conflicts_with = "driver_name")]
        runtime_type: Option<String>,
        /// A driver extension: the name `driver.plugin.name` selects it by (default: the name without `-driver`).
        #[arg(long)]
        driver_name: Option<String>,
        /// Where to create it.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Path to plugins/sdk (default: the SDK of this Bay's source tree).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Validate a component (`.wasm`) or a plugin directory against this host.
    Check { path: PathBuf },
    /// Show the plugins a running Bay has loaded (or, with --local, the configured directory).
    List {
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long)]
        url: Option<String>,
        #[arg(long)]
        key: Option<String>,
        #[arg(long)]
        local: bool,
    },
}

fn main() -> std::process::ExitCode {
    // Before any thread exists (bay::memory).
    bay::memory::tune_allocator();
    bay::telemetry::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(Cli::parse())) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config } => {
            let (config, report) = Config::load(config.as_deref())?;
            log_config_report(&report);
            let addr = format!("{}:{}", config.server.host, config.server.port);
            let bay = Bay::build(config).await?;
            let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("binding {addr}"))?;
            tracing::info!(%addr, version = env!("CARGO_PKG_VERSION"), "Bay is listening");
            bay.serve(listener, shutdown_signal()).await
        }
        Command::Plugin { command } => match command {
            PluginCommand::New { name, kind, runtime_type, driver_name, dir, sdk } => {
                let root = bay::cli::plugin::new(&name, &kind, runtime_type.or(driver_name).as_deref(), &dir, sdk)?;
                println!("created {}", root.display());
                println!("build it: cd {} && cargo build --target wasm32-wasip2 --release", root.display());
                Ok(())
            }
            PluginCommand::Check { path } => bay::cli::plugin::check(&path).await,
            PluginCommand::List { config, url, key, local } => bay::cli::plugin::list(config.as_deref(), url, key, local).await,
        },
        Command::Keys { command } => match command {
            KeysCommand::Create { config, owner, scopes, name } => bay::cli::keys::create(config.as_deref(), owner, scopes, name).await,
            KeysCommand::List { config, json } => bay::cli::keys::list(config.as_deref(), json).await,
            KeysCommand::Revoke { id, config } => bay::cli::keys::revoke(config.as_deref(), &id).await,
        },
        Command::Import { command } => match command {
            ImportCommand::ShipyardNeo { from, config, dry_run, key_scope } => {
                bay::cli::import::run(config.as_deref(), &from, dry_run, &key_scope).await
            }
        },
        Command::Config { config } => {
            let (config, report) = Config::load(config.as_deref())?;
            log_config_report(&report);
            // Secrets (API key, tokens, passwords in URLs) are not printed.
            print!("{}", yaml_serde::to_string(&config.redacted())?);
            Ok(())
        }
    }
}
