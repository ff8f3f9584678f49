//! Who views each board, across instances: each instance writes its own pages on a board to
//! `pb:presence:<board>` (hash: page id → the [`Viewer`] as JSON, with its instance) with an
//! expiry in `pb:presence-exp:<board>` (zset: page id → ms), refreshes the expiry every
//! [`REFRESH`], and announces a change on the `pb:presence` channel. An instance that dies
//! stops refreshing: its viewers expire within [`TTL`], and the next instance to refresh a
//! board they were on drops them and announces it, so screens see them leave within
//! `TTL + REFRESH`. Screen reloads go out on `pb:reload` and typing on `pb:typing` the same
//! way, never stored.

use super::bus::Bus;
use super::unreachable;
use crate::clock::now_ms;
use crate::engine::EngineError;
use crate::engine::Viewer;
use crate::protocol::Typing;
use parking_lot::Mutex;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Weak;
use std::time::Duration;

/// How long a viewer counts as present without its instance refreshing it.
pub(crate) const TTL: Duration = Duration::from_secs(15);
/// How often each instance refreshes its viewers.
pub(crate) const REFRESH: Duration = Duration::from_secs(5);
/// The channel presence changes are announced on: `board|instance`.
pub(crate) const PRESENCE_CHANNEL: &str = "pb:presence";
/// The channel screen reloads are asked on: `within_ms|instance`.
pub(crate) const RELOAD_CHANNEL: &str = "pb:reload";
/// The channel typing is told on: `{typing as JSON}|instance`.
pub(crate) const TYPING_CHANNEL: &str = "pb:typing";

fn data(board: &str) -> String {
    format!("pb:presence:{board}")
}

fn expiries(board: &str) -> String {
    format!("pb:presence-exp:{board}")
}

/// A page as stored in the hash: the viewer, and the instance that holds its connection.
#[derive(Serialize, Deserialize)]
struct Record {
    #[serde(flatten)]
    viewer: Viewer,
    instance: String,
}

pub(crate) struct Presence {
    commands: ConnectionManager,
    /// This instance, as viewers and messages name it.
    pub(crate) instance: String,
    /// The viewers this instance last shared, per board.
    shared: Mutex<HashMap<String, Vec<Viewer>>>,
    /// One writer at a time, so a refresh cannot write back a viewer a share just removed.
    writing: tokio::sync::Mutex<()>,
}

impl Presence {
    pub(crate) fn new(commands: ConnectionManager, instance: String) -> Self {
        Presence {
            commands,
            instance,
            shared: Mutex::default(),
            writing: tokio::sync::Mutex::new(()),
        }
    }

    /// Replaces this instance's viewers of `board` with `viewers`, and announces it.
    pub(crate) async fn share(&self, board: &str, viewers: Vec<Viewer>) -> Result<(), EngineError> {
        let _one_writer = self.writing.lock().await;
        let before = {
            let mut shared = self.shared.lock();
            let before = shared.remove(board).unwrap_or_default();
            if !viewers.is_empty() {
                shared.insert(board.to_owned(), viewers.clone());
            }
            before
        };
        let mut commands = self.commands.clone();
        // All of it or none: a viewer written without its expiry would never leave. Only what
        // changed is written (the refresh rewrites the rest), looked up by page, so a burst
        // of joins on a board of thousands costs each share its changes, not the board.
        let mut pipe = redis::pipe();
        pipe.atomic();
        let now: HashMap<&str, &Viewer> = viewers.iter().map(|v| (v.tab.as_str(), v)).collect();
        for gone in before.iter().filter(|b| !now.contains_key(b.tab.as_str())) {
            pipe.hdel(data(board), &gone.tab).ignore();
            pipe.zrem(expiries(board), &gone.tab).ignore();
        }
        let was: HashMap<&str, &Viewer> = before.iter().map(|v| (v.tab.as_str(), v)).collect();
        let changed: Vec<Viewer> = viewers
            .iter()
            .filter(|v| was.get(v.tab.as_str()).copied() != Some(*v))
            .cloned()
            .collect();
        self.write(&mut pipe, board, &changed);
        pipe.publish(PRESENCE_CHANNEL, format!("{board}|{}", self.instance))
            .ignore();
        pipe.query_async::<()>(&mut commands)
            .await
            .map_err(unreachable)
    }

    fn write(&self, pipe: &mut redis::Pipeline, board: &str, viewers: &[Viewer]) {
        let until = now_ms() + TTL.as_millis() as u64;
        for viewer in viewers {
            let record = Record {
                viewer: viewer.clone(),
                instance: self.instance.clone(),
            };
            let record = serde_json::to_string(&record).expect("a viewer encodes");
            pipe.hset(data(board), &viewer.tab, record).ignore();
            pipe.zadd(expiries(board), &viewer.tab, until).ignore();
        }
    }

