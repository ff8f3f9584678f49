//! What ends an open stream (`/ws` or `/sse`) from outside: its key going out of force, or
//! the server stopping. Both arrive through one relayed watch ([`relay`]), and a stream
//! waits on that alone ([`Endings::next`]) and then looks at which it was: every wait a
//! stream keeps is in every idle connection's memory, ten thousand times over.

use super::AppState;
use crate::access::keyring::KeyInForce;
use tokio::sync::watch;

/// What ended a stream from outside.
pub(crate) enum Ending {
    /// Its key went out of force.
    Revoked,
    /// The server is stopping.
    Restart,
}

/// One stream's view of what can end it.
pub(crate) struct Endings {
    /// The key the stream was opened with: it is served while the key is in force.
    key: Option<KeyInForce>,
    /// Turns true when the server is stopping.
    shutdown: watch::Receiver<bool>,
    /// Changes when a key goes out of force or the server starts stopping.
    changes: watch::Receiver<()>,
}

impl Endings {
    /// For a stream opened with the key `key_id` (none: no key, nothing to revoke).
    pub(crate) fn new(state: &AppState, key_id: Option<&str>) -> Self {
        Endings {
            key: key_id.map(|id| state.keyring.key(id)),
            shutdown: state.shutdown.clone(),
            changes: state.endings.clone(),
        }
    }

    /// Resolves with the reason once the stream must end; never, while it may go on.
    pub(crate) async fn next(&mut self) -> Ending {
        loop {
            if *self.shutdown.borrow() {
                return Ending::Restart;
            }
            if self.key.as_ref().is_some_and(|key| !key.holds()) {
                return Ending::Revoked;
            }
            if self.changes.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Relays key revocations and the start of a shutdown into the one watch every stream
/// waits on, until both sources are gone.
pub(crate) async fn relay(
    mut revocations: watch::Receiver<u64>,
    mut shutdown: watch::Receiver<bool>,
    endings: watch::Sender<()>,
) {
    loop {
        let open = tokio::select! {
            changed = revocations.changed() => changed.is_ok(),
            changed = shutdown.changed() => changed.is_ok(),
        };
        endings.send_replace(());
        if !open {
            return;
        }
    }
}
