// Starts and stops real Pulseboard servers for the browser tests.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { connect, createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Server {
  url: string;
  /** The demo board's page. */
  boardUrl: string;
  /** The server's boards directory: a copy of the repository's, which tests may edit. */
  boardsDir: string;
  port: number;
  /** The secret of an admin key made for this server (a page opened with `?token=` of it may write). */
  key: string;
  /** Headers that send the admin key. */
  auth: Record<string, string>;
  /** Applies ops to a topic through the HTTP API, failing the test on refusal. */
  publish(topic: string, ops: object[]): Promise<void>;
  /** Stops the server with SIGTERM and waits for it to exit. */
  stop(): Promise<void>;
}

/** A real redis-server on a loopback port, in a temp dir, for tests of several instances. */
export interface Redis {
  url: string;
  port: number;
  dir: string;
  stop(): Promise<void>;
}

/**
 * Starts redis-server with its append-only file on: on a free port in a new dir, or (to
 * start one again after `stop`) on the port and dir given.
 */
export async function startRedis(again?: { port: number; dir: string }): Promise<Redis> {
  const port =
    again?.port ??
    (await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, "127.0.0.1", () => {
        const { port } = probe.address() as AddressInfo;
        probe.close(() => resolve(port));
      });
    }));
  const dir = again?.dir ?? mkdtempSync(join(tmpdir(), "pulseboard-redis-"));
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes", "--dir", dir];
  const child = spawn("redis-server", args, { stdio: "ignore" });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  for (let attempt = 0; ; attempt++) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1", () => {
        socket.end();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (up) break;
    if (attempt > 100) throw new Error(`redis-server did not listen on ${port}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    url: `redis://127.0.0.1:${port}/`,
    port,
    dir,
    async stop() {
      child.kill("SIGTERM");
      await exited;
    },
  };
}

