//! Keys and sessions in Redis, beside the Redis engine's topics, so every instance knows
//! every key: `pb:keys` (hash: digest → the key's record as JSON) and `pb:sessions` (hash:
//! digest → `{key_id, expires_ms}`). The keyring's calls run off the async workers, so this
//! talks to Redis over one plain (blocking) connection, made again when it fails.

use super::{failed, format_scopes, parse_scopes, KeyRecord, KeyStorage, Scope};
use crate::store::StoreError;
use parking_lot::Mutex;
use redis::{Commands, Connection};
use serde_json::{json, Value};
use std::time::Duration;

const KEYS: &str = "pb:keys";
const SESSIONS: &str = "pb:sessions";
const TIMEOUT: Duration = Duration::from_secs(2);

pub(super) struct RedisKeys {
    client: redis::Client,
    connection: Mutex<Option<Connection>>,
}

impl RedisKeys {
    pub(super) fn open(url: &str) -> Result<Self, StoreError> {
        let keys = RedisKeys {
            client: redis::Client::open(url).map_err(failed)?,
            connection: Mutex::new(None),
        };
        keys.with(|_| Ok(()))?;
        Ok(keys)
    }

    /// Runs `call` on the connection, connecting first if there is none; a failed call drops
    /// the connection, so the next one connects again.
    fn with<T>(
        &self,
        call: impl FnOnce(&mut Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let mut slot = self.connection.lock();
        if slot.is_none() {
            let connection = self
                .client
                .get_connection_with_timeout(TIMEOUT)
                .map_err(|e| StoreError(format!("redis: {e}")))?;
            connection
                .set_read_timeout(Some(TIMEOUT))
                .and_then(|()| connection.set_write_timeout(Some(TIMEOUT)))
                .map_err(failed)?;
            *slot = Some(connection);
        }
        let Some(connection) = slot.as_mut() else {
            return Err(StoreError("redis: no connection".into()));
        };
        call(connection).map_err(|e| {
            *slot = None;
            StoreError(format!("redis: {e}"))
        })
    }
}

fn record_json(record: &KeyRecord) -> String {
    json!({
        "id": record.id,
        "name": record.name,
        "scopes": format_scopes(&record.scopes),
        "created_ms": record.created_ms,
        "revoked_ms": record.revoked_ms,
    })
    .to_string()
}

fn parse_record(text: &str) -> Option<KeyRecord> {
    let value: Value = serde_json::from_str(text).ok()?;
    Some(KeyRecord {
        id: value["id"].as_str()?.to_owned(),
        name: value["name"].as_str()?.to_owned(),
        scopes: parse_scopes(value["scopes"].as_str()?),
        created_ms: value["created_ms"].as_u64()?,
        revoked_ms: value["revoked_ms"].as_u64(),
    })
}

impl KeyStorage for RedisKeys {
    fn add_key(&self, digest: &str, record: &KeyRecord) -> Result<(), StoreError> {
        self.with(|c| c.hset(KEYS, digest, record_json(record)))
    }

    fn revoke_key(&self, id: &str, at_ms: u64) -> Result<(), StoreError> {
        for (digest, mut record) in self.keys()? {
            if record.id == id && record.revoked_ms.is_none() {
                record.revoked_ms = Some(at_ms);
                self.with(|c| c.hset::<_, _, _, ()>(KEYS, &digest, record_json(&record)))?;
            }
        }
        for (digest, key_id, _) in self.sessions(0)? {
            if key_id == id {
                self.with(|c| c.hdel::<_, _, ()>(SESSIONS, &digest))?;
            }
        }
        Ok(())
    }

    fn set_scopes(&self, id: &str, scopes: &[Scope]) -> Result<(), StoreError> {
        for (digest, mut record) in self.keys()? {
            if record.id == id && record.revoked_ms.is_none() {
                record.scopes = scopes.to_vec();
                self.with(|c| c.hset::<_, _, _, ()>(KEYS, &digest, record_json(&record)))?;
            }
        }
        Ok(())
    }

    fn keys(&self) -> Result<Vec<(String, KeyRecord)>, StoreError> {
        let all: Vec<(String, String)> = self.with(|c| c.hgetall(KEYS))?;
        let mut keys: Vec<(String, KeyRecord)> = all
            .into_iter()
            .filter_map(|(digest, text)| Some((digest, parse_record(&text)?)))
            .collect();
        keys.sort_by(|(_, a), (_, b)| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(keys)
    }

    fn add_session(
        &self,
        digest: &str,
        key_id: &str,
        expires_ms: u64,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let all: Vec<(String, String)> = self.with(|c| c.hgetall(SESSIONS))?;
        for (ended, _) in all.iter().filter(|(_, s)| session_end(s) <= now_ms) {
            self.with(|c| c.hdel::<_, _, ()>(SESSIONS, ended))?;
        }
        let session = json!({"key_id": key_id, "expires_ms": expires_ms}).to_string();
        self.with(|c| c.hset(SESSIONS, digest, session))
    }

    fn end_session(&self, digest: &str) -> Result<(), StoreError> {
        self.with(|c| c.hdel(SESSIONS, digest))
    }

    fn sessions(&self, now_ms: u64) -> Result<Vec<(String, String, u64)>, StoreError> {
        let all: Vec<(String, String)> = self.with(|c| c.hgetall(SESSIONS))?;
        Ok(all
            .into_iter()
            .filter_map(|(digest, text)| {
                let value: Value = serde_json::from_str(&text).ok()?;
                let key_id = value["key_id"].as_str()?.to_owned();
                let expires = value["expires_ms"].as_u64()?;
                (expires > now_ms).then_some((digest, key_id, expires))
            })
            .collect())
    }
}

fn session_end(text: &str) -> u64 {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v["expires_ms"].as_u64())
        .unwrap_or(0)
}
