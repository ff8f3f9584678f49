//! The SQLite store: one file under the data dir, in WAL mode, written by one thread that
//! groups every write waiting for it into a single transaction (group commit), so throughput
//! holds when many requests publish at once.
//!
//! Durability: a write is acknowledged after its transaction commits. With `fsync = false`
//! (SQLite `synchronous = NORMAL`) it survives the process crashing or being killed; a power
//! loss may drop the last acknowledged writes, never corrupt the file. With `fsync = true`
//! (`synchronous = FULL`) it survives power loss too, at the cost of one fsync per group.
//!
//! Because a power loss could take back events a screen has already seen, a store opened
//! after an unclean stop with `fsync = false` gives every topic a new epoch and drops the
//! stored history: screens then take a fresh snapshot instead of resuming into offsets that
//! may since mean different events. A clean stop ([`Store::close`]) records that it was clean.

use super::{
    failed, schema, Durable, Loaded, Remembered, Store, StoreError, TopicRecord, WriteUnit,
};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use tokio::sync::oneshot;

/// The most writes one transaction takes; more wait for the next.
const MAX_GROUP: usize = 512;

pub(crate) struct SqliteStore {
    path: PathBuf,
    queue: mpsc::Sender<Message>,
}

enum Message {
    Write(Queued),
    /// Commit what is queued, record a clean stop, and stop.
    Close(oneshot::Sender<()>),
}

struct Queued {
    unit: WriteUnit,
    forget_before: u64,
    done: oneshot::Sender<Result<(), StoreError>>,
}

// SQLite integers are i64; epochs and offsets stay far below 2^63.
fn sql(n: u64) -> i64 {
    n as i64
}

fn stored(n: i64) -> u64 {
    n as u64
}

impl SqliteStore {
    /// Opens (creating if needed) `pulseboard.db` in `data_dir` and starts its writer thread.
    pub(crate) fn open(data_dir: &Path, fsync: bool) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError(format!("cannot create {}: {e}", data_dir.display())))?;
        let path = data_dir.join("pulseboard.db");
        let mut connection = schema::open(&path, fsync)?;
        start(&mut connection, fsync).map_err(failed)?;
        let (queue, waiting) = mpsc::channel();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || write_loop(connection, waiting))
            .map_err(failed)?;
        Ok(Self { path, queue })
    }
}

impl Store for SqliteStore {
    fn load(&self, remember_since: u64) -> Result<Loaded, StoreError> {
        let connection = schema::open(&self.path, false)?;
        let mut topics = connection
            .prepare("SELECT name, epoch, head FROM topics ORDER BY name")
            .map_err(failed)?;
        let heads: Vec<(String, u64, u64)> = topics
            .query_map([], |row| {
                Ok((row.get(0)?, stored(row.get(1)?), stored(row.get(2)?)))
            })
            .map_err(failed)?
            .collect::<Result<_, _>>()
            .map_err(failed)?;
        let mut entities = connection
            .prepare(
                "SELECT entity_id, payload, expires_at, changed_ms FROM entities WHERE topic = ?1",
            )
            .map_err(failed)?;
        let mut events = connection
            .prepare("SELECT position, frame FROM events WHERE topic = ?1 ORDER BY position")
            .map_err(failed)?;
        let mut records = Vec::with_capacity(heads.len());
        for (name, epoch, offset) in heads {
            let mut state = BTreeMap::new();
            let mut expiries = BTreeMap::new();
            let mut changed = BTreeMap::new();
            let rows = entities
                .query_map([&name], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, Option<i64>>(2)?,
                        row.get::<_, Option<i64>>(3)?,
                    ))
                })
                .map_err(failed)?;
            for row in rows {
                let (id, payload, expires_at, changed_ms) = row.map_err(failed)?;
                let payload: Value = serde_json::from_str(&payload)
                    .map_err(|e| StoreError(format!("entity {id} of {name}: {e}")))?;
                if let Some(at) = expires_at {
                    expiries.insert(id.clone(), stored(at));
                }
                if let Some(at) = changed_ms {
                    changed.insert(id.clone(), stored(at));
                }
                state.insert(id, payload);
            }
            let history = events
                .query_map([&name], |row| Ok((stored(row.get(0)?), row.get(1)?)))
                .map_err(failed)?
                .collect::<Result<_, _>>()
                .map_err(failed)?;
            records.push(TopicRecord {
                name,
                epoch,
                offset,
                state,
                expiries,
                changed,
                history,
            });
        }
        let remembered = connection
            .prepare(
                "SELECT key, fingerprint, response, created_ms FROM idempotency
                 WHERE created_ms >= ?1",
            )
            .map_err(failed)?
            .query_map([sql(remember_since)], |row| {
                Ok(Remembered {
                    key: row.get(0)?,
                    fingerprint: row.get(1)?,
                    response: row.get(2)?,
                    created_ms: stored(row.get(3)?),
                    forget: Vec::new(),
                })
            })
            .map_err(failed)?
            .collect::<Result<_, _>>()
            .map_err(failed)?;
        Ok(Loaded {
            topics: records,
            remembered,
        })
    }

    fn write(&self, unit: WriteUnit, forget_before: u64) -> Durable {
        let (done, durable) = oneshot::channel();
        let queued = Queued {
            unit,
            forget_before,
            done,
        };
        if let Err(mpsc::SendError(Message::Write(queued))) =
            self.queue.send(Message::Write(queued))
        {
            let _ = queued
                .done
                .send(Err(StoreError("the store writer has stopped".into())));
        }
        durable
    }

    fn close(&self) -> oneshot::Receiver<()> {
        let (done, closed) = oneshot::channel();
        let _ = self.queue.send(Message::Close(done));
        closed
    }
}

