//! Idempotency keys: a request retried with the same `Idempotency-Key` applies once, and
//! every retry gets the first answer. Records are kept for a day, in memory and in the store
//! (written in the same transaction as the request's events, so a retry after a crash sees
//! exactly what was applied).
//!
//! A key belongs to the API key that sent it ([`IdempotencyKey`]): two publishers that happen
//! to pick the same header value never meet. Each API key has the server remember at most
//! its newest `idempotency_keys`; a newer one lets go of its oldest, so one publisher cannot
//! make the server remember without bound.

use crate::ops::{Batch, BatchPublished};
use crate::store::Remembered;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};

/// How long a key is remembered.
pub(crate) const REMEMBER_FOR_MS: u64 = 24 * 60 * 60 * 1000;

/// The longest key accepted.
pub(crate) const MAX_KEY_LEN: usize = 255;

/// An `Idempotency-Key`, within the keys of the API key that sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IdempotencyKey {
    /// The id of the API key that sent it.
    pub(crate) owner: String,
    /// The header's value.
    pub(crate) key: String,
}

impl IdempotencyKey {
    /// How it is stored: the owner's id (hex, no `/`) first, so every owner has keys of its
    /// own.
    pub(crate) fn stored(&self) -> String {
        format!("{}/{}", self.owner, self.key)
    }
}

/// The owner part of a stored key (empty for a key stored before keys had owners).
fn owner_of(stored: &str) -> &str {
    stored.split_once('/').map_or("", |(owner, _)| owner)
}

/// What the memory says about a key.
pub(crate) enum Recall {
    /// Not seen: the request goes ahead, and the key is marked in flight.
    New,
    /// The same request was applied before: answer as it was answered then.
    Replay(BatchPublished),
    /// A different request used this key.
    Reused,
    /// A request with this key is being applied right now.
    InFlight,
}

enum Entry {
    InFlight,
    Done {
        fingerprint: String,
        answer: BatchPublished,
        created_ms: u64,
    },
}

pub(crate) struct Memory {
    /// By stored key.
    entries: HashMap<String, Entry>,
    /// Each owner's stored keys, oldest first.
    by_owner: HashMap<String, VecDeque<String>>,
    /// How many keys each owner keeps.
    per_owner: usize,
}

/// A digest of a request: requests that would apply the same ops have the same fingerprint.
pub(crate) fn fingerprint(batch: &Batch) -> String {
    let canonical = serde_json::to_vec(batch).unwrap_or_default();
    format!("{:x}", Sha256::digest(canonical))
}

impl Memory {
    /// The memory of `records` (as stored), each owner keeping at most `per_owner`.
    pub(crate) fn restore(mut records: Vec<Remembered>, per_owner: usize) -> Self {
        records.sort_by_key(|record| record.created_ms);
        let mut memory = Memory {
            entries: HashMap::new(),
            by_owner: HashMap::new(),
            per_owner: per_owner.max(1),
        };
        for record in records {
            let Ok(answer) = serde_json::from_str(&record.response) else {
                continue;
            };
            memory.keep(&record.key);
            memory.entries.insert(
                record.key,
                Entry::Done {
                    fingerprint: record.fingerprint,
                    answer,
                    created_ms: record.created_ms,
                },
            );
        }
        memory
    }

    /// Lists a stored key as its owner's newest, and lets go of the owner's oldest past
    /// the bound; returns those let go. One still in flight is kept (there are only as many
    /// as requests under way).
    fn keep(&mut self, stored: &str) -> Vec<String> {
        let keys = self
            .by_owner
            .entry(owner_of(stored).to_owned())
            .or_default();
        keys.push_back(stored.to_owned());
        let mut let_go = Vec::new();
        while keys.len() > self.per_owner {
            match keys.front().and_then(|oldest| self.entries.get(oldest)) {
                Some(Entry::InFlight) => break,
                _ => {
                    if let Some(oldest) = keys.pop_front() {
                        self.entries.remove(&oldest);
                        let_go.push(oldest);
                    }
                }
            }
        }
        let_go
    }

    /// What the memory says of `key`. A new one is marked in flight, and the owner's keys
    /// it pushes past the bound are forgotten: they are returned, for the store to forget
    /// in the same transaction as the new one.
    pub(crate) fn recall(
        &mut self,
        key: &IdempotencyKey,
        fingerprint: &str,
    ) -> (Recall, Vec<String>) {
        let stored = key.stored();
        let recall = match self.entries.get(&stored) {
            None => {
                self.entries.insert(stored.clone(), Entry::InFlight);
                return (Recall::New, self.keep(&stored));
            }
            Some(Entry::InFlight) => Recall::InFlight,
            Some(Entry::Done {
                fingerprint: seen,
                answer,
                ..
            }) => {
                if seen == fingerprint {
                    Recall::Replay(answer.clone())
                } else {
                    Recall::Reused
                }
            }
        };
        (recall, Vec::new())
    }

