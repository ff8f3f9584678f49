//! Topics marked as not updating, across instances: `pb:marks` (hash: topic → why), and
//! each change announced on the `pb:marks` channel as `{"topic", "mark"}|instance`. The
//! instance that marks tells its own hub at once; the others hear the channel, and read the
//! whole hash again whenever their pub/sub connection comes back, so a change made while
//! they could not hear is not missed.

use super::unreachable;
use crate::engine::EngineError;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The hash of every marked topic, and the channel its changes are announced on.
pub(crate) const MARKS: &str = "pb:marks";

/// One change, as announced.
#[derive(Serialize, Deserialize)]
pub(crate) struct MarkChange {
    pub(crate) topic: String,
    pub(crate) mark: Option<String>,
}

/// Records the mark and announces it.
pub(crate) async fn mark(
    commands: &ConnectionManager,
    instance: &str,
    change: &MarkChange,
) -> Result<(), EngineError> {
    let mut commands = commands.clone();
    let mut pipe = redis::pipe();
    match &change.mark {
        Some(reason) => pipe.hset(MARKS, &change.topic, reason).ignore(),
        None => pipe.hdel(MARKS, &change.topic).ignore(),
    };
    let message = serde_json::to_string(change).expect("a mark encodes");
    pipe.publish(MARKS, format!("{message}|{instance}"))
        .ignore();
    pipe.query_async::<()>(&mut commands)
        .await
        .map_err(unreachable)
}

/// Every topic marked now.
pub(crate) async fn read_all(
    commands: &ConnectionManager,
) -> Result<HashMap<String, String>, EngineError> {
    let mut commands = commands.clone();
    commands.hgetall(MARKS).await.map_err(unreachable)
}
