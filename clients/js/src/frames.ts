// Generated from clients/protocol.json by clients/generate.mjs; do not edit.
// The frames of Pulseboard's socket protocol, version 3.

/** The protocol version these types describe. */
export const PROTOCOL = 3;

export type Ack = Published & {
  ref?: string | null;
};

export type BoardFrame = {
  /**
   * The board's name, as in `join`.
   */
  name: string;
  view: Record<string, unknown>;
};

/**
 * Frames a client sends.
 */
export type ClientFrame = {
  topics: TopicRequest[];
  type: "subscribe";
} | {
  topics: string[];
  type: "unsubscribe";
} | {
  board: string;
  person?: string | null;
  type: "join";
} | {
  board: string;
  type: "leave";
} | {
  id?: number | null;
  type: "ping";
} | (PublishFrame & {
  type: "publish";
}) | {
  board: string;
  type: "typing";
} | (NoteFrame & {
  type: "note";
}) | {
  board: string;
  id: string;
  ref?: string | null;
  type: "delete_note";
};

export type Coalesced = {
  /**
   * When each of them last changed, as in a snapshot.
   */
  changed?: Record<string, number>;
  /**
   * Entities deleted after `from` (and not written again).
   */
  deleted: string[];
  epoch: number;
  from: number;
  offset: number;
  /**
   * Entities changed after `from`, with their payload now.
   */
  state: Record<string, unknown>;
  topic: string;
};

/**
 * Machine-readable error codes of error frames.
 */
export type ErrorCode = "invalid_json" | "unknown_frame" | "invalid_frame" | "invalid_name" | "op_refused" | "store_unavailable" | "rate_limited" | "too_many_subscriptions" | "unauthenticated" | "forbidden" | "unknown_board" | "too_many_boards";

export type ErrorFrame = {
  /**
   * The board it concerns: not joined, or left.
   */
  board?: string | null;
  code: ErrorCode;
  /**
   * A sentence for a person reading logs.
   */
  message: string;
  /**
   * The client's `ref` from the frame that failed, when it carried one.
   */
  ref?: string | null;
  /**
   * The topics it concerns: not subscribed, or no longer followed.
   */
  topics?: string[];
};

/**
 * Also read by the server, from the Redis engine's bus (with serde: it is the hot path).
 */
export type Event = {
  entity_id: string;
  epoch: number;
  /**
   * `ADDED`, `UPDATED`, `DELETED`, `STATUS_CHANGED`, or a name the publisher chose.
   */
  event: string;
  offset: number;
  /**
   * The entity's whole new payload; `null` for `DELETED`.
   */
  payload: unknown;
  topic: string;
  trace_id?: string | null;
  /**
   * When the server applied the change, ISO 8601 in UTC.
   */
  ts: string;
  user_id?: string | null;
};

/**
 * What a writer sends: the note and where it is pinned.
 */
export type NoteDraft = {
  /**
   * Narrows `topic` to the widgets that show this entity of it.
   */
  entity?: string | null;
  /**
   * An http(s) address the note points to (a runbook, a pull request).
   */
  link?: string | null;
  /**
   * Pins the note to a moment of the series (ms since the Unix epoch): a marker there.
   */
  moment?: number | null;
  text: string;
  /**
   * Pins the note to the widgets that show this topic of the board.
   */
  topic?: string | null;
};

/**
 * A note written from a board: [`crate::boards::notes::NoteDraft`] with the board and the
 * client's name for the request.
 */
export type NoteFrame = NoteDraft & {
  board: string;
  /**
   * The note to change; a new note without it.
   */
  id?: string | null;
  ref?: string | null;
};

/**
 * One typed write to a topic.
 *
 * `ttl` (seconds), where an op takes it, makes the entity expire by itself: the server
 * deletes it (a `DELETED` event) that long after the write. `set` without `ttl` clears any
 * expiry; `patch`, `incr` and `append` without `ttl` keep the entity's expiry as it was.
 */
export type Op = {
  entity_id: string;
  op: "set";
  payload: unknown;
  ttl?: number | null;
} | {
  entity_id: string;
  op: "patch";
  patch: Record<string, unknown>;
  ttl?: number | null;
} | {
  by: number;
  entity_id: string;
  field?: string | null;
  op: "incr";
  ttl?: number | null;
} | {
  entity_id: string;
  op: "delete";
} | {
  entity_id: string;
  max_age?: number | null;
  max_points?: number | null;
  op: "append";
  ttl?: number | null;
  value: number;
} | {
  max?: number | null;
  op: "push";
  payload: unknown;
  ttl?: number | null;
} | {
  op: "clear";
};

