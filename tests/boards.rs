//! Board files against the real server: read at start, re-read on change, and a bad edit
//! keeps the last good board while the problem is reported.

mod support;

use pulseboard::protocol::ServerFrame;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};
use support::{next, send, Server};

/// Polls a board until `done` holds; the server re-reads files every half second.
async fn board_until(server: &Server, name: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = server.get(&format!("/api/v1/boards/{name}")).await;
        if status == 200 && done(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "board {name} never became: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn write(dir: &Path, file: &str, text: &str) {
    // Write then rename, as editors do, so the server never reads half a file.
    let temporary = dir.join(format!(".{file}.tmp"));
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(temporary, dir.join(file)).unwrap();
}

/// A boards directory holding one board, `ops`: a feed of `feed:ops`.
fn ops_board() -> tempfile::TempDir {
    let boards = tempfile::tempdir().unwrap();
    write(
        boards.path(),
        "ops.toml",
        "title = \"Ops\"\n[[widget]]\ntype = \"feed\"\ntopic = \"feed:ops\"\n",
    );
    boards
}

#[tokio::test]
async fn board_files_reload_and_a_bad_edit_keeps_the_last_good_board() {
    let boards = ops_board();
    let dir = boards.path().to_str().unwrap();
    let server = Server::start(&[("PULSEBOARD_BOARDS", dir), ("PULSEBOARD_DEMO", "false")]);

    let (status, list) = server.get("/api/v1/boards").await;
    assert_eq!(status, 200);
    assert_eq!(
        list["boards"],
        serde_json::json!([{"name": "ops", "title": "Ops", "problem": null, "private": false, "topics": ["feed:ops", "notes:ops"]}])
    );
    let board = board_until(&server, "ops", |b| b["board"]["title"] == "Ops").await;
    assert_eq!(board["board"]["widgets"][0]["kind"]["type"], "feed");

    // A mistake: the last good board keeps serving, and the problem says where.
    write(
        boards.path(),
        "ops.toml",
        "title = \"Ops v2\"\n\n[[widget]]\ntype = \"feed\"\n",
    );
    let board = board_until(&server, "ops", |b| !b["problem"].is_null()).await;
    assert_eq!(board["board"]["title"], "Ops");
    assert_eq!(board["problem"]["file"], "ops.toml");
    assert_eq!(board["problem"]["line"], 3);
    assert_eq!(
        board["problem"]["message"],
        "widget 1: (feed): `topic` is missing"
    );

    // Fixed: the new version replaces it and the problem clears.
    write(
        boards.path(),
        "ops.toml",
        "title = \"Ops v2\"\n[[widget]]\ntype = \"clock\"\n",
    );
    let board = board_until(&server, "ops", |b| b["problem"].is_null()).await;
    assert_eq!(board["board"]["title"], "Ops v2");

    // A new file is a new board; an unknown one is a typed 404.
    write(boards.path(), "sales.toml", "title = \"Sales\"\n");
    board_until(&server, "sales", |b| b["board"]["title"] == "Sales").await;
    let (status, body) = server.get("/api/v1/boards/nope").await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "unknown_board");
}

#[tokio::test]
async fn the_demo_board_is_built_in() {
    let empty = tempfile::tempdir().unwrap();
    let missing = empty.path().join("no-such-dir");
    let server = Server::start(&[
        ("PULSEBOARD_BOARDS", missing.to_str().unwrap()),
        ("PULSEBOARD_DEMO", "true"),
    ]);
    let (status, board) = server.get("/api/v1/boards/demo").await;
    assert_eq!(status, 200);
    assert_eq!(board["board"]["title"], "Demo");
    assert!(board["problem"].is_null());
}

/// The next board frame, skipping presence.
async fn next_board(socket: &mut support::Socket) -> pulseboard::protocol::BoardFrame {
    loop {
        match next(socket).await {
            ServerFrame::Board(board) => return board,
            ServerFrame::Presence(_) | ServerFrame::Welcome(_) => {}
            other => panic!("expected a board frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_joined_page_gets_its_board_then_every_change_to_it() {
    let boards = ops_board();
    let dir = boards.path().to_str().unwrap();
    let server = Server::start(&[("PULSEBOARD_BOARDS", dir)]);
    let mut socket = server.connect().await;
    send(&mut socket, json!({"type": "join", "board": "ops"})).await;
    let first = next_board(&mut socket).await;
    assert_eq!(first.name, "ops");
    let board = first.view.board.expect("the board");
    assert_eq!(board.title, "Ops");
    assert_eq!(board.topics(), ["feed:ops", "notes:ops"]);

    write(
        boards.path(),
        "ops.toml",
        "title = \"Ops wall\"\n[[widget]]\ntype = \"feed\"\ntopic = \"feed:deploys\"\n",
    );
    let second = next_board(&mut socket).await;
    assert!(second.view.revision > first.view.revision);
    assert_eq!(
        second.view.board.unwrap().topics(),
        ["feed:deploys", "notes:ops"]
    );

    // A broken edit sends the problem, with the last good board.
    write(
        boards.path(),
        "ops.toml",
        "title = \"Ops wall\"\n[[widget]]\n",
    );
    let third = next_board(&mut socket).await;
    assert_eq!(third.view.board.unwrap().title, "Ops wall");
    let problem = third.view.problem.expect("a problem");
    assert_eq!(problem.file, "ops.toml");
    assert_eq!(problem.line, Some(2));
}
