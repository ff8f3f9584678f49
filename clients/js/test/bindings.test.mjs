// The Svelte stores and the TanStack Query sync, against the fake socket.
import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";
import { Pulseboard } from "../dist/esm/index.js";
import { syncTopic, topicKey, topicQuery } from "../dist/esm/query.js";
import { topic as topicStore } from "../dist/esm/svelte.js";
import { FakeSocket, FakeTimers, event, flush, snapshot, sockets } from "./fakes.mjs";

let timers;
const client = () => new Pulseboard({ url: "http://pb.test", WebSocket: FakeSocket, timers, window: null, linger: 1000 });
const last = () => sockets[sockets.length - 1];

beforeEach(() => {
  timers = new FakeTimers();
  sockets.length = 0;
});

test("a Svelte store follows its topic while it has subscribers", async () => {
  const pb = client();
  const store = topicStore(pb, "t");
  const seen = [];
  const stop = store.subscribe((view) => seen.push(view.ready ? view.state : null));
  await flush();
  last().open();
  last().frame(snapshot("t", 1, 1, { a: 1 }));
  last().frame(event("t", 1, 2, "a", 2));
  assert.equal(seen[0], null, "not ready before the snapshot");
  assert.deepEqual(seen.slice(-2), [{ a: 1 }, { a: 2 }]);
  stop();
  timers.advance(1000);
  assert.deepEqual(last().of("unsubscribe"), [{ type: "unsubscribe", topics: ["t"] }]);
});

test("TanStack Query: events are written with setQueryData, a discontinuity invalidates", async () => {
  const pb = client();
  const written = [];
  const invalidated = [];
  const queryClient = {
    setQueryData: (key, data) => written.push([key, data]),
    invalidateQueries: ({ queryKey }) => invalidated.push(queryKey),
  };
  const query = topicQuery(pb, "t");
  assert.deepEqual(query.queryKey, topicKey("t"));
  const first = query.queryFn();
  const stop = syncTopic(queryClient, pb, "t", { derived: [["totals"]] });
  await flush();
  last().open();
  last().frame(snapshot("t", 1, 1, { a: 1 }));
  assert.deepEqual(await first, { a: 1 }, "the query's data is the snapshot");
  last().frame(event("t", 1, 2, "a", 2));
  assert.deepEqual(written.at(-1), [topicKey("t"), { a: 2 }]);
  assert.deepEqual(invalidated, [], "no refetch per event");
  last().frame(event("t", 1, 4, "a", 4)); // a gap: resync
  last().frame(snapshot("t", 1, 4, { a: 4 }));
  assert.deepEqual(invalidated, [topicKey("t"), ["totals"]]);
  stop();
});