/** A free loopback port, to name in a file before what listens on it starts. */
export async function freePort(): Promise<number> {
  return new Promise<number>((resolve) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** A real prometheus (Debian's) on a loopback port, in a temp dir, for the pull source tests. */
export interface Prometheus {
  url: string;
  stop(): Promise<void>;
}

/** Starts prometheus on `port`, scraping `targets` (`host:port`) every second, and waits until it is ready. */
export async function startPrometheus(port: number, targets: string[]): Promise<Prometheus> {
  const dir = mkdtempSync(join(tmpdir(), "pulseboard-prometheus-"));
  const list = targets.map((t) => `'${t}'`).join(", ");
  writeFileSync(
    join(dir, "prometheus.yml"),
    `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: pulseboard\n    static_configs:\n      - targets: [${list}]\n`,
  );
  const child = spawn(
    "prometheus",
    [
      `--config.file=${join(dir, "prometheus.yml")}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdio: "ignore" },
  );
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  for (let attempt = 0; ; attempt++) {
    const ready = await fetch(`${url}/-/ready`).then((r) => r.ok, () => false);
    if (ready) break;
    if (attempt > 300) throw new Error(`prometheus did not get ready on ${port}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    url,
    async stop() {
      child.kill("SIGKILL");
      await exited;
    },
  };
}

/** A real Alertmanager (Debian's) on a loopback port, posting every group to a hook. */
export interface Alertmanager {
  /** Posts an alert to Alertmanager's own API: firing, or resolved (ended a second ago). */
  alert(labels: Record<string, string>, summary: string, firing: boolean): Promise<void>;
  stop(): Promise<void>;
}

/** Starts Alertmanager with one receiver: a webhook to `hookUrl` with `secret` as its bearer token. */
export async function startAlertmanager(hookUrl: string, secret: string): Promise<Alertmanager> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "pulseboard-alertmanager-"));
  writeFileSync(
    join(dir, "alertmanager.yml"),
    `route:\n  receiver: pulseboard\n  group_by: ['alertname']\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n` +
      `receivers:\n  - name: pulseboard\n    webhook_configs:\n      - url: '${hookUrl}'\n        send_resolved: true\n` +
      `        http_config:\n          authorization:\n            credentials: '${secret}'\n`,
  );
  const child = spawn(
    "prometheus-alertmanager",
    [
      `--config.file=${join(dir, "alertmanager.yml")}`,
      `--storage.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--cluster.listen-address=",
    ],
    { stdio: "ignore" },
  );
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  for (let attempt = 0; ; attempt++) {
    if (await fetch(`${url}/-/ready`).then((r) => r.ok, () => false)) break;
    if (attempt > 300) throw new Error(`alertmanager did not get ready on ${port}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    async alert(labels, summary, firing) {
      const now = Date.now();
      const body = [
        {
          labels,
          annotations: { summary },
          startsAt: new Date(now - 60_000).toISOString(),
          endsAt: new Date(firing ? now + 600_000 : now - 1_000).toISOString(),
        },
      ];
      const answer = await fetch(`${url}/api/v2/alerts`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      if (!answer.ok) throw new Error(`alertmanager refused the alert: ${answer.status}`);
    },
    async stop() {
      child.kill("SIGKILL");
      await exited;
    },
  };
}

/** A fresh boards directory holding the repository's demo board file. */
export function boardsCopy(): string {
  const dir = mkdtempSync(join(tmpdir(), "pulseboard-boards-"));
  copyFileSync(join(__dirname, "..", "..", "boards", "demo.toml"), join(dir, "demo.toml"));
  return dir;
}

/**
 * Starts a server; each gets an empty data dir and a copy of the boards directory of its own
 * unless they are given.
 */
export async function startServer(
  options: {
    demo?: boolean;
    port?: number;
    dataDir?: string;
    boardsDir?: string;
    /** More PULSEBOARD_* settings, e.g. a short heartbeat for fault tests. */
    env?: Record<string, string>;
  } = {},
): Promise<Server> {
  const bin = process.env.PULSEBOARD_BIN;
  if (!bin) throw new Error("PULSEBOARD_BIN must name the built server (scripts/test sets it)");
  const boardsDir = options.boardsDir ?? boardsCopy();
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "pulseboard-e2e-"));
  // Made with the CLI where the server keeps its keys (its data dir, or the Redis its
  // settings name), as an operator makes the first admin key.
  const key = execFileSync(bin, ["keys", "create", "--name", "e2e", "--scope", "admin"], {
    env: { ...process.env, PULSEBOARD_DATA_DIR: dataDir, ...options.env },
    encoding: "utf8",
    stdio: ["ignore", "pipe", "ignore"],
  }).trim();
  const auth = { authorization: `Bearer ${key}` };
  const child: ChildProcess = spawn(bin, [], {
    env: {
      ...process.env,
      PULSEBOARD_LISTEN: `127.0.0.1:${options.port ?? 0}`,
      PULSEBOARD_DEMO: String(options.demo ?? false),
      PULSEBOARD_BOARDS: boardsDir,
      PULSEBOARD_DATA_DIR: dataDir,
      // A person leaves a second after their last page closes, so tests need not wait long.
      PULSEBOARD_PRESENCE_GRACE: "1",
      ...options.env,
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let output = "";
    child.stdout!.on("data", (chunk) => {
      output += chunk;
      const found = output.match(/listening on (http:\/\/[\d.]+:\d+)/);
      if (found) resolve(found[1]);
    });
    child.once("exit", (code) => reject(new Error(`the server exited early (${code}):\n${output}`)));
  });
  child.stdout!.resume();
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return {
    url,
    boardUrl: `${url}/b/demo`,
    boardsDir,
    port: Number(new URL(url).port),
    key,
    auth,
    async publish(topic, ops) {
      const response = await fetch(`${url}/api/v1/topics/${topic}`, {
        method: "POST",
        headers: { "content-type": "application/json", ...auth },
        body: JSON.stringify({ ops }),
      });
      if (!response.ok) throw new Error(`publish to ${topic}: ${response.status} ${await response.text()}`);
    },
    async stop() {
      child.kill("SIGTERM");
      await exited;
    },
  };
}
