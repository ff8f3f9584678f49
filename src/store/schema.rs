//! The data dir's SQLite file as a schema: every table in it (the embedded engine's topics,
//! the keyring's keys and sessions), its version, and the forward migrations that bring a
//! file written by an older Pulseboard up to date when a newer one opens it.
//!
//! The version is SQLite's `PRAGMA user_version`: the number of [`MIGRATIONS`] a file has had.
//! A file with a version this build does not know was written by a newer Pulseboard; it is
//! refused before SQLite writes anything to it (not even the WAL mode), so going back to the
//! newer release, or restoring a backup, finds it exactly as it was.

use super::{failed, StoreError};
use rusqlite::Connection;
use std::path::Path;

/// The tables as the first versioned release made them. Later changes are [`MIGRATIONS`],
/// never edits here: a file of any age must end up with the same schema.
const TABLES: &str = "
    CREATE TABLE IF NOT EXISTS topics (
        name TEXT PRIMARY KEY,
        epoch INTEGER NOT NULL,
        head INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS entities (
        topic TEXT NOT NULL,
        entity_id TEXT NOT NULL,
        payload TEXT NOT NULL,
        expires_at INTEGER,
        PRIMARY KEY (topic, entity_id)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS events (
        topic TEXT NOT NULL,
        position INTEGER NOT NULL,
        frame TEXT NOT NULL,
        PRIMARY KEY (topic, position)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS idempotency (
        key TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        response TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS idempotency_age ON idempotency (created_ms);
    CREATE TABLE IF NOT EXISTS meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS api_keys (
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
    );";

/// What changed in the schema after [`TABLES`], in order; each runs once, in a transaction
/// with the version it brings the file to.
const MIGRATIONS: &[&str] = &[
    // 1: when each entity last changed (ms since the Unix epoch), so a screen opened on a
    // quiet topic shows it stale at once. Entities written before have none.
    "ALTER TABLE entities ADD COLUMN changed_ms INTEGER",
];

/// The schema version this build writes.
pub(crate) const VERSION: i64 = MIGRATIONS.len() as i64;

/// Opens the file at `path` (creating it if needed) with the schema brought up to
/// [`VERSION`], or refuses a file from a newer Pulseboard without touching it.
pub(crate) fn open(path: &Path, fsync: bool) -> Result<Connection, StoreError> {
    refuse_newer(path, header_version(path)?)?;
    let mut connection = Connection::open(path).map_err(failed)?;
    // The header can lag behind a write-ahead log a crashed newer server left; this reads
    // through it, and still before anything is written.
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(failed)?;
    refuse_newer(path, version)?;
    connection
        .execute_batch(&format!(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = {};
             PRAGMA busy_timeout = 5000;
             {TABLES}",
            if fsync { "FULL" } else { "NORMAL" }
        ))
        .map_err(failed)?;
    migrate(&mut connection, version).map_err(failed)?;
    Ok(connection)
}

fn migrate(connection: &mut Connection, applied: i64) -> rusqlite::Result<()> {
    for (done, change) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        let transaction = connection.transaction()?;
        transaction.execute_batch(change)?;
        transaction.pragma_update(None, "user_version", done as i64 + 1)?;
        transaction.commit()?;
        tracing::info!("store schema migrated to version {}", done + 1);
    }
    Ok(())
}

/// The version in the file's header (4 bytes, big-endian, at offset 60 of SQLite's file
/// format), read as plain bytes so a file that is to be refused is only ever read. A missing
/// or empty file is a new one.
fn header_version(path: &Path) -> Result<i64, StoreError> {
    use std::io::Read;
    let mut header = [0u8; 64];
    match std::fs::File::open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(StoreError(format!("cannot read {}: {e}", path.display()))),
        Ok(mut file) => match file.read_exact(&mut header) {
            Ok(()) => {
                Ok(i32::from_be_bytes([header[60], header[61], header[62], header[63]]).into())
            }
            // Shorter than a header: SQLite itself will say what is wrong with it.
            Err(_) => Ok(0),
        },
    }
}

fn refuse_newer(path: &Path, version: i64) -> Result<(), StoreError> {
    if version <= VERSION {
        return Ok(());
    }
    Err(StoreError(format!(
        "{} has schema version {version}, and this Pulseboard knows versions up to {VERSION}: \
         it was written by a newer release. Run that release again, or restore a backup taken \
         before the upgrade; the file was left as it was",
        path.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_file_gets_every_migration_and_reads_its_version_from_the_header() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("pulseboard.db");
        assert_eq!(header_version(&path).unwrap(), 0);
        let connection = open(&path, false).unwrap();
        drop(connection);
        assert_eq!(header_version(&path).unwrap(), VERSION);
        // Opening again migrates nothing and keeps the version.
        drop(open(&path, false).unwrap());
        assert_eq!(header_version(&path).unwrap(), VERSION);
    }

    #[test]
    fn a_file_from_before_the_migrations_is_brought_up_to_date() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("pulseboard.db");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(TABLES).unwrap();
        old.execute(
            "INSERT INTO entities (topic, entity_id, payload) VALUES ('metric:a', 'x', '1')",
            [],
        )
        .unwrap();
        drop(old);
        let connection = open(&path, false).unwrap();
        let (payload, changed): (String, Option<i64>) = connection
            .query_row("SELECT payload, changed_ms FROM entities", [], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .unwrap();
        assert_eq!((payload.as_str(), changed), ("1", None));
    }
}