    /// Records how a request marked in flight ended: its answer, or nothing if it did not
    /// apply (so a retry may try again).
    pub(crate) fn settle(
        &mut self,
        key: &IdempotencyKey,
        applied: Option<(String, BatchPublished, u64)>,
    ) {
        let stored = key.stored();
        match applied {
            Some((fingerprint, answer, created_ms)) => {
                // Only a key still listed: one let go meanwhile stays forgotten.
                if let Some(entry) = self.entries.get_mut(&stored) {
                    *entry = Entry::Done {
                        fingerprint,
                        answer,
                        created_ms,
                    };
                }
            }
            None => {
                self.entries.remove(&stored);
                if let Some(keys) = self.by_owner.get_mut(&key.owner) {
                    // It is among the newest.
                    if let Some(at) = keys.iter().rposition(|k| *k == stored) {
                        keys.remove(at);
                    }
                }
            }
        }
    }

    pub(crate) fn forget_before(&mut self, cutoff_ms: u64) {
        self.entries.retain(|_, entry| match entry {
            Entry::InFlight => true,
            Entry::Done { created_ms, .. } => *created_ms >= cutoff_ms,
        });
        // Each owner's keys are oldest first, so those forgotten are at the front.
        let entries = &self.entries;
        self.by_owner.retain(|_, keys| {
            while keys
                .front()
                .is_some_and(|oldest| !entries.contains_key(oldest))
            {
                keys.pop_front();
            }
            !keys.is_empty()
        });
    }

    /// How many keys are remembered in all.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Published;

    fn key(owner: &str, key: &str) -> IdempotencyKey {
        IdempotencyKey {
            owner: owner.into(),
            key: key.into(),
        }
    }

    fn answer() -> BatchPublished {
        BatchPublished {
            results: vec![Published {
                topic: "t".into(),
                epoch: 1,
                offset: 1,
                offsets: vec![1],
            }],
        }
    }

    fn apply(memory: &mut Memory, key: &IdempotencyKey) -> Vec<String> {
        let (recall, let_go) = memory.recall(key, "f");
        assert!(matches!(recall, Recall::New));
        memory.settle(key, Some(("f".into(), answer(), 1)));
        let_go
    }

    #[test]
    fn the_same_header_value_from_two_owners_is_two_keys() {
        let mut memory = Memory::restore(Vec::new(), 10);
        apply(&mut memory, &key("a", "deploy-42"));
        let (recall, _) = memory.recall(&key("b", "deploy-42"), "other");
        assert!(matches!(recall, Recall::New), "b's key is its own");
        let (recall, _) = memory.recall(&key("a", "deploy-42"), "other");
        assert!(matches!(recall, Recall::Reused), "a's own reuse is refused");
    }

    #[test]
    fn an_owner_keeps_its_newest_keys_only() {
        let mut memory = Memory::restore(Vec::new(), 3);
        for n in 0..3 {
            assert!(apply(&mut memory, &key("a", &n.to_string())).is_empty());
        }
        apply(&mut memory, &key("b", "x"));
        assert_eq!(apply(&mut memory, &key("a", "3")), ["a/0"]);
        assert_eq!(memory.len(), 4, "a's three newest and b's one");
        let (recall, _) = memory.recall(&key("a", "1"), "f");
        assert!(
            matches!(recall, Recall::Replay(_)),
            "a newer key still replays"
        );
        let (recall, _) = memory.recall(&key("a", "0"), "f");
        assert!(matches!(recall, Recall::New), "the oldest was let go");
    }

    #[test]
    fn a_restart_keeps_the_bound_and_the_newest() {
        let records = (0..5)
            .map(|n| Remembered {
                key: format!("a/{n}"),
                fingerprint: "f".into(),
                response: serde_json::to_string(&answer()).unwrap(),
                created_ms: 100 - n,
                forget: Vec::new(),
            })
            .collect();
        let mut memory = Memory::restore(records, 2);
        assert_eq!(memory.len(), 2);
        let (recall, _) = memory.recall(&key("a", "0"), "f");
        assert!(
            matches!(recall, Recall::Replay(_)),
            "the newest (by time) stays"
        );
    }
}
