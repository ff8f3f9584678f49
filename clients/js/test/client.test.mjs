// The client's state machine, against a fake clock and a fake socket: backoff, the
// watchdog, close codes, the sync rule, holds and their linger, requests.
import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";
import { Pulseboard } from "../dist/esm/index.js";
import { FakeSocket, FakeTimers, event, flush, snapshot, sockets } from "./fakes.mjs";

let timers;
const client = (options = {}) =>
  new Pulseboard({ url: "http://pb.test", WebSocket: FakeSocket, timers, window: null, ...options });
const last = () => sockets[sockets.length - 1];

beforeEach(() => {
  timers = new FakeTimers();
  sockets.length = 0;
});

test("nothing connects until something is followed", async () => {
  const pb = client();
  await flush();
  assert.equal(sockets.length, 0);
  assert.equal(pb.connection.state, "idle");
  pb.topic("metric:kpis");
  await flush();
  assert.equal(sockets.length, 1);
  assert.match(last().url, /^ws:\/\/pb\.test\/ws\?client=pulseboard-js%2F0\.1\.0$/);
  assert.equal(pb.connection.state, "connecting");
  last().open();
  assert.equal(pb.connection.state, "open");
  assert.deepEqual(last().of("subscribe"), [{ type: "subscribe", topics: [{ topic: "metric:kpis" }] }]);
});

test("reconnects with full-jitter backoff, doubling to the cap, for ever", async () => {
  const pb = client({ backoff: { initialMs: 1000, maxMs: 30000 }, transports: ["websocket"] });
  timers.rand = 0.999;
  pb.topic("t");
  await flush();
  const delays = [];
  for (let i = 0; i < 8; i++) {
    last().serverClose(1006);
    delays.push(Math.round(pb.connection.retryInMs));
    assert.equal(pb.connection.state, "reconnecting");
    const before = sockets.length;
    timers.advance(pb.connection.retryInMs - 1);
    await flush();
    assert.equal(sockets.length, before, "not before its time");
    timers.advance(1);
    await flush();
    assert.equal(sockets.length, before + 1);
  }
  assert.deepEqual(delays, [999, 1998, 3996, 7992, 15984, 29970, 29970, 29970]);
  // Full jitter: anywhere from 0.
  timers.rand = 0;
  last().serverClose(1006);
  assert.equal(pb.connection.retryInMs, 0);
});

test("a connection that opens resets the backoff", async () => {
  const pb = client();
  timers.rand = 0.999;
  pb.topic("t");
  await flush();
  last().serverClose(1006);
  timers.advance(1000);
  await flush();
  last().serverClose(1006);
  assert.equal(Math.round(pb.connection.retryInMs), 1998);
  timers.advance(2000);
  await flush();
  last().open();
  last().serverClose(1001);
  assert.equal(Math.round(pb.connection.retryInMs), 999);
});

test("the watchdog pings when quiet and drops a silent connection within the idle timeout", async () => {
  const pb = client();
  pb.topic("t");
  await flush();
  const socket = last();
  socket.open({ heartbeat_ms: 15000, idle_timeout_ms: 45000 });
  timers.advance(15000);
  assert.equal(socket.of("ping").length, 1, "a ping after a quiet heartbeat");
  socket.frame({ type: "pong" });
  timers.advance(30000);
  assert.equal(socket.closedByClient, null, "heard from 30 s ago: alive");
  timers.advance(15000);
  assert.equal(socket.closedByClient, 1000, "45 s of silence: dropped without waiting for a close");
  assert.equal(pb.connection.state, "reconnecting");
  assert.equal(pb.connection.error.code, "timeout");
  timers.advance(pb.connection.retryInMs);
  await flush();
  assert.equal(sockets.length, 2, "and a new connection");
});

