//! Writing a board's notes: who may, what a note may say, and how a write becomes ops on the
//! board's notes topic. Both ways in use it — `/api/v1/boards/{board}/notes` for a deploy
//! script, the socket's `note` and `delete_note` frames for a person at the board — so the
//! rules are the same for both. The server names the author (never the writer), bounds
//! each board's notes (a new one past the limit lets go of the oldest, in the same write)
//! and lets each expire a while after it was last written.

use crate::access::person::Someone;
use crate::access::Caller;
use crate::boards::notes::{notes_topic, Note, NoteDraft, NOTES_PREFIX};
use crate::boards::Board;
use crate::clock::now_ms;
use crate::engine::plan::{feed_item_id, MAX_ENTITY_ID_LEN};
use crate::engine::{Engine, EngineError, PublishError};
use crate::ops::{Op, Publish, Published};
use std::sync::Arc;
use std::time::Duration;

/// The longest note, in characters.
pub(crate) const MAX_TEXT: usize = 2_000;
/// The longest link, in bytes.
const MAX_LINK: usize = 2_048;

/// How many notes a board keeps, and for how long after each was last written.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NoteSettings {
    pub(crate) per_board: usize,
    pub(crate) keep: Duration,
}

/// Why a note was not written; nothing changed.
#[derive(Debug)]
pub(crate) enum NoteError {
    /// The caller may not write notes on this board: why, for them to read.
    NotAllowed(String),
    /// The note itself is wrong: what to fix.
    Invalid(String),
    /// No note of this board has that id.
    NoSuchNote(String),
    /// The engine could not read or write the notes.
    Unavailable(EngineError),
}

impl std::fmt::Display for NoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoteError::NotAllowed(why) | NoteError::Invalid(why) => f.write_str(why),
            NoteError::NoSuchNote(id) => write!(f, "the board has no note `{id}`"),
            NoteError::Unavailable(e) => write!(f, "the notes could not be reached: {e}"),
        }
    }
}

impl From<PublishError> for NoteError {
    fn from(e: PublishError) -> Self {
        match e {
            PublishError::Unavailable(e) => NoteError::Unavailable(e),
            other => NoteError::Invalid(other.to_string()),
        }
    }
}

/// Whether `caller` may write notes on `board`: an admin, a key that may write to one of the
/// board's topics, or anyone on a board whose `[notes]` says `anyone`. The reason, if not.
pub(crate) fn may_write(caller: &Caller, board: &Board) -> Result<(), NoteError> {
    if caller.may_write_board(board) || board.notes.anyone && caller.may_read_board(board) {
        return Ok(());
    }
    let why = if caller.is_anonymous() {
        "only people who may write to this board can leave notes on it: sign in, or open it \
         with a link that may write"
            .to_owned()
    } else {
        format!(
            "key {} may not write to this board, so it may not leave notes on it",
            caller.who()
        )
    };
    Err(NoteError::NotAllowed(why))
}

/// Why a write with ops to `topic` is refused, if it is a board's notes topic: only notes
/// are written there.
pub(crate) fn reserved(topic: &str) -> Option<String> {
    let board = topic.strip_prefix(NOTES_PREFIX)?;
    Some(format!(
        "`{topic}` holds the notes of board {board}: write them with \
         POST /api/v1/boards/{board}/notes, not with ops"
    ))
}

/// Checks a draft against the board it is for.
fn check(draft: &NoteDraft, board: &Board) -> Result<(), NoteError> {
    let invalid = |why: &str| Err(NoteError::Invalid(why.to_owned()));
    let text = draft.text.trim();
    if text.is_empty() {
        return invalid("a note needs some `text`");
    }
    if text.chars().count() > MAX_TEXT {
        return Err(NoteError::Invalid(format!(
            "a note's `text` is at most {MAX_TEXT} characters"
        )));
    }
    match &draft.topic {
        Some(topic) if !board.reads(topic) => {
            return Err(NoteError::Invalid(format!(
                "`topic`: the board shows no topic `{topic}`"
            )))
        }
        None if draft.entity.is_some() || draft.moment.is_some() => {
            return invalid("`entity` and `moment` pin a note within a `topic`: name it too")
        }
        _ => {}
    }
    // Pinned to an entity, it names one: as long as an entity id may be, and no longer
    // (every screen of the board holds its notes).
    if let Some(entity) = &draft.entity {
        if entity.is_empty() || entity.len() > MAX_ENTITY_ID_LEN {
            return Err(NoteError::Invalid(format!(
                "`entity` must be 1 to {MAX_ENTITY_ID_LEN} bytes, as an entity id is"
            )));
        }
    }
    if let Some(link) = &draft.link {
        let web = link.starts_with("https://") || link.starts_with("http://");
        if !web || link.len() > MAX_LINK || link.chars().any(char::is_whitespace) {
            return invalid("`link` must be an http:// or https:// address of at most 2048 bytes");
        }
    }
    Ok(())
}

