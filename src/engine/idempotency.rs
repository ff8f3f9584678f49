//! Idempotency keys: a request retried with the same `Idempotency-Key` applies once, and
//! every retry gets the first answer. Records are kept for a day, in memory and in the store
//! (written in the same transaction as the request's events, so a retry after a crash sees
//! exactly what was applied).

use crate::ops::{Batch, BatchPublished};
use crate::store::Remembered;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// How long a key is remembered.
pub(crate) const REMEMBER_FOR_MS: u64 = 24 * 60 * 60 * 1000;

/// The longest key accepted.
pub(crate) const MAX_KEY_LEN: usize = 255;

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

#[derive(Default)]
pub(crate) struct Memory {
    entries: HashMap<String, Entry>,
}

/// A digest of a request: requests that would apply the same ops have the same fingerprint.
pub(crate) fn fingerprint(batch: &Batch) -> String {
    let canonical = serde_json::to_vec(batch).unwrap_or_default();
    format!("{:x}", Sha256::digest(canonical))
}

impl Memory {
    pub(crate) fn restore(records: Vec<Remembered>) -> Self {
        let entries = records
            .into_iter()
            .filter_map(|record| {
                let answer = serde_json::from_str(&record.response).ok()?;
                Some((
                    record.key,
                    Entry::Done {
                        fingerprint: record.fingerprint,
                        answer,
                        created_ms: record.created_ms,
                    },
                ))
            })
            .collect();
        Self { entries }
    }

    pub(crate) fn recall(&mut self, key: &str, fingerprint: &str) -> Recall {
        match self.entries.get(key) {
            None => {
                self.entries.insert(key.to_owned(), Entry::InFlight);
                Recall::New
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
        }
    }

    /// Records how a request marked in flight ended: its answer, or nothing if it did not
    /// apply (so a retry may try again).
    pub(crate) fn settle(&mut self, key: &str, applied: Option<(String, BatchPublished, u64)>) {
        match applied {
            Some((fingerprint, answer, created_ms)) => {
                self.entries.insert(
                    key.to_owned(),
                    Entry::Done {
                        fingerprint,
                        answer,
                        created_ms,
                    },
                );
            }
            None => {
                self.entries.remove(key);
            }
        }
    }

    pub(crate) fn forget_before(&mut self, cutoff_ms: u64) {
        self.entries.retain(|_, entry| match entry {
            Entry::InFlight => true,
            Entry::Done { created_ms, .. } => *created_ms >= cutoff_ms,
        });
    }
}