/// Records that the store is in use, durably, and renews epochs if the last stop was unclean
/// and unsynced (see the module doc).
fn start(connection: &mut Connection, fsync: bool) -> rusqlite::Result<()> {
    let last_stop_clean: Option<String> = connection
        .query_row("SELECT value FROM meta WHERE key = 'clean'", [], |row| {
            row.get(0)
        })
        .optional()?;
    connection.execute_batch("PRAGMA synchronous = FULL")?;
    let tx = connection.transaction()?;
    if !fsync && last_stop_clean.as_deref() == Some("0") {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let renewed = tx.execute("UPDATE topics SET epoch = MAX(?1, epoch + 1)", [now])?;
        tx.execute("DELETE FROM events", [])?;
        if renewed > 0 {
            tracing::warn!(
                "the last stop was not clean and fsync is off: {renewed} topics start a new epoch"
            );
        }
    }
    tx.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('clean', '0')",
        [],
    )?;
    tx.commit()?;
    connection.execute_batch(if fsync {
        "PRAGMA synchronous = FULL"
    } else {
        "PRAGMA synchronous = NORMAL"
    })
}

/// The writer thread: takes every write waiting, commits them in one transaction, answers
/// each. Ends when the store is dropped.
fn write_loop(mut connection: Connection, waiting: mpsc::Receiver<Message>) {
    let mut closing = None;
    while closing.is_none() {
        let Ok(first) = waiting.recv() else { break };
        let mut group = Vec::new();
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Write(queued) => group.push(queued),
                Message::Close(done) => {
                    closing = Some(done);
                    break;
                }
            }
            if group.len() < MAX_GROUP {
                next = waiting.try_recv().ok();
            }
        }
        if !group.is_empty() {
            commit_group(&mut connection, group);
        }
    }
    if let Some(done) = closing {
        let marked = connection.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('clean', '1')",
            [],
        );
        if let Err(e) = marked {
            tracing::error!("recording a clean stop: {e}");
        }
        let _ = done.send(());
    }
}

/// Commits a group in one transaction and answers each write.
fn commit_group(connection: &mut Connection, group: Vec<Queued>) {
    match commit(connection, &group) {
        Ok(()) => {
            for queued in group {
                let _ = queued.done.send(Ok(()));
            }
        }
        // One unit's failure must not fail the others grouped with it: retry each alone.
        Err(_) if group.len() > 1 => {
            for queued in group {
                let alone = std::slice::from_ref(&queued);
                let result = commit(connection, alone);
                let _ = queued.done.send(result);
            }
        }
        Err(e) => {
            for queued in group {
                let _ = queued.done.send(Err(e.clone()));
            }
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        failed(e)
    }
}

/// Where one topic stands as a group's writes go through it, and what they leave behind.
#[derive(Default)]
struct Touched<'a> {
    epoch: u64,
    head: u64,
    keep_history: usize,
    /// Each entity's last change in the group: `None` deletes it.
    entities: HashMap<&'a str, Option<EntityChange<'a>>>,
}

