//! The `pulseboard` binary: reads the configuration and runs the server.

use pulseboard::config::Config;
use std::io::IsTerminal;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    let config = match Config::load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("pulseboard: {e}");
            return ExitCode::from(2);
        }
    };
    match pulseboard::server::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pulseboard: {e}");
            ExitCode::FAILURE
        }
    }
}
