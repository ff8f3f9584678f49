//! The keyring: API keys and admin sessions, kept where the topics are ([`KeyStorage`]):
//! in the data dir's SQLite file with the embedded engine ([`sqlite`], so a backup of the data
//! dir has them too), or in Redis with the Redis engine ([`redis`], so every instance knows
//! every key, and a key revoked on one is refused by all within [`REFRESH`]).
//!
//! A key's secret is 256 random bits, shown once when it is made; only its SHA-256 is stored.
//! A slow password hash would add nothing: nobody can guess 256 random bits, so a digest
//! that is fast to check is as safe and keeps every request cheap. Sessions are stored the
//! same way.
//!
//! The server answers from a copy in memory and re-reads the storage every [`REFRESH`], so
//! keys made, re-scoped or revoked elsewhere (by `pulseboard keys`, by another instance)
//! while the server runs take effect within that. An open connection is told when a key
//! goes out of force, a key's scopes change or a session ends ([`Keyring::narrowings`])
//! rather than asking every second: ten thousand screens would otherwise be ten thousand
//! timers and wake-ups a second, doing nothing. It then asks for its caller as it stands
//! now ([`Keyring::current`]).

mod redis;
mod sqlite;

use super::scope::Scope;
use super::Caller;
use crate::clock::now_ms;
use crate::store::{failed, StoreError};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the server re-reads keys and sessions from the file.
pub(crate) const REFRESH: Duration = Duration::from_secs(1);
/// How long an admin session lasts after its login.
pub(crate) const SESSION_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// What every key's secret starts with, so a leaked one is recognisable (and greppable).
const PREFIX: &str = "pb_";

/// An API key as listed: everything but its secret.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub(crate) struct KeyRecord {
    /// Names the key in lists, logs and revocation; not a secret.
    pub(crate) id: String,
    /// What the key is for, e.g. "CI deploys" or "lobby TV".
    pub(crate) name: String,
    #[schema(value_type = Vec<String>, example = json!(["publish:metric:*"]))]
    pub(crate) scopes: Vec<Scope>,
    /// ms since the Unix epoch.
    pub(crate) created_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) revoked_ms: Option<u64>,
}

/// A new key: its record, and the secret that is shown this once.
pub(crate) struct NewKey {
    pub(crate) record: KeyRecord,
    pub(crate) secret: String,
}

#[derive(Default)]
struct Known {
    /// Keys in force, by the digest of their secret.
    keys: HashMap<String, Arc<KeyRecord>>,
    /// Sessions in force, by the digest of their token: the key that logged in, and when the
    /// session ends.
    sessions: HashMap<String, (Arc<KeyRecord>, u64)>,
    /// The keys in force, by id.
    by_id: HashMap<String, Arc<KeyRecord>>,
}

/// Where keys and sessions are kept. Keys are found by the digest of their secret, sessions
/// by the digest of their token; neither secret nor token is ever stored.
pub(crate) trait KeyStorage: Send + Sync {
    fn add_key(&self, digest: &str, record: &KeyRecord) -> Result<(), StoreError>;
    /// Marks a key revoked at `at_ms` and ends its sessions; a key already revoked stays as
    /// it was.
    fn revoke_key(&self, id: &str, at_ms: u64) -> Result<(), StoreError>;
    /// Gives a key in force these scopes in place of its own; a revoked or unknown key stays
    /// as it was.
    fn set_scopes(&self, id: &str, scopes: &[Scope]) -> Result<(), StoreError>;
    /// Every key, revoked ones included, with its digest, oldest first.
    fn keys(&self) -> Result<Vec<(String, KeyRecord)>, StoreError>;
    /// Adds a session, dropping those that ended by `now_ms`.
    fn add_session(
        &self,
        digest: &str,
        key_id: &str,
        expires_ms: u64,
        now_ms: u64,
    ) -> Result<(), StoreError>;
    fn end_session(&self, digest: &str) -> Result<(), StoreError>;
    /// The sessions that have not ended by `now_ms`: (digest, key id, end).
    fn sessions(&self, now_ms: u64) -> Result<Vec<(String, String, u64)>, StoreError>;
}

/// The keyring that goes with the engine: in Redis when the topics are, else in the data
/// dir's SQLite file.
pub(crate) fn open(data_dir: &Path, redis_url: &str) -> Result<Keyring, StoreError> {
    let storage: Box<dyn KeyStorage> = if redis_url.is_empty() {
        Box::new(sqlite::SqliteKeys::open(data_dir)?)
    } else {
        Box::new(redis::RedisKeys::open(redis_url)?)
    };
    Keyring::new(storage)
}

pub(crate) struct Keyring {
    storage: Box<dyn KeyStorage>,
    known: RwLock<Known>,
    /// Held through each refresh, so a slow one that read before a change cannot replace
    /// the copy a later one made after it.
    refreshing: Mutex<()>,
    /// Counts the refreshes that took a key out of force, changed a key's scopes or ended a
    /// session.
    narrowings: watch::Sender<u64>,
}

/// Scopes as stored: space-separated. One that no longer parses (written by a later
/// version) grants nothing rather than failing every key.
fn parse_scopes(text: &str) -> Vec<Scope> {
    text.split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

fn format_scopes(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

fn digest(secret: &str) -> String {
    format!("{:x}", Sha256::digest(secret.as_bytes()))
}

/// `bytes` random bytes from the operating system, in hex.
fn random_hex(bytes: usize) -> Result<String, StoreError> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).map_err(|e| StoreError(format!("no randomness: {e}")))?;
    Ok(buffer.iter().map(|b| format!("{b:02x}")).collect())
}

