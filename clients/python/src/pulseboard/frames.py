# Generated from clients/protocol.json by clients/generate.mjs; do not edit.
"""The frames of Pulseboard's socket protocol, version 3, as TypedDicts."""

from __future__ import annotations

from typing import Any, Literal, NotRequired, Optional, Required, TypedDict, Union

PROTOCOL = 3


Ack = TypedDict(
    "Ack",
    {
        "epoch": Required[int],
        "offset": Required[int],
        "offsets": Required[list[int]],
        "ref": NotRequired[Optional[str]],
        "topic": Required[str],
    },
)


class BoardFrame(TypedDict, total=False):
    name: Required[str]
    view: Required[dict[str, Any]]


SubscribeClientFrame = TypedDict(
    "SubscribeClientFrame",
    {
        "topics": Required[list["TopicRequest"]],
        "type": Required[Literal["subscribe"]],
    },
)
SubscribeClientFrame.__doc__ = "Start receiving topics: a snapshot (or the missed events, when resuming), then live events."


UnsubscribeClientFrame = TypedDict(
    "UnsubscribeClientFrame",
    {
        "topics": Required[list[str]],
        "type": Required[Literal["unsubscribe"]],
    },
)
UnsubscribeClientFrame.__doc__ = "Stop receiving topics."


JoinClientFrame = TypedDict(
    "JoinClientFrame",
    {
        "board": Required[str],
        "person": NotRequired[Optional[str]],
        "type": Required[Literal["join"]],
    },
)
JoinClientFrame.__doc__ = "Count this connection as one of a person's pages on a board, and receive that board's\npresence, typing and definition. `person` is how an anonymous browser keeps its tabs\none person (an id it keeps in local storage, 8 to 64 of `A-Z a-z 0-9 _ -`); a\nconnection with a key is the key's person, whatever it sends."


LeaveClientFrame = TypedDict(
    "LeaveClientFrame",
    {
        "board": Required[str],
        "type": Required[Literal["leave"]],
    },
)
LeaveClientFrame.__doc__ = "Stop being a viewer of a board."


PingClientFrame = TypedDict(
    "PingClientFrame",
    {
        "id": NotRequired[Optional[int]],
        "type": Required[Literal["ping"]],
    },
)
PingClientFrame.__doc__ = "Liveness check; answered by a `pong` carrying the same `id`."


PublishClientFrame = TypedDict(
    "PublishClientFrame",
    {
        "ops": Required[list["Op"]],
        "ref": NotRequired[Optional[str]],
        "topic": Required[str],
        "trace_id": NotRequired[Optional[str]],
        "type": Required[Literal["publish"]],
        "user_id": NotRequired[Optional[str]],
    },
)
PublishClientFrame.__doc__ = "Apply ops to a topic, as `POST /api/v1/topics/{topic}` does; answered by an `ack` or an\n`error`, each carrying the same `ref`."


TypingClientFrame = TypedDict(
    "TypingClientFrame",
    {
        "board": Required[str],
        "type": Required[Literal["typing"]],
    },
)
TypingClientFrame.__doc__ = "This person is writing a note on a joined board: the board's other viewers see it for\na few seconds. Send it at most every couple of seconds while they type."


NoteClientFrame = TypedDict(
    "NoteClientFrame",
    {
        "type": Required[Literal["note"]],
    },
)
NoteClientFrame.__doc__ = "Writes a note on a joined board (a new one, or an edit of `id`), as\n`POST /api/v1/boards/{board}/notes` does; answered by an `ack` or an `error`."


DeleteNoteClientFrame = TypedDict(
    "DeleteNoteClientFrame",
    {
        "board": Required[str],
        "id": Required[str],
        "ref": NotRequired[Optional[str]],
        "type": Required[Literal["delete_note"]],
    },
)
DeleteNoteClientFrame.__doc__ = "Deletes a note of a joined board; answered by an `ack` or an `error`."


Coalesced = TypedDict(
    "Coalesced",
    {
        "changed": NotRequired[dict[str, int]],
        "deleted": Required[list[str]],
        "epoch": Required[int],
        "from": Required[int],
        "offset": Required[int],
        "state": Required[dict[str, Any]],
        "topic": Required[str],
    },
)


ErrorFrame = TypedDict(
    "ErrorFrame",
    {
        "board": NotRequired[Optional[str]],
        "code": Required["ErrorCode"],
        "message": Required[str],
        "ref": NotRequired[Optional[str]],
        "topics": NotRequired[list[str]],
    },
)


