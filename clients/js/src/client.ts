import { Board } from "./board.js";
import { PulseboardError } from "./errors.js";
import { PROTOCOL } from "./frames.js";
import type { Ack, Op } from "./frames.js";
import { Next, Topic } from "./topic.js";
import type { Position } from "./topic.js";
import { poll, sse, websocket } from "./transports.js";
import type { Follows, Link, Transport } from "./transports.js";

/** This library's name and version, sent to the server as `client=`. */
export const CLIENT = "pulseboard-js/0.1.0";

/** The clock and randomness the client runs on; tests pass fakes. */
export interface Timers {
  setTimeout(run: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  now(): number;
  random(): number;
}

export interface Options {
  /** The server, e.g. `https://board.example.com` (the client finds `/ws`, `/sse` and the API under it). */
  url: string;
  /** An API key (`pb_…`) or share-link token; none for public boards' topics. */
  token?: string | null;
  /**
   * Asked for a token before the first connection and again whenever the server says the
   * one it has is no longer good (close 4401, HTTP 401); one call at a time.
   */
  getToken?: () => Promise<string | null> | string | null;
  /** The WebSocket class, where there is no global one (Node 20: `ws`'s). */
  WebSocket?: unknown;
  fetch?: typeof fetch;
  /** The transports to use, in order (default all three); the client moves to the next after `fallbackAfter` failed connections in a row. */
  transports?: Transport[];
  fallbackAfter?: number;
  /** While on a fallback, how often to try WebSocket again (ms; default 60,000). */
  upgradeEvery?: number;
  /** Reconnect delays: full jitter between 0 and `initialMs` · 2ⁿ, at most `maxMs`. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** How long a topic or board no longer held stays subscribed (ms; default 1,000), so a component that remounts (React StrictMode, hot reload) does not resubscribe. */
  linger?: number;
  /** Seconds a long poll waits (default 25). */
  pollWait?: number;
  /** How long a publish or note waits for its answer (ms; default 10,000). */
  requestTimeoutMs?: number;
  /** An anonymous person's id on boards (8 to 64 of `A-Z a-z 0-9 _ -`), to be one person across connections. */
  person?: string;
  timers?: Partial<Timers>;
  /** Where `online` and `visibilitychange` come from (default: the browser's `window`). */
  window?: { addEventListener(type: string, run: () => void): void; removeEventListener(type: string, run: () => void): void };
}

/** The connection, as a value. */
export interface ConnectionView {
  /** `idle`: nothing to follow; `connecting`; `open`; `reconnecting` (waiting `retryInMs`); `stopped` (closed, or `error` says why). */
  readonly state: "idle" | "connecting" | "open" | "reconnecting" | "stopped";
  readonly transport: Transport;
  /** Failed connections in a row. */
  readonly attempt: number;
  readonly retryInMs: number | null;
  /** Why the client stopped, or why the last connection ended. */
  readonly error: PulseboardError | null;
  /** The whole server is not updating (its store is unreachable), with why. */
  readonly stale: string | null;
  /** The server's version and protocol, from its welcome. */
  readonly server: string | null;
}

type Pending = { resolve(ack: Ack): void; reject(e: Error): void; sent: boolean; timer: unknown; frame: Record<string, unknown> };

/**
 * A connection to one Pulseboard server: the topics and boards followed through it, kept
 * gapless across reconnects, transports and restarts. Nothing connects until something is
 * followed, and nothing connects during server rendering unless asked.
 */
export class Pulseboard {
  readonly url: string;
  #o: Options;
  #t: Timers;
  #topics = new Map<string, Topic<any>>();
  #boards = new Map<string, Board>();
  #link: Link | null = null;
  #transport = 0;
  #failures = 0;
  #attempt = 0;
  #opened = false;
  #stopped: PulseboardError | null = null;
  #closed = false;
  #token: string | null | undefined;
  #tokenAsked: Promise<string | null> | null = null;
  #retry: unknown = null;
  #retryAt: number | null = null;
  #watchdog: unknown = null;
  /** While trying WebSocket again from a fallback: the fallback to go back to. */
  #probing: number | null = null;
  #upgrade: unknown = null;
  #heard = 0;
  #heartbeat = 0;
  #idle = 0;
  #restartIn: number | null = null;
  #me: string | null = null;
  #server: string | null = null;
  #stale: string | null = null;
  #lastError: PulseboardError | null = null;
  #pending = new Map<string, Pending>();
  #nextRef = 0;
  #view: ConnectionView | null = null;
  #watchers = new Set<() => void>();
  #linger = new Map<string, unknown>();
  #wake = () => this.#wakeUp();
  /** Where `online` and `visibilitychange` are heard, once something is followed. */
  #window: Options["window"] | null = null;
  #visible = () => {
    if ((globalThis as any).document?.visibilityState !== "hidden") this.#wakeUp();
  };

