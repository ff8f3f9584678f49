/**
 * Publishing from servers, scripts and CI over the HTTP API: a separate entry point, so an
 * API key that may write never lands in a browser bundle by accident.
 *
 * ```ts
 * import { Publisher } from "pulseboard/publisher";
 * const publisher = new Publisher({ url: "http://127.0.0.1:3000", token: process.env.PULSEBOARD_KEY });
 * await publisher.publish("metric:kpis", [{ op: "incr", entity_id: "orders", by: 1 }]);
 * ```
 */
import { PulseboardError } from "./errors.js";
import type { Op, Published } from "./frames.js";

export interface PublisherOptions {
  url: string;
  /** An API key with `publish:` scopes for the topics written. */
  token: string;
  fetch?: typeof fetch;
  /** Attempts after the first, for answers that may be retried (network, 429, 5xx); default 5. */
  retries?: number;
  /** How long one attempt may take (ms; default 10,000). */
  timeoutMs?: number;
  /** The first retry's delay (ms; default 250), doubled each time with full jitter. */
  backoffMs?: number;
}

export interface WriteOptions {
  /** The key that makes retries safe; a new random one per call by default. */
  idempotencyKey?: string;
  user_id?: string;
  trace_id?: string;
}

/** One topic's writes in a batch. */
export interface TopicWrite {
  topic: string;
  ops: Op[];
}

/**
 * Writes with an `Idempotency-Key` on every request, so a retry after a dropped answer or a
 * 5xx applies once; refusals that a retry cannot change (`op_refused`, `forbidden`, …)
 * reject at once with a [`PulseboardError`] carrying the server's code and status.
 */
export class Publisher {
  #o: PublisherOptions;

  constructor(options: PublisherOptions) {
    this.#o = { ...options, url: options.url.replace(/\/$/, "") };
  }

  /** Applies `ops` to one topic, whole or not at all. */
  publish(topic: string, ops: Op[], options: WriteOptions = {}): Promise<Published> {
    const { idempotencyKey, ...who } = options;
    return this.#post(`/api/v1/topics/${encodeURIComponent(topic)}`, { ops, ...who }, idempotencyKey);
  }

  /** Applies writes to several topics, all or none. */
  async batch(writes: TopicWrite[], options: WriteOptions = {}): Promise<Published[]> {
    const { idempotencyKey, ...who } = options;
    const body = { writes: writes.map((w) => ({ ...w, ...who })) };
    const answer = await this.#post<{ results: Published[] }>("/api/v1/batch", body, idempotencyKey);
    return answer.results;
  }

  async #post<T>(path: string, body: unknown, key = randomKey()): Promise<T> {
    const fetcher = this.#o.fetch ?? globalThis.fetch.bind(globalThis);
    const retries = this.#o.retries ?? 5;
    let last: PulseboardError | null = null;
    let retryAfterMs = 0;
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (attempt > 0) {
        const backoff = Math.random() * (this.#o.backoffMs ?? 250) * 2 ** (attempt - 1);
        await new Promise((resolve) => setTimeout(resolve, Math.max(backoff, retryAfterMs)));
      }
      let response: Response;
      try {
        response = await fetcher(this.#o.url + path, {
          method: "POST",
          headers: {
            authorization: `Bearer ${this.#o.token}`,
            "content-type": "application/json",
            "idempotency-key": key,
          },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(this.#o.timeoutMs ?? 10_000),
        });
      } catch (e) {
        last = new PulseboardError("network", `${path}: ${(e as Error).message}`);
        continue;
      }
      const answer = await response.json().catch(() => ({}));
      if (response.ok) return answer as T;
      last = new PulseboardError(answer.code ?? "http", answer.message ?? `HTTP ${response.status}`, {
        status: response.status,
      });
      retryAfterMs = Number(response.headers.get("retry-after")) * 1000 || 0;
      const again = response.status >= 500 || response.status === 429 || answer.code === "idempotency_key_in_flight";
      if (!again) throw last;
    }
    throw last!;
  }
}

function randomKey(): string {
  const c = (globalThis as any).crypto;
  return c?.randomUUID ? c.randomUUID() : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}
