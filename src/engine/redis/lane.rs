//! One topic's writes from this instance: planned ahead of their commits and sent to Redis
//! in pipelines, so a busy topic is not one round trip per request.
//!
//! A request plans against the topic as the commits this instance has queued will leave it
//! ([`Ahead`]), queues its commit and lets the next request plan. A [`committer`] task sends
//! whatever is queued as one pipeline, in order; Redis runs the scripts one after another.
//! Each commit still checks that the topic stands where it was planned, after the very
//! commit it was planned after (an id, not only an offset: another instance's commit can
//! reach the same offset with other values), so when another instance wrote first, that
//! commit and every one queued after it are refused; each of
//! those requests forgets the planned copy (once) and plans again against Redis.

use super::{unreachable, CommitCall, Committed, EngineError};
use crate::engine::write::Prepared;
use redis::aio::ConnectionManager;
use redis::{Script, Value};
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Mutex};

/// Commits sent in one pipeline at most.
const MAX_PIPELINE: usize = 256;

/// A topic as this instance's queued commits will leave it.
pub(super) struct Planned {
    pub(crate) epoch: u64,
    pub(crate) offset: u64,
    /// The commit the next write is planned after: the last one queued.
    pub(crate) last: String,
    pub(crate) state: BTreeMap<String, Json>,
    pub(crate) expiries: BTreeMap<String, u64>,
}

impl Planned {
    /// Takes in a write queued for commit as `id`.
    pub(crate) fn advance(&mut self, prepared: &Prepared, id: String) {
        self.offset = prepared.head();
        self.last = id;
        for (id, value) in prepared.finals() {
            match value {
                Some((payload, expires_at)) => {
                    self.state.insert(id.to_owned(), payload.clone());
                    match expires_at {
                        Some(at) => self.expiries.insert(id.to_owned(), at),
                        None => self.expiries.remove(id),
                    };
                }
                None => {
                    self.state.remove(id);
                    self.expiries.remove(id);
                }
            }
        }
    }
}

/// What planning needs, under the lane's lock.
#[derive(Default)]
pub(super) struct Ahead {
    /// `None` until read from Redis, and again once a commit planned on it was refused.
    pub(crate) topic: Option<Planned>,
    /// Counts reads from Redis, so a refusal forgets only the copy it was planned on.
    pub(crate) generation: u64,
}

type Queued = (CommitCall, oneshot::Sender<Result<Value, EngineError>>);

/// One topic's planning lock and commit queue.
pub(super) struct Lane {
    pub(crate) ahead: Mutex<Ahead>,
    queue: mpsc::UnboundedSender<Queued>,
}

impl Lane {
    pub(crate) fn start(commands: ConnectionManager, script: Script) -> Arc<Self> {
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(committer(waiting, commands, script));
        Arc::new(Lane {
            ahead: Mutex::new(Ahead::default()),
            queue,
        })
    }

    /// Queues a commit, behind every one queued before it; resolves with its answer.
    pub(crate) fn commit(&self, call: CommitCall) -> oneshot::Receiver<Result<Value, EngineError>> {
        let (answer, answered) = oneshot::channel();
        // The committer lives as long as the lane: the send cannot fail while `self` does.
        let _ = self.queue.send((call, answer));
        answered
    }

    /// Forgets the planned copy of `generation`, if it is still the one held.
    pub(crate) async fn forget(&self, generation: u64) {
        let mut ahead = self.ahead.lock().await;
        if ahead.generation == generation {
            ahead.topic = None;
        }
    }
}

/// Reads an answer of the commit script.
pub(super) fn committed(answer: Result<Value, EngineError>) -> Result<Committed, EngineError> {
    super::committed(&answer?)
}

/// Sends what is queued, as one pipeline at a time, until the lane is dropped.
async fn committer(
    mut waiting: mpsc::UnboundedReceiver<Queued>,
    mut commands: ConnectionManager,
    script: Script,
) {
    while let Some(first) = waiting.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_PIPELINE {
            match waiting.try_recv() {
                Ok(queued) => batch.push(queued),
                Err(_) => break,
            }
        }
        let mut pipe = redis::pipe();
        // Loading costs Redis a hash; it saves a failed round trip after Redis restarted.
        pipe.load_script(&script).ignore();
        for (call, _) in &batch {
            pipe.invoke_script(&call.invocation(&script));
        }
        let answers: Result<Vec<Value>, _> = pipe.query_async(&mut commands).await;
        match answers {
            Ok(answers) if answers.len() == batch.len() => {
                for ((_, answer), value) in batch.into_iter().zip(answers) {
                    let _ = answer.send(Ok(value));
                }
            }
            Ok(answers) => {
                let e = EngineError::Failed(format!(
                    "redis: {} answers to a pipeline of {} commits",
                    answers.len(),
                    batch.len()
                ));
                for (_, answer) in batch {
                    let _ = answer.send(Err(e.clone()));
                }
            }
            Err(e) => {
                let e = unreachable(e);
                for (_, answer) in batch {
                    let _ = answer.send(Err(e.clone()));
                }
            }
        }
    }
}
