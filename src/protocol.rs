//! The socket protocol: every JSON frame that crosses `GET /ws`, in both directions.
//!
//! This module has no feature gate. The server encodes [`ServerFrame`]s and decodes
//! [`ClientFrame`]s with these types, and the WASM client does the reverse with the same
//! types, so a protocol change that would break the browser does not compile.
//! `docs/protocol.md` describes the same frames for clients written in other languages.

use crate::boards::notes::NoteDraft;
use crate::boards::BoardView;
use crate::json::{self, decode_fields, deserialize_via_json, named, Fields, FromJson};
use crate::names::check_name;
use crate::ops::{Op, Published};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// A point in a topic's history: a subscriber that holds it has applied every event up to
/// and including `offset` of that `epoch`.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    /// Changes whenever the topic's history restarts; offsets of different epochs are unrelated.
    pub epoch: u64,
    /// The offset of the last event applied; 0 before the first event.
    pub offset: u64,
}

/// One topic in a `subscribe` frame, with the position to resume from, if the client has one.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TopicRequest {
    pub topic: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Position>,
}

/// Frames a client sends.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Start receiving topics: a snapshot (or the missed events, when resuming), then live events.
    Subscribe { topics: Vec<TopicRequest> },
    /// Stop receiving topics.
    Unsubscribe { topics: Vec<String> },
    /// Count this connection as one of a person's pages on a board, and receive that board's
    /// presence, typing and definition. `person` is how an anonymous browser keeps its tabs
    /// one person (an id it keeps in local storage, 8 to 64 of `A-Z a-z 0-9 _ -`); a
    /// connection with a key is the key's person, whatever it sends.
    Join {
        board: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        person: Option<String>,
    },
    /// Stop being a viewer of a board.
    Leave { board: String },
    /// Liveness check; answered by a `pong` carrying the same `id`.
    Ping {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    /// Apply ops to a topic, as `POST /api/v1/topics/{topic}` does; answered by an `ack` or an
    /// `error`, each carrying the same `ref`.
    Publish(PublishFrame),
    /// This person is writing a note on a joined board: the board's other viewers see it for
    /// a few seconds. Send it at most every couple of seconds while they type.
    Typing { board: String },
    /// Writes a note on a joined board (a new one, or an edit of `id`), as
    /// `POST /api/v1/boards/{board}/notes` does; answered by an `ack` or an `error`.
    Note(NoteFrame),
    /// Deletes a note of a joined board; answered by an `ack` or an `error`.
    DeleteNote {
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        board: String,
        id: String,
    },
}

/// The frame types a client may send, as they appear in the `type` field.
pub const CLIENT_FRAME_TYPES: [&str; 9] = [
    "subscribe",
    "unsubscribe",
    "join",
    "leave",
    "ping",
    "publish",
    "typing",
    "note",
    "delete_note",
];

/// A note written from a board: [`crate::boards::notes::NoteDraft`] with the board and the
/// client's name for the request.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct NoteFrame {
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub board: String,
    /// The note to change; a new note without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(flatten)]
    pub note: NoteDraft,
}

#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PublishFrame {
    /// The client's name for this request, echoed in its answer.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub topic: String,
    pub ops: Vec<Op>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// Frames the server sends. Decoded by hand (see [`ServerFrame::decode`]), encoded by serde.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The first frame on every connection.
    Welcome(Welcome),
    /// The whole state of a topic at a position; replaces anything the client held for it.
    Snapshot(Snapshot),
    /// Sent instead of a run of events to a connection that fell behind: the latest state of
    /// every entity that changed after `from`, up to `offset`. A client at `from` applies it
    /// and is at `offset`; any other client asks for a snapshot (subscribes again).
    Coalesced(Coalesced),
    /// One change to a topic, in offset order.
    Event(Event),
    /// Sent after the missed events of a resumed topic: the client is now live at `offset`.
    Resumed(Resumed),
    /// Who is viewing a board: sent on `join`, and to its viewers whenever people arrive or
    /// leave (a burst of changes is one frame).
    Presence(Presence),
    /// Someone is writing a note on a joined board; show it for a few seconds unless another
    /// `typing` from them, or their note, comes first.
    Typing(Typing),
    /// A joined board's definition: sent on `join`, and to every viewer whenever its file
    /// changes. A frame with an older `revision` than the page holds is stale and ignored.
    Board(BoardFrame),
    /// The server is stopping (a deploy, a restart) and is about to close this connection with
    /// 1012: reconnect after `reconnect_in_ms`, a delay picked at random for each connection so
    /// that clients come back spread out, then resume as after any drop.
    Restarting { reconnect_in_ms: u64 },
    /// An operator asked every screen to reload (`POST /api/v1/screens/reload`): reload the
    /// page after a random delay below `within_ms`, so screens do not all return at once.
    Reload { within_ms: u64 },
    /// Without `topic`: the server cannot reach where its topics are (Redis is down), and
    /// nothing changes until it can. With `topic`: what feeds that topic (a pull source)
    /// is failing, and the topic keeps its last good state. Either way keep showing what
    /// you have, marked as not updating with `reason`; `fresh` (with the same `topic`)
    /// follows when it updates again. A subscriber is told a topic's mark right after it
    /// subscribes, and a new connection starts with none: clear them at `welcome`.
    Stale {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        topic: Option<String>,
        reason: String,
    },
    /// The server, or the topic named, updates again after `stale`.
    Fresh {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        topic: Option<String>,
    },
    /// The answer to a `ping`.
    Pong {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    /// A `publish` applied: the topic's epoch and the offsets its events got.
    Ack(Ack),
    /// A frame the server could not accept. The connection stays open.
    Error(ErrorFrame),
}