/**
 * Someone on a board: an admin session, a share link or an API key (by the key's name), or
 * an anonymous browser ("Guest 417", never anyone's name).
 */
export type Person = {
  /**
   * An anonymous browser.
   */
  guest: boolean;
  /**
   * Stable for the person: across their pages, reloads and the instances they reach.
   */
  id: string;
  name: string;
  /**
   * When their first page still open arrived, ISO 8601 in UTC.
   */
  since: string;
  /**
   * Their open pages, as each page's `welcome.connection`: a page finds itself here.
   */
  tabs: string[];
};

/**
 * A point in a topic's history: a subscriber that holds it has applied every event up to
 * and including `offset` of that `epoch`.
 */
export type Position = {
  /**
   * Changes whenever the topic's history restarts; offsets of different epochs are unrelated.
   */
  epoch: number;
  /**
   * The offset of the last event applied; 0 before the first event.
   */
  offset: number;
};

export type Presence = {
  board: string;
  /**
   * How many people view the board now; a person with several pages open counts once.
   */
  count: number;
  /**
   * The people who arrived since the last presence frame, when `people` is listed.
   */
  joined?: string[];
  /**
   * The people who left since the last presence frame, when `people` is listed.
   */
  left?: string[];
  /**
   * Who they are, longest here first; left out on a board with more people than the
   * server lists (`presence_list_max`), where `count` is all there is.
   */
  people?: Person[] | null;
};

export type PublishFrame = {
  ops: Op[];
  /**
   * The client's name for this request, echoed in its answer.
   */
  ref?: string | null;
  topic: string;
  trace_id?: string | null;
  user_id?: string | null;
};

/**
 * What a publish answered: the topic's epoch and the offsets its events got.
 */
export type Published = {
  epoch: number;
  /**
   * The offset of the last event the request produced (the topic's offset now).
   */
  offset: number;
  /**
   * The offsets of every event the request produced, in order.
   */
  offsets: number[];
  topic: string;
};

export type Resumed = {
  epoch: number;
  offset: number;
  /**
   * How many events were replayed before this frame.
   */
  replayed: number;
  topic: string;
};

/**
 * Frames the server sends. Decoded by hand (see [`ServerFrame::decode`]), encoded by serde.
 */
export type ServerFrame = (Welcome & {
  type: "welcome";
}) | (Snapshot & {
  type: "snapshot";
}) | (Coalesced & {
  type: "coalesced";
}) | (Event & {
  type: "event";
}) | (Resumed & {
  type: "resumed";
}) | (Presence & {
  type: "presence";
}) | (Typing & {
  type: "typing";
}) | (BoardFrame & {
  type: "board";
}) | {
  reconnect_in_ms: number;
  type: "restarting";
} | {
  type: "reload";
  within_ms: number;
} | {
  reason: string;
  topic?: string | null;
  type: "stale";
} | {
  topic?: string | null;
  type: "fresh";
} | {
  id?: number | null;
  type: "pong";
} | (Ack & {
  type: "ack";
}) | (ErrorFrame & {
  type: "error";
});

export type Snapshot = {
  /**
   * When each entity last changed, in ms since the Unix epoch by the server's clock:
   * `entity_id` → time. Entities written by a server older than this field have none.
   */
  changed?: Record<string, number>;
  epoch: number;
  offset: number;
  /**
   * Every entity of the topic: `entity_id` → payload.
   */
  state: Record<string, unknown>;
  topic: string;
};

/**
 * One topic in a `subscribe` frame, with the position to resume from, if the client has one.
 */
export type TopicRequest = {
  resume?: null | Position;
  topic: string;
};

/**
 * Also read by the server, from the Redis engine's bus.
 */
export type Typing = {
  board: string;
  name: string;
  /**
   * The person writing, as in `presence`.
   */
  person: string;
};

export type Welcome = {
  /**
   * This connection's id: presence frames list it among its person's `tabs`.
   */
  connection: string;
  /**
   * How often the server pings, and how often a client should send `ping` when it has
   * nothing else to say.
   */
  heartbeat_ms: number;
  /**
   * Silence after which the server closes the connection, and after which a client that
   * has heard nothing should reconnect.
   */
  idle_timeout_ms: number;
  /**
   * The protocol version the server speaks ([`PROTOCOL`]); absent from servers before it
   * was sent. The board page does not read it: it is served by the server it talks to.
   */
  protocol?: number;
  /**
   * The server's version.
   */
  server: string;
  /**
   * The server's clock as it sent this frame, in ms since the Unix epoch: a client whose
   * own clock is off (a wall TV's often is) measures the age of `changed` and `ts` times
   * against it.
   */
  server_time_ms?: number;
};
