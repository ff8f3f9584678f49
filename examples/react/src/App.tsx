import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import type { Op } from "pulseboard";
import { syncTopic, topicKey, topicQuery } from "pulseboard/query";
import { useConnection, usePresence, usePulseboard } from "pulseboard/react";
import { useEffect, useState } from "react";

/** The topic every copy of the app edits, and the board that shows it (for presence). */
const LIST = "list:shared";
const BOARD = "shared-list";

interface Item {
  text: string;
  at: number;
}
type Items = Readonly<Record<string, Item>>;

/** One change a person makes: the ops it sends, and how it looks before the server says yes. */
interface Edit {
  what: string;
  ops: Op[];
  apply(items: Items): Items;
}

const add = (text: string): Edit => {
  const id = `i-${crypto.randomUUID().slice(0, 8)}`;
  const item = { text, at: Date.now() };
  return { what: "Add", ops: [{ op: "set", entity_id: id, payload: item }], apply: (items) => ({ ...items, [id]: item }) };
};

const rename = (id: string, text: string): Edit => ({
  what: "Rename",
  ops: [{ op: "patch", entity_id: id, patch: { text } }],
  apply: (items) => ({ ...items, [id]: { ...items[id], text } }),
});

const remove = (id: string): Edit => ({
  what: "Delete",
  ops: [{ op: "delete", entity_id: id }],
  apply: ({ [id]: _, ...rest }) => rest,
});

export function App() {
  const client = usePulseboard();
  const queryClient = useQueryClient();
  const list = useQuery(topicQuery<Item>(client, LIST));
  // Every event is written into the query's data; a discontinuity refetches it.
  useEffect(() => syncTopic(queryClient, client, LIST), [client, queryClient]);
  const [refusal, setRefusal] = useState<string | null>(null);
  const [pending, setPending] = useState<ReadonlySet<string>>(new Set());

  const edit = useMutation({
    mutationFn: (edit: Edit) => client.publish(LIST, edit.ops),
    // Shown at once; the event that confirms it replaces it.
    onMutate: (edit) => {
      setRefusal(null);
      const ids = edit.ops.map((op) => ("entity_id" in op ? op.entity_id : ""));
      setPending((p) => new Set([...p, ...ids]));
      queryClient.setQueryData<Items>(topicKey(LIST), (items) => edit.apply(items ?? {}));
      return ids;
    },
    // Rolled back to what the server holds (not to what was there before the edit: other
    // people's changes may have arrived since), with the server's reason.
    onError: (error, edit) => {
      queryClient.setQueryData(topicKey(LIST), client.peek<Item>(LIST)?.view.state ?? {});
      setRefusal(`${edit.what} refused: ${error.message}`);
    },
    onSettled: (_, __, ___, ids) => setPending((p) => new Set([...p].filter((id) => !ids?.includes(id)))),
  });

  const items = Object.entries(list.data ?? {}).sort(([, a], [, b]) => a.at - b.at);
  const [draft, setDraft] = useState("");
  return (
    <main>
      <header>
        <h1>Shared list</h1>
        <ConnectionBadge />
        <WhoIsHere />
      </header>
      {refusal && (
        <p role="alert" data-testid="refusal">
          {refusal}
        </p>
      )}
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (draft.trim()) edit.mutate(add(draft.trim()));
          setDraft("");
        }}
      >
        <input aria-label="New item" value={draft} onChange={(e) => setDraft(e.target.value)} placeholder="Add an item" />
        <button type="submit">Add</button>
      </form>
      {list.isPending ? (
        <p>Loading…</p>
      ) : (
        <ul>
          {items.map(([id, item]) => (
            <Row key={id} id={id} item={item} pending={pending.has(id)} onEdit={(e) => edit.mutate(e)} />
          ))}
        </ul>
      )}
    </main>
  );
}

function Row({ id, item, pending, onEdit }: { id: string; item: Item; pending: boolean; onEdit(edit: Edit): void }) {
  const [text, setText] = useState(item.text);
  useEffect(() => setText(item.text), [item.text]);
  return (
    <li data-testid="item" data-id={id} className={pending ? "pending" : undefined}>
      <input aria-label="Text" value={text} onChange={(e) => setText(e.target.value)} />
      <span data-testid="text">{item.text}</span>
      <button onClick={() => onEdit(rename(id, text))}>Rename</button>
      <button onClick={() => onEdit(remove(id))}>Delete</button>
    </li>
  );
}

function ConnectionBadge() {
  const { state, transport, retryInMs } = useConnection();
  const label = state === "reconnecting" ? `reconnecting in ${Math.ceil((retryInMs ?? 0) / 1000)} s` : state;
  return (
    <span data-testid="connection" className={`badge ${state}`}>
      {label} · {transport}
    </span>
  );
}

function WhoIsHere() {
  const { count, people } = usePresence(BOARD);
  return (
    <span data-testid="presence">
      {count} here{people.length ? `: ${people.map((p) => p.name).join(", ")}` : ""}
    </span>
  );
}
