// A TCP proxy between the browser and a server, for fault tests: it can blackhole the
// connections it carries — keep them open but let nothing through either way, as a Wi-Fi
// access point or a proxy that loses a connection without a word does — and it can refuse
// WebSocket handshakes, as some corporate proxies do.
import { createConnection, createServer, type Server as NetServer, type Socket } from "node:net";

export interface Proxy {
  url: string;
  /** Stops forwarding on every connection open now; connections made later pass. */
  blackhole(): void;
  /** Answers `GET /ws` with 403 instead of passing it on, until set back to false. */
  refuseWebSocket: boolean;
  close(): Promise<void>;
}

export async function startProxy(target: string): Promise<Proxy> {
  const { hostname, port } = new URL(target);
  const open = new Set<{ client: Socket; upstream: Socket; holed: boolean }>();
  const server: NetServer = createServer((client) => {
    const upstream = createConnection({ host: hostname, port: Number(port) });
    const pair = { client, upstream, holed: false };
    open.add(pair);
    // Data that arrives on a blackholed connection is read and dropped, so neither end ever
    // sees a close, a reset or back-pressure: only silence.
    let first = true;
    client.on("data", (chunk) => {
      if (first && proxy.refuseWebSocket && chunk.toString("latin1").startsWith("GET /ws")) {
        client.end("HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        upstream.destroy();
        return;
      }
      first = false;
      pair.holed || upstream.write(chunk);
    });
    upstream.on("data", (chunk) => pair.holed || client.write(chunk));
    const end = () => {
      open.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("close", () => pair.holed || end());
    upstream.on("close", () => pair.holed || end());
    client.on("error", () => {});
    upstream.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address() as { port: number };
  const proxy: Proxy = {
    url: `http://127.0.0.1:${address.port}`,
    refuseWebSocket: false,
    blackhole() {
      for (const pair of open) pair.holed = true;
    },
    async close() {
      for (const { client, upstream } of open) {
        client.destroy();
        upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return proxy;
}
