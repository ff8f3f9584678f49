/**
 * TanStack Query: a topic's snapshot as a query's data, each event applied with
 * `setQueryData` (no refetch per event), and a discontinuity (a snapshot that replaced the
 * position held) invalidating the query and any derived from it, so they are fetched again.
 *
 * ```ts
 * const kpis = useQuery(topicQuery(client, "metric:kpis"));
 * useEffect(() => syncTopic(queryClient, client, "metric:kpis"), []);
 * ```
 */
import type { Pulseboard } from "./client.js";

type QueryKey = readonly unknown[];

/** What this needs of a `QueryClient`. */
export interface QueryClientLike {
  setQueryData(key: QueryKey, data: unknown): unknown;
  invalidateQueries(filters: { queryKey: QueryKey }): unknown;
}

/** The query key of a topic. */
export const topicKey = (name: string): QueryKey => ["pulseboard", "topic", name];

/** Query options for a topic: its state once its snapshot has arrived, kept fresh by `syncTopic`. */
export function topicQuery<T = unknown>(client: Pulseboard, name: string) {
  return {
    queryKey: topicKey(name),
    queryFn: () =>
      new Promise<Readonly<Record<string, T>>>((resolve, reject) => {
        const held = client.topic<T>(name);
        let stop = () => {};
        stop = held.subscribe((view) => {
          if (!view.ready && !view.ended) return;
          queueMicrotask(() => {
            stop();
            client.release(held);
          });
          if (view.ended) reject(view.ended);
          else resolve(view.state);
        });
      }),
    staleTime: Infinity,
  };
}

/**
 * Keeps a topic's query current until the returned function is called: every change is
 * written with `setQueryData`; a discontinuity invalidates it and the `derived` keys.
 */
export function syncTopic(
  queryClient: QueryClientLike,
  client: Pulseboard,
  name: string,
  options: { queryKey?: QueryKey; derived?: QueryKey[] } = {},
): () => void {
  const key = options.queryKey ?? topicKey(name);
  const held = client.topic(name);
  const stop = held.onChange((change) => {
    queryClient.setQueryData(key, held.view.state);
    if (change.kind === "snapshot" && change.discontinuity) {
      for (const queryKey of [key, ...(options.derived ?? [])]) queryClient.invalidateQueries({ queryKey });
    }
  });
  if (held.view.ready) queryClient.setQueryData(key, held.view.state);
  return () => {
    stop();
    client.release(held);
  };
}