impl ServerFrame {
    /// Decodes one text frame, as the browser does (see [`json`]).
    pub fn decode(text: &str) -> Result<Self, serde_json::Error> {
        Self::from_json(serde_json::from_str(text)?)
    }
}

impl FromJson for ServerFrame {
    fn from_json(value: Value) -> Result<Self, json::Error> {
        let mut fields = Fields::of(value)?;
        let kind: String = fields.take("type")?;
        Ok(match kind.as_str() {
            "welcome" => Self::Welcome(Welcome::from_json(fields.rest())?),
            "snapshot" => Self::Snapshot(Snapshot::from_json(fields.rest())?),
            "coalesced" => Self::Coalesced(Coalesced::from_json(fields.rest())?),
            "event" => Self::Event(Event::from_json(fields.rest())?),
            "resumed" => Self::Resumed(Resumed::from_json(fields.rest())?),
            "presence" => Self::Presence(Presence::from_json(fields.rest())?),
            "typing" => Self::Typing(Typing::from_json(fields.rest())?),
            "board" => Self::Board(BoardFrame::from_json(fields.rest())?),
            "restarting" => Self::Restarting {
                reconnect_in_ms: fields.take("reconnect_in_ms")?,
            },
            "reload" => Self::Reload {
                within_ms: fields.take("within_ms")?,
            },
            "stale" => Self::Stale {
                topic: fields.take("topic")?,
                reason: fields.take("reason")?,
            },
            "fresh" => Self::Fresh {
                topic: fields.take("topic")?,
            },
            "pong" => Self::Pong {
                id: fields.take("id")?,
            },
            "ack" => Self::Ack(Ack {
                reference: fields.take("ref")?,
                published: Published::from_json(fields.rest())?,
            }),
            "error" => Self::Error(ErrorFrame::from_json(fields.rest())?),
            other => {
                return Err(serde_json::Error::unknown_variant(
                    other,
                    SERVER_FRAME_TYPES,
                ))
            }
        })
    }
}

/// For decoders that do not start from text (a frame inside another document): through
/// [`FromJson`], so there is one way frames are read.
impl<'de> Deserialize<'de> for ServerFrame {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_via_json(deserializer)
    }
}

/// The frame types the server sends, as they appear in the `type` field.
pub const SERVER_FRAME_TYPES: &[&str] = &[
    "welcome",
    "snapshot",
    "coalesced",
    "event",
    "resumed",
    "presence",
    "typing",
    "board",
    "restarting",
    "reload",
    "stale",
    "fresh",
    "pong",
    "ack",
    "error",
];

#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct BoardFrame {
    /// The board's name, as in `join`.
    pub name: String,
    #[cfg_attr(feature = "ssr", schema(value_type = Object))]
    pub view: BoardView,
}

#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Ack {
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(flatten)]
    pub published: Published,
}

/// The version of this protocol, sent in every `welcome`. It changes only when a frame
/// changes in a way a client written for the previous one would misread (new frames and new
/// fields do not change it); `docs/protocol.md` lists what each version changed.
pub const PROTOCOL: u64 = 3;

#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Welcome {
    /// This connection's id: presence frames list it among its person's `tabs`.
    pub connection: String,
    /// The server's version.
    pub server: String,
    /// The protocol version the server speaks ([`PROTOCOL`]); absent from servers before it
    /// was sent. The board page does not read it: it is served by the server it talks to.
    #[serde(default)]
    pub protocol: u64,
    /// How often the server pings, and how often a client should send `ping` when it has
    /// nothing else to say.
    pub heartbeat_ms: u64,
    /// Silence after which the server closes the connection, and after which a client that
    /// has heard nothing should reconnect.
    pub idle_timeout_ms: u64,
    /// The server's clock as it sent this frame, in ms since the Unix epoch: a client whose
    /// own clock is off (a wall TV's often is) measures the age of `changed` and `ts` times
    /// against it.
    #[serde(default)]
    pub server_time_ms: u64,
}

