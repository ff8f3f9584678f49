//! An operator's life with a real server and a real SQLite file: upgrading keeps the data,
//! a data dir from a newer release is refused and left alone, and a backup taken while
//! writes stream in restores to a consistent state.

#![cfg(feature = "ssr")]

mod support;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use support::*;
use tempfile::TempDir;

/// `tests/fixtures/schema-1/pulseboard.db` was made once by the release of 2026-12-02
/// (schema version 1), stopped cleanly:
///
/// ```sh
/// PULSEBOARD_DATA_DIR=fixture PULSEBOARD_DEMO=false PULSEBOARD_NOTES_KEEP_DAYS=36500 pulseboard
/// pulseboard keys create --name "fixture deploys" --scope 'publish:*'   # FIXTURE_KEY
/// # then, with that key: the writes below, and one note on the demo board; stopped with
/// # SIGTERM, its write-ahead log checkpointed into the one file
/// ```
const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/schema-1");
const FIXTURE_KEY: &str = "pb_ab6d630c3c4105ffad04c8c247606aa84ec570f3336b93cc39947bc201f987c1";

/// Every topic of the fixture, with its epoch and offset.
const FIXTURE_TOPICS: &[(&str, u64, u64)] = &[
    ("feed:activity", 1796245271851, 1),
    ("metric:kpis", 1796245271836, 3),
    ("notes:demo", 1796245271882, 1),
    ("status:services", 1796245271868, 1),
];

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Every file in `dir` with its bytes.
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(entry.path()).unwrap())
        })
        .collect()
}

async fn topics(server: &Server) -> BTreeMap<String, (u64, u64)> {
    let (status, listed) = server.get("/api/v1/topics").await;
    assert_eq!(status, 200);
    listed["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|topic| {
            let name = topic["topic"].as_str().unwrap().to_owned();
            let at = (
                topic["epoch"].as_u64().unwrap(),
                topic["offset"].as_u64().unwrap(),
            );
            (name, at)
        })
        .collect()
}

#[tokio::test]
async fn a_data_dir_of_schema_1_keeps_every_topic_key_and_note() {
    let data = TempDir::new().unwrap();
    copy_dir(Path::new(FIXTURE), data.path());
    let server = Server::start_in(data.path(), &[]);

    let expected: BTreeMap<String, (u64, u64)> = FIXTURE_TOPICS
        .iter()
        .map(|(name, epoch, offset)| (name.to_string(), (*epoch, *offset)))
        .collect();
    assert!(expected.len() >= 3, "the fixture has topics to keep");
    assert_eq!(topics(&server).await, expected);
    let (_, kpis) = server.get("/api/v1/topics/metric:kpis").await;
    assert_eq!(kpis["state"], json!({"orders": 42, "signups": 7}));

    // The fixture's key still publishes, and the topic goes on from its offset.
    let (epoch, offset) = expected["metric:kpis"];
    let published: Value = server
        .publish_with(
            &client_with_key(FIXTURE_KEY),
            "metric:kpis",
            json!({"ops": [{"op": "incr", "entity_id": "orders", "by": 1}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(published["epoch"], epoch);
    assert_eq!(published["offset"], offset + 1);

    let (status, notes) = server.get("/api/v1/boards/demo/notes").await;
    assert_eq!(status, 200);
    let notes = notes["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["text"], "written by the release of 2026-12-02");
    assert_eq!(notes[0]["author_name"], "fixture deploys");
}

#[test]
fn a_data_dir_from_a_newer_release_is_refused_and_left_byte_for_byte_as_it_was() {
    let data = TempDir::new().unwrap();
    copy_dir(Path::new(FIXTURE), data.path());
    {
        let newer = rusqlite::Connection::open(data.path().join("pulseboard.db")).unwrap();
        newer.pragma_update(None, "user_version", 99).unwrap();
    }
    let before = contents(data.path());

    for args in [&["serve"][..], &["keys", "list"]] {
        let refused = Command::new(env!("CARGO_BIN_EXE_pulseboard"))
            .args(args)
            .env("PULSEBOARD_DATA_DIR", data.path())
            .env("PULSEBOARD_LISTEN", "127.0.0.1:0")
            .env("PULSEBOARD_DEMO", "false")
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "{args:?} starts on a newer file");
        assert!(
            said.contains("has schema version 99")
                && said.contains("versions up to 1")
                && said.contains("newer release"),
            "{args:?}: {said}"
        );
        assert_eq!(
            contents(data.path()),
            before,
            "{args:?} touched the data dir"
        );
    }
}

#[tokio::test]
async fn a_backup_taken_during_a_stream_of_batches_restores_a_consistent_prefix() {
    let data = TempDir::new().unwrap();
    let server = Server::start_in(data.path(), &[]);
    let http = server.http();
    let url = format!("http://{}/api/v1/batch", server.addr);
    let acknowledged = Arc::new(AtomicU64::new(0));
    let streaming = tokio::spawn({
        let acknowledged = acknowledged.clone();
        async move {
            for n in 1u64.. {
                // One batch sets `n` on both topics: a torn copy would show them apart.
                let writes = ["metric:left", "metric:right"].map(|topic| {
                    json!({"topic": topic, "ops": [{"op": "set", "entity_id": "n", "payload": n}]})
                });
                let answer = http
                    .post(&url)
                    .json(&json!({ "writes": writes }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(answer.status(), 200);
                acknowledged.store(n, Ordering::SeqCst);
            }
        }
    });
    while acknowledged.load(Ordering::SeqCst) < 200 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let copy = data.path().join("backup.db");
    let started = acknowledged.load(Ordering::SeqCst);
    let backup = {
        let (data, copy) = (data.path().to_owned(), copy.clone());
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_pulseboard"))
                .arg("backup")
                .arg(&copy)
                .env("PULSEBOARD_DATA_DIR", &data)
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    let finished = acknowledged.load(Ordering::SeqCst);
    assert!(
        backup.status.success(),
        "{}",
        String::from_utf8_lossy(&backup.stderr)
    );
    assert!(String::from_utf8_lossy(&backup.stdout).contains("topics"));
    // Writes went on during the backup and after it.
    while acknowledged.load(Ordering::SeqCst) < finished + 50 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    streaming.abort();
    let original = topics(&server).await;
    server.stop();

    let restored = TempDir::new().unwrap();
    std::fs::copy(&copy, restored.path().join("pulseboard.db")).unwrap();
    let server = Server::start_in(restored.path(), &[]);
    let at = topics(&server).await;
    let (_, left) = server.get("/api/v1/topics/metric:left").await;
    let (_, right) = server.get("/api/v1/topics/metric:right").await;
    let n = left["state"]["n"].as_u64().unwrap();
    assert_eq!(
        right["state"]["n"], n,
        "a batch is in the copy whole or not at all"
    );
    assert!(
        (started..=finished + 1).contains(&n),
        "the copy holds what was committed while it was taken (the last perhaps not yet \
         acknowledged): {started} ≤ {n} ≤ {finished} + 1"
    );
    for topic in ["metric:left", "metric:right"] {
        assert_eq!(
            at[topic],
            (original[topic].0, n),
            "{topic}: same epoch, offset n"
        );
    }
}
