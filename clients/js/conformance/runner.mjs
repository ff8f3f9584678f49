// The JavaScript client's runner for the conformance suite (clients/conformance): commands
// in as JSON lines on stdin, what the client does out as JSON lines on stdout.
import { createInterface } from "node:readline";
import WebSocket from "ws";
import { Pulseboard } from "../dist/esm/index.js";
import { Publisher } from "../dist/esm/publisher.js";

const say = (obs) => process.stdout.write(JSON.stringify(obs) + "\n");
let client = null;
let tokenWanted = null;
let lastState = null;

const commands = {
  start({ url, transports, get_token, token }) {
    client = new Pulseboard({
      url,
      token,
      WebSocket,
      transports,
      person: "conformance-runner",
      backoff: { initialMs: 100, maxMs: 1000 },
      getToken: get_token
        ? () => new Promise((resolve) => {
            tokenWanted = resolve;
            say({ obs: "token_needed" });
          })
        : undefined,
    });
    client.subscribe((c) => {
      const key = `${c.state}/${c.transport}`;
      if (key === lastState) return;
      lastState = key;
      say({ obs: "connection", state: c.state, transport: c.transport, error: c.error?.code ?? null });
    });
  },
  token({ token }) {
    tokenWanted?.(token);
    tokenWanted = null;
  },
  follow({ topic: name, resume }) {
    const topic = client.topic(name, { resumeFrom: resume });
    topic.onChange((change) => {
      say({
        obs: "change",
        topic: name,
        kind: change.kind,
        epoch: change.position.epoch,
        offset: change.position.offset,
        discontinuity: change.kind === "snapshot" ? change.discontinuity : undefined,
        state: topic.view.state,
      });
    });
    let ended = false;
    topic.subscribe((view) => {
      if (view.ended && !ended) {
        ended = true;
        say({ obs: "ended", topic: name, code: view.ended.code });
      }
    });
  },
  join({ board: name }) {
    const board = client.board(name);
    let first = null;
    board.subscribe((view) => {
      if (!view.me || !view.count) return;
      first ??= view.me;
      const meListed = view.people.some((p) => p.tabs.includes(view.me));
      say({ obs: "presence", board: name, count: view.count, me_listed: meListed, new_connection: view.me !== first });
    });
  },
  publish({ topic, ops, big_kib }) {
    const sent = big_kib ? [{ op: "set", entity_id: "big", payload: "x".repeat(big_kib * 1024) }] : ops;
    client.publish(topic, sent).then(
      (ack) => say({ obs: "published", offset: ack.offset }),
      (e) => say({ obs: "publish_failed", code: e.code }),
    );
  },
  http_publish({ url, token, topic, ops }) {
    new Publisher({ url, token, backoffMs: 50 }).publish(topic, ops).then(
      (published) => say({ obs: "published", offset: published.offset }),
      (e) => say({ obs: "publish_failed", code: e.code }),
    );
  },
};

createInterface({ input: process.stdin }).on("line", (line) => {
  const command = JSON.parse(line);
  try {
    commands[command.cmd](command);
  } catch (e) {
    say({ obs: "runner_error", message: e.message });
  }
});
process.stdin.on("end", () => process.exit(0));
