/**
 * Svelte stores, by the store contract alone (no Svelte import): `$kpis` in a component
 * holds the topic while it is shown.
 *
 * ```svelte
 * <script>
 *   import { topic } from "pulseboard/svelte";
 *   const kpis = topic(client, "metric:kpis");
 * </script>
 * {#if $kpis.ready}{$kpis.state.orders}{/if}
 * ```
 */
import type { BoardView } from "./board.js";
import type { ConnectionView, Pulseboard } from "./client.js";
import type { TopicView } from "./topic.js";

/** A readable store: Svelte's contract. */
export interface Readable<T> {
  subscribe(run: (value: T) => void): () => void;
}

/** A topic's state; followed while the store has subscribers. */
export function topic<T = unknown>(client: Pulseboard, name: string): Readable<TopicView<T>> {
  return {
    subscribe(run) {
      const held = client.topic<T>(name);
      const stop = held.subscribe(run);
      return () => {
        stop();
        client.release(held);
      };
    },
  };
}

/** Who is on a board; joined while the store has subscribers. */
export function presence(client: Pulseboard, board: string): Readable<BoardView> {
  return {
    subscribe(run) {
      const held = client.board(board);
      const stop = held.subscribe(run);
      return () => {
        stop();
        client.release(held);
      };
    },
  };
}

/** The connection's state. */
export function connection(client: Pulseboard): Readable<ConnectionView> {
  return { subscribe: (run) => client.subscribe(run) };
}