    /// The viewers of `board` on the other instances; expired ones are dropped on the way.
    pub(crate) async fn others(&self, board: &str) -> Result<Vec<Viewer>, EngineError> {
        self.prune(board).await?;
        let mut commands = self.commands.clone();
        let all: Vec<(String, String)> =
            commands.hgetall(data(board)).await.map_err(unreachable)?;
        // Only viewers whose expiry is still ahead count, whatever the hash holds.
        let live: Vec<String> = commands
            .zrangebyscore(expiries(board), now_ms(), "+inf")
            .await
            .map_err(unreachable)?;
        Ok(all
            .into_iter()
            .filter(|(id, _)| live.contains(id))
            .filter_map(|(_, record)| {
                // A record an older version wrote (no person) is skipped until it is rewritten.
                let record: Record = serde_json::from_str(&record).ok()?;
                (record.instance != self.instance).then_some(record.viewer)
            })
            .collect())
    }

    /// Drops viewers whose instance stopped refreshing them; true if there were any.
    async fn prune(&self, board: &str) -> Result<bool, EngineError> {
        let mut commands = self.commands.clone();
        let expired: Vec<String> = commands
            .zrangebyscore(expiries(board), "-inf", now_ms())
            .await
            .map_err(unreachable)?;
        if expired.is_empty() {
            return Ok(false);
        }
        let mut pipe = redis::pipe();
        pipe.hdel(data(board), &expired).ignore();
        pipe.zrem(expiries(board), &expired).ignore();
        pipe.query_async::<()>(&mut commands)
            .await
            .map_err(unreachable)?;
        Ok(true)
    }

    /// Refreshes this instance's viewers, and announces the boards where an instance's
    /// viewers expired.
    async fn refresh(&self) -> Result<(), EngineError> {
        let _one_writer = self.writing.lock().await;
        let shared: Vec<(String, Vec<Viewer>)> = self
            .shared
            .lock()
            .iter()
            .map(|(b, v)| (b.clone(), v.clone()))
            .collect();
        let mut commands = self.commands.clone();
        for (board, viewers) in shared {
            let mut pipe = redis::pipe();
            pipe.atomic();
            self.write(&mut pipe, &board, &viewers);
            pipe.query_async::<()>(&mut commands)
                .await
                .map_err(unreachable)?;
            if self.prune(&board).await? {
                let _: () = commands
                    .publish(PRESENCE_CHANNEL, format!("{board}|{}", self.instance))
                    .await
                    .map_err(unreachable)?;
            }
        }
        Ok(())
    }

    /// Tells the other instances that someone here is writing a note.
    pub(crate) async fn typing(&self, typing: &Typing) -> Result<(), EngineError> {
        let mut commands = self.commands.clone();
        let message = serde_json::to_string(typing).expect("typing encodes");
        commands
            .publish(TYPING_CHANNEL, format!("{message}|{}", self.instance))
            .await
            .map_err(unreachable)
    }

    /// Asks every other instance's screens to reload.
    pub(crate) async fn reload(&self, within_ms: u64) -> Result<(), EngineError> {
        let mut commands = self.commands.clone();
        commands
            .publish(RELOAD_CHANNEL, format!("{within_ms}|{}", self.instance))
            .await
            .map_err(unreachable)
    }
}

/// What a message on one of these channels says, if another instance than `instance` sent it.
pub(crate) fn from_elsewhere<'a>(payload: &'a str, instance: &str) -> Option<&'a str> {
    let (what, sender) = payload.rsplit_once('|')?;
    (sender != instance).then_some(what)
}

/// Refreshes the viewers every [`REFRESH`] while the engine lives, and has the hub read the
/// other instances' viewers of its boards again, which also catches a change announced
/// while the pub/sub connection was down.
pub(crate) async fn keep_fresh(presence: Weak<Presence>, bus: Weak<Bus>) {
    let mut tick = tokio::time::interval(REFRESH);
    loop {
        tick.tick().await;
        let (Some(presence), Some(bus)) = (presence.upgrade(), bus.upgrade()) else {
            return;
        };
        if let Err(e) = presence.refresh().await {
            tracing::warn!("refreshing presence: {e}");
        }
        let boards: Vec<String> = presence.shared.lock().keys().cloned().collect();
        if let Some(deliveries) = bus.deliveries() {
            for board in boards {
                deliveries.viewers_changed(&board);
            }
        }
    }
}
