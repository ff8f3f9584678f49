#!/usr/bin/env node
// Runs scenarios.json against one client: the real server binary (PULSEBOARD_BIN), behind
// a TCP proxy the scenarios cut, blackhole and restore, and the client's runner, a process
// that speaks JSON lines (commands in on stdin, observations out on stdout; see README.md).
//
//   node clients/conformance/harness.mjs -- node clients/js/conformance/runner.mjs
//   node clients/conformance/harness.mjs --only "4401" -- python -m pulseboard.conformance
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, readFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const split = args.indexOf("--");
const runnerCommand = args.slice(split + 1);
const only = args.includes("--only") ? args[args.indexOf("--only") + 1] : null;
const BIN = process.env.PULSEBOARD_BIN;
if (split < 0 || !runnerCommand.length || !BIN) {
  console.error("usage: PULSEBOARD_BIN=… node harness.mjs [--only TEXT] -- RUNNER COMMAND…");
  process.exit(2);
}
const { scenarios } = JSON.parse(readFileSync(join(here, "scenarios.json"), "utf8"));
const TIMEOUT = 10_000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The real server, on a data dir of its own; restarted on demand. */
class Server {
  constructor(env) {
    this.dir = mkdtempSync(join(tmpdir(), "pb-conformance-"));
    this.data = join(this.dir, "data");
    this.boards = join(this.dir, "boards");
    mkdirSync(this.boards);
    // A public board: its topics are what an anonymous client may follow. The `c:a`,
    // `c:b` and `c:private` topics are on no board: they need a key.
    const widgets = ["c:one", "c:empty", "c:counter"].map((t) => `[[widget]]\ntype = "feed"\ntopic = "${t}"\n`);
    const board = `title = "Conformance"\n\n[[widget]]\ntype = "presence"\n\n${widgets.join("\n")}`;
    writeFileSync(join(this.boards, "conformance.toml"), board);
    this.env = {
      ...process.env,
      PULSEBOARD_DATA_DIR: this.data,
      PULSEBOARD_BOARDS: this.boards,
      PULSEBOARD_SOURCES: join(this.dir, "sources"),
      PULSEBOARD_LISTEN: "127.0.0.1:0",
      PULSEBOARD_DEMO: "false",
      PULSEBOARD_PRESENCE_GRACE: "1",
      PULSEBOARD_RECONNECT_SPREAD: "1",
      PULSEBOARD_SHUTDOWN_GRACE: "2",
      RUST_LOG: "warn,pulseboard=info",
      ...env,
    };
    this.log = [];
  }

  admin() {
    const made = spawnSync(BIN, ["keys", "create", "--name", "conformance", "--scope", "admin"], { env: this.env });
    if (made.status !== 0) throw new Error(`keys create: ${made.stderr}`);
    this.adminKey = made.stdout.toString().trim();
  }

  async start() {
    this.child = spawn(BIN, ["serve"], { env: this.env, stdio: ["ignore", "pipe", "pipe"] });
    this.child.stderr.on("data", (d) => this.log.push(d.toString()));
    const lines = createInterface({ input: this.child.stdout });
    this.addr = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the server did not start:\n${this.log.join("")}`)), 20_000);
      lines.on("line", (line) => {
        this.log.push(line + "\n");
        const found = line.match(/listening on http:\/\/(\S+)/);
        if (found) {
          clearTimeout(timer);
          resolve(found[1]);
        }
      });
    });
  }

  async stop() {
    if (!this.child || this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.kill("SIGTERM");
    await Promise.race([exited, sleep(5000).then(() => this.child.kill("SIGKILL"))]);
  }

  async api(method, path, body) {
    const response = await fetch(`http://${this.addr}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.adminKey}`, "content-type": "application/json" },
      body: body && JSON.stringify(body),
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(answer)}`);
    return answer;
  }
}

/** A TCP proxy in front of the server: the scenarios' network. */
class Proxy {
  mode = "up";
  accepted = 0;
  sockets = new Set();
  cutNext = false;

  constructor(server) {
    this.server = server;
    this.listener = net.createServer((client) => this.#accept(client));
  }

  async listen() {
    await new Promise((resolve) => this.listener.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${this.listener.address().port}`;
  }

  #accept(client) {
    if (this.mode === "down") return client.destroy();
    this.accepted++;
    const [host, port] = this.server.addr.split(":");
    const upstream = net.connect(Number(port), host);
    const pair = { client, upstream };
    this.sockets.add(pair);
    const cut = this.cutNext;
    this.cutNext = false;
    const end = () => {
      this.sockets.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    // What one side sent before it closed still reaches the other (a close frame's reason).
    client.on("end", () => upstream.end());
    upstream.on("end", () => client.end());
    client.on("data", (d) => this.mode !== "blackhole" && upstream.write(d));
    upstream.on("data", (d) => {
      // The request reached the server and was applied; its answer is lost.
      if (cut) return end();
      if (this.mode !== "blackhole") client.write(d);
    });
    // An error on one side (the server resets a connection it closed with data unread)
    // still lets what was already forwarded reach the other.
    client.on("error", () => upstream.end()).on("close", () => this.sockets.delete(pair));
    upstream.on("error", () => client.end());
  }

  set(mode) {
    if (mode === "cut_next_response") {
      this.cutNext = true;
      return;
    }
    this.mode = mode;
    if (mode === "down") {
      for (const { client, upstream } of this.sockets) {
        client.destroy();
        upstream.destroy();
      }
      this.sockets.clear();
    }
  }

  close() {
    this.set("down");
    this.listener.close();
  }
}