class Event(TypedDict, total=False):
    """Also read by the server, from the Redis engine's bus (with serde: it is the hot path)."""
    entity_id: Required[str]
    epoch: Required[int]
    event: Required[str]
    offset: Required[int]
    payload: Required[Any]
    topic: Required[str]
    trace_id: NotRequired[Optional[str]]
    ts: Required[str]
    user_id: NotRequired[Optional[str]]


class NoteDraft(TypedDict, total=False):
    """What a writer sends: the note and where it is pinned."""
    entity: NotRequired[Optional[str]]
    link: NotRequired[Optional[str]]
    moment: NotRequired[Optional[int]]
    text: Required[str]
    topic: NotRequired[Optional[str]]


NoteFrame = TypedDict(
    "NoteFrame",
    {
        "board": Required[str],
        "entity": NotRequired[Optional[str]],
        "id": NotRequired[Optional[str]],
        "link": NotRequired[Optional[str]],
        "moment": NotRequired[Optional[int]],
        "ref": NotRequired[Optional[str]],
        "text": Required[str],
        "topic": NotRequired[Optional[str]],
    },
)
NoteFrame.__doc__ = "A note written from a board: [`crate::boards::notes::NoteDraft`] with the board and the\nclient's name for the request."


class SetOp(TypedDict, total=False):
    """Create or replace an entity."""
    entity_id: Required[str]
    op: Required[Literal["set"]]
    payload: Required[Any]
    ttl: NotRequired[Optional[int]]


class PatchOp(TypedDict, total=False):
    """Apply a JSON merge patch (RFC 7396) to an entity, creating it if absent."""
    entity_id: Required[str]
    op: Required[Literal["patch"]]
    patch: Required[dict[str, Any]]
    ttl: NotRequired[Optional[int]]


class IncrOp(TypedDict, total=False):
    """Add `by` to a number: the payload itself, or `field` of an object payload.
A missing entity or field counts as 0."""
    by: Required[float]
    entity_id: Required[str]
    field: NotRequired[Optional[str]]
    op: Required[Literal["incr"]]
    ttl: NotRequired[Optional[int]]


class DeleteOp(TypedDict, total=False):
    """Remove an entity; removing one that does not exist changes nothing."""
    entity_id: Required[str]
    op: Required[Literal["delete"]]


class AppendOp(TypedDict, total=False):
    """Add a point to a bounded series: the entity's payload is `{"points": [[ms, value], …]}`,
oldest first, keeping at most `max_points` points no older than `max_age` seconds."""
    entity_id: Required[str]
    max_age: NotRequired[Optional[int]]
    max_points: NotRequired[Optional[int]]
    op: Required[Literal["append"]]
    ttl: NotRequired[Optional[int]]
    value: Required[float]


class PushOp(TypedDict, total=False):
    """Add an item to a feed topic under a server-assigned, increasing id, then drop the
oldest items beyond `max`. An object item without an `at` field gets one: the
server's time in milliseconds since the Unix epoch, which feeds show as "2 min ago"."""
    max: NotRequired[Optional[int]]
    op: Required[Literal["push"]]
    payload: Required[Any]
    ttl: NotRequired[Optional[int]]


class ClearOp(TypedDict, total=False):
    """Remove every entity of the topic."""
    op: Required[Literal["clear"]]


class Person(TypedDict, total=False):
    """Someone on a board: an admin session, a share link or an API key (by the key's name), or
an anonymous browser ("Guest 417", never anyone's name)."""
    guest: Required[bool]
    id: Required[str]
    name: Required[str]
    since: Required[str]
    tabs: Required[list[str]]


class Position(TypedDict, total=False):
    """A point in a topic's history: a subscriber that holds it has applied every event up to
and including `offset` of that `epoch`."""
    epoch: Required[int]
    offset: Required[int]


class Presence(TypedDict, total=False):
    board: Required[str]
    count: Required[int]
    joined: NotRequired[list[str]]
    left: NotRequired[list[str]]
    people: NotRequired[Optional[list["Person"]]]


PublishFrame = TypedDict(
    "PublishFrame",
    {
        "ops": Required[list["Op"]],
        "ref": NotRequired[Optional[str]],
        "topic": Required[str],
        "trace_id": NotRequired[Optional[str]],
        "user_id": NotRequired[Optional[str]],
    },
)


class Published(TypedDict, total=False):
    """What a publish answered: the topic's epoch and the offsets its events got."""
    epoch: Required[int]
    offset: Required[int]
    offsets: Required[list[int]]
    topic: Required[str]


