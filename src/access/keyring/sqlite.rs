//! Keys and sessions in the data dir's SQLite file, beside the embedded engine's topics
//! (tables `api_keys` and `sessions`), so a backup of the data dir has them too.

use super::{failed, format_scopes, parse_scopes, KeyRecord, KeyStorage, Scope};
use crate::store::{schema, StoreError};
use rusqlite::{params, Connection};
use std::path::{Path, PathBuf};

pub(super) struct SqliteKeys {
    path: PathBuf,
}

impl SqliteKeys {
    /// Opens `pulseboard.db` in `data_dir`, refusing a file from a newer Pulseboard.
    pub(super) fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError(format!("cannot create {}: {e}", data_dir.display())))?;
        let keys = SqliteKeys {
            path: data_dir.join("pulseboard.db"),
        };
        // Its tables are the store's schema, checked and migrated in one place.
        schema::open(&keys.path, false)?;
        Ok(keys)
    }

    fn connect(&self) -> Result<Connection, StoreError> {
        let connection = Connection::open(&self.path).map_err(failed)?;
        connection
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000;")
            .map_err(failed)?;
        Ok(connection)
    }
}

impl KeyStorage for SqliteKeys {
    fn add_key(&self, digest: &str, record: &KeyRecord) -> Result<(), StoreError> {
        self.connect()?
            .execute(
                "INSERT INTO api_keys (id, digest, name, scopes, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![record.id, digest, record.name, format_scopes(&record.scopes), record.created_ms as i64],
            )
            .map_err(failed)?;
        Ok(())
    }

    fn revoke_key(&self, id: &str, at_ms: u64) -> Result<(), StoreError> {
        let connection = self.connect()?;
        connection
            .execute(
                "UPDATE api_keys SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms IS NULL",
                params![id, at_ms as i64],
            )
            .map_err(failed)?;
        connection
            .execute("DELETE FROM sessions WHERE key_id = ?1", params![id])
            .map_err(failed)?;
        Ok(())
    }

    fn set_scopes(&self, id: &str, scopes: &[Scope]) -> Result<(), StoreError> {
        self.connect()?
            .execute(
                "UPDATE api_keys SET scopes = ?2 WHERE id = ?1 AND revoked_ms IS NULL",
                params![id, format_scopes(scopes)],
            )
            .map_err(failed)?;
        Ok(())
    }

    fn keys(&self) -> Result<Vec<(String, KeyRecord)>, StoreError> {
        let connection = self.connect()?;
        let mut statement = connection
            .prepare(
                "SELECT digest, id, name, scopes, created_ms, revoked_ms FROM api_keys ORDER BY created_ms, id",
            )
            .map_err(failed)?;
        let rows = statement
            .query_map([], |row| {
                let record = KeyRecord {
                    id: row.get(1)?,
                    name: row.get(2)?,
                    scopes: parse_scopes(&row.get::<_, String>(3)?),
                    created_ms: row.get::<_, i64>(4)? as u64,
                    revoked_ms: row.get::<_, Option<i64>>(5)?.map(|ms| ms as u64),
                };
                Ok((row.get(0)?, record))
            })
            .map_err(failed)?;
        rows.collect::<Result<_, _>>().map_err(failed)
    }

    fn add_session(
        &self,
        digest: &str,
        key_id: &str,
        expires_ms: u64,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let connection = self.connect()?;
        connection
            .execute(
                "DELETE FROM sessions WHERE expires_ms <= ?1",
                params![now_ms as i64],
            )
            .map_err(failed)?;
        connection
            .execute(
                "INSERT INTO sessions (digest, key_id, expires_ms) VALUES (?1, ?2, ?3)",
                params![digest, key_id, expires_ms as i64],
            )
            .map_err(failed)?;
        Ok(())
    }

    fn end_session(&self, digest: &str) -> Result<(), StoreError> {
        self.connect()?
            .execute("DELETE FROM sessions WHERE digest = ?1", params![digest])
            .map_err(failed)?;
        Ok(())
    }

    fn sessions(&self, now_ms: u64) -> Result<Vec<(String, String, u64)>, StoreError> {
        // Only reads: this runs every second, and must not take the write lock the store's
        // writer works under. Ended sessions are deleted when the next one starts.
        let connection = self.connect()?;
        let mut statement = connection
            .prepare("SELECT digest, key_id, expires_ms FROM sessions WHERE expires_ms > ?1")
            .map_err(failed)?;
        let rows = statement
            .query_map(params![now_ms as i64], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get::<_, i64>(2)? as u64))
            })
            .map_err(failed)?;
        rows.collect::<Result<_, _>>().map_err(failed)
    }
}
