//! A write between planning and committing, the same for every engine: a batch's ops gathered
//! per topic, planned against the topic's head, the resulting events given their offsets and
//! encoded once, and the final value of each entity they touch.

use super::plan::{self, Change, Entities, OpError};
use super::{Committed, PublishError};
use crate::clock::iso8601;
use crate::encoded::{encode, EncodedFrame};
use crate::ops::{Batch, Op, Published};
use crate::protocol::{Event, EventKind, ServerFrame};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// A batch's ops gathered per topic, in the order topics first appear, with where each op
/// came from so a refusal can name it.
pub(crate) struct Grouped {
    pub(crate) topic: String,
    ops: Vec<Op>,
    /// For each op: (index of its write in the batch, index within that write).
    origins: Vec<(usize, usize)>,
}

pub(crate) fn group(batch: &Batch) -> Vec<Grouped> {
    let mut groups: Vec<Grouped> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (write_index, write) in batch.writes.iter().enumerate() {
        let at = *index.entry(write.topic.as_str()).or_insert_with(|| {
            groups.push(Grouped {
                topic: write.topic.clone(),
                ops: Vec::new(),
                origins: Vec::new(),
            });
            groups.len() - 1
        });
        let group = &mut groups[at];
        for (op_index, op) in write.ops.iter().enumerate() {
            group.ops.push(op.clone());
            group.origins.push((write_index, op_index));
        }
    }
    groups
}

impl Grouped {
    /// Plans this topic's ops against its entities; a refusal names the op as the request
    /// did.
    pub(crate) fn plan(
        &self,
        entities: Entities<'_>,
        next_offset: u64,
        now_ms: u64,
    ) -> Result<Vec<Change>, PublishError> {
        plan::plan(entities, &self.ops, next_offset, now_ms).map_err(|error| {
            let (write, op) = self.origins[error.index];
            PublishError::Refused {
                write,
                error: OpError { index: op, ..error },
            }
        })
    }
}

/// Who wrote a change, copied into its events.
pub(crate) struct Authorship {
    pub(crate) user_id: Option<String>,
    pub(crate) trace_id: Option<String>,
}

/// Where a topic stands when a write is planned against it.
pub(crate) struct Head<'a> {
    pub(crate) topic: &'a str,
    pub(crate) epoch: u64,
    pub(crate) offset: u64,
    /// How many events the topic keeps.
    pub(crate) keep: usize,
}

/// Events with their offsets and encoded frames, ready to be committed and applied.
pub(crate) struct Prepared {
    pub(crate) topic: String,
    pub(crate) epoch: u64,
    /// The offset the write was planned against.
    pub(crate) base: u64,
    pub(crate) keep: usize,
    /// When the changes were made, ms since the Unix epoch: their events' `ts`, and when
    /// each entity they touch last changed.
    pub(crate) at_ms: u64,
    pub(crate) events: Vec<(u64, Change, EncodedFrame)>,
}

/// Gives changes planned at `at_ms` their offsets after `head` and encodes each event once.
pub(crate) fn prepare(
    head: Head<'_>,
    changes: Vec<Change>,
    by: &Authorship,
    at_ms: u64,
) -> Prepared {
    let ts = iso8601(at_ms);
    let events = changes
        .into_iter()
        .zip(head.offset + 1..)
        .map(|(change, offset)| {
            let frame = encode(&ServerFrame::Event(Event {
                topic: head.topic.to_owned(),
                epoch: head.epoch,
                offset,
                event: change.kind.clone(),
                entity_id: change.entity_id.clone(),
                payload: change.payload.clone(),
                ts: ts.clone(),
                user_id: by.user_id.clone(),
                trace_id: by.trace_id.clone(),
            }));
            (offset, change, frame)
        })
        .collect();
    Prepared {
        topic: head.topic.to_owned(),
        epoch: head.epoch,
        base: head.offset,
        keep: head.keep,
        at_ms,
        events,
    }
}

/// The final value of one entity a write touched: its payload and expiry, or gone.
pub(crate) type Final<'a> = Option<(&'a Value, Option<u64>)>;

impl Prepared {
    pub(crate) fn offsets(&self) -> Vec<u64> {
        self.events.iter().map(|(offset, _, _)| *offset).collect()
    }

    /// What the request is answered for this topic.
    pub(crate) fn published(&self) -> Published {
        Published {
            topic: self.topic.clone(),
            epoch: self.epoch,
            offset: self.head(),
            offsets: self.offsets(),
        }
    }

    /// The offset after this write.
    pub(crate) fn head(&self) -> u64 {
        self.base + self.events.len() as u64
    }

    /// Each touched entity's value once every event has applied.
    pub(crate) fn finals(&self) -> BTreeMap<&str, Final<'_>> {
        let mut finals = BTreeMap::new();
        for (_, change, _) in &self.events {
            let value =
                (change.kind != EventKind::Deleted).then_some((&change.payload, change.expires_at));
            finals.insert(change.entity_id.as_str(), value);
        }
        finals
    }

    /// The events as a follower applies them.
    pub(crate) fn committed(self) -> Vec<Committed> {
        let at_ms = self.at_ms;
        self.events
            .into_iter()
            .map(|(offset, change, frame)| Committed {
                offset,
                kind: change.kind,
                entity_id: change.entity_id,
                payload: change.payload,
                at_ms,
                frame,
            })
            .collect()
    }
}