/** The client under test, as a process speaking JSON lines. */
class Runner {
  observations = [];
  #waiters = new Set();

  constructor(command) {
    this.child = spawn(command[0], command.slice(1), { stdio: ["pipe", "pipe", "inherit"] });
    createInterface({ input: this.child.stdout }).on("line", (line) => {
      let obs;
      try {
        obs = JSON.parse(line);
      } catch {
        return console.error(`runner: ${line}`);
      }
      this.observations.push(obs);
      for (const waiter of this.#waiters) waiter();
      this.onObservation?.(obs);
    });
  }

  send(command) {
    this.child.stdin.write(JSON.stringify(command) + "\n");
  }

  /** Resolves once `check` holds for the observations, or fails after `ms`. */
  until(check, ms, what) {
    return new Promise((resolve, reject) => {
      const waiter = () => {
        const found = check();
        if (found) {
          this.#waiters.delete(waiter);
          clearTimeout(timer);
          resolve(found);
        }
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(`not within ${ms} ms: ${what}\nobserved: ${this.observations.slice(-15).map((o) => JSON.stringify(o)).join("\n  ")}`));
      }, ms);
      this.#waiters.add(waiter);
      waiter();
    });
  }

  stop() {
    this.child.kill();
  }
}

const matches = (obs, want) => Object.entries(want).every(([k, v]) => JSON.stringify(obs[k]) === JSON.stringify(v));

