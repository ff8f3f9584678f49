//! The keyring: API keys and admin sessions, kept in the same SQLite file as the topics
//! (tables `api_keys` and `sessions`) so a backup of the data dir has them too.
//!
//! A key's secret is 256 random bits, shown once when it is made; only its SHA-256 is stored.
//! A slow password hash would add nothing: nobody can guess 256 random bits, so a digest
//! that is fast to check is as safe and keeps every request cheap. Sessions are stored the
//! same way.
//!
//! The server answers from a copy in memory and re-reads the tables every
//! [`REFRESH`], so keys made or revoked by `pulseboard keys` on the data dir, while the
//! server runs, take effect within that. A connection open with a key is told when a key
//! goes out of force ([`Revocation`]) rather than asking every second: ten thousand screens
//! would otherwise be ten thousand timers and wake-ups a second, doing nothing.

use super::scope::Scope;
use crate::clock::now_ms;
use crate::store::StoreError;
use parking_lot::{Mutex, RwLock};
use rusqlite::{params, Connection};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the server re-reads keys and sessions from the file.
pub const REFRESH: Duration = Duration::from_secs(1);
/// How long an admin session lasts after its login.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// What every key's secret starts with, so a leaked one is recognisable (and greppable).
const PREFIX: &str = "pb_";

/// An API key as listed: everything but its secret.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct KeyRecord {
    /// Names the key in lists, logs and revocation; not a secret.
    pub id: String,
    /// What the key is for, e.g. "CI deploys" or "lobby TV".
    pub name: String,
    #[schema(value_type = Vec<String>, example = json!(["publish:metric:*"]))]
    pub scopes: Vec<Scope>,
    /// ms since the Unix epoch.
    pub created_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_ms: Option<u64>,
}

/// A new key: its record, and the secret that is shown this once.
pub struct NewKey {
    pub record: KeyRecord,
    pub secret: String,
}

#[derive(Default)]
struct Known {
    /// Keys in force, by the digest of their secret.
    keys: HashMap<String, Arc<KeyRecord>>,
    /// Sessions in force, by the digest of their token: the key that logged in, and when the
    /// session ends.
    sessions: HashMap<String, (Arc<KeyRecord>, u64)>,
    /// The ids of the keys in force: every open connection with a key asks every second.
    in_force: HashSet<String>,
}

pub struct Keyring {
    path: PathBuf,
    known: RwLock<Known>,
    /// Held through each refresh, so a slow one that read before a change cannot replace
    /// the copy a later one made after it.
    refreshing: Mutex<()>,
    /// Counts the refreshes that took a key out of force.
    revocations: watch::Sender<u64>,
}

/// Waits for one key to go out of force (revoked, or gone from the file).
pub struct Revocation {
    keyring: Arc<Keyring>,
    id: String,
    revocations: watch::Receiver<u64>,
}