#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub topic: String,
    pub epoch: u64,
    pub offset: u64,
    /// Every entity of the topic: `entity_id` → payload.
    #[cfg_attr(feature = "ssr", schema(value_type = HashMap<String, Value>))]
    pub state: BTreeMap<String, Value>,
    /// When each entity last changed, in ms since the Unix epoch by the server's clock:
    /// `entity_id` → time. Entities written by a server older than this field have none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub changed: BTreeMap<String, u64>,
}

#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Coalesced {
    pub topic: String,
    pub epoch: u64,
    pub from: u64,
    pub offset: u64,
    /// Entities changed after `from`, with their payload now.
    #[cfg_attr(feature = "ssr", schema(value_type = HashMap<String, Value>))]
    pub state: BTreeMap<String, Value>,
    /// When each of them last changed, as in a snapshot.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub changed: BTreeMap<String, u64>,
    /// Entities deleted after `from` (and not written again).
    pub deleted: Vec<String>,
}

/// Also read by the server, from the Redis engine's bus (with serde: it is the hot path).
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Event {
    pub topic: String,
    pub epoch: u64,
    pub offset: u64,
    /// `ADDED`, `UPDATED`, `DELETED`, `STATUS_CHANGED`, or a name the publisher chose.
    #[cfg_attr(feature = "ssr", schema(value_type = String))]
    pub event: EventKind,
    pub entity_id: String,
    /// The entity's whole new payload; `null` for `DELETED`.
    #[cfg_attr(feature = "ssr", schema(value_type = Value))]
    pub payload: Value,
    /// When the server applied the change, ISO 8601 in UTC.
    pub ts: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Resumed {
    pub topic: String,
    pub epoch: u64,
    pub offset: u64,
    /// How many events were replayed before this frame.
    pub replayed: u64,
}

#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Presence {
    pub board: String,
    /// How many people view the board now; a person with several pages open counts once.
    pub count: u64,
    /// Who they are, longest here first; left out on a board with more people than the
    /// server lists (`presence_list_max`), where `count` is all there is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub people: Option<Vec<Person>>,
    /// The people who arrived since the last presence frame, when `people` is listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub joined: Vec<String>,
    /// The people who left since the last presence frame, when `people` is listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left: Vec<String>,
}

/// Someone on a board: an admin session, a share link or an API key (by the key's name), or
/// an anonymous browser ("Guest 417", never anyone's name).
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Person {
    /// Stable for the person: across their pages, reloads and the instances they reach.
    pub id: String,
    pub name: String,
    /// An anonymous browser.
    pub guest: bool,
    /// When their first page still open arrived, ISO 8601 in UTC.
    pub since: String,
    /// Their open pages, as each page's `welcome.connection`: a page finds itself here.
    pub tabs: Vec<String>,
}

/// Also read by the server, from the Redis engine's bus.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Typing {
    pub board: String,
    /// The person writing, as in `presence`.
    pub person: String,
    pub name: String,
}

/// What kind of change an event is. Publishers may also name their own kinds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(from = "String", into = "String")]
pub enum EventKind {
    Added,
    Updated,
    Deleted,
    StatusChanged,
    Custom(String),
}

impl From<String> for EventKind {
    fn from(name: String) -> Self {
        match name.as_str() {
            "ADDED" => Self::Added,
            "UPDATED" => Self::Updated,
            "DELETED" => Self::Deleted,
            "STATUS_CHANGED" => Self::StatusChanged,
            _ => Self::Custom(name),
        }
    }
}

impl From<EventKind> for String {
    fn from(kind: EventKind) -> Self {
        match kind {
            EventKind::Added => "ADDED".into(),
            EventKind::Updated => "UPDATED".into(),
            EventKind::Deleted => "DELETED".into(),
            EventKind::StatusChanged => "STATUS_CHANGED".into(),
            EventKind::Custom(name) => name,
        }
    }
}

#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct ErrorFrame {
    pub code: ErrorCode,
    /// A sentence for a person reading logs.
    pub message: String,
    /// The client's `ref` from the frame that failed, when it carried one.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The topics it concerns: not subscribed, or no longer followed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<String>,
    /// The board it concerns: not joined, or left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board: Option<String>,
}

