// Follows one topic with the JavaScript client and reports what it cost: the load of
// benches/clients/run.mjs. Prints "ready" once the snapshot is in; on each "report" line on
// stdin, a JSON line with events and coalesced changes applied and CPU used so far.
import { createInterface } from "node:readline";
import WebSocket from "../../clients/js/node_modules/ws/index.js";
import { Pulseboard } from "../../clients/js/dist/esm/index.js";

const [url, token, name] = process.argv.slice(2);
const client = new Pulseboard({ url, token, WebSocket });
const topic = client.topic(name);
let events = 0;
let coalesced = 0;
topic.onChange((change) => {
  if (change.kind === "event") events++;
  else if (change.kind === "coalesced") coalesced++;
  else if (change.kind === "snapshot") console.log("ready");
});
createInterface({ input: process.stdin }).on("line", () => {
  const cpu = process.cpuUsage();
  console.log(JSON.stringify({ events, coalesced, offset: topic.position?.offset ?? 0, cpu_ms: (cpu.user + cpu.system) / 1000, rss_kib: Math.round(process.memoryUsage().rss / 1024) }));
});