/// An entity's payload, its expiry and when it changed (ms since the Unix epoch).
type EntityChange<'a> = (&'a Value, Option<u64>, u64);

/// Records a group of units in one transaction. A busy topic has many writes in a group, so
/// each topic's head is read once and written once, its history trimmed once, and each of its
/// entities written once with its last value; only the events are one row each.
fn commit(connection: &mut Connection, group: &[Queued]) -> Result<(), StoreError> {
    let tx = connection.transaction()?;
    {
        let mut stands =
            tx.prepare_cached("SELECT head FROM topics WHERE name = ?1 AND epoch = ?2")?;
        let mut event =
            tx.prepare_cached("INSERT INTO events (topic, position, frame) VALUES (?1, ?2, ?3)")?;
        let mut remember = tx.prepare_cached(
            "INSERT OR REPLACE INTO idempotency (key, fingerprint, response, created_ms)
             VALUES (?1, ?2, ?3, ?4)",
        )?;
        let mut forget = tx.prepare_cached("DELETE FROM idempotency WHERE created_ms < ?1")?;
        if let Some(oldest) = group.iter().map(|q| q.forget_before).min() {
            forget.execute([sql(oldest)])?;
        }
        let mut let_go = tx.prepare_cached("DELETE FROM idempotency WHERE key = ?1")?;
        for record in group.iter().filter_map(|q| q.unit.remember.as_ref()) {
            for key in &record.forget {
                let_go.execute([key])?;
            }
            remember.execute(params![
                record.key,
                record.fingerprint,
                record.response,
                sql(record.created_ms)
            ])?;
        }
        let mut touched: HashMap<&str, Touched> = HashMap::new();
        for write in group.iter().flat_map(|q| &q.unit.topics) {
            let at = match touched.get(write.topic.as_str()) {
                // A topic made again under a new epoch stands at nothing in it yet.
                Some(earlier) => (earlier.epoch == write.epoch).then_some(earlier.head),
                None => stands
                    .query_row(params![write.topic, sql(write.epoch)], |row| row.get(0))
                    .optional()?
                    .map(stored),
            };
            if at.unwrap_or(0) != write.base {
                return Err(StoreError(format!(
                    "{} stands at offset {}, not {}: the write it was planned after failed",
                    write.topic,
                    at.unwrap_or(0),
                    write.base
                )));
            }
            let topic = touched.entry(&write.topic).or_default();
            topic.epoch = write.epoch;
            topic.head = write.offset;
            topic.keep_history = write.keep_history;
            for (id, payload, expires_at) in &write.upserts {
                let change = (payload, *expires_at, write.at_ms);
                topic.entities.insert(id, Some(change));
            }
            for id in &write.deletes {
                topic.entities.insert(id, None);
            }
            for (position, frame) in &write.events {
                event.execute(params![write.topic, sql(*position), frame])?;
            }
        }
        let mut head = tx.prepare_cached(
            "INSERT INTO topics (name, epoch, head) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET epoch = excluded.epoch, head = excluded.head",
        )?;
        let mut upsert = tx.prepare_cached(
            "INSERT INTO entities (topic, entity_id, payload, expires_at, changed_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (topic, entity_id) DO UPDATE SET payload = excluded.payload,
                 expires_at = excluded.expires_at, changed_ms = excluded.changed_ms",
        )?;
        let mut delete =
            tx.prepare_cached("DELETE FROM entities WHERE topic = ?1 AND entity_id = ?2")?;
        let mut trim =
            tx.prepare_cached("DELETE FROM events WHERE topic = ?1 AND position <= ?2")?;
        for (name, topic) in &touched {
            head.execute(params![name, sql(topic.epoch), sql(topic.head)])?;
            for (id, change) in &topic.entities {
                match change {
                    Some((payload, expires_at, at_ms)) => upsert.execute(params![
                        name,
                        id,
                        payload.to_string(),
                        expires_at.map(sql),
                        sql(*at_ms)
                    ])?,
                    None => delete.execute(params![name, id])?,
                };
            }
            let oldest_kept = topic.head.saturating_sub(topic.keep_history as u64);
            trim.execute(params![name, sql(oldest_kept)])?;
        }
    }
    Ok(tx.commit()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::TopicWrite;
    use serde_json::json;

    /// A write to `topic` planned after `base`: one event per upsert and delete.
    fn planned(topic: &str, base: u64, upserts: &[(&str, i64)], deletes: &[&str]) -> TopicWrite {
        let offset = base + (upserts.len() + deletes.len()) as u64;
        TopicWrite {
            topic: topic.into(),
            epoch: 1,
            base,
            offset,
            upserts: upserts
                .iter()
                .map(|(id, value)| (id.to_string(), json!(value), None))
                .collect(),
            at_ms: 1_000 + base,
            deletes: deletes.iter().map(|id| id.to_string()).collect(),
            events: (base + 1..=offset)
                .map(|at| (at, format!("{{\"offset\":{at}}}")))
                .collect(),
            keep_history: 2,
        }
    }

    /// Commits the writes as one group, each its own unit; returns each one's answer.
    fn commit_together(connection: &mut Connection, writes: Vec<TopicWrite>) -> Vec<bool> {
        let (group, answers): (Vec<Queued>, Vec<_>) = writes
            .into_iter()
            .map(|write| {
                let (done, answer) = oneshot::channel();
                let unit = WriteUnit {
                    topics: vec![write],
                    remember: None,
                };
                let queued = Queued {
                    unit,
                    forget_before: 0,
                    done,
                };
                (queued, answer)
            })
            .unzip();
        commit_group(connection, group);
        answers
            .into_iter()
            .map(|mut answer| answer.try_recv().unwrap().is_ok())
            .collect()
    }

    fn rows(connection: &Connection, sql: &str) -> Vec<(String, String)> {
        let mut statement = connection.prepare(sql).unwrap();
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)));
        rows.unwrap().map(Result::unwrap).collect()
    }

    fn store() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::TempDir::new().unwrap();
        let connection = schema::open(&dir.path().join("pulseboard.db"), false).unwrap();
        (dir, connection)
    }

    #[test]
    fn a_group_of_writes_to_one_topic_lands_as_if_committed_one_by_one() {
        let (_dir, mut connection) = store();
        let answers = commit_together(
            &mut connection,
            vec![
                planned("t", 0, &[("a", 1)], &[]),
                planned("t", 1, &[("a", 2), ("b", 1)], &[]),
                planned("t", 3, &[("c", 1)], &["b"]),
            ],
        );
        assert_eq!(answers, [true, true, true]);
        let head = "SELECT name, CAST(head AS TEXT) FROM topics";
        assert_eq!(rows(&connection, head), [("t".into(), "5".into())]);
        // Each entity's last value; `b` made and deleted within the group is gone.
        let entities = "SELECT entity_id, payload || '@' || changed_ms FROM entities ORDER BY 1";
        assert_eq!(
            rows(&connection, entities),
            [("a".into(), "2@1001".into()), ("c".into(), "1@1003".into())]
        );
        // Every event written, then the history trimmed to the newest two.
        let events = "SELECT CAST(position AS TEXT), frame FROM events ORDER BY position";
        let kept: Vec<String> = rows(&connection, events).into_iter().map(|r| r.0).collect();
        assert_eq!(kept, ["4", "5"]);
    }

    #[test]
    fn a_write_not_planned_where_its_topic_stands_is_refused_and_the_rest_of_its_group_lands() {
        let (_dir, mut connection) = store();
        let answers = commit_together(
            &mut connection,
            vec![
                planned("t", 0, &[("a", 1)], &[]),
                // Planned after offset 5, which no write reached.
                planned("t", 5, &[("x", 1)], &[]),
                planned("u", 0, &[("a", 1)], &[]),
                planned("t", 1, &[("a", 2)], &[]),
            ],
        );
        assert_eq!(answers, [true, false, true, true]);
        let heads = "SELECT name, CAST(head AS TEXT) FROM topics ORDER BY name";
        assert_eq!(
            rows(&connection, heads),
            [("t".into(), "2".into()), ("u".into(), "1".into())]
        );
        let entities = "SELECT topic || '/' || entity_id, payload FROM entities ORDER BY 1";
        assert_eq!(
            rows(&connection, entities),
            [("t/a".into(), "2".into()), ("u/a".into(), "1".into())]
        );
    }
}
