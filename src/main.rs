//! The `pulseboard` binary: the server, the `publish` / `snapshot` / `reload` commands for
//! scripts, `keys`, `check` for the configuration and board files, and `backup`.

use clap::Parser;
use pulseboard::audit::AuditTrail;
use pulseboard::cli::{run_backup, run_check, run_client, run_keys, Cli, Command};
use pulseboard::config::Config;
use std::io::IsTerminal;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before the configuration is loaded: finding what is wrong with it is the point.
    if let Some(Command::Check { boards, sources }) = cli.command {
        return run_check(boards, sources);
    }
    let config = match Config::load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("pulseboard: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Keys(keys) => run_keys(keys, &config),
        Command::Backup { file } => run_backup(&file, &config),
        client => run_client(client, &config).await,
    }
}

async fn serve(config: Config) -> ExitCode {
    use tracing_subscriber::prelude::*;
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    // The trail takes every audit line whatever RUST_LOG says, and nothing else; the log,
    // what it says. A layer that asked for every event would switch on every `trace!` of
    // every dependency (tungstenite traces each frame): 6% of the server's CPU in fan-out.
    let audit = AuditTrail::default();
    let audit_lines =
        tracing_subscriber::filter::Targets::new().with_target("audit", tracing::Level::INFO);
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::stdout().is_terminal())
                .with_filter(filter),
        )
        .with(audit.clone().with_filter(audit_lines))
        .init();
    match pulseboard::server::run(config, audit).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pulseboard: {e}");
            ExitCode::FAILURE
        }
    }
}