test("the sync rule: duplicates dropped, a gap or a new epoch resyncs, a resume carries the position", async () => {
  const pb = client();
  const topic = pb.topic("t");
  const changes = [];
  topic.onChange((c) => changes.push(c));
  await flush();
  last().open();
  last().frame(snapshot("t", 7, 10, { a: 1 }));
  last().frame(event("t", 7, 11, "a", 2));
  last().frame(event("t", 7, 11, "a", 99)); // a duplicate
  last().frame(event("t", 7, 10, "a", 98)); // older still
  assert.deepEqual(topic.view.state, { a: 2 });
  assert.deepEqual(topic.position, { epoch: 7, offset: 11 });
  assert.deepEqual(changes.map((c) => c.kind), ["snapshot", "event"]);
  assert.equal(changes[0].discontinuity, false, "a first snapshot is not a discontinuity");

  last().frame(event("t", 7, 13, "a", 4)); // 12 is missing
  assert.deepEqual(last().of("subscribe").at(-1), { type: "subscribe", topics: [{ topic: "t" }] }, "a gap: a snapshot asked for");
  last().frame(event("t", 7, 14, "a", 5)); // in flight before the snapshot: not applied
  assert.deepEqual(topic.view.state, { a: 2 });
  last().frame(snapshot("t", 7, 14, { a: 5 }));
  assert.equal(changes.at(-1).discontinuity, true);

  // A drop, then the resume from where it stood.
  last().serverClose(1006);
  timers.advance(pb.connection.retryInMs);
  await flush();
  last().open();
  assert.deepEqual(last().of("subscribe")[0].topics, [{ topic: "t", resume: { epoch: 7, offset: 14 } }]);
  last().frame(event("t", 7, 15, "a", 6));
  last().frame({ type: "resumed", topic: "t", epoch: 7, offset: 15, replayed: 1 });
  assert.equal(topic.view.ready, true);
  assert.deepEqual(topic.view.state, { a: 6 });

  last().frame(event("t", 8, 1, "a", 1)); // another epoch
  assert.deepEqual(last().of("subscribe").at(-1), { type: "subscribe", topics: [{ topic: "t" }] });
});

test("a coalesced frame applies from its `from`, and resyncs from anywhere else", async () => {
  const pb = client();
  const topic = pb.topic("t");
  await flush();
  last().open();
  last().frame(snapshot("t", 7, 10, { a: 1, b: 2 }));
  last().frame({ type: "coalesced", topic: "t", epoch: 7, from: 10, offset: 20, state: { a: 9 }, deleted: ["b"] });
  assert.deepEqual(topic.view.state, { a: 9 });
  assert.deepEqual(topic.position, { epoch: 7, offset: 20 });
  last().frame({ type: "coalesced", topic: "t", epoch: 7, from: 25, offset: 30, state: {}, deleted: [] });
  assert.equal(last().of("subscribe").length, 2);
});

test("resuming from a kept position past the history reports a discontinuity", async () => {
  const pb = client();
  const topic = pb.topic("t", { resumeFrom: { epoch: 7, offset: 3 } });
  const changes = [];
  topic.onChange((c) => changes.push(c));
  await flush();
  last().open();
  assert.deepEqual(last().of("subscribe")[0].topics, [{ topic: "t", resume: { epoch: 7, offset: 3 } }]);
  last().frame(snapshot("t", 9, 0));
  assert.equal(changes[0].discontinuity, true);
});

test("1008 and 1009 stop and say why; nothing reconnects", async () => {
  for (const [code, name] of [[1008, "policy"], [1009, "too_large"]]) {
    sockets.length = 0;
    const pb = client();
    pb.topic("t");
    await flush();
    last().open();
    last().serverClose(code, "the reason");
    assert.equal(pb.connection.state, "stopped");
    assert.equal(pb.connection.error.code, name);
    assert.equal(pb.connection.error.message, "the reason");
    timers.advance(600_000);
    await flush();
    assert.equal(sockets.length, 1);
    await assert.rejects(pb.publish("t", []), { code: name });
  }
});

test("4401 asks for a token again, one request at a time, and carries on", async () => {
  let asked = 0;
  let release;
  const pb = client({
    getToken: () => {
      asked++;
      return new Promise((resolve) => (release = resolve)).then(() => `pb_${asked}`);
    },
  });
  pb.topic("t");
  pb.topic("u");
  await flush();
  assert.equal(asked, 1);
  release();
  await flush();
  assert.match(last().url, /token=pb_1/);
  last().open();
  last().serverClose(4401, "the key was revoked");
  assert.equal(pb.connection.error.code, "unauthenticated");
  timers.advance(pb.connection.retryInMs);
  await flush();
  assert.equal(asked, 2);
  release();
  await flush();
  assert.match(last().url, /token=pb_2/);
  assert.equal(sockets.length, 2);
});

test("4401 with a fixed token and no getToken stops", async () => {
  const pb = client({ token: "pb_x" });
  pb.topic("t");
  await flush();
  last().serverClose(4401, "unknown key");
  assert.equal(pb.connection.state, "stopped");
  assert.equal(pb.connection.error.closeCode, 4401);
});

test("4403 ends what the connection followed, without a reconnect loop", async () => {
  const pb = client();
  const topic = pb.topic("t");
  await flush();
  last().open();
  last().frame({ type: "error", code: "forbidden", topics: ["t"], message: "no longer subscribed: t" });
  assert.equal(topic.view.ended.code, "forbidden");
  last().serverClose(4403, "board ops is private");
  timers.advance(600_000);
  await flush();
  assert.equal(sockets.length, 1);
  assert.equal(pb.connection.state, "idle");
});

