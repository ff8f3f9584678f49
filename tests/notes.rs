//! Notes on a board, against the real server: a deploy script's note reaching a screen, notes
//! surviving a restart, a reconnecting screen getting exactly the notes it missed, and who
//! may write, edit and delete them, over HTTP and over the socket.

#![cfg(feature = "ssr")]

mod support;

use pulseboard::protocol::{ErrorCode, Position, ServerFrame};
use serde_json::{json, Value};
use support::*;
use tempfile::TempDir;

const NOTES: &str = "http://{}/api/v1/boards/demo/notes";

fn notes_url(server: &Server) -> String {
    NOTES.replace("{}", &server.addr)
}

async fn post_note(client: &reqwest::Client, server: &Server, note: Value) -> reqwest::Response {
    client
        .post(notes_url(server))
        .json(&note)
        .send()
        .await
        .unwrap()
}

async fn listed(server: &Server) -> Vec<Value> {
    let list: Value = reqwest::get(notes_url(server))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["notes"].as_array().unwrap().clone()
}

/// A new key with one scope, made through the admin API: a client that sends it.
async fn writer(server: &Server, name: &str, scope: &str) -> reqwest::Client {
    let (_, secret) = server.create_key(name, &[scope]).await;
    client_with_key(&secret)
}

/// The next event on the socket, skipping other frames.
async fn next_event(socket: &mut Socket) -> pulseboard::protocol::Event {
    loop {
        if let ServerFrame::Event(event) = next(socket).await {
            return event;
        }
    }
}

#[tokio::test]
async fn a_deploy_scripts_note_reaches_an_open_screen_and_is_listed() {
    let server = Server::start(&[]);
    let mut screen = server.connect_guest().await;
    subscribe(&mut screen, "notes:demo", None).await;
    assert!(matches!(next(&mut screen).await, ServerFrame::Snapshot(_)));

    let written = post_note(
        &server.http(),
        &server,
        json!({"text": "deploy 3f2a91c", "topic": "metric:system", "entity": "latency", "moment": 1_796_117_400_000u64,
               "link": "https://ci.example.com/run/812"}),
    )
    .await;
    assert_eq!(written.status(), 201);
    let written: Value = written.json().await.unwrap();
    let event = next_event(&mut screen).await;
    assert_eq!(event.entity_id, written["id"].as_str().unwrap());
    assert_eq!(event.payload["text"], "deploy 3f2a91c");
    assert_eq!(
        event.payload["author_name"], "tests",
        "the key's name, not the writer's say"
    );
    assert_eq!(event.payload["moment"], 1_796_117_400_000u64);

    let notes = listed(&server).await;
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["id"], written["id"]);
    assert_eq!(notes[0]["topic"], "metric:system");
}

#[tokio::test]
async fn bad_notes_and_writers_without_the_right_get_typed_refusals() {
    let server = Server::start(&[]);
    let http = server.http();
    for (note, why) in [
        (json!({"text": "  "}), "empty"),
        (json!({"text": "x".repeat(2_001)}), "too long"),
        (
            json!({"text": "x", "topic": "metric:nowhere"}),
            "a topic the board does not show",
        ),
        (
            json!({"text": "x", "moment": 1}),
            "a moment without a topic",
        ),
        (
            json!({"text": "x", "link": "javascript:alert(1)"}),
            "not a web link",
        ),
    ] {
        let refused = post_note(&http, &server, note).await;
        assert_eq!(refused.status(), 422, "{why}");
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["code"], "invalid_note", "{why}");
    }
    // No key: nobody to name as the author.
    let anonymous = post_note(&reqwest::Client::new(), &server, json!({"text": "hi"})).await;
    assert_eq!(anonymous.status(), 401);
    // A key that may write nothing the board shows.
    let reader = writer(&server, "elsewhere", "publish:elsewhere:*").await;
    let refused = post_note(&reader, &server, json!({"text": "hi"})).await;
    assert_eq!(refused.status(), 403);
    // Ops straight to the notes topic would let anyone sign as anyone.
    let forged = server
        .publish(
            "notes:demo",
            json!({"ops": [{"op": "set", "entity_id": "x", "payload": {}}]}),
        )
        .await;
    assert_eq!(forged.status(), 403);
    let body: Value = forged.json().await.unwrap();
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("/api/v1/boards/demo/notes"));
    assert!(listed(&server).await.is_empty());
}