impl Keyring {
    /// A keyring over `storage`, read once.
    pub(crate) fn new(storage: Box<dyn KeyStorage>) -> Result<Self, StoreError> {
        let keyring = Keyring {
            storage,
            known: RwLock::default(),
            refreshing: Mutex::new(()),
            narrowings: watch::Sender::new(0),
        };
        keyring.refresh()?;
        Ok(keyring)
    }

    /// Makes a key with these scopes.
    pub(crate) fn create(&self, name: &str, scopes: Vec<Scope>) -> Result<NewKey, StoreError> {
        let secret = format!("{PREFIX}{}", random_hex(32)?);
        let record = KeyRecord {
            id: random_hex(6)?,
            name: name.to_owned(),
            scopes,
            created_ms: now_ms(),
            revoked_ms: None,
        };
        self.storage.add_key(&digest(&secret), &record)?;
        self.refresh()?;
        Ok(NewKey { record, secret })
    }

    /// Every key, revoked ones included, oldest first.
    pub(crate) fn list(&self) -> Result<Vec<KeyRecord>, StoreError> {
        Ok(self
            .storage
            .keys()?
            .into_iter()
            .map(|(_, record)| record)
            .collect())
    }

    /// Revokes a key, and ends its sessions. `None` if there is no key with that id.
    pub(crate) fn revoke(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.storage.revoke_key(id, now_ms())?;
        self.refresh()?;
        Ok(self.list()?.into_iter().find(|record| record.id == id))
    }

    /// Gives a key new scopes (a share link narrowed to one board, say, without a new link
    /// for the screen). Open connections with it are held to them within a second. `None` if
    /// there is no key in force with that id.
    pub(crate) fn rescope(
        &self,
        id: &str,
        scopes: Vec<Scope>,
    ) -> Result<Option<KeyRecord>, StoreError> {
        self.storage.set_scopes(id, &scopes)?;
        self.refresh()?;
        Ok(self.known.read().by_id.get(id).map(|key| (**key).clone()))
    }

    /// The key a secret belongs to, if it is in force.
    pub(crate) fn verify(&self, secret: &str) -> Option<Arc<KeyRecord>> {
        if !secret.starts_with(PREFIX) {
            return None;
        }
        self.known.read().keys.get(&digest(secret)).cloned()
    }

    /// The caller as it stands now: with its key's current scopes; `None` once its key is
    /// revoked, or the session it came through has ended. Anonymous stays anonymous.
    pub(crate) fn current(&self, caller: &Caller) -> Option<Caller> {
        let Some(key) = caller.key() else {
            return Some(Caller::default());
        };
        let known = self.known.read();
        match caller.session() {
            Some(session) => {
                let (key, expires) = known.sessions.get(session)?;
                (*expires > now_ms()).then(|| Caller::with_session(key.clone(), session))
            }
            None => known.by_id.get(&key.id).cloned().map(Caller::with_key),
        }
    }

    /// Changes each time a refresh takes a key out of force, changes a key's scopes, or
    /// ends a session.
    pub(crate) fn narrowings(&self) -> watch::Receiver<u64> {
        self.narrowings.subscribe()
    }

    /// Starts a session for a key in force; returns its token, which goes in a cookie.
    pub(crate) fn start_session(&self, key: &KeyRecord) -> Result<String, StoreError> {
        let token = random_hex(32)?;
        let now = now_ms();
        let expires = now + SESSION_LIFETIME.as_millis() as u64;
        self.storage
            .add_session(&digest(&token), &key.id, expires, now)?;
        self.refresh()?;
        Ok(token)
    }

    /// Ends a session (a logout); unknown tokens are ignored.
    pub(crate) fn end_session(&self, token: &str) -> Result<(), StoreError> {
        self.storage.end_session(&digest(token))?;
        self.refresh()
    }

    /// The caller a session token signs in, if the session is in force.
    pub(crate) fn session(&self, token: &str) -> Option<Caller> {
        let session = digest(token);
        let known = self.known.read();
        let (key, expires) = known.sessions.get(&session)?;
        (*expires > now_ms()).then(|| Caller::with_session(key.clone(), &session))
    }

    /// Re-reads keys and sessions from the storage; drops sessions that have ended.
    pub(crate) fn refresh(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self.refreshing.lock();
        let records = self.storage.keys()?;
        let sessions = self.storage.sessions(now_ms())?;
        let mut known = Known::default();
        for (digest, record) in records {
            if record.revoked_ms.is_none() {
                let record = Arc::new(record);
                known.by_id.insert(record.id.clone(), record.clone());
                known.keys.insert(digest, record);
            }
        }
        for (digest, key_id, expires) in sessions {
            if let Some(key) = known.by_id.get(&key_id) {
                known.sessions.insert(digest, (key.clone(), expires));
            }
        }
        let narrowed = {
            let mut current = self.known.write();
            // A key gone or re-scoped (any change of scopes: working out which narrow is
            // not worth it for something this rare), or a session gone.
            let narrowed = current.by_id.iter().any(|(id, key)| {
                known
                    .by_id
                    .get(id)
                    .is_none_or(|now| now.scopes != key.scopes)
            }) || current
                .sessions
                .keys()
                .any(|session| !known.sessions.contains_key(session));
            *current = known;
            narrowed
        };
        if narrowed {
            self.narrowings.send_modify(|count| *count += 1);
        }
        Ok(())
    }
}
