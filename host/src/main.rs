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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    bay::telemetry::init();
    let cli = Cli::parse();
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
        Command::Config { config } => {
            let (config, report) = Config::load(config.as_deref())?;
            log_config_report(&report);
            print!("{}", serde_yaml::to_string(&config)?);
            Ok(())
        }
    }
}