/// An event's `ts` (ISO 8601 in UTC, as the server writes it: `2026-12-01T09:30:00.250Z`) in
/// ms since the Unix epoch; `None` for any other form.
pub fn ts_ms(ts: &str) -> Option<u64> {
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = ts.get(range)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let bytes = ts.as_bytes();
    let shape = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if !shape.iter().all(|(at, sep)| bytes.get(*at) == Some(sep)) || !ts.ends_with('Z') {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    let millis = match ts.get(19..ts.len() - 1)? {
        "" => 0,
        fraction if fraction.len() == 4 && fraction.starts_with('.') => digits(20..23)?,
        _ => return None,
    };
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm), years counted from March.
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let of_era = year - era * 400;
    let of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let of_cycle = of_era * 365 + of_era / 4 - of_era / 100 + of_year;
    let days = era * 146_097 + of_cycle - 719_468;
    let ms = ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis;
    u64::try_from(ms).ok()
}

/// Machine-readable error codes of error frames.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not JSON.
    InvalidJson,
    /// The frame's `type` is missing or not one the server knows.
    UnknownFrame,
    /// The frame's type is known but its fields are wrong.
    InvalidFrame,
    /// A topic or board name breaks the naming rule.
    InvalidName,
    /// An op of a `publish` could not apply; nothing of the publish applied.
    OpRefused,
    /// The server could not store a `publish`; nothing of it applied. Retry later.
    StoreUnavailable,
    /// The connection sent frames faster than its limit; this one and those until the rate
    /// drops are ignored. Kept up, the connection is closed with 1008.
    RateLimited,
    /// A `subscribe` would take the connection past its limit of topics; the topics named in
    /// the message were not subscribed.
    TooManySubscriptions,
    /// The connection has no key, and what it asked needs one (a `publish`, or topics only
    /// private boards show). Open the socket with `?token=` or an `Authorization` header.
    Unauthenticated,
    /// The connection's key does not allow what it asked.
    Forbidden,
    /// A `join` named a board the server has no file for.
    UnknownBoard,
    /// A `join` would take the connection past its limit of boards.
    TooManyBoards,
}

impl FromJson for Welcome {
    fn from_json(value: Value) -> Result<Self, json::Error> {
        let mut fields = Fields::of(value)?;
        Ok(Welcome {
            connection: fields.take("connection")?,
            server: fields.take("server")?,
            // The page is served by the server it talks to, so it has no version to check,
            // and its first load has no room for reading a field it would not use.
            protocol: PROTOCOL,
            heartbeat_ms: fields.take("heartbeat_ms")?,
            idle_timeout_ms: fields.take("idle_timeout_ms")?,
            // Older servers do not send it; 0 reads as "no clock to go by".
            server_time_ms: fields.take::<Option<u64>>("server_time_ms")?.unwrap_or(0),
        })
    }
}

decode_fields!(Snapshot {
    topic,
    epoch,
    offset,
    state,
    changed
});

decode_fields!(Coalesced {
    topic,
    epoch,
    from,
    offset,
    state,
    changed,
    deleted
});

decode_fields!(Event {
    topic,
    epoch,
    offset,
    event,
    entity_id,
    payload,
    ts,
    user_id,
    trace_id
});

decode_fields!(Resumed {
    topic,
    epoch,
    offset,
    replayed
});

decode_fields!(Presence {
    board,
    count,
    people,
    joined,
    left
});

decode_fields!(Person {
    id,
    name,
    guest,
    since,
    tabs
});

decode_fields!(Typing {
    board,
    person,
    name
});

decode_fields!(BoardFrame { name, view });

decode_fields!(ErrorFrame {
    code,
    message,
    reference: "ref",
    topics,
    board
});

impl FromJson for EventKind {
    fn from_json(value: Value) -> Result<Self, json::Error> {
        String::from_json(value).map(EventKind::from)
    }
}

