//! The `pulseboard` binary: the server, the `publish` / `snapshot` / `reload` commands for
//! scripts, `keys`, and `check` for the configuration and board files.

use clap::Parser;
use pulseboard::cli::{run_check, run_client, run_keys, Cli, Command};
use pulseboard::config::Config;
use std::io::IsTerminal;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before the configuration is loaded: finding what is wrong with it is the point.
    if let Some(Command::Check { boards }) = cli.command {
        return run_check(boards);
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
        client => run_client(client, &config).await,
    }
}

async fn serve(config: Config) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    match pulseboard::server::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pulseboard: {e}");
            ExitCode::FAILURE
        }
    }
}
