/**
 * React bindings: a provider, and hooks on `useSyncExternalStore`. Each hook holds its
 * topic or board while mounted; a hold let go is kept for the client's `linger` (1 s), so
 * StrictMode's double mount and hot reload neither resubscribe nor open another socket.
 * Nothing connects during server rendering: the hooks answer an empty, not-ready view.
 *
 * ```tsx
 * const client = new Pulseboard({ url: "https://board.example.com" });
 * <PulseboardProvider client={client}><Kpis /></PulseboardProvider>
 * function Kpis() {
 *   const kpis = useTopic<number>("metric:kpis");
 *   return <p>{kpis.ready ? kpis.state.orders : "…"}</p>;
 * }
 * ```
 */
import { createContext, createElement, useCallback, useContext, useSyncExternalStore } from "react";
import type { ReactNode } from "react";
import type { BoardView } from "./board.js";
import type { ConnectionView, Pulseboard } from "./client.js";
import type { TopicView } from "./topic.js";

const Context = createContext<Pulseboard | null>(null);

const NOT_YET: TopicView<any> = Object.freeze({
  state: Object.freeze({}),
  changed: Object.freeze({}),
  position: null,
  ready: false,
  stale: null,
  ended: null,
});
const NOBODY: BoardView = Object.freeze({ count: 0, people: [], typing: [], me: null, ended: null });

/** Makes `client` the one the hooks below use. Make the client once, outside components. */
export function PulseboardProvider(props: { client: Pulseboard; children?: ReactNode }) {
  return createElement(Context.Provider, { value: props.client }, props.children);
}

/** The provider's client (to `publish`, or to follow something by hand). */
export function usePulseboard(): Pulseboard {
  const client = useContext(Context);
  if (!client) throw new Error("usePulseboard: no <PulseboardProvider> above this component");
  return client;
}

/** A topic's state, kept live; `null` follows nothing. */
export function useTopic<T = unknown>(name: string | null): TopicView<T> {
  const client = usePulseboard();
  const subscribe = useCallback(
    (changed: () => void) => {
      if (!name) return () => {};
      const topic = client.topic<T>(name);
      const stop = topic.subscribe(changed);
      return () => {
        stop();
        client.release(topic);
      };
    },
    [client, name],
  );
  const view = () => (name && client.peek<T>(name)?.view) || (NOT_YET as TopicView<T>);
  return useSyncExternalStore(subscribe, view, () => NOT_YET as TopicView<T>);
}

/** Who is on a board (joining it while mounted). */
export function usePresence(board: string | null): BoardView {
  const client = usePulseboard();
  const subscribe = useCallback(
    (changed: () => void) => {
      if (!board) return () => {};
      const held = client.board(board);
      const stop = held.subscribe(changed);
      return () => {
        stop();
        client.release(held);
      };
    },
    [client, board],
  );
  const view = () => (board && client.peekBoard(board)?.view) || NOBODY;
  return useSyncExternalStore(subscribe, view, () => NOBODY);
}

/** The connection's state, for a badge: `open`, `reconnecting` in n ms, which transport. */
export function useConnection(): ConnectionView {
  const client = usePulseboard();
  const subscribe = useCallback((changed: () => void) => client.subscribe(changed), [client]);
  return useSyncExternalStore(subscribe, () => client.connection, () => client.connection);
}
