//! `pulseboard backup`: a copy of the store's file taken while the server runs, with SQLite's
//! online backup in one step, so the copy is one committed state of the file — every write
//! whole or absent, as the server acknowledged them — and never a torn file copy.
//!
//! The copy is marked as cleanly stopped: it holds only committed transactions, so a server
//! started on it continues every topic at the same epoch and offset instead of treating it
//! as a crash.

use super::{failed, StoreError};
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a backup holds.
#[derive(Debug)]
pub(crate) struct Copied {
    pub(crate) topics: u64,
    pub(crate) keys: u64,
    pub(crate) bytes: u64,
}

/// Copies `pulseboard.db` in `data_dir` to `to`, which appears only once it is complete.
pub(crate) fn backup(data_dir: &Path, to: &Path) -> Result<Copied, StoreError> {
    let from = data_dir.join("pulseboard.db");
    if !from.is_file() {
        return Err(StoreError(format!(
            "there is no store at {}",
            from.display()
        )));
    }
    let source =
        Connection::open_with_flags(&from, OpenFlags::SQLITE_OPEN_READ_WRITE).map_err(failed)?;
    source
        .busy_timeout(Duration::from_secs(5))
        .map_err(failed)?;
    let partial = partial(to);
    let _ = std::fs::remove_file(&partial);
    let copied = copy(&source, &partial);
    if copied.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    let copied = copied?;
    std::fs::rename(&partial, to)
        .map_err(|e| StoreError(format!("cannot write {}: {e}", to.display())))?;
    Ok(copied)
}

fn copy(source: &Connection, partial: &Path) -> Result<Copied, StoreError> {
    let mut copy = Connection::open(partial).map_err(failed)?;
    // All pages in one step: the source is read in one transaction, so writes committed
    // meanwhile are wholly after the copy (a step at a time would restart on each of them,
    // and a busy server might never let it finish).
    {
        let backup = Backup::new(source, &mut copy).map_err(failed)?;
        // Busy or locked: a checkpoint is under way; try the whole step again.
        while backup.step(-1).map_err(failed)? != StepResult::Done {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    // One self-contained file (no write-ahead log beside it); the server sets WAL again.
    copy.execute_batch(
        "PRAGMA journal_mode = DELETE;
         PRAGMA synchronous = FULL;
         INSERT OR REPLACE INTO meta (key, value) VALUES ('clean', '1');",
    )
    .map_err(failed)?;
    let count = |table: &str| -> Result<u64, StoreError> {
        copy.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
            row.get::<_, i64>(0)
        })
        .map(|n| n as u64)
        .map_err(failed)
    };
    let (topics, keys) = (count("topics")?, count("api_keys")?);
    copy.close().map_err(|(_, e)| failed(e))?;
    let file = std::fs::File::open(partial).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    let bytes = file.metadata().map_err(failed)?.len();
    Ok(Copied {
        topics,
        keys,
        bytes,
    })
}

fn partial(to: &Path) -> PathBuf {
    let mut name = to.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}
