import { PROTOCOL } from "./frames.js";

/** The ways to reach the server, in the order the client tries them. */
export type Transport = "websocket" | "sse" | "poll";

/** One open way of hearing from the server. */
export interface Link {
  readonly transport: Transport;
  /** Sends a frame; false when this link cannot (not open, or a one-way transport). */
  send(text: string): boolean;
  /** Stops it now; `closed` is not called for a link the client closed itself. */
  close(): void;
  /** The set of followed topics or their positions changed (one-way transports reopen). */
  update(): void;
}

/** What a link tells the client. */
export interface LinkEvents {
  frame(frame: Record<string, any>): void;
  /** The link ended: a WebSocket close code, or the nearest one for HTTP transports. */
  closed(code: number, reason: string): void;
}

/** What the HTTP transports ask of the client as they go. */
export interface Follows {
  /** The followed topics and the position each holds. */
  positions(): Map<string, { epoch: number; offset: number } | null>;
}

/** A WebSocket: the only link that carries the client's frames (publish, join, typing). */
export function websocket(WS: any, url: string, events: LinkEvents): Link {
  const ws = new WS(url);
  let done = false;
  ws.onmessage = (message: { data: unknown }) => {
    if (done || typeof message.data !== "string") return;
    let frame;
    try {
      frame = JSON.parse(message.data);
    } catch {
      return;
    }
    events.frame(frame);
  };
  ws.onclose = (e: { code: number; reason: string }) => {
    if (!done) {
      done = true;
      events.closed(e.code, e.reason);
    }
  };
  ws.onerror = () => {};
  return {
    transport: "websocket",
    send(text) {
      if (done || ws.readyState !== 1) return false;
      ws.send(text);
      return true;
    },
    close() {
      done = true;
      try {
        ws.close(1000);
      } catch {}
    },
    update() {},
  };
}

/** The HTTP status of a refused request, as the close code the client acts on. */
function closeCodeOf(status: number): number {
  return status === 401 ? 4401 : status === 403 ? 4403 : status === 400 || status === 404 ? 4400 : 1013;
}

async function refusal(response: Response): Promise<string> {
  const body = await response.json().catch(() => null);
  return body?.message ?? `HTTP ${response.status}`;
}

/** `/sse`, read with fetch (so it can send `Authorization`, in browsers, Node and Deno). */
export function sse(
  fetcher: typeof fetch,
  address: (positions: Follows) => string,
  headers: Record<string, string>,
  follows: Follows,
  events: LinkEvents,
): Link {
  let controller: AbortController;
  let done = false;
  const finish = (code: number, reason: string) => {
    if (!done) {
      done = true;
      controller.abort();
      events.closed(code, reason);
    }
  };
  const open = () => {
    controller = new AbortController();
    const signal = controller.signal;
    (async () => {
      const response = await fetcher(address(follows), {
        headers: { ...headers, accept: "text/event-stream" },
        signal,
      });
      if (!response.ok) return finish(closeCodeOf(response.status), await refusal(response));
      const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      let data: string[] = [];
      for (;;) {
        const { value, done: end } = await reader.read();
        if (end || signal.aborted) break;
        buffer += value;
        let newline;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, newline).replace(/\r$/, "");
          buffer = buffer.slice(newline + 1);
          if (line === "" && data.length) {
            const text = data.join("\n");
            data = [];
            try {
              events.frame(JSON.parse(text));
            } catch {}
            if (done) return;
          } else if (line.startsWith("data:")) {
            data.push(line.slice(line[5] === " " ? 6 : 5));
          }
        }
      }
      if (!signal.aborted) finish(1006, "the stream ended");
    })().catch(() => {
      if (!signal.aborted) finish(1006, "the stream failed");
    });
  };
  open();
  return {
    transport: "sse",
    send: () => false,
    close() {
      done = true;
      controller.abort();
    },
    // A stream's topics are in its address: follow a new set by opening it again.
    update() {
      if (done) return;
      controller.abort();
      open();
    },
  };
}

/** Long polls of `/api/v1/topics/{topic}/changes`, one loop per topic. */
export function poll(
  fetcher: typeof fetch,
  base: string,
  headers: Record<string, string>,
  wait: number,
  follows: Follows,
  events: LinkEvents,
): Link {
  const controller = new AbortController();
  const running = new Set<string>();
  let done = false;
  let welcomed = false;
  const finish = (code: number, reason: string) => {
    if (!done) {
      done = true;
      controller.abort();
      events.closed(code, reason);
    }
  };
  const loop = async (topic: string) => {
    running.add(topic);
    try {
      while (!done && follows.positions().has(topic)) {
        const at = follows.positions().get(topic);
        const url =
          `${base}/api/v1/topics/${encodeURIComponent(topic)}/changes?wait=${wait}` +
          (at ? `&after=${at.epoch}.${at.offset}` : "");
        const timeout = AbortSignal.timeout((wait + 15) * 1000);
        const response = await fetcher(url, { headers, signal: AbortSignal.any([controller.signal, timeout]) });
        if (response.status === 403 || (response.status === 401 && !headers.authorization)) {
          const code = response.status === 403 ? "forbidden" : "unauthenticated";
          events.frame({ type: "error", code, topics: [topic], message: await refusal(response) });
          return;
        }
        if (!response.ok) return finish(closeCodeOf(response.status), await refusal(response));
        const answer = await response.json();
        if (done) return;
        if (!welcomed) {
          welcomed = true;
          // There is no welcome over plain HTTP: the first answer is the link opening.
          events.frame({ type: "welcome", protocol: PROTOCOL, heartbeat_ms: 0, idle_timeout_ms: 0 });
        }
        for (const frame of answer.frames) events.frame(frame);
        // The answer's position is where the frames led: the topic must be there now.
        if (follows.positions().get(topic)) {
          events.frame({ type: "resumed", topic, epoch: answer.epoch, offset: answer.offset });
        }
      }
    } catch (e) {
      if (!controller.signal.aborted) finish(1006, `long poll failed: ${(e as Error).message}`);
    } finally {
      running.delete(topic);
    }
  };
  const update = () => {
    for (const topic of follows.positions().keys()) if (!running.has(topic)) void loop(topic);
  };
  update();
  return {
    transport: "poll",
    send: () => false,
    close() {
      done = true;
      controller.abort();
    },
    update,
  };
}