class Resumed(TypedDict, total=False):
    epoch: Required[int]
    offset: Required[int]
    replayed: Required[int]
    topic: Required[str]


WelcomeServerFrame = TypedDict(
    "WelcomeServerFrame",
    {
        "connection": Required[str],
        "heartbeat_ms": Required[int],
        "idle_timeout_ms": Required[int],
        "protocol": NotRequired[int],
        "server": Required[str],
        "server_time_ms": NotRequired[int],
        "type": Required[Literal["welcome"]],
    },
)
WelcomeServerFrame.__doc__ = "The first frame on every connection."


SnapshotServerFrame = TypedDict(
    "SnapshotServerFrame",
    {
        "changed": NotRequired[dict[str, int]],
        "epoch": Required[int],
        "offset": Required[int],
        "state": Required[dict[str, Any]],
        "topic": Required[str],
        "type": Required[Literal["snapshot"]],
    },
)
SnapshotServerFrame.__doc__ = "The whole state of a topic at a position; replaces anything the client held for it."


CoalescedServerFrame = TypedDict(
    "CoalescedServerFrame",
    {
        "changed": NotRequired[dict[str, int]],
        "deleted": Required[list[str]],
        "epoch": Required[int],
        "from": Required[int],
        "offset": Required[int],
        "state": Required[dict[str, Any]],
        "topic": Required[str],
        "type": Required[Literal["coalesced"]],
    },
)
CoalescedServerFrame.__doc__ = "Sent instead of a run of events to a connection that fell behind: the latest state of\nevery entity that changed after `from`, up to `offset`. A client at `from` applies it\nand is at `offset`; any other client asks for a snapshot (subscribes again)."


EventServerFrame = TypedDict(
    "EventServerFrame",
    {
        "entity_id": Required[str],
        "epoch": Required[int],
        "event": Required[str],
        "offset": Required[int],
        "payload": Required[Any],
        "topic": Required[str],
        "trace_id": NotRequired[Optional[str]],
        "ts": Required[str],
        "type": Required[Literal["event"]],
        "user_id": NotRequired[Optional[str]],
    },
)
EventServerFrame.__doc__ = "One change to a topic, in offset order."


ResumedServerFrame = TypedDict(
    "ResumedServerFrame",
    {
        "epoch": Required[int],
        "offset": Required[int],
        "replayed": Required[int],
        "topic": Required[str],
        "type": Required[Literal["resumed"]],
    },
)
ResumedServerFrame.__doc__ = "Sent after the missed events of a resumed topic: the client is now live at `offset`."


PresenceServerFrame = TypedDict(
    "PresenceServerFrame",
    {
        "board": Required[str],
        "count": Required[int],
        "joined": NotRequired[list[str]],
        "left": NotRequired[list[str]],
        "people": NotRequired[Optional[list["Person"]]],
        "type": Required[Literal["presence"]],
    },
)
PresenceServerFrame.__doc__ = "Who is viewing a board: sent on `join`, and to its viewers whenever people arrive or\nleave (a burst of changes is one frame)."


TypingServerFrame = TypedDict(
    "TypingServerFrame",
    {
        "board": Required[str],
        "name": Required[str],
        "person": Required[str],
        "type": Required[Literal["typing"]],
    },
)
TypingServerFrame.__doc__ = "Someone is writing a note on a joined board; show it for a few seconds unless another\n`typing` from them, or their note, comes first."


BoardServerFrame = TypedDict(
    "BoardServerFrame",
    {
        "name": Required[str],
        "type": Required[Literal["board"]],
        "view": Required[dict[str, Any]],
    },
)
BoardServerFrame.__doc__ = "A joined board's definition: sent on `join`, and to every viewer whenever its file\nchanges. A frame with an older `revision` than the page holds is stale and ignored."


RestartingServerFrame = TypedDict(
    "RestartingServerFrame",
    {
        "reconnect_in_ms": Required[int],
        "type": Required[Literal["restarting"]],
    },
)
RestartingServerFrame.__doc__ = "The server is stopping (a deploy, a restart) and is about to close this connection with\n1012: reconnect after `reconnect_in_ms`, a delay picked at random for each connection so\nthat clients come back spread out, then resume as after any drop."


ReloadServerFrame = TypedDict(
    "ReloadServerFrame",
    {
        "type": Required[Literal["reload"]],
        "within_ms": Required[int],
    },
)
ReloadServerFrame.__doc__ = "An operator asked every screen to reload (`POST /api/v1/screens/reload`): reload the\npage after a random delay below `within_ms`, so screens do not all return at once."