test("1012 after `restarting` waits the delay the server gave", async () => {
  const pb = client();
  pb.topic("t");
  await flush();
  last().open();
  last().frame({ type: "restarting", reconnect_in_ms: 2731 });
  last().serverClose(1012);
  assert.equal(pb.connection.retryInMs, 2731);
});

test("a different protocol version stops with why", async () => {
  const pb = client();
  pb.topic("t");
  await flush();
  last().open({ protocol: 4 });
  assert.equal(pb.connection.state, "stopped");
  assert.equal(pb.connection.error.code, "protocol");
  assert.match(pb.connection.error.message, /protocol 4/);
});

test("after three failed connections it falls back to SSE", async () => {
  const fetched = [];
  const pb = client({ fetch: (url) => (fetched.push(url), new Promise(() => {})) });
  pb.topic("metric:kpis");
  await flush();
  for (let i = 0; i < 3; i++) {
    last().serverClose(1006);
    timers.advance(pb.connection.retryInMs);
    await flush();
  }
  assert.equal(sockets.length, 3);
  assert.equal(pb.connection.transport, "sse");
  assert.equal(fetched.length, 1);
  assert.match(fetched[0], /^http:\/\/pb\.test\/sse\?client=pulseboard-js%2F0\.1\.0&topics=metric%3Akpis&from=$/);
});

test("`online` during a backoff reconnects at once", async () => {
  const listeners = {};
  const win = { addEventListener: (t, f) => (listeners[t] = f), removeEventListener: () => {} };
  const pb = client({ window: win });
  timers.rand = 0.999;
  pb.topic("t");
  await flush();
  last().serverClose(1006);
  timers.advance(10);
  assert.equal(pb.connection.state, "reconnecting");
  listeners.online();
  await flush();
  assert.equal(sockets.length, 2);
});

test("holds are counted; a hold let go and taken again within the linger changes nothing", async () => {
  const pb = client({ linger: 1000 });
  const a = pb.topic("t");
  const b = pb.topic("t");
  assert.equal(a, b);
  await flush();
  last().open();
  pb.release(a);
  timers.advance(5000);
  assert.equal(last().of("unsubscribe").length, 0, "still held once");
  pb.release(b);
  timers.advance(500);
  pb.topic("t"); // a remount (StrictMode, hot reload)
  timers.advance(5000);
  assert.equal(last().of("unsubscribe").length, 0);
  assert.equal(last().of("subscribe").length, 1, "not subscribed again");
  assert.equal(sockets.length, 1, "one socket");
  pb.release(pb.peek("t"));
  timers.advance(1000);
  assert.deepEqual(last().of("unsubscribe"), [{ type: "unsubscribe", topics: ["t"] }]);
  assert.equal(last().closedByClient, 1000, "nothing followed: the socket goes");
});

test("a publish waits for the connection, and one in flight when it drops has an unknown outcome", async () => {
  const pb = client();
  const first = pb.publish("t", [{ op: "incr", entity_id: "a", by: 1 }]);
  await flush();
  last().open();
  const [sent] = last().of("publish");
  assert.equal(sent.topic, "t");
  last().frame({ type: "ack", ref: sent.ref, topic: "t", epoch: 1, offset: 5, offsets: [5] });
  assert.equal((await first).offset, 5);

  const refused = pb.publish("t", [{ op: "incr", entity_id: "a", by: 1 }]);
  last().frame({ type: "error", ref: last().of("publish")[1].ref, code: "op_refused", message: "not a number" });
  await assert.rejects(refused, { code: "op_refused", message: "not a number" });

  const lost = pb.publish("t", []);
  last().serverClose(1006);
  await assert.rejects(lost, { code: "unknown_outcome" });
});

test("presence is joined again after a reconnect", async () => {
  const pb = client({ person: "person-1234" });
  const board = pb.board("demo");
  await flush();
  last().open();
  assert.deepEqual(last().of("join"), [{ type: "join", board: "demo", person: "person-1234" }]);
  last().frame({ type: "presence", board: "demo", count: 1, people: [{ id: "g-1", name: "Guest 1", guest: true, since: "", tabs: ["c1"] }] });
  assert.equal(board.view.count, 1);
  last().serverClose(1006);
  timers.advance(pb.connection.retryInMs);
  await flush();
  last().open();
  assert.equal(last().of("join").length, 1);
});
