//! The command line: `publish`, `snapshot` and `hooks try` against a real server, as a cron job
//! would run them, and `check` on files.

#![cfg(feature = "ssr")]

mod support;

use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Output, Stdio};
use support::*;

fn pulseboard(server: &Server, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pulseboard"))
        .args(args)
        .env("PULSEBOARD_URL", format!("http://{}", server.addr))
        .env("PULSEBOARD_KEY", &server.key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("the command prints JSON")
}

#[tokio::test]
async fn publish_and_snapshot_work_from_the_command_line() {
    let server = Server::start(&[]);
    let published = pulseboard(
        &server,
        &[
            "publish",
            "metric:cron",
            r#"{"op": "set", "entity_id": "jobs", "payload": 3}"#,
            "-",
            "--trace",
            "nightly",
        ],
        r#"[{"op": "incr", "entity_id": "jobs", "by": 2}]"#,
    );
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    assert_eq!(json_of(&published.stdout)["offsets"], json!([1, 2]));

    let snapshot = pulseboard(&server, &["snapshot", "metric:cron"], "");
    assert!(snapshot.status.success());
    assert_eq!(json_of(&snapshot.stdout)["state"], json!({"jobs": 5}));

    let refused = pulseboard(
        &server,
        &[
            "publish",
            "metric:cron",
            r#"{"op": "incr", "entity_id": "jobs", "by": "x"}"#,
        ],
        "",
    );
    assert_eq!(
        refused.status.code(),
        Some(2),
        "a malformed op is refused before sending"
    );
    let refused = pulseboard(
        &server,
        &[
            "publish",
            "metric:cron",
            r#"{"op": "set", "entity_id": "", "payload": 1}"#,
        ],
        "",
    );
    assert_eq!(refused.status.code(), Some(1), "the server's refusal");
    assert_eq!(json_of(&refused.stderr)["code"], json!("op_refused"));
}

/// `pulseboard check` in `dir`, with the boards directory given.
fn check(dir: &std::path::Path, boards: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pulseboard"))
        .args(["check", "--boards"])
        .arg(boards)
        .current_dir(dir)
        .env_remove("PULSEBOARD_CONFIG")
        .output()
        .unwrap()
}

#[test]
fn check_names_the_file_line_and_column_of_every_mistake_and_fails() {
    let dir = tempfile::TempDir::new().unwrap();
    let boards = dir.path().join("boards");
    std::fs::create_dir(&boards).unwrap();
    std::fs::write(
        boards.join("ops.toml"),
        "title = \"Ops\"\n[[widget]]\ntype = \"number\"\ntopic = \"metric:kpis\"\nentity = \"signups\"\n",
    )
    .unwrap();
    let fine = check(dir.path(), &boards);
    assert!(
        fine.status.success(),
        "{}",
        String::from_utf8_lossy(&fine.stdout)
    );

    // A widget with an unknown field, and a setting with the wrong type.
    std::fs::write(
        boards.join("lobby.toml"),
        "title = \"Lobby\"\n[[widget]]\ntype = \"number\"\ntopic = \"metric:kpis\"\nentity = \"signups\"\ncolour = \"red\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("Leptos.toml"),
        "queue = 1024\nheartbeat = \"often\"\n",
    )
    .unwrap();
    let broken = check(dir.path(), &boards);
    assert_eq!(broken.status.code(), Some(1));
    let said = String::from_utf8_lossy(&broken.stdout);
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(lines.len(), 2, "{said}");
    assert!(
        lines[0].starts_with("Leptos.toml:2:1: `heartbeat`"),
        "{said}"
    );
    assert!(lines[1].contains("lobby.toml:2:1:"), "{said}");
    assert!(lines[1].contains("colour"), "{said}");
}

#[test]
fn check_finds_the_mistakes_of_source_files_at_their_place() {
    let dir = tempfile::TempDir::new().unwrap();
    let boards = dir.path().join("boards");
    let sources = dir.path().join("sources");
    std::fs::create_dir(&boards).unwrap();
    std::fs::create_dir(&sources).unwrap();
    let good = "[[source]]\nname = \"hosts\"\ntype = \"prometheus\"\nurl = \"http://127.0.0.1:9090\"\nquery = \"up\"\ntopic = \"status:hosts\"\nheaders = { Authorization = \"Bearer ${PB_TEST_TOKEN}\" }\n";
    std::fs::write(sources.join("good.toml"), good).unwrap();
    let run = |env: &[(&str, &str)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_pulseboard"));
        command
            .args(["check", "--boards"])
            .arg(&boards)
            .arg("--sources")
            .arg(&sources)
            .current_dir(dir.path())
            .env_remove("PULSEBOARD_CONFIG");
        for (key, value) in env {
            command.env(key, value);
        }
        command.output().unwrap()
    };
    let fine = run(&[("PB_TEST_TOKEN", "s3cret")]);
    assert!(
        fine.status.success(),
        "{}",
        String::from_utf8_lossy(&fine.stdout)
    );

    let bad = [
        "[[hook]]\nname = \"h\"\ntype = \"github\"\nsecret = \"written-in-the-file\"\n",
        "[[source]]\nname = \"a\"\ntype = \"promql\"\nurl = \"http://x\"\nquery = \"up\"\ntopic = \"t:a\"\n",
        "[[source]]\nname = \"b\"\ntype = \"http\"\nurl = \"http://x\"\nevery = \"soon\"\nselect = \".\"\nentity = \"e\"\ntopic = \"t:b\"\n",
        "[[source]]\nname = \"c\"\ntype = \"http\"\nurl = \"http://x\"\nselect = \".a | (\"\nentity = \"e\"\ntopic = \"t:c\"\n",
    ];
    for (n, text) in bad.iter().enumerate() {
        std::fs::write(sources.join(format!("bad{n}.toml")), text).unwrap();
    }
    let broken = run(&[]);
    assert_eq!(broken.status.code(), Some(1));
    let said = String::from_utf8_lossy(&broken.stdout);
    let expected = [
        "bad0.toml:4:10: `secret` is written in the file",
        "bad1.toml:3:8: `type` is \"promql\": use prometheus or http",
        "bad2.toml:5:9: `every` \"soon\"",
        "bad3.toml:5:",
        "good.toml:7:37: the environment variable PB_TEST_TOKEN is not set",
    ];
    for (line, expected) in said.lines().zip(expected) {
        assert!(
            line.contains(expected),
            "{line:?} should say {expected:?}\n{said}"
        );
    }
    assert_eq!(said.lines().count(), expected.len(), "{said}");
    assert!(said.contains("`select` does not compile"), "{said}");
}

#[test]
fn the_documented_example_of_boards_and_sources_checks_clean() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples");
    let dir = tempfile::TempDir::new().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pulseboard"))
        .args(["check", "--boards"])
        .arg(examples.join("boards"))
        .arg("--sources")
        .arg(examples.join("sources"))
        .current_dir(dir.path())
        .env_remove("PULSEBOARD_CONFIG")
        .env("PROMETHEUS_URL", "http://127.0.0.1:9090")
        .env("GITHUB_TOKEN", "example")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_example_boards_for_hooks_check_clean() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("boards/examples");
    let dir = tempfile::TempDir::new().unwrap();
    let out = check(dir.path(), &examples);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test]