impl ErrorCode {
    /// Every code, by the name frames give it.
    const NAMES: [(&'static str, ErrorCode); 12] = [
        ("invalid_json", ErrorCode::InvalidJson),
        ("unknown_frame", ErrorCode::UnknownFrame),
        ("invalid_frame", ErrorCode::InvalidFrame),
        ("invalid_name", ErrorCode::InvalidName),
        ("op_refused", ErrorCode::OpRefused),
        ("store_unavailable", ErrorCode::StoreUnavailable),
        ("rate_limited", ErrorCode::RateLimited),
        ("too_many_subscriptions", ErrorCode::TooManySubscriptions),
        ("unauthenticated", ErrorCode::Unauthenticated),
        ("forbidden", ErrorCode::Forbidden),
        ("unknown_board", ErrorCode::UnknownBoard),
        ("too_many_boards", ErrorCode::TooManyBoards),
    ];
}

impl FromJson for ErrorCode {
    fn from_json(value: Value) -> Result<Self, json::Error> {
        named(value, &ErrorCode::NAMES)
    }
}

/// Close code: the key the connection presented is unknown, or was revoked while it was open.
/// Reconnecting with the same key will not help.
pub const CLOSE_UNAUTHENTICATED: u16 = 4401;
/// Close code: the connection joined a private board its credentials may not read, or
/// everything it followed turned private.
pub const CLOSE_FORBIDDEN: u16 = 4403;
/// Close code (RFC 6455's "try again later"): the board joined is held back while its file is
/// broken; reconnecting later, with backoff, is right.
pub const CLOSE_TRY_AGAIN_LATER: u16 = 1013;

impl ErrorFrame {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            reference: None,
            topics: Vec::new(),
            board: None,
        }
    }

    /// Names the topics the error concerns.
    pub fn about_topics(mut self, topics: Vec<String>) -> Self {
        self.topics = topics;
        self
    }

    /// Names the board the error concerns.
    pub fn about_board(mut self, board: impl Into<String>) -> Self {
        self.board = Some(board.into());
        self
    }
}

impl ClientFrame {
    /// Decodes one text frame, naming the problem precisely when it is not a valid frame.
    pub fn decode(text: &str) -> Result<Self, ErrorFrame> {
        // A good frame is read in one pass; only one that fails is read again, as a JSON
        // value, to say precisely what is wrong with it.
        if let Ok(frame) = serde_json::from_str::<ClientFrame>(text) {
            if frame.validate().is_ok() {
                return Ok(frame);
            }
        }
        let value: Value = serde_json::from_str(text)
            .map_err(|e| ErrorFrame::new(ErrorCode::InvalidJson, format!("not JSON: {e}")))?;
        let reference = value.get("ref").and_then(Value::as_str).map(str::to_owned);
        Self::decode_value(value).map_err(|mut error| {
            error.reference = reference;
            error
        })
    }

    fn decode_value(value: Value) -> Result<Self, ErrorFrame> {
        let kind = match value.get("type") {
            Some(Value::String(kind)) => kind.clone(),
            Some(_) => {
                return Err(ErrorFrame::new(
                    ErrorCode::UnknownFrame,
                    "the `type` field must be a string",
                ))
            }
            None => {
                return Err(ErrorFrame::new(
                    ErrorCode::UnknownFrame,
                    "the frame has no `type` field",
                ))
            }
        };
        if !CLIENT_FRAME_TYPES.contains(&kind.as_str()) {
            return Err(ErrorFrame::new(
                ErrorCode::UnknownFrame,
                format!(
                    "unknown frame type `{kind}`; expected one of: {}",
                    CLIENT_FRAME_TYPES.join(", ")
                ),
            ));
        }
        let frame: ClientFrame = serde_json::from_value(value).map_err(|e| {
            ErrorFrame::new(ErrorCode::InvalidFrame, format!("bad `{kind}` frame: {e}"))
        })?;
        frame.validate()?;
        Ok(frame)
    }

    fn validate(&self) -> Result<(), ErrorFrame> {
        let names: Vec<&str> = match self {
            ClientFrame::Subscribe { topics } => topics.iter().map(|t| t.topic.as_str()).collect(),
            ClientFrame::Unsubscribe { topics } => topics.iter().map(String::as_str).collect(),
            ClientFrame::Join { board, person } => {
                if let Some(person) = person {
                    check_person(person)?;
                }
                vec![board.as_str()]
            }
            ClientFrame::Leave { board }
            | ClientFrame::Typing { board }
            | ClientFrame::DeleteNote { board, .. } => vec![board.as_str()],
            ClientFrame::Note(note) => vec![note.board.as_str()],
            ClientFrame::Ping { .. } => Vec::new(),
            ClientFrame::Publish(publish) => vec![publish.topic.as_str()],
        };
        for name in names {
            check_name(name).map_err(|e| ErrorFrame::new(ErrorCode::InvalidName, e.to_string()))?;
        }
        Ok(())
    }
}

