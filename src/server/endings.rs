//! What an open stream (`/ws` or `/sse`) hears from outside: its credential going out of
//! force, the server stopping, or what it may read changing (a board file changed, a key's
//! scopes changed). All arrive through one relayed watch ([`relay`]), and a stream waits on
//! that alone ([`Endings::next`]) and then looks at which it was: every wait a stream keeps
//! is in every idle connection's memory, ten thousand times over.

use super::AppState;
use crate::access::keyring::Keyring;
use crate::access::Caller;
use std::sync::Arc;
use tokio::sync::watch;

/// What a stream heard from outside.
pub(crate) enum Ending {
    /// Its key went out of force, or the session it came through ended.
    Revoked,
    /// The server is stopping.
    Restart,
    /// What it may read may have narrowed: it checks what it follows again as the caller
    /// it is now (`Session::recheck`), and goes on waiting.
    Recheck(Caller),
}

/// One stream's view of what can end it.
pub(crate) struct Endings {
    /// Who the stream was opened as: it is served while that credential is in force.
    caller: Caller,
    keyring: Arc<Keyring>,
    /// Turns true when the server is stopping.
    shutdown: watch::Receiver<bool>,
    /// Changes when a key goes out of force or is re-scoped, a session ends, a board file
    /// changes, or the server starts stopping.
    changes: watch::Receiver<()>,
}

impl Endings {
    /// For a stream opened as `caller`.
    pub(crate) fn new(state: &AppState, caller: &Caller) -> Self {
        let mut changes = state.endings.clone();
        // Only what changes from now on.
        changes.mark_unchanged();
        Endings {
            caller: caller.clone(),
            keyring: state.keyring.clone(),
            shutdown: state.shutdown.clone(),
            changes,
        }
    }

    /// Resolves with what the stream must do once something changed; never, while nothing
    /// does.
    pub(crate) async fn next(&mut self) -> Ending {
        if let Err(ending) = self.now() {
            return ending;
        }
        if self.changes.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
        match self.now() {
            Ok(caller) => Ending::Recheck(caller),
            Err(ending) => ending,
        }
    }

    /// The caller as it stands now, or why the stream is over: the server stops, or its
    /// credential is no longer in force.
    fn now(&self) -> Result<Caller, Ending> {
        if *self.shutdown.borrow() {
            return Err(Ending::Restart);
        }
        self.keyring.current(&self.caller).ok_or(Ending::Revoked)
    }
}

/// Relays what narrows access (key revocations, re-scoped keys, ended sessions, changed
/// board files) and the start of a shutdown into the one watch every stream waits on, until
/// every source is gone. `narrow` runs first for a keyring change, so the hub has already
/// stopped sending what may no longer be read when the streams look.
pub(crate) async fn relay(
    mut narrowings: watch::Receiver<u64>,
    mut boards: watch::Receiver<u64>,
    mut shutdown: watch::Receiver<bool>,
    endings: watch::Sender<()>,
    narrow: impl Fn(),
) {
    loop {
        let open = tokio::select! {
            changed = narrowings.changed() => {
                narrow();
                changed.is_ok()
            }
            changed = boards.changed() => changed.is_ok(),
            changed = shutdown.changed() => changed.is_ok(),
        };
        endings.send_replace(());
        if !open {
            return;
        }
    }
}