/// A board's notes, newest last, by id.
pub(crate) async fn list(
    engine: &dyn Engine,
    board: &str,
) -> Result<Vec<(String, Note)>, NoteError> {
    let snapshot = engine
        .snapshot(&notes_topic(board))
        .await
        .map_err(NoteError::Unavailable)?;
    Ok(snapshot
        .into_iter()
        .flat_map(|s| s.state)
        .filter_map(|(id, payload)| Some((id, serde_json::from_value(payload).ok()?)))
        .collect())
}

/// The notes a board's writers can reach.
pub(crate) struct Notes {
    pub(crate) engine: Arc<dyn Engine>,
    pub(crate) settings: NoteSettings,
}

impl Notes {
    /// Writes a new note by `author`, or edits note `id` (which only its author or an admin
    /// may). Returns the note's id, the note, and where it landed in the notes topic.
    pub(crate) async fn write(
        &self,
        caller: &Caller,
        author: &Someone,
        board: &Board,
        id: Option<String>,
        draft: NoteDraft,
    ) -> Result<(String, Note, Published), NoteError> {
        may_write(caller, board)?;
        check(&draft, board)?;
        let keep = Some(self.settings.keep.as_secs());
        let (op, note) = match id {
            None => {
                let note = Note {
                    text: draft.text.trim().to_owned(),
                    author: author.id.clone(),
                    author_name: author.name.clone(),
                    at: now_ms(),
                    edited: None,
                    topic: draft.topic,
                    entity: draft.entity,
                    moment: draft.moment,
                    link: draft.link,
                };
                let op = Op::Push {
                    payload: serde_json::to_value(&note).expect("a note encodes"),
                    max: Some(self.settings.per_board),
                    ttl: keep,
                };
                (op, note)
            }
            Some(id) => {
                let before = self.own_note(caller, author, &board.name, &id).await?;
                let note = Note {
                    text: draft.text.trim().to_owned(),
                    edited: Some(now_ms()),
                    topic: draft.topic,
                    entity: draft.entity,
                    moment: draft.moment,
                    link: draft.link,
                    ..before
                };
                let op = Op::Set {
                    entity_id: id,
                    payload: serde_json::to_value(&note).expect("a note encodes"),
                    ttl: keep,
                };
                (op, note)
            }
        };
        let id = match &op {
            Op::Set { entity_id, .. } => Some(entity_id.clone()),
            _ => None,
        };
        let published = self.apply(author, &board.name, op).await?;
        // A pushed note's id is the offset of the event that added it.
        let id = id.unwrap_or_else(|| feed_item_id(published.offsets[0]));
        Ok((id, note, published))
    }

    /// Deletes note `id`, which only its author or an admin may.
    pub(crate) async fn delete(
        &self,
        caller: &Caller,
        author: &Someone,
        board: &Board,
        id: String,
    ) -> Result<Published, NoteError> {
        may_write(caller, board)?;
        self.own_note(caller, author, &board.name, &id).await?;
        self.apply(author, &board.name, Op::Delete { entity_id: id })
            .await
    }

    /// The note `id` of `board`, if `author` wrote it or the caller is an admin.
    async fn own_note(
        &self,
        caller: &Caller,
        author: &Someone,
        board: &str,
        id: &str,
    ) -> Result<Note, NoteError> {
        let notes = list(self.engine.as_ref(), board).await?;
        let Some((_, note)) = notes.into_iter().find(|(n, _)| n == id) else {
            return Err(NoteError::NoSuchNote(id.to_owned()));
        };
        if note.author != author.id && !caller.is_admin() {
            return Err(NoteError::NotAllowed(format!(
                "note `{id}` is {}'s: only they or an admin may change it",
                note.author_name
            )));
        }
        Ok(note)
    }

    async fn apply(&self, author: &Someone, board: &str, op: Op) -> Result<Published, NoteError> {
        let publish = Publish {
            ops: vec![op],
            user_id: Some(author.id.clone()),
            trace_id: None,
        };
        let outcome = self
            .engine
            .publish((notes_topic(board), publish).into(), None)
            .await?;
        let mut results = outcome.answer.results;
        Ok(results.swap_remove(0))
    }
}