#[tokio::test]
async fn only_the_author_or_an_admin_edits_or_deletes_a_note() {
    let server = Server::start(&[]);
    let ana = writer(&server, "Ana", "publish:metric:*").await;
    let bo = writer(&server, "Bo", "publish:metric:*").await;
    let written: Value = post_note(&ana, &server, json!({"text": "investigating"}))
        .await
        .json()
        .await
        .unwrap();
    let at = format!("{}/{}", notes_url(&server), written["id"].as_str().unwrap());
    let by_bo = bo
        .put(&at)
        .json(&json!({"text": "mine now"}))
        .send()
        .await
        .unwrap();
    assert_eq!(by_bo.status(), 403);
    let by_ana = ana
        .put(&at)
        .json(&json!({"text": "all clear"}))
        .send()
        .await
        .unwrap();
    assert_eq!(by_ana.status(), 200);
    let notes = listed(&server).await;
    assert_eq!(notes[0]["text"], "all clear");
    assert!(notes[0]["edited"].as_u64().is_some());
    assert_eq!(bo.delete(&at).send().await.unwrap().status(), 403);
    assert_eq!(
        server.http().delete(&at).send().await.unwrap().status(),
        200,
        "an admin may"
    );
    assert_eq!(
        server.http().delete(&at).send().await.unwrap().status(),
        404
    );
    assert!(listed(&server).await.is_empty());
}

#[tokio::test]
async fn notes_survive_a_restart_and_a_reconnecting_screen_gets_exactly_those_it_missed() {
    let data = TempDir::new().unwrap();
    let server = Server::start_in(data.path(), &[]);
    let http = server.http();
    post_note(&http, &server, json!({"text": "first"})).await;
    let mut screen = server.connect_guest().await;
    subscribe(&mut screen, "notes:demo", None).await;
    let ServerFrame::Snapshot(snapshot) = next(&mut screen).await else {
        panic!("expected the notes' snapshot")
    };
    assert_eq!(snapshot.state.len(), 1);
    let at = Position {
        epoch: snapshot.epoch,
        offset: snapshot.offset,
    };
    drop(screen);
    for text in ["second", "third"] {
        post_note(&http, &server, json!({"text": text})).await;
    }
    server.stop();

    let server = Server::start_in(data.path(), &[]);
    assert_eq!(listed(&server).await.len(), 3, "every note is still there");
    let mut screen = server.connect_guest().await;
    subscribe(&mut screen, "notes:demo", Some(at)).await;
    let missed: Vec<String> = [next_event(&mut screen).await, next_event(&mut screen).await]
        .into_iter()
        .map(|e| e.payload["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(missed, ["second", "third"]);
    let ServerFrame::Resumed(resumed) = next(&mut screen).await else {
        panic!("expected resumed after exactly the missed notes")
    };
    assert_eq!(resumed.replayed, 2);
}

#[tokio::test]
async fn a_guest_on_a_public_board_is_told_why_it_may_not_write_and_a_writer_is_acked() {
    let server = Server::start(&[]);
    let mut guest = server.connect_guest().await;
    send(
        &mut guest,
        json!({"type": "join", "board": "demo", "person": "guest-browser"}),
    )
    .await;
    send(
        &mut guest,
        json!({"type": "note", "ref": "n1", "board": "demo", "text": "hello"}),
    )
    .await;
    let refusal = loop {
        if let ServerFrame::Error(error) = next(&mut guest).await {
            break error;
        }
    };
    assert_eq!(refusal.code, ErrorCode::Unauthenticated);
    assert_eq!(refusal.reference.as_deref(), Some("n1"));
    assert!(refusal.message.contains("sign in"), "{}", refusal.message);

    let mut admin = server.connect().await;
    send(&mut admin, json!({"type": "join", "board": "demo"})).await;
    send(
        &mut admin,
        json!({"type": "note", "ref": "n2", "board": "demo", "text": "DB failover 14:02"}),
    )
    .await;
    let ack = loop {
        if let ServerFrame::Ack(ack) = next(&mut admin).await {
            break ack;
        }
    };
    assert_eq!(
        (ack.reference.as_deref(), ack.published.topic.as_str()),
        (Some("n2"), "notes:demo")
    );
    assert_eq!(listed(&server).await[0]["text"], "DB failover 14:02");
}

#[tokio::test]
async fn a_board_keeps_its_newest_notes() {
    let server = Server::start(&[("PULSEBOARD_NOTES_PER_BOARD", "2")]);
    for text in ["one", "two", "three"] {
        let written = post_note(&server.http(), &server, json!({"text": text})).await;
        assert_eq!(written.status(), 201);
    }
    let texts: Vec<Value> = listed(&server)
        .await
        .iter()
        .map(|n| n["text"].clone())
        .collect();
    assert_eq!(
        texts,
        ["two", "three"],
        "the oldest let go, in the same write"
    );
}
