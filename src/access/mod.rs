//! Who may do what. A request is made by a [`Caller`]: anonymous, or the API key it presents
//! (as a bearer token, a share link's `token`, or the admin session it logged in with).
//!
//! The rules, the same over HTTP, `/ws` and `/sse`:
//! - anyone may read a public board and its topics;
//! - a private board, and a topic only private boards show, need a key with `read:<board>`
//!   (or `read:*`) or `admin`;
//! - a write needs a key whose `publish:` scopes cover every topic it touches (a publisher
//!   may read those topics back);
//! - managing keys and reloading screens need `admin`.
//!
//! - [`scope`]: the scopes and how they match;
//! - [`keyring`]: keys and sessions, stored hashed;
//! - [`person`]: who a caller is as a person on a board.

pub(crate) mod keyring;
pub(crate) mod person;
pub(crate) mod scope;

use crate::boards::library::Library;
use crate::boards::notes::NOTES_PREFIX;
use crate::boards::Board;
use keyring::KeyRecord;
use std::sync::Arc;

/// Who a request comes from. One pointer: every open connection holds its caller, a few
/// times over.
#[derive(Clone, Debug, Default)]
pub(crate) struct Caller {
    credential: Option<Arc<Credential>>,
}

/// What a caller with a credential presented.
#[derive(Debug)]
struct Credential {
    key: Arc<KeyRecord>,
    /// The digest of the admin session's token, when the key came through its cookie: the
    /// caller's rights end with the session (a logout), not only with the key.
    session: Option<Box<str>>,
}

impl Caller {
    pub(crate) fn with_key(key: Arc<KeyRecord>) -> Self {
        Caller {
            credential: Some(Arc::new(Credential { key, session: None })),
        }
    }

    /// A caller signed in with the admin session whose token has this digest.
    pub(crate) fn with_session(key: Arc<KeyRecord>, session: &str) -> Self {
        let session = Some(session.into());
        Caller {
            credential: Some(Arc::new(Credential { key, session })),
        }
    }

    /// Why the caller's credential is no longer in force, once it is not.
    pub(crate) fn ended(&self) -> &'static str {
        if self.session().is_some() {
            "the session ended"
        } else {
            "the key was revoked"
        }
    }

    /// The session's token digest, if the caller came through one.
    pub(crate) fn session(&self) -> Option<&str> {
        self.credential.as_ref()?.session.as_deref()
    }

    pub(crate) fn is_anonymous(&self) -> bool {
        self.credential.is_none()
    }

    /// The key's id, or `anonymous`: how audit lines name the caller.
    pub(crate) fn who(&self) -> &str {
        self.key().map_or("anonymous", |key| &key.id)
    }

    pub(crate) fn key(&self) -> Option<&KeyRecord> {
        self.credential
            .as_deref()
            .map(|credential| &*credential.key)
    }

    fn scopes(&self) -> &[scope::Scope] {
        self.key().map_or(&[], |key| &key.scopes)
    }

    pub(crate) fn is_admin(&self) -> bool {
        self.scopes().contains(&scope::Scope::Admin)
    }

    /// Whether this caller may write `topic` with ops. A board's notes topic is written only
    /// as notes (`crate::notes`), never with ops, whatever the scopes say.
    pub(crate) fn may_publish(&self, topic: &str) -> bool {
        !topic.starts_with(NOTES_PREFIX) && self.scopes().iter().any(|s| s.allows_publish(topic))
    }

    /// Whether this caller may write to the board: a `publish:` scope covers one of its
    /// topics (its notes topic too), or it is an admin's.
    pub(crate) fn may_write_board(&self, board: &Board) -> bool {
        self.is_admin()
            || board
                .topics()
                .iter()
                .any(|topic| self.scopes().iter().any(|s| s.allows_publish(topic)))
    }

    pub(crate) fn may_read_board(&self, board: &Board) -> bool {
        !board.private || self.scopes().iter().any(|s| s.allows_board(&board.name))
    }

    /// Whether this caller may see the board at this name. No such board: nothing to hide.
    /// A board whose file never parsed is not known to be public, so only an admin sees it;
    /// nor is a public one whose file broke (the library holds it private until fixed).
    pub(crate) fn may_see(&self, library: &Library, name: &str) -> bool {
        match library.get(name) {
            None => true,
            Some(view) => match &view.board {
                Some(board) => self.may_read_board(board),
                None => self.is_admin(),
            },
        }
    }

    /// Whether this caller may read a topic: it is on a board the caller may read, or the
    /// caller may write it.
    pub(crate) fn may_read_topic(&self, library: &Library, topic: &str) -> bool {
        self.may_publish(topic)
            || self.is_admin()
            || library.any_board(|board| board.reads(topic) && self.may_read_board(board))
    }
}