  constructor(options: Options) {
    this.#o = options;
    this.url = options.url.replace(/\/$/, "");
    this.#token = options.token;
    const g = globalThis;
    this.#t = {
      setTimeout: (run, ms) => g.setTimeout(run, ms),
      clearTimeout: (h) => g.clearTimeout(h as any),
      now: () => Date.now(),
      random: Math.random,
      ...options.timers,
    };
  }

  /** The connection as it is now; the same object until it changes. */
  get connection(): ConnectionView {
    return (this.#view ??= Object.freeze({
      state: this.#stopped || this.#closed
        ? "stopped"
        : this.#opened
          ? "open"
          : this.#retry
            ? "reconnecting"
            : this.#link
              ? "connecting"
              : "idle",
      transport: this.#transports()[this.#transport],
      attempt: this.#attempt,
      retryInMs: this.#retryAt === null ? null : Math.max(0, this.#retryAt - this.#t.now()),
      error: this.#stopped ?? this.#lastError,
      stale: this.#stale,
      server: this.#server,
    }));
  }

  /** The store contract for `connection`. */
  subscribe(run: (view: ConnectionView) => void): () => void {
    const watcher = () => run(this.connection);
    this.#watchers.add(watcher);
    watcher();
    return () => this.#watchers.delete(watcher);
  }

  /**
   * Follows a topic: a snapshot, then every change, in order, across reconnects. Each call
   * is one hold on the topic; `release` it when done (it is unsubscribed `linger` ms after
   * its last hold goes). `resumeFrom`: a position kept from before (a worker's restart) to
   * get only the changes after it, or a snapshot with `discontinuity` when they are gone.
   */
  topic<T = unknown>(name: string, options?: { resumeFrom?: Position | null }): Topic<T> {
    let topic = this.#topics.get(name) as Topic<T> | undefined;
    if (!topic) {
      topic = new Topic<T>(name, options?.resumeFrom);
      this.#topics.set(name, topic);
      this.#follow([name]);
    }
    this.#hold(`t:${name}`);
    topic.refs++;
    return topic;
  }

  /** The topic if it is followed now, without holding it. */
  peek<T = unknown>(name: string): Topic<T> | undefined {
    return this.#topics.get(name) as Topic<T> | undefined;
  }

  /** The board if it is joined now, without holding it. */
  peekBoard(name: string): Board | undefined {
    return this.#boards.get(name);
  }

  /** Lets go of one hold on a topic. */
  release(topic: Topic<any> | Board): void {
    const key = (topic instanceof Board ? "b:" : "t:") + topic.name;
    if (--topic.refs > 0) return;
    this.#linger.set(
      key,
      this.#t.setTimeout(() => {
        this.#linger.delete(key);
        if (topic.refs > 0) return;
        if (topic instanceof Board) {
          this.#boards.delete(topic.name);
          this.#send({ type: "leave", board: topic.name });
        } else {
          this.#topics.delete(topic.name);
          this.#send({ type: "unsubscribe", topics: [topic.name] });
          this.#link?.update();
        }
        this.#idleIfNothing();
      }, this.#o.linger ?? 1000),
    );
  }

  /** Joins a board (over WebSocket) to see who is on it and who is typing; `release` it to leave. */
  board(name: string): Board {
    let board = this.#boards.get(name);
    if (!board) {
      board = new Board(name);
      board.send = (frame) => this.#request(frame);
      this.#boards.set(name, board);
      this.#join(board);
      this.#connect();
    }
    this.#hold(`b:${name}`);
    board.refs++;
    return board;
  }

  /**
   * Applies ops to a topic, whole or not at all, over the socket (or, on the HTTP
   * fallbacks, `POST /api/v1/topics/{topic}`); resolves with the `ack`, rejects with a
   * [`PulseboardError`] carrying the server's code (`op_refused`, `forbidden`, …).
   */
  publish(topic: string, ops: Op[], extra?: { user_id?: string; trace_id?: string }): Promise<Ack> {
    return this.#request({ type: "publish", topic, ops, ...extra });
  }

  /** Stops for good: closes the connection, ends every subscription. */
  close(): void {
    this.#closed = true;
    this.#drop();
    this.#window?.removeEventListener("online", this.#wake);
    this.#window?.removeEventListener("visibilitychange", this.#visible);
    this.#touch();
  }

  // ---- the connection ------------------------------------------------------------------

  #transports(): Transport[] {
    return this.#o.transports ?? ["websocket", "sse", "poll"];
  }

  #hold(key: string): void {
    this.#t.clearTimeout(this.#linger.get(key));
    this.#linger.delete(key);
  }

  #follow(names: string[]): void {
    if (!this.#link) return this.#connect();
    const topics = names.map((name) => {
      const position = this.#topics.get(name)?.position;
      return position ? { topic: name, resume: position } : { topic: name };
    });
    if (!this.#send({ type: "subscribe", topics })) this.#link.update();
  }

  #join(board: Board): void {
    this.#send({ type: "join", board: board.name, ...(this.#o.person ? { person: this.#o.person } : {}) });
  }

  #send(frame: Record<string, unknown>): boolean {
    return !!this.#opened && !!this.#link?.send(JSON.stringify(frame));
  }

  /** Asks for a token when there is none yet (or it was refused): one request at a time. */
  #askToken(): Promise<string | null> {
    if (this.#token !== undefined || !this.#o.getToken) return Promise.resolve(this.#token ?? null);
    return (this.#tokenAsked ??= Promise.resolve()
      .then(() => this.#o.getToken!())
      .then(
        (token) => {
          this.#tokenAsked = null;
          return (this.#token = token);
        },
        (e) => {
          this.#tokenAsked = null;
          throw new PulseboardError("unauthenticated", `getToken failed: ${e?.message ?? e}`);
        },
      ));
  }

  #connect(): void {
    if (this.#link || this.#retry || this.#stopped || this.#closed) return;
    if (!this.#topics.size && !this.#boards.size && !this.#pending.size) return;
    if (!this.#window) {
      // Listened to from the first connection, not the constructor: a client made and
      // dropped during a render (StrictMode) leaves nothing behind.
      this.#window = this.#o.window ?? (typeof window === "undefined" ? undefined : window);
      this.#window?.addEventListener("online", this.#wake);
      this.#window?.addEventListener("visibilitychange", this.#visible);
    }
    const transport = this.#transports()[this.#transport];
    const attempt = this.#attempt;
    this.#opened = false;
    // A placeholder while the token is asked for: the state reads "connecting".
    const placeholder: Link = { transport, send: () => false, close() {}, update() {} };
    this.#link = placeholder;
    this.#touch();
    this.#askToken().then(
      (token) => {
        if (this.#link === placeholder && attempt === this.#attempt) this.#open(transport, token);
      },
      (e: PulseboardError) => {
        if (this.#link !== placeholder) return;
        this.#link = null;
        this.#lastError = e;
        this.#reconnect(null);
      },
    );
  }

  #open(transport: Transport, token: string | null): void {
    const events = {
      frame: (frame: Record<string, any>) => this.#frame(frame),
      closed: (code: number, reason: string) => this.#ended(code, reason),
    };
    const fetcher = this.#o.fetch ?? globalThis.fetch.bind(globalThis);
    const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
    const follows: Follows = {
      positions: () => new Map([...this.#topics].map(([name, t]) => [name, t.position])),
    };
    const client = `client=${encodeURIComponent(CLIENT)}`;
    if (transport === "websocket") {
      const ws = this.url.replace(/^http/, "ws");
      const auth = token ? `&token=${encodeURIComponent(token)}` : "";
      this.#link = websocket(this.#o.WebSocket ?? (globalThis as any).WebSocket, `${ws}/ws?${client}${auth}`, events);
    } else if (transport === "sse") {
      const address = (f: Follows) => {
        const positions = [...f.positions()];
        const from = positions.filter(([, p]) => p).map(([t, p]) => `${t}=${p!.epoch}.${p!.offset}`);
        const topics = positions.map(([t]) => t).join(",");
        return `${this.url}/sse?${client}&topics=${encodeURIComponent(topics)}&from=${encodeURIComponent(from.join(","))}`;
      };
      this.#link = sse(fetcher, address, headers, follows, events);
    } else {
      this.#link = poll(fetcher, this.url, headers, this.#o.pollWait ?? 25, follows, events);
    }
    this.#heard = this.#t.now();
  }

  #frame(frame: Record<string, any>): void {
    this.#heard = this.#t.now();
    const topic = frame.topic === undefined || frame.topic === null ? undefined : this.#topics.get(frame.topic);
    switch (frame.type) {
      case "welcome":
        return this.#welcome(frame);
      case "snapshot":
      case "event":
      case "coalesced":
      case "resumed":
        if (topic && topic.receive(frame as any) === Next.Resync) this.#resync(topic);
        if (frame.type === "event" && frame.topic?.startsWith("notes:") && frame.payload?.author) {
          this.#boards.get(frame.topic.slice(6))?.noted(frame.payload.author);
        }
        return;
      case "stale":
      case "fresh": {
        const reason = frame.type === "stale" ? frame.reason : null;
        if (frame.topic) topic?.mark(reason);
        else {
          this.#stale = reason;
          this.#touch();
        }
        return;
      }
      case "presence":
      case "typing":
        return this.#boards.get(frame.board)?.receive(frame, this.#me);
      case "restarting":
        this.#restartIn = frame.reconnect_in_ms;
        return;
      case "ack":
      case "error":
        return this.#answer(frame);
    }
  }

  #welcome(frame: Record<string, any>): void {
    if (frame.protocol !== PROTOCOL) {
      return this.#stop(
        new PulseboardError(
          "protocol",
          `the server speaks protocol ${frame.protocol ?? "2 or older"}; this client (${CLIENT}) speaks ${PROTOCOL}`,
        ),
      );
    }
    this.#opened = true;
    this.#probing = null;
    this.#failures = this.#attempt = 0;
    this.#lastError = null;
    this.#retryAt = null;
    this.#me = frame.connection ?? null;
    this.#server = frame.server ?? this.#server;
    this.#heartbeat = frame.heartbeat_ms;
    this.#idle = frame.idle_timeout_ms;
    // A new connection holds no marks: the server tells again which still hold.
    this.#stale = null;
    for (const topic of this.#topics.values()) topic.mark(null);
    // A one-way link's address already names every topic, with its position.
    const names = this.#link?.transport === "websocket" ? [...this.#topics.keys()] : [];
    for (let i = 0; i < names.length; i += 500) this.#follow(names.slice(i, i + 500));
    for (const board of this.#boards.values()) this.#join(board);
    for (const [ref, pending] of this.#pending) if (!pending.sent) this.#dispatch(ref, pending);
    this.#watch();
    if (this.#transport > 0 && this.#transports()[0] === "websocket") {
      this.#upgrade = this.#t.setTimeout(() => this.#tryWebSocket(), this.#o.upgradeEvery ?? 60_000);
    }
    this.#touch();
  }

  /** Pings when quiet, and drops a connection that has been silent for the idle timeout. */
  #watch(): void {
    if (!this.#idle) return;
    const tick = () => {
      const silent = this.#t.now() - this.#heard;
      if (silent >= this.#idle) {
        this.#drop();
        this.#lastError = new PulseboardError("timeout", `nothing heard for ${silent} ms`);
        return this.#reconnect(null);
      }
      this.#send({ type: "ping" });
      this.#watchdog = this.#t.setTimeout(tick, Math.min(this.#heartbeat, this.#idle - silent));
    };
    this.#watchdog = this.#t.setTimeout(tick, Math.min(this.#heartbeat, this.#idle));
  }

  #resync(topic: Topic<any>): void {
    topic.forget();
    if (!this.#send({ type: "subscribe", topics: [{ topic: topic.name }] })) this.#link?.update();
  }

  /** Closes the link (without waiting for the server) and stops its timers. */
  #drop(): void {
    const link = this.#link;
    this.#link = null;
    this.#opened = false;
    for (const timer of [this.#watchdog, this.#upgrade, this.#retry]) this.#t.clearTimeout(timer);
    this.#retry = this.#watchdog = this.#upgrade = null;
    link?.close();
    this.#failAnswers();
  }

  /** Writes whose answer can no longer come fail, so none is left waiting for ever. */
  #failAnswers(): void {
    for (const [ref, pending] of this.#pending) {
      if (!pending.sent) continue;
      this.#pending.delete(ref);
      this.#t.clearTimeout(pending.timer);
      pending.reject(new PulseboardError("unknown_outcome", "the connection dropped before the answer: the write may or may not have been applied"));
    }
  }

  #ended(code: number, reason: string): void {
    const opened = this.#opened;
    this.#drop();
    const error = new PulseboardError(
      { 1008: "policy", 1009: "too_large", 4401: "unauthenticated", 4403: "forbidden" }[code] ?? "network",
      reason || `closed with ${code}`,
      { closeCode: code },
    );
    this.#lastError = error;
    if (code === 1008 || code === 1009 || code === 4400) return this.#stop(error);
    if (code === 4401) {
      // The token is no longer good: ask for another, or stop when there is no way to.
      if (!this.#o.getToken) return this.#stop(error);
      this.#token = undefined;
    }
    if (code === 4403) {
      // Everything this connection followed is over.
      for (const topic of this.#topics.values()) topic.end(error);
      for (const board of this.#boards.values()) board.end(error);
      this.#topics.clear();
      this.#boards.clear();
      return this.#touch();
    }
    if (!opened && this.#probing !== null) {
      // WebSocket still does not get through: straight back to the fallback.
      this.#transport = this.#probing;
      this.#probing = null;
      return this.#reconnect(0);
    }
    if (!opened && ++this.#failures >= (this.#o.fallbackAfter ?? 3)) {
      // The HTTP transports carry topics only: a client on a board stays on WebSocket.
      if (this.#transport < this.#transports().length - 1 && !this.#boards.size) {
        this.#transport++;
        this.#failures = 0;
      }
    }
    const restart = this.#restartIn;
    this.#restartIn = null;
    this.#reconnect(code === 1012 || restart !== null ? (restart ?? this.#t.random() * 1000) : null);
  }

  /** Schedules the next connection: after `delay`, or a full-jitter backoff. */
  #reconnect(delay: number | null): void {
    if (this.#closed || this.#stopped) return;
    const { initialMs = 1000, maxMs = 30_000 } = this.#o.backoff ?? {};
    const wait = delay ?? this.#t.random() * Math.min(maxMs, initialMs * 2 ** this.#attempt);
    this.#attempt++;
    this.#retryAt = this.#t.now() + wait;
    this.#retry = this.#t.setTimeout(() => {
      this.#retry = null;
      this.#retryAt = null;
      this.#connect();
    }, wait);
    this.#touch();
  }

  /** Back online, or the page is shown again: reconnect now rather than at the end of a backoff. */
  #wakeUp(): void {
    if (this.#retry) {
      this.#t.clearTimeout(this.#retry);
      this.#retry = this.#retryAt = null;
      this.#connect();
    } else if (this.#opened && this.#idle && this.#t.now() - this.#heard > this.#heartbeat) {
      // Possibly dead after a sleep: a ping either comes back or the watchdog drops it.
      this.#send({ type: "ping" });
    }
  }

  #tryWebSocket(): void {
    this.#drop();
    this.#probing = this.#transport;
    this.#transport = 0;
    this.#connect();
  }

  #stop(error: PulseboardError): void {
    this.#drop();
    this.#stopped = error;
    this.#touch();
  }

  #idleIfNothing(): void {
    if (!this.#topics.size && !this.#boards.size && !this.#pending.size) {
      this.#drop();
      this.#attempt = this.#failures = 0;
      this.#retryAt = null;
      this.#touch();
    }
  }

  // ---- requests: publish, notes ----------------------------------------------------------

  #request(frame: Record<string, unknown>): Promise<Ack> {
    if (this.#closed || this.#stopped) {
      return Promise.reject(this.#stopped ?? new PulseboardError("closed", "the client is closed"));
    }
    const ref = `r${++this.#nextRef}`;
    return new Promise<Ack>((resolve, reject) => {
      const pending: Pending = { resolve, reject, sent: false, frame, timer: null };
      pending.timer = this.#t.setTimeout(() => {
        this.#pending.delete(ref);
        reject(new PulseboardError(pending.sent ? "unknown_outcome" : "timeout", "no answer in time"));
      }, this.#o.requestTimeoutMs ?? 10_000);
      this.#pending.set(ref, pending);
      if (this.#opened) this.#dispatch(ref, pending);
      else this.#connect();
    });
  }

  #dispatch(ref: string, pending: Pending): void {
    const frame = pending.frame;
    if (this.#link?.transport === "websocket") {
      pending.sent = this.#send({ ...frame, ref });
      return;
    }
    if (frame.type !== "publish") {
      return this.#answer({ type: "error", ref, code: "unsupported", message: "boards need the WebSocket" });
    }
    // The HTTP fallbacks cannot carry frames: publish over the API, with an
    // Idempotency-Key so that the retry after a dropped answer applies once.
    pending.sent = true;
    const { topic, ops, user_id, trace_id } = frame as any;
    const fetcher = this.#o.fetch ?? globalThis.fetch.bind(globalThis);
    const headers: Record<string, string> = {
      "content-type": "application/json",
      "idempotency-key": `${CLIENT}-${this.#t.now()}-${ref}-${Math.floor(this.#t.random() * 1e9)}`,
    };
    if (this.#token) headers.authorization = `Bearer ${this.#token}`;
    fetcher(`${this.url}/api/v1/topics/${encodeURIComponent(topic)}`, {
      method: "POST",
      headers,
      body: JSON.stringify({ ops, user_id, trace_id }),
    })
      .then(async (response) => {
        const body = await response.json().catch(() => ({}));
        this.#answer(response.ok ? { ...body, type: "ack", ref } : { type: "error", ref, ...body, status: response.status });
      })
      .catch(() => this.#answer({ type: "error", ref, code: "unknown_outcome", message: "the request failed: the write may or may not have been applied" }));
  }

  #answer(frame: Record<string, any>): void {
    const pending = frame.ref && this.#pending.get(frame.ref);
    if (pending) {
      this.#pending.delete(frame.ref);
      this.#t.clearTimeout(pending.timer);
      if (frame.type === "ack") pending.resolve(frame as Ack);
      else pending.reject(new PulseboardError(frame.code, frame.message, { status: frame.status }));
      return;
    }
    if (frame.type !== "error") return;
    const error = new PulseboardError(frame.code, frame.message);
    // The server no longer sends these (access narrowed, or refused at subscribe).
    for (const name of frame.topics ?? []) {
      this.#topics.get(name)?.end(error);
      this.#topics.delete(name);
    }
    if (frame.board) {
      this.#boards.get(frame.board)?.end(error);
      this.#boards.delete(frame.board);
    }
    this.#lastError = error;
    this.#touch();
  }

  #touch(): void {
    this.#view = null;
    for (const watcher of [...this.#watchers]) watcher();
  }
}
