//! The command line: `serve` runs the server; `publish`, `snapshot` and `reload` talk to a
//! running one over its HTTP API, so scripts and cron jobs go through the same path as
//! everyone else.

use crate::config::Config;
use crate::ops::Op;
use clap::{Parser, Subcommand};
use serde_json::{json, Value};
use std::io::Read;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(name = "pulseboard", version, about = "A live dashboard server.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server (the default). Configuration: Leptos.toml and PULSEBOARD_* variables.
    Serve,
    /// Apply ops to a topic on a running server and print its answer.
    ///
    /// Each OP is a JSON object, e.g. '{"op": "incr", "entity_id": "signups", "by": 1}';
    /// `-` reads a JSON array of ops from standard input.
    Publish {
        topic: String,
        #[arg(required = true, value_name = "OP")]
        ops: Vec<String>,
        #[command(flatten)]
        server: ServerArg,
        /// Makes a retried command apply once.
        #[arg(long, value_name = "KEY")]
        idempotency_key: Option<String>,
        /// Recorded in every event as `user_id`.
        #[arg(long)]
        user: Option<String>,
        /// Recorded in every event as `trace_id`.
        #[arg(long)]
        trace: Option<String>,
    },
    /// Print a topic's snapshot from a running server.
    Snapshot {
        topic: String,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Reload every open board page, each at a random moment within `--within` seconds.
    Reload {
        #[arg(long, value_name = "SECONDS", default_value_t = 10)]
        within: u64,
        #[command(flatten)]
        server: ServerArg,
    },
}

#[derive(clap::Args, Debug)]
pub struct ServerArg {
    /// The server's base URL; defaults to the `listen` address of the configuration.
    #[arg(long, env = "PULSEBOARD_URL")]
    server: Option<String>,
}

impl ServerArg {
    fn base(&self, config: &Config) -> String {
        match &self.server {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", config.listen),
        }
    }
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("pulseboard: {message}");
    ExitCode::from(2)
}

fn parse_ops(args: &[String]) -> Result<Vec<Op>, String> {
    let mut ops = Vec::new();
    for arg in args {
        if arg == "-" {
            let mut input = String::new();
            std::io::stdin()
                .read_to_string(&mut input)
                .map_err(|e| format!("reading standard input: {e}"))?;
            let more: Vec<Op> = serde_json::from_str(&input)
                .map_err(|e| format!("standard input is not a JSON array of ops: {e}"))?;
            ops.extend(more);
        } else {
            ops.push(serde_json::from_str(arg).map_err(|e| format!("bad op {arg}: {e}"))?);
        }
    }
    Ok(ops)
}

/// Runs `publish`, `snapshot` or `reload`: 0 when the server agreed, 1 when it refused (its JSON error
/// goes to standard error), 2 when the command could not be carried out.
pub async fn run_client(command: Command, config: &Config) -> ExitCode {
    let http = reqwest::Client::new();
    let request = match command {
        Command::Serve => unreachable!("serve is not a client command"),
        Command::Publish {
            topic,
            ops,
            server,
            idempotency_key,
            user,
            trace,
        } => {
            let ops = match parse_ops(&ops) {
                Ok(ops) => ops,
                Err(e) => return fail(e),
            };
            let body = json!({"ops": ops, "user_id": user, "trace_id": trace});
            let mut request = http
                .post(format!("{}/api/v1/topics/{topic}", server.base(config)))
                .json(&body);
            if let Some(key) = idempotency_key {
                request = request.header("Idempotency-Key", key);
            }
            request
        }
        Command::Snapshot { topic, server } => {
            http.get(format!("{}/api/v1/topics/{topic}", server.base(config)))
        }
        Command::Reload { within, server } => http
            .post(format!("{}/api/v1/screens/reload", server.base(config)))
            .json(&json!({ "within_s": within })),
    };
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => return fail(format!("cannot reach the server: {e}")),
    };
    let ok = response.status().is_success();
    let body: Value = match response.json().await {
        Ok(body) => body,
        Err(e) => return fail(format!("the server's answer is not JSON: {e}")),
    };
    let pretty = serde_json::to_string_pretty(&body).unwrap_or_default();
    if ok {
        println!("{pretty}");
        ExitCode::SUCCESS
    } else {
        eprintln!("{pretty}");
        ExitCode::FAILURE
    }
}
