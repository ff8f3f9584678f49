// What a client library costs the process it runs in: one topic followed while the server
// is sent `--rate` events a second for `--seconds`, measured from the client's own CPU time.
//
//   PULSEBOARD_BIN=target/release/pulseboard node benches/clients/run.mjs --client js --rate 10000
//   PULSEBOARD_BIN=… PULSEBOARD_PYTHON=… node benches/clients/run.mjs --client python --rate 10000
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const which = arg("client", "js");
const rate = Number(arg("rate", "10000"));
const seconds = Number(arg("seconds", "10"));
const BIN = process.env.PULSEBOARD_BIN;
const data = mkdtempSync(join(tmpdir(), "pb-client-bench-"));
const env = { ...process.env, PULSEBOARD_DATA_DIR: data, PULSEBOARD_LISTEN: "127.0.0.1:0", PULSEBOARD_DEMO: "false", PULSEBOARD_FSYNC: "false", RUST_LOG: "warn,pulseboard=info" };
const key = spawnSync(BIN, ["keys", "create", "--name", "bench", "--scope", "admin"], { env }).stdout.toString().trim();
const server = spawn(BIN, ["serve"], { env, stdio: ["ignore", "pipe", "inherit"] });
const url = await new Promise((resolve) => {
  createInterface({ input: server.stdout }).on("line", (line) => {
    const found = line.match(/listening on (http:\/\/\S+)/);
    if (found) resolve(found[1]);
  });
});
const topic = "bench:events";
const command =
  which === "js"
    ? ["node", join(here, "follow.mjs")]
    : [process.env.PULSEBOARD_PYTHON ?? "python3", join(here, "follow.py")];
const follower = spawn(command[0], [...command.slice(1), url, key, topic], { stdio: ["pipe", "pipe", "inherit"] });
const lines = createInterface({ input: follower.stdout });
const next = () => new Promise((resolve) => lines.once("line", resolve));
const report = async () => {
  follower.stdin.write("report\n");
  return JSON.parse(await next());
};
if ((await next()) !== "ready") throw new Error("the follower did not start");

// Requests of 100 ops every 100/rate seconds, on keep-alive connections.
const perRequest = 100;
const interval = (1000 * perRequest) / rate;
let sent = 0;
const publish = async () => {
  const ops = Array.from({ length: perRequest }, (_, i) => ({ op: "set", entity_id: `e${(sent + i) % 100}`, payload: { n: sent + i, v: Math.random() } }));
  sent += perRequest;
  const answer = await fetch(`${url}/api/v1/topics/${topic}`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ ops }),
  });
  if (!answer.ok) throw new Error(await answer.text());
};
const before = await report();
const started = performance.now();
const inFlight = [];
while (performance.now() - started < seconds * 1000) {
  inFlight.push(publish());
  const due = started + (sent / perRequest) * interval;
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, due - performance.now())));
}
await Promise.all(inFlight);
const elapsed = (performance.now() - started) / 1000;
// Let the follower catch up with the last writes.
let after = await report();
for (let i = 0; i < 100 && after.offset < sent; i++) {
  await new Promise((resolve) => setTimeout(resolve, 100));
  after = await report();
}
const applied = after.events - before.events;
const cpu = after.cpu_ms - before.cpu_ms;
console.log(
  JSON.stringify({
    client: which,
    target_per_second: rate,
    published_per_second: Math.round(sent / elapsed),
    caught_up: after.offset === sent,
    events_applied: applied,
    coalesced_changes: after.coalesced - before.coalesced,
    cpu_us_per_published_event: Number(((cpu * 1000) / sent).toFixed(2)),
    cpu_share_of_a_core: Number((cpu / 1000 / elapsed).toFixed(3)),
    rss_kib: after.rss_kib,
  }),
);
follower.kill();
server.kill();