StaleServerFrame = TypedDict(
    "StaleServerFrame",
    {
        "reason": Required[str],
        "topic": NotRequired[Optional[str]],
        "type": Required[Literal["stale"]],
    },
)
StaleServerFrame.__doc__ = "Without `topic`: the server cannot reach where its topics are (Redis is down), and\nnothing changes until it can. With `topic`: what feeds that topic (a pull source)\nis failing, and the topic keeps its last good state. Either way keep showing what\nyou have, marked as not updating with `reason`; `fresh` (with the same `topic`)\nfollows when it updates again. A subscriber is told a topic's mark right after it\nsubscribes, and a new connection starts with none: clear them at `welcome`."


FreshServerFrame = TypedDict(
    "FreshServerFrame",
    {
        "topic": NotRequired[Optional[str]],
        "type": Required[Literal["fresh"]],
    },
)
FreshServerFrame.__doc__ = "The server, or the topic named, updates again after `stale`."


PongServerFrame = TypedDict(
    "PongServerFrame",
    {
        "id": NotRequired[Optional[int]],
        "type": Required[Literal["pong"]],
    },
)
PongServerFrame.__doc__ = "The answer to a `ping`."


AckServerFrame = TypedDict(
    "AckServerFrame",
    {
        "type": Required[Literal["ack"]],
    },
)
AckServerFrame.__doc__ = "A `publish` applied: the topic's epoch and the offsets its events got."


ErrorServerFrame = TypedDict(
    "ErrorServerFrame",
    {
        "board": NotRequired[Optional[str]],
        "code": Required["ErrorCode"],
        "message": Required[str],
        "ref": NotRequired[Optional[str]],
        "topics": NotRequired[list[str]],
        "type": Required[Literal["error"]],
    },
)
ErrorServerFrame.__doc__ = "A frame the server could not accept. The connection stays open."


class Snapshot(TypedDict, total=False):
    changed: NotRequired[dict[str, int]]
    epoch: Required[int]
    offset: Required[int]
    state: Required[dict[str, Any]]
    topic: Required[str]


class TopicRequest(TypedDict, total=False):
    """One topic in a `subscribe` frame, with the position to resume from, if the client has one."""
    resume: NotRequired[Union[None, "Position"]]
    topic: Required[str]


class Typing(TypedDict, total=False):
    """Also read by the server, from the Redis engine's bus."""
    board: Required[str]
    name: Required[str]
    person: Required[str]


class Welcome(TypedDict, total=False):
    connection: Required[str]
    heartbeat_ms: Required[int]
    idle_timeout_ms: Required[int]
    protocol: NotRequired[int]
    server: Required[str]
    server_time_ms: NotRequired[int]


ClientFrame = Union[
    SubscribeClientFrame,
    UnsubscribeClientFrame,
    JoinClientFrame,
    LeaveClientFrame,
    PingClientFrame,
    PublishClientFrame,
    TypingClientFrame,
    NoteClientFrame,
    DeleteNoteClientFrame,
]
"""Frames a client sends."""


ErrorCode = Literal["invalid_json", "unknown_frame", "invalid_frame", "invalid_name", "op_refused", "store_unavailable", "rate_limited", "too_many_subscriptions", "unauthenticated", "forbidden", "unknown_board", "too_many_boards"]
"""Machine-readable error codes of error frames."""


Op = Union[
    SetOp,
    PatchOp,
    IncrOp,
    DeleteOp,
    AppendOp,
    PushOp,
    ClearOp,
]
"""One typed write to a topic.

`ttl` (seconds), where an op takes it, makes the entity expire by itself: the server
deletes it (a `DELETED` event) that long after the write. `set` without `ttl` clears any
expiry; `patch`, `incr` and `append` without `ttl` keep the entity's expiry as it was."""


ServerFrame = Union[
    WelcomeServerFrame,
    SnapshotServerFrame,
    CoalescedServerFrame,
    EventServerFrame,
    ResumedServerFrame,
    PresenceServerFrame,
    TypingServerFrame,
    BoardServerFrame,
    RestartingServerFrame,
    ReloadServerFrame,
    StaleServerFrame,
    FreshServerFrame,
    PongServerFrame,
    AckServerFrame,
    ErrorServerFrame,
]
"""Frames the server sends. Decoded by hand (see [`ServerFrame::decode`]), encoded by serde."""