async function run(scenario) {
  const server = new Server(scenario.env ?? {});
  server.admin();
  await server.start();
  const proxy = new Proxy(server);
  await proxy.listen();
  const runner = new Runner(runnerCommand);
  const keys = {};
  let tokenToGive = null;
  const marks = {};
  let cursor = 0;
  let firstEpoch = {};
  runner.onObservation = (obs) => {
    if (obs.obs === "token_needed") runner.send({ cmd: "token", token: tokenToGive && keys[tokenToGive].secret });
    if (obs.obs === "change" && !(obs.topic in firstEpoch)) firstEpoch[obs.topic] = obs.epoch;
  };
  const changesSince = (topic) =>
    runner.observations.slice(marks[topic] ?? 0).filter((o) => o.obs === "change" && o.topic === topic);
  try {
    for (const step of scenario.steps) {
      const within = step.within_ms ?? TIMEOUT;
      if (step.publish) {
        const { topic, count } = step.publish;
        const ops = Array.from({ length: count }, (_, i) => ({ op: "set", entity_id: `e${i % 7}`, payload: { n: i } }));
        await server.api("POST", `/api/v1/topics/${topic}`, { ops });
      } else if (step.runner) {
        const command = { ...step.runner, url: proxy.url };
        if (command.key) command.token = keys[command.key].secret;
        runner.send(command);
      } else if (step.mark) {
        marks[step.mark] = runner.observations.length;
      } else if (step.expect) {
        const { topic, changes } = step.expect;
        await runner.until(() => changesSince(topic).length >= changes.length, within, `${changes.length} changes of ${topic}`);
        await sleep(300); // nothing more may follow: no duplicate, no extra snapshot
        const seen = changesSince(topic);
        const shape = (c, want) => Object.fromEntries(Object.keys(want).map((k) => [k, c[k]]));
        const got = seen.map((c, i) => shape(c, changes[i] ?? { kind: 1, offset: 1 }));
        if (JSON.stringify(got) !== JSON.stringify(changes)) {
          const all = runner.observations.filter((o) => o.obs !== "change" || o.topic === topic);
          throw new Error(`${topic}: expected ${JSON.stringify(changes)}\n  got ${JSON.stringify(got)}\n  all: ${all.map((o) => JSON.stringify({ ...o, state: undefined })).join("\n       ")}`);
        }
        if (step.expect.new_epoch && seen[0].epoch === firstEpoch[topic]) {
          throw new Error(`${topic}: the snapshot is of the old epoch`);
        }
        cursor = runner.observations.length;
      } else if (step.expect_obs) {
        const from = cursor;
        const found = await runner.until(
          () => runner.observations.slice(from).find((o) => matches(o, step.expect_obs)),
          within,
          JSON.stringify(step.expect_obs),
        );
        cursor = runner.observations.indexOf(found) + 1;
      } else if (step.expect_state) {
        const topic = step.expect_state;
        const truth = await server.api("GET", `/api/v1/topics/${topic}`);
        const mine = changesSince(topic).at(-1) ?? runner.observations.filter((o) => o.topic === topic && o.obs === "change").at(-1);
        if (JSON.stringify(sorted(mine.state)) !== JSON.stringify(sorted(truth.state)) || mine.offset !== truth.offset) {
          throw new Error(`${topic}: the client holds ${JSON.stringify(mine.state)} at ${mine.offset}; the server ${JSON.stringify(truth.state)} at ${truth.offset}`);
        }
      } else if (step.expect_topic) {
        const { topic, offset, entity, payload } = step.expect_topic;
        const truth = await server.api("GET", `/api/v1/topics/${topic}`);
        if (truth.offset !== offset || JSON.stringify(truth.state[entity]) !== JSON.stringify(payload)) {
          throw new Error(`${topic} on the server: ${JSON.stringify(truth)}`);
        }
      } else if (step.expect_connections !== undefined) {
        if (proxy.accepted !== step.expect_connections) {
          throw new Error(`the client opened ${proxy.accepted} connections, not ${step.expect_connections}`);
        }
      } else if (step.proxy) {
        proxy.set(step.proxy);
      } else if (step.server === "restart") {
        await server.stop();
        if (step.wipe) {
          rmSync(server.data, { recursive: true, force: true });
          server.admin();
        }
        await server.start();
      } else if (step.key) {
        keys[step.key.name] = await server.api("POST", "/api/v1/keys", step.key);
      } else if (step.rescope) {
        await server.api("PATCH", `/api/v1/keys/${keys[step.rescope.key].id}`, { scopes: step.rescope.scopes });
      } else if (step.revoke) {
        await server.api("DELETE", `/api/v1/keys/${keys[step.revoke].id}`);
      } else if (step.give_token) {
        tokenToGive = step.give_token;
      } else if (step.sleep) {
        await sleep(step.sleep);
      } else {
        throw new Error(`unknown step ${JSON.stringify(step)}`);
      }
    }
  } finally {
    runner.stop();
    proxy.close();
    await server.stop();
    rmSync(server.dir, { recursive: true, force: true });
  }
}

function sorted(state) {
  return Object.fromEntries(Object.entries(state ?? {}).sort(([a], [b]) => (a < b ? -1 : 1)));
}

let failed = 0;
const chosen = scenarios.filter((s) => !only || s.name.includes(only));
for (const scenario of chosen) {
  const started = Date.now();
  try {
    await run(scenario);
    console.log(`ok   ${scenario.name} (${Date.now() - started} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${scenario.name}\n  ${e.message}`);
  }
}
console.log(`${runnerCommand.join(" ")}: ${chosen.length - failed} of ${chosen.length} scenarios passed`);
process.exit(failed ? 1 : 0);
