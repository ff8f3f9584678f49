// Fakes for the unit tests: a clock the test moves, and a WebSocket the test plays the
// server of. (The conformance suite runs the same client against the real server.)

export class FakeTimers {
  time = 0;
  rand = 0.5;
  random = () => this.rand;
  #next = 1;
  #due = new Map();

  setTimeout = (run, ms) => {
    const id = this.#next++;
    this.#due.set(id, { at: this.time + Math.max(0, ms), run });
    return id;
  };
  clearTimeout = (id) => this.#due.delete(id);
  now = () => this.time;

  /** Moves the clock on by `ms`, running what falls due, in order. */
  advance(ms) {
    const end = this.time + ms;
    for (;;) {
      const [id, timer] = [...this.#due].sort((a, b) => a[1].at - b[1].at)[0] ?? [];
      if (!timer || timer.at > end) break;
      this.#due.delete(id);
      this.time = timer.at;
      timer.run();
    }
    this.time = end;
  }
}

/** Every socket the client opened, newest last. */
export const sockets = [];

export class FakeSocket {
  readyState = 0;
  sent = [];
  closedByClient = null;
  constructor(url) {
    this.url = url;
    sockets.push(this);
  }
  send(text) {
    this.sent.push(JSON.parse(text));
  }
  close(code) {
    this.closedByClient = code ?? 1000;
    this.readyState = 3;
  }
  // The server's side:
  open(welcome = {}) {
    this.readyState = 1;
    this.frame({ type: "welcome", connection: "c1", server: "test", protocol: 3, heartbeat_ms: 15000, idle_timeout_ms: 45000, server_time_ms: 0, ...welcome });
  }
  frame(frame) {
    this.onmessage({ data: JSON.stringify(frame) });
  }
  serverClose(code, reason = "") {
    this.readyState = 3;
    this.onclose({ code, reason });
  }
  /** The frames of a type the client sent. */
  of(type) {
    return this.sent.filter((f) => f.type === type);
  }
}

export const flush = () => new Promise((resolve) => setImmediate(resolve));

export function snapshot(topic, epoch, offset, state = {}) {
  return { type: "snapshot", topic, epoch, offset, state };
}

export function event(topic, epoch, offset, entity_id = "e", payload = offset) {
  return { type: "event", topic, epoch, offset, event: "UPDATED", entity_id, payload, ts: "2026-12-08T00:00:00.000Z" };
}
