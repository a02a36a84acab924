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

#[tokio::main]
async fn main() -> std::process::ExitCode {
    bay::telemetry::init();
    match run(Cli::parse()).await {
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
        Command::Config { config } => {
            let (config, report) = Config::load(config.as_deref())?;
            log_config_report(&report);
            print!("{}", serde_yaml::to_string(&config)?);
            Ok(())
        }
    }
}