/// The rule for the id an anonymous browser gives in `join`: 8 to 64 of `A-Z a-z 0-9 _ -`.
pub fn check_person(id: &str) -> Result<(), ErrorFrame> {
    let valid = (8..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(ErrorFrame::new(
            ErrorCode::InvalidFrame,
            "`person` must be 8 to 64 of A-Z a-z 0-9 _ -",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_times_read_back_to_the_millisecond() {
        assert_eq!(ts_ms("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(ts_ms("2026-12-01T09:30:00.250Z"), Some(1_796_117_400_250));
        assert_eq!(ts_ms("2024-02-29T23:59:59Z"), Some(1_709_251_199_000));
        for bad in [
            "",
            "2026-12-01",
            "2026-12-01T09:30Z",
            "2026-12-01T09:30:00.25Z",
            "2026-13-01T09:30:00Z",
            "2026-12-01 09:30:00Z",
            "2026-12-01T09:30:0éZ",
        ] {
            assert_eq!(ts_ms(bad), None, "{bad}");
        }
    }
    use crate::boards::Level;
    use serde_json::json;

    fn round_trip_client(frame: ClientFrame, expected: Value) {
        let text = serde_json::to_string(&frame).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), expected);
        assert_eq!(ClientFrame::decode(&text).unwrap(), frame);
    }

    fn round_trip_server(frame: ServerFrame, expected: Value) {
        let text = serde_json::to_string(&frame).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), expected);
        assert_eq!(serde_json::from_str::<ServerFrame>(&text).unwrap(), frame);
    }

    #[test]
    fn client_frames_round_trip() {
        round_trip_client(
            ClientFrame::Subscribe {
                topics: vec![
                    TopicRequest {
                        topic: "metric:signups".into(),
                        resume: None,
                    },
                    TopicRequest {
                        topic: "feed:deploys".into(),
                        resume: Some(Position {
                            epoch: 7,
                            offset: 41,
                        }),
                    },
                ],
            },
            json!({"type": "subscribe", "topics": [
                {"topic": "metric:signups"},
                {"topic": "feed:deploys", "resume": {"epoch": 7, "offset": 41}}
            ]}),
        );
        round_trip_client(
            ClientFrame::Unsubscribe {
                topics: vec!["metric:signups".into()],
            },
            json!({"type": "unsubscribe", "topics": ["metric:signups"]}),
        );
        round_trip_client(
            ClientFrame::Join {
                board: "demo".into(),
                person: None,
            },
            json!({"type": "join", "board": "demo"}),
        );
        round_trip_client(
            ClientFrame::Join {
                board: "demo".into(),
                person: Some("p0123456789abcdef".into()),
            },
            json!({"type": "join", "board": "demo", "person": "p0123456789abcdef"}),
        );
        round_trip_client(
            ClientFrame::Typing {
                board: "demo".into(),
            },
            json!({"type": "typing", "board": "demo"}),
        );
        round_trip_client(
            ClientFrame::Note(NoteFrame {
                reference: Some("n1".into()),
                board: "demo".into(),
                id: None,
                note: NoteDraft {
                    text: "deploy 14:02".into(),
                    topic: Some("metric:latency".into()),
                    entity: None,
                    moment: Some(1_796_117_400_000),
                    link: None,
                },
            }),
            json!({"type": "note", "ref": "n1", "board": "demo", "text": "deploy 14:02",
                   "topic": "metric:latency", "moment": 1_796_117_400_000u64}),
        );
        round_trip_client(
            ClientFrame::DeleteNote {
                reference: None,
                board: "demo".into(),
                id: "000000000042".into(),
            },
            json!({"type": "delete_note", "board": "demo", "id": "000000000042"}),
        );
        round_trip_client(
            ClientFrame::Leave {
                board: "demo".into(),
            },
            json!({"type": "leave", "board": "demo"}),
        );
        round_trip_client(
            ClientFrame::Ping { id: Some(3) },
            json!({"type": "ping", "id": 3}),
        );
        round_trip_client(ClientFrame::Ping { id: None }, json!({"type": "ping"}));
        round_trip_client(
            ClientFrame::Publish(PublishFrame {
                reference: Some("r1".into()),
                topic: "metric:kpis".into(),
                ops: vec![Op::Delete {
                    entity_id: "errors".into(),
                }],
                user_id: None,
                trace_id: Some("t".into()),
            }),
            json!({"type": "publish", "ref": "r1", "topic": "metric:kpis", "trace_id": "t",
                   "ops": [{"op": "delete", "entity_id": "errors"}]}),
        );
    }

    /// The names the browser reads unit variants by are the ones serde writes.
    #[test]
    fn named_variants_are_serdes_names() {
        for (name, code) in ErrorCode::NAMES {
            assert_eq!(serde_json::to_value(code).unwrap(), json!(name));
            assert_eq!(ErrorCode::from_json(json!(name)).unwrap(), code);
        }
        for level in [Level::Ok, Level::Info, Level::Warn, Level::Critical] {
            let written = serde_json::to_value(level).unwrap();
            assert_eq!(written, json!(level.as_str()));
            assert_eq!(Level::from_json(written).unwrap(), level);
        }
    }

    #[test]
    fn server_frames_round_trip() {
        round_trip_server(
            ServerFrame::Welcome(Welcome {
                connection: "c1".into(),
                server: "0.1.0".into(),
                protocol: PROTOCOL,
                heartbeat_ms: 15_000,
                idle_timeout_ms: 45_000,
                server_time_ms: 1_796_117_400_250,
            }),
            json!({"type": "welcome", "connection": "c1", "server": "0.1.0", "protocol": 3,
                   "heartbeat_ms": 15000, "idle_timeout_ms": 45000,
                   "server_time_ms": 1_796_117_400_250u64}),
        );
        round_trip_server(
            ServerFrame::Snapshot(Snapshot {
                topic: "metric:signups".into(),
                epoch: 7,
                offset: 2,
                state: BTreeMap::from([("total".to_string(), json!(12))]),
                changed: BTreeMap::from([("total".to_string(), 1_796_117_400_250)]),
            }),
            json!({"type": "snapshot", "topic": "metric:signups", "epoch": 7, "offset": 2,
                   "state": {"total": 12}, "changed": {"total": 1_796_117_400_250u64}}),
        );
        round_trip_server(
            ServerFrame::Event(Event {
                topic: "board:leaders".into(),
                epoch: 7,
                offset: 3,
                event: EventKind::Updated,
                entity_id: "aurora".into(),
                payload: json!({"name": "Aurora", "score": 10}),
                ts: "2026-11-22T10:00:00.000Z".into(),
                user_id: Some("ci".into()),
                trace_id: Some("abc".into()),
            }),
            json!({"type": "event", "topic": "board:leaders", "epoch": 7, "offset": 3,
                   "event": "UPDATED", "entity_id": "aurora",
                   "payload": {"name": "Aurora", "score": 10},
                   "ts": "2026-11-22T10:00:00.000Z", "user_id": "ci", "trace_id": "abc"}),
        );
        round_trip_server(
            ServerFrame::Resumed(Resumed {
                topic: "feed:deploys".into(),
                epoch: 7,
                offset: 44,
                replayed: 3,
            }),
            json!({"type": "resumed", "topic": "feed:deploys", "epoch": 7, "offset": 44,
                   "replayed": 3}),
        );
        round_trip_server(
            ServerFrame::Presence(Presence {
                board: "demo".into(),
                count: 1,
                people: Some(vec![Person {
                    id: "k-ana".into(),
                    name: "Ana".into(),
                    guest: false,
                    since: "2026-11-22T10:00:00.000Z".into(),
                    tabs: vec!["c1".into(), "c4".into()],
                }]),
                joined: vec!["k-ana".into()],
                left: Vec::new(),
            }),
            json!({"type": "presence", "board": "demo", "count": 1, "joined": ["k-ana"],
                   "people": [{"id": "k-ana", "name": "Ana", "guest": false,
                               "since": "2026-11-22T10:00:00.000Z", "tabs": ["c1", "c4"]}]}),
        );
        round_trip_server(
            ServerFrame::Presence(Presence {
                board: "demo".into(),
                count: 10_000,
                people: None,
                joined: Vec::new(),
                left: Vec::new(),
            }),
            json!({"type": "presence", "board": "demo", "count": 10_000}),
        );
        round_trip_server(
            ServerFrame::Typing(Typing {
                board: "demo".into(),
                person: "g-0a1b2c3d4e5f".into(),
                name: "Guest 417".into(),
            }),
            json!({"type": "typing", "board": "demo", "person": "g-0a1b2c3d4e5f",
                   "name": "Guest 417"}),
        );
        round_trip_server(
            ServerFrame::Ack(Ack {
                reference: Some("r1".into()),
                published: Published {
                    topic: "metric:kpis".into(),
                    epoch: 7,
                    offset: 9,
                    offsets: vec![8, 9],
                },
            }),
            json!({"type": "ack", "ref": "r1", "topic": "metric:kpis", "epoch": 7, "offset": 9,
                   "offsets": [8, 9]}),
        );
        round_trip_server(
            ServerFrame::Board(BoardFrame {
                name: "ops".into(),
                view: BoardView {
                    revision: 4,
                    board: None,
                    problem: Some(crate::boards::BoardProblem {
                        file: "ops.toml".into(),
                        line: Some(3),
                        column: Some(1),
                        message: "widget 1: (feed): `topic` is missing".into(),
                    }),
                },
            }),
            json!({"type": "board", "name": "ops", "view": {"revision": 4, "board": null,
                   "problem": {"file": "ops.toml", "line": 3, "column": 1,
                               "message": "widget 1: (feed): `topic` is missing"}}}),
        );
        round_trip_server(
            ServerFrame::Pong { id: Some(3) },
            json!({"type": "pong", "id": 3}),
        );
        round_trip_server(
            ServerFrame::Error(ErrorFrame {
                code: ErrorCode::InvalidJson,
                message: "not JSON".into(),
                reference: Some("r1".into()),
                topics: Vec::new(),
                board: None,
            }),
            json!({"type": "error", "code": "invalid_json", "message": "not JSON", "ref": "r1"}),
        );
        round_trip_server(
            ServerFrame::Error(
                ErrorFrame::new(ErrorCode::Forbidden, "board ops is private now")
                    .about_topics(vec!["feed:ops".into()])
                    .about_board("ops"),
            ),
            json!({"type": "error", "code": "forbidden", "message": "board ops is private now",
                   "topics": ["feed:ops"], "board": "ops"}),
        );
    }

    #[test]
    fn event_kinds_keep_custom_names() {
        for (kind, name) in [
            (EventKind::Added, "ADDED"),
            (EventKind::Updated, "UPDATED"),
            (EventKind::Deleted, "DELETED"),
            (EventKind::StatusChanged, "STATUS_CHANGED"),
            (EventKind::Custom("DEPLOYED".into()), "DEPLOYED"),
        ] {
            assert_eq!(serde_json::to_value(&kind).unwrap(), json!(name));
            assert_eq!(
                serde_json::from_value::<EventKind>(json!(name)).unwrap(),
                kind
            );
        }
    }

    #[test]
    fn decode_names_each_problem() {
        let code = |text: &str| ClientFrame::decode(text).unwrap_err().code;
        assert_eq!(code("{not json"), ErrorCode::InvalidJson);
        assert_eq!(code(r#"{"topics": []}"#), ErrorCode::UnknownFrame);
        assert_eq!(code(r#"{"type": 5}"#), ErrorCode::UnknownFrame);
        assert_eq!(code(r#"{"type": "explode"}"#), ErrorCode::UnknownFrame);
        assert_eq!(
            code(r#"{"type": "subscribe", "topics": "x"}"#),
            ErrorCode::InvalidFrame
        );
        assert_eq!(
            code(r#"{"type": "subscribe", "topics": [{"topic": "bad topic"}]}"#),
            ErrorCode::InvalidName
        );
        let unknown = ClientFrame::decode(r#"{"type": "explode"}"#).unwrap_err();
        assert!(unknown.message.contains("explode"), "{}", unknown.message);
        let bad_publish =
            ClientFrame::decode(r#"{"type": "publish", "ref": "r9", "topic": "t", "ops": 1}"#)
                .unwrap_err();
        assert_eq!(
            (bad_publish.code, bad_publish.reference.as_deref()),
            (ErrorCode::InvalidFrame, Some("r9"))
        );
    }

    #[test]
    fn names_follow_the_rule() {
        for good in ["metric:signups", "board:leaders", "orders.eu-1", "A_1"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", ":x", "has space", "é", &"x".repeat(129)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}

/// The frames as a JSON Schema, written to `clients/protocol.json`: the client libraries'
/// frame types are generated from that file, so a change here that they have not taken
/// fails this test (`PULSEBOARD_BLESS=1 cargo test --features ssr protocol_schema` writes it
/// anew; then `node clients/generate.mjs` writes the clients' types from it).
#[cfg(all(test, feature = "ssr"))]
mod schema {
    use super::{ClientFrame, ServerFrame, PROTOCOL};
    use utoipa::OpenApi;

    #[derive(OpenApi)]
    #[openapi(components(schemas(ServerFrame, ClientFrame)))]
    struct Frames;

    #[test]
    fn protocol_schema_is_the_one_the_clients_were_generated_from() {
        let components = Frames::openapi().components.expect("the frames' schemas");
        let schema = serde_json::json!({
            "$comment": "Generated from src/protocol.rs by `PULSEBOARD_BLESS=1 cargo test --features ssr protocol_schema`; do not edit.",
            "protocol": PROTOCOL,
            "definitions": components.schemas,
        });
        let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/protocol.json");
        if std::env::var_os("PULSEBOARD_BLESS").is_some() {
            std::fs::write(path, &text).unwrap();
        }
        let written = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            written == text,
            "clients/protocol.json is not what src/protocol.rs says: run \
             `PULSEBOARD_BLESS=1 cargo test --features ssr protocol_schema`, then \
             `node clients/generate.mjs`, and fix the clients where their types changed"
        );
    }
}