async fn hooks_try_shows_what_a_payload_would_write_and_writes_nothing() {
    let dir = tempfile::TempDir::new().unwrap();
    std::fs::write(
        dir.path().join("hooks.toml"),
        "[[hook]]\nname = \"repo\"\ntype = \"github\"\nsecret = \"${HOOK_SECRET}\"\n",
    )
    .unwrap();
    let server = Server::start(&[
        ("PULSEBOARD_SOURCES", dir.path().to_str().unwrap()),
        ("HOOK_SECRET", "a-secret-long-enough"),
    ]);
    let push = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/github/push.json"
    );
    let tried = pulseboard(
        &server,
        &["hooks", "try", "repo", push, "--event", "push"],
        "",
    );
    assert!(
        tried.status.success(),
        "{}",
        String::from_utf8_lossy(&tried.stderr)
    );
    let said = json_of(&tried.stdout);
    assert_eq!(said["dry_run"], true);
    assert_eq!(said["writes"][0]["topic"], "feed:github");
    assert_eq!(
        said["writes"][0]["ops"][0]["payload"]["text"],
        "ana pushed 3 commits to main of pulseboard"
    );
    let (status, _) = server.get("/api/v1/topics/feed:github").await;
    assert_eq!(status, 404, "a dry run writes nothing");
}
