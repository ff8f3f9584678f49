import type { Person, Presence } from "./frames.js";
import type { PulseboardError } from "./errors.js";

/** Who is on a board, as a value: a new object whenever it changes. */
export interface BoardView {
  /** How many people are on the board (a person with several pages counts once). */
  readonly count: number;
  /** Who they are, longest here first; empty on a board with more people than the server lists. */
  readonly people: readonly Person[];
  /** Person ids of those writing a note now. */
  readonly typing: readonly string[];
  /** This connection's id, as it appears in a person's `tabs`. */
  readonly me: string | null;
  /** Set when the server refused the board or ended the membership. */
  readonly ended: PulseboardError | null;
}

/** How long a `typing` frame shows someone as writing, unless another comes. */
const TYPING_MS = 5000;

/**
 * A board the client is on (over the WebSocket): its presence and who is typing. The
 * client joins it again after every reconnect, so the view is right after a drop.
 */
export class Board {
  readonly name: string;
  #presence: Presence | null = null;
  #typing = new Map<string, ReturnType<typeof setTimeout>>();
  #me: string | null = null;
  #ended: PulseboardError | null = null;
  #view: BoardView | null = null;
  #watchers = new Set<() => void>();
  /** @internal */
  refs = 0;
  /** @internal Sends a frame when connected; the client's. */
  send: (frame: Record<string, unknown>) => Promise<unknown> = () => Promise.resolve();

  constructor(name: string) {
    this.name = name;
  }

  get view(): BoardView {
    return (this.#view ??= Object.freeze({
      count: this.#presence?.count ?? 0,
      people: this.#presence?.people ?? [],
      typing: [...this.#typing.keys()],
      me: this.#me,
      ended: this.#ended,
    }));
  }

  /** The store contract, as `Topic.subscribe`. */
  subscribe(run: (view: BoardView) => void): () => void {
    const watcher = () => run(this.view);
    this.#watchers.add(watcher);
    watcher();
    return () => this.#watchers.delete(watcher);
  }

  /** Tells the board's other people this person is writing a note (at most every 2 s). */
  typing(): void {
    void this.send({ type: "typing", board: this.name }).catch(() => {});
  }

  /** Writes a note on the board (or edits note `id`); resolves with the server's `ack`. */
  note(note: { text: string; id?: string; topic?: string; entity?: string; moment?: number; link?: string }) {
    return this.send({ type: "note", board: this.name, ...note });
  }

  /** Deletes a note of the board. */
  deleteNote(id: string) {
    return this.send({ type: "delete_note", board: this.name, id });
  }

  /** @internal */
  receive(frame: Record<string, any>, me: string | null): void {
    this.#me = me;
    if (frame.type === "presence") {
      this.#presence = frame as Presence;
    } else if (frame.type === "typing") {
      const person = frame.person as string;
      clearTimeout(this.#typing.get(person));
      this.#typing.set(
        person,
        setTimeout(() => {
          this.#typing.delete(person);
          this.#touch();
        }, TYPING_MS),
      );
    }
    this.#touch();
  }

  /** @internal Someone's note arrived: they are done typing. */
  noted(person: string): void {
    if (this.#typing.has(person)) {
      clearTimeout(this.#typing.get(person));
      this.#typing.delete(person);
      this.#touch();
    }
  }

  /** @internal */
  end(error: PulseboardError): void {
    this.#ended = error;
    this.#touch();
  }

  #touch(): void {
    this.#view = null;
    for (const watcher of [...this.#watchers]) watcher();
  }
}
