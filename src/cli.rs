//! The command line: `serve` runs the server; `publish`, `snapshot` and `reload` talk to a
//! running one over its HTTP API, so scripts and cron jobs go through the same path as
//! everyone else; `keys` manages API keys in the data dir itself, which is how the first
//! admin key comes to exist (and how an operator who lost every admin key gets back in);
//! `check` reads the configuration and the board files as the server would, and says what
//! is wrong with them, where; `backup` copies the store while the server runs.

use crate::access::keyring;
use crate::access::scope::Scope;
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
    /// Hooks on a running server.
    #[command(subcommand)]
    Hooks(HooksCommand),
    /// Reload every open board page, each at a random moment within `--within` seconds.
    Reload {
        #[arg(long, value_name = "SECONDS", default_value_t = 10)]
        within: u64,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Manage API keys, in the data dir of the configuration (the server need not run; a
    /// running one sees changes within a second).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Check the configuration file, every board file and every source file without
    /// starting anything: print each mistake as file:line:col: message, and exit 1 if there
    /// is any (for the CI of a repository of boards). Source files' `${VAR}`s are looked up
    /// in this environment, as the server would.
    Check {
        /// The boards directory; by default the configuration's `boards`.
        #[arg(long, value_name = "DIR")]
        boards: Option<std::path::PathBuf>,
        /// The sources directory; by default the configuration's `sources`.
        #[arg(long, value_name = "DIR")]
        sources: Option<std::path::PathBuf>,
    },
    /// Copy the store (topics, keys, sessions) of the configuration's data dir to FILE while
    /// the server runs. To restore: put the copy in an empty data dir as pulseboard.db.
    Backup { file: std::path::PathBuf },
}

#[derive(Subcommand, Debug)]
pub enum HooksCommand {
    /// Show what a payload would write through hook NAME, applying nothing (a dry run:
    /// needs an admin key). FILE is a delivery's JSON body, `-` for standard input.
    Try {
        name: String,
        file: std::path::PathBuf,
        /// The event, as GitHub's X-GitHub-Event or GitLab's X-Gitlab-Event names it.
        #[arg(long)]
        event: Option<String>,
        #[command(flatten)]
        server: ServerArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Make a key and print its secret, which is not stored and cannot be shown again.
    ///
    /// Scopes: publish:PATTERN (publish:metric:*, publish:*), read:BOARD (read:*), admin.
    /// A share link for a TV is a key with read:BOARD: /b/BOARD?token=SECRET.
    Create {
        /// What the key is for: "CI deploys", "lobby TV".
        #[arg(long)]
        name: String,
        /// One or more scopes.
        #[arg(long = "scope", required = true, value_name = "SCOPE")]
        scopes: Vec<Scope>,
    },
    /// List every key (never its secret).
    List,
    /// Revoke a key at once, with the sessions it logged in.
    Revoke { id: String },
}

#[derive(clap::Args, Debug)]
pub struct ServerArg {
    /// The server's base URL; defaults to the `listen` address of the configuration.
    #[arg(long, env = "PULSEBOARD_URL")]
    server: Option<String>,
    /// The API key to send (PULSEBOARD_KEY keeps it out of the shell history).
    #[arg(long, env = "PULSEBOARD_KEY", hide_env_values = true)]
    key: Option<String>,
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

/// Runs `keys`: 0 when done, 1 for a key that does not exist, 2 when the keyring cannot be
/// opened or written.
pub fn run_keys(command: KeysCommand, config: &Config) -> ExitCode {
    let keyring = match keyring::open(&config.data_dir, &config.redis_url) {
        Ok(keyring) => keyring,
        Err(e) if config.redis_url.is_empty() => {
            return fail(format!(
                "{} cannot be opened: {e}",
                config.data_dir.display()
            ))
        }
        Err(e) => {
            return fail(format!(
                "the keys in {} cannot be read: {e}",
                config.redis_url
            ))
        }
    };
    let scopes = |record: &crate::access::keyring::KeyRecord| {
        let scopes: Vec<String> = record.scopes.iter().map(ToString::to_string).collect();
        scopes.join(" ")
    };
    match command {
        KeysCommand::Create {
            name,
            scopes: wanted,
        } => match keyring.create(&name, wanted) {
            Ok(made) => {
                audit_line("key_created", &made.record.id);
                eprintln!(
                    "key {} ({}) made with scopes: {}. Its secret, shown this once:",
                    made.record.id,
                    made.record.name,
                    scopes(&made.record)
                );
                println!("{}", made.secret);
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        KeysCommand::List => match keyring.list() {
            Ok(keys) => {
                for key in keys {
                    let state = if key.revoked_ms.is_some() {
                        "revoked"
                    } else {
                        "active"
                    };
                    println!("{}\t{}\t{}\t{}", key.id, state, key.name, scopes(&key));
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        KeysCommand::Revoke { id } => match keyring.revoke(&id) {
            Ok(Some(key)) => {
                audit_line("key_revoked", &key.id);
                println!("revoked {} ({})", key.id, key.name);
                ExitCode::SUCCESS
            }
            Ok(None) => {
                eprintln!("pulseboard: no key with id {id}");
                ExitCode::FAILURE
            }
            Err(e) => fail(e),
        },
    }
}

/// Runs `check`: 0 when the configuration and every board are as the server takes them,
/// 1 when anything is wrong (each mistake on standard output), 2 when a file cannot be read.
pub fn run_backup(file: &std::path::Path, config: &Config) -> ExitCode {
    if !config.redis_url.is_empty() {
        return fail(
            "topics and keys are in Redis (redis_url is set): back up Redis itself, \
             see docs/operations.md",
        );
    }
    match crate::store::backup::backup(&config.data_dir, file) {
        Ok(copied) => {
            println!(
                "{}: {} topics, {} keys, {} bytes",
                file.display(),
                copied.topics,
                copied.keys,
                copied.bytes
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

pub fn run_check(
    boards: Option<std::path::PathBuf>,
    sources: Option<std::path::PathBuf>,
) -> ExitCode {
    let (path, required) = match std::env::var_os("PULSEBOARD_CONFIG") {
        Some(path) => (std::path::PathBuf::from(path), true),
        None => (std::path::PathBuf::from("Leptos.toml"), false),
    };
    let mut mistakes = match std::fs::read_to_string(&path) {
        Ok(text) => Config::mistakes(&path.display().to_string(), &text),
        Err(e) if required || e.kind() != std::io::ErrorKind::NotFound => {
            return fail(format!("cannot read {}: {e}", path.display()))
        }
        Err(_) => Vec::new(),
    };
    let dir = boards
        .or_else(|| Config::load().ok().map(|config| config.boards))
        .unwrap_or_else(|| "boards".into());
    if !dir.is_dir() {
        mistakes.push(format!(
            "{}: the boards directory does not exist",
            dir.display()
        ));
    }
    let library = crate::boards::library::Library::open(dir.clone(), false);
    let boards = library.list();
    mistakes.extend(
        boards
            .iter()
            .filter_map(|board| board.problem.as_ref())
            .map(|problem| format!("{}/{problem}", dir.display())),
    );
    let sources_dir = sources
        .or_else(|| Config::load().ok().map(|config| config.sources))
        .unwrap_or_default();
    let mut sources = 0;
    if !sources_dir.as_os_str().is_empty() {
        if !sources_dir.is_dir() {
            mistakes.push(format!(
                "{}: the sources directory does not exist",
                sources_dir.display()
            ));
        }
        let files = crate::ingest::files::SourceFiles::open(&sources_dir);
        let catalog = files.current();
        sources = catalog.sources.len() + catalog.hooks.len();
        mistakes.extend(catalog.mistakes.iter().map(ToString::to_string));
    }
    // One line each, whatever line breaks a parser's message has.
    for mistake in &mistakes {
        let lines: Vec<&str> = mistake
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        println!("{}", lines.join(" "));
    }
    if mistakes.is_empty() {
        eprintln!(
            "pulseboard: {} and {} board files in {} are fine ({sources} sources and hooks)",
            path.display(),
            boards.len(),
            dir.display()
        );
        ExitCode::SUCCESS
    } else {
        eprintln!("pulseboard: {} mistakes", mistakes.len());
        ExitCode::FAILURE
    }
}

/// The audit line a key change made from the command line leaves, on standard error.
fn audit_line(event: &str, id: &str) {
    eprintln!("audit: event={event} id={id} by=cli");
}

/// Runs `publish`, `snapshot` or `reload`: 0 when the server agreed, 1 when it refused (its JSON error
/// goes to standard error), 2 when the command could not be carried out.
pub async fn run_client(command: Command, config: &Config) -> ExitCode {
    let http = reqwest::Client::new();
    let key;
    let request = match command {
        Command::Serve | Command::Keys(_) | Command::Check { .. } | Command::Backup { .. } => {
            unreachable!("not a client command")
        }
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
            key = server.key.clone();
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
            key = server.key.clone();
            http.get(format!("{}/api/v1/topics/{topic}", server.base(config)))
        }
        Command::Hooks(HooksCommand::Try {
            name,
            file,
            event,
            server,
        }) => {
            let body = if file.as_os_str() == "-" {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map(|_| text)
            } else {
                std::fs::read_to_string(&file)
            };
            let body = match body {
                Ok(body) => body,
                Err(e) => return fail(format!("cannot read {}: {e}", file.display())),
            };
            key = server.key.clone();
            let mut request = http
                .post(format!(
                    "{}/api/v1/hooks/{name}?dry_run=true",
                    server.base(config)
                ))
                .header("content-type", "application/json")
                .body(body);
            if let Some(event) = event {
                request = request
                    .header("x-github-event", &event)
                    .header("x-gitlab-event", &event);
            }
            request
        }
        Command::Reload { within, server } => {
            key = server.key.clone();
            http.post(format!("{}/api/v1/screens/reload", server.base(config)))
                .json(&json!({ "within_s": within }))
        }
    };
    let request = match key {
        Some(key) => request.bearer_auth(key),
        None => request,
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