impl Revocation {
    /// Resolves once the key is no longer in force; never, while it is.
    pub async fn revoked(&mut self) {
        while self.keyring.in_force(&self.id) {
            if self.revocations.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }
}

fn failed(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
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
    /// Opens the keyring in `data_dir` (creating its tables) and reads it.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError(format!("cannot create {}: {e}", data_dir.display())))?;
        let keyring = Keyring {
            path: data_dir.join("pulseboard.db"),
            known: RwLock::default(),
            refreshing: Mutex::new(()),
            revocations: watch::Sender::new(0),
        };
        keyring
            .connect()?
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS api_keys (
                 id TEXT PRIMARY KEY,
                 digest TEXT NOT NULL UNIQUE,
                 name TEXT NOT NULL,
                 scopes TEXT NOT NULL,
                 created_ms INTEGER NOT NULL,
                 revoked_ms INTEGER
             );
             CREATE TABLE IF NOT EXISTS sessions (
                 digest TEXT PRIMARY KEY,
                 key_id TEXT NOT NULL,
                 expires_ms INTEGER NOT NULL
             );",
            )
            .map_err(failed)?;
        keyring.refresh()?;
        Ok(keyring)
    }

    fn connect(&self) -> Result<Connection, StoreError> {
        let connection = Connection::open(&self.path).map_err(failed)?;
        connection
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000;")
            .map_err(failed)?;
        Ok(connection)
    }

    /// Makes a key with these scopes.
    pub fn create(&self, name: &str, scopes: Vec<Scope>) -> Result<NewKey, StoreError> {
        let secret = format!("{PREFIX}{}", random_hex(32)?);
        let record = KeyRecord {
            id: random_hex(6)?,
            name: name.to_owned(),
            scopes,
            created_ms: now_ms(),
            revoked_ms: None,
        };
        let scopes = record
            .scopes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>();
        self.connect()?
            .execute(
                "INSERT INTO api_keys (id, digest, name, scopes, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![record.id, digest(&secret), record.name, scopes.join(" "), record.created_ms as i64],
            )
            .map_err(failed)?;
        self.refresh()?;
        Ok(NewKey { record, secret })
    }

    /// Every key, revoked ones included, oldest first.
    pub fn list(&self) -> Result<Vec<KeyRecord>, StoreError> {
        Ok(self.read()?.into_iter().map(|(_, record)| record).collect())
    }

    /// Revokes a key, and ends its sessions. `None` if there is no key with that id.
    pub fn revoke(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let connection = self.connect()?;
        connection
            .execute(
                "UPDATE api_keys SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms IS NULL",
                params![id, now_ms() as i64],
            )
            .map_err(failed)?;
        connection
            .execute("DELETE FROM sessions WHERE key_id = ?1", params![id])
            .map_err(failed)?;
        self.refresh()?;
        Ok(self.list()?.into_iter().find(|record| record.id == id))
    }

    /// The key a secret belongs to, if it is in force.
    pub fn verify(&self, secret: &str) -> Option<Arc<KeyRecord>> {
        if !secret.starts_with(PREFIX) {
            return None;
        }
        self.known.read().keys.get(&digest(secret)).cloned()
    }

    /// Whether the key with this id is in force (not revoked).
    pub fn in_force(&self, id: &str) -> bool {
        self.known.read().in_force.contains(id)
    }

    /// Watches the key with this id, to stop serving a connection opened with it once it is
    /// revoked.
    pub fn watch(self: &Arc<Self>, id: &str) -> Revocation {
        Revocation {
            keyring: self.clone(),
            id: id.to_owned(),
            revocations: self.revocations.subscribe(),
        }
    }

    /// Starts a session for a key in force; returns its token, which goes in a cookie.
    pub fn start_session(&self, key: &KeyRecord) -> Result<String, StoreError> {
        let token = random_hex(32)?;
        let now = now_ms();
        let expires = now + SESSION_LIFETIME.as_millis() as u64;
        let connection = self.connect()?;
        connection
            .execute(
                "DELETE FROM sessions WHERE expires_ms <= ?1",
                params![now as i64],
            )
            .map_err(failed)?;
        connection
            .execute(
                "INSERT INTO sessions (digest, key_id, expires_ms) VALUES (?1, ?2, ?3)",
                params![digest(&token), key.id, expires as i64],
            )
            .map_err(failed)?;
        self.refresh()?;
        Ok(token)
    }

    /// Ends a session (a logout); unknown tokens are ignored.
    pub fn end_session(&self, token: &str) -> Result<(), StoreError> {
        self.connect()?
            .execute(
                "DELETE FROM sessions WHERE digest = ?1",
                params![digest(token)],
            )
            .map_err(failed)?;
        self.refresh()
    }

    /// The key behind a session token, if the session is in force.
    pub fn session(&self, token: &str) -> Option<Arc<KeyRecord>> {
        let known = self.known.read();
        let (key, expires) = known.sessions.get(&digest(token))?;
        (*expires > now_ms()).then(|| key.clone())
    }

    /// Re-reads keys and sessions from the file; drops sessions that have ended.
    pub fn refresh(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self.refreshing.lock();
        let records = self.read()?;
        let connection = self.connect()?;
        // Only reads: this runs every second, and must not take the write lock the store's
        // writer works under. Ended sessions are deleted when the next one starts.
        let mut statement = connection
            .prepare("SELECT digest, key_id, expires_ms FROM sessions WHERE expires_ms > ?1")
            .map_err(failed)?;
        let sessions: Vec<(String, String, i64)> = statement
            .query_map(params![now_ms() as i64], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .map_err(failed)?
            .collect::<Result<_, _>>()
            .map_err(failed)?;
        let mut known = Known::default();
        let mut by_id = HashMap::new();
        for (digest, record) in records {
            if record.revoked_ms.is_none() {
                let record = Arc::new(record);
                by_id.insert(record.id.clone(), record.clone());
                known.in_force.insert(record.id.clone());
                known.keys.insert(digest, record);
            }
        }
        for (digest, key_id, expires) in sessions {
            if let Some(key) = by_id.get(&key_id) {
                known.sessions.insert(digest, (key.clone(), expires as u64));
            }
        }
        let revoked = {
            let mut current = self.known.write();
            let revoked = current
                .in_force
                .iter()
                .any(|id| !known.in_force.contains(id));
            *current = known;
            revoked
        };
        if revoked {
            self.revocations.send_modify(|count| *count += 1);
        }
        Ok(())
    }

    fn read(&self) -> Result<Vec<(String, KeyRecord)>, StoreError> {
        let connection = self.connect()?;
        let mut statement = connection
            .prepare(
                "SELECT digest, id, name, scopes, created_ms, revoked_ms FROM api_keys ORDER BY created_ms, id",
            )
            .map_err(failed)?;
        let rows: Vec<(String, String, String, String, i64, Option<i64>)> = statement
            .query_map([], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                ))
            })
            .map_err(failed)?
            .collect::<Result<_, _>>()
            .map_err(failed)?;
        Ok(rows
            .into_iter()
            .map(|(digest, id, name, scopes, created, revoked)| {
                let record = KeyRecord {
                    id,
                    name,
                    // Scopes were checked when the key was made; one that no longer parses
                    // (written by a later version) grants nothing rather than failing all.
                    scopes: scopes
                        .split_whitespace()
                        .filter_map(|s| s.parse().ok())
                        .collect(),
                    created_ms: created as u64,
                    revoked_ms: revoked.map(|ms| ms as u64),
                };
                (digest, record)
            })
            .collect())
    }
}
