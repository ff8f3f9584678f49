import type { Coalesced, Event, ServerFrame } from "./frames.js";
import type { PulseboardError } from "./errors.js";

/** A point in a topic's history: every event up to `offset` of `epoch` is applied. */
export interface Position {
  epoch: number;
  offset: number;
}

/** What happened to a topic's state, as its listeners are told. */
export type Change<T = unknown> =
  | {
      kind: "snapshot";
      topic: string;
      position: Position;
      /**
       * True when this snapshot replaces a position the client held (a resume past the
       * history or across a new epoch, a gap): events between the two were not seen one by
       * one. An app that keeps its own derived data rebuilds it here.
       */
      discontinuity: boolean;
    }
  | { kind: "event"; topic: string; position: Position; event: Event & { payload: T | null } }
  | { kind: "coalesced"; topic: string; position: Position; frame: Coalesced };

/** A topic's state as a value: a new object whenever it changes, the same one otherwise. */
export interface TopicView<T = unknown> {
  /** `entity_id` → payload. */
  readonly state: Readonly<Record<string, T>>;
  /** When each entity last changed, ms since the Unix epoch by the server's clock. */
  readonly changed: Readonly<Record<string, number>>;
  readonly position: Position | null;
  /** A snapshot (or the resume) has arrived: `state` is the topic's. */
  readonly ready: boolean;
  /** Why the topic is not updating (its source is failing, or the server lost its store). */
  readonly stale: string | null;
  /** Set when the server ended the subscription: nothing more will come. */
  readonly ended: PulseboardError | null;
}

/** What [`Topic.receive`] asks of the connection. */
export const enum Next {
  Nothing,
  /** A gap: subscribe again without a position, for a snapshot. */
  Resync,
}

type Listener<T> = (change: Change<T>) => void;

/**
 * One topic the client follows, held to the sync rule: apply an event only when its epoch
 * is ours and its offset is ours + 1; drop one already applied; resync on anything else.
 */
export class Topic<T = unknown> {
  readonly name: string;
  #state = new Map<string, T>();
  #changed = new Map<string, number>();
  #position: Position | null;
  /** The position was given by the app (or held before): a snapshot is a discontinuity. */
  #held: boolean;
  #ready = false;
  #stale: string | null = null;
  #ended: PulseboardError | null = null;
  #view: TopicView<T> | null = null;
  #changes = new Set<Listener<T>>();
  #watchers = new Set<() => void>();
  /** @internal How many holders the client counts; it unsubscribes at none. */
  refs = 0;

  constructor(name: string, resumeFrom?: Position | null) {
    this.name = name;
    this.#position = resumeFrom ? { ...resumeFrom } : null;
    this.#held = !!resumeFrom;
  }

  /** The position to resume from: the last applied event's. */
  get position(): Position | null {
    return this.#position && { ...this.#position };
  }

  /** The topic as it is now; the same object until it changes. */
  get view(): TopicView<T> {
    if (!this.#view) {
      this.#view = Object.freeze({
        state: Object.freeze(Object.fromEntries(this.#state)),
        changed: Object.freeze(Object.fromEntries(this.#changed)),
        position: this.position,
        ready: this.#ready,
        stale: this.#stale,
        ended: this.#ended,
      });
    }
    return this.#view;
  }

  /** Calls `listener` with every change, in order; returns what stops it. */
  onChange(listener: Listener<T>): () => void {
    this.#changes.add(listener);
    return () => this.#changes.delete(listener);
  }

  /**
   * The store contract (Svelte's, and `useSyncExternalStore`'s with `view`): `run` is
   * called now with the view, and again whenever it changes.
   */
  subscribe(run: (view: TopicView<T>) => void): () => void {
    const watcher = () => run(this.view);
    this.#watchers.add(watcher);
    watcher();
    return () => this.#watchers.delete(watcher);
  }

  /** @internal Applies one frame of this topic. */
  receive(frame: ServerFrame): Next {
    const at = this.#position;
    switch (frame.type) {
      case "snapshot": {
        const f = frame;
        this.#state = new Map(Object.entries(f.state as Record<string, T>));
        this.#changed = new Map(Object.entries(f.changed ?? {}));
        const discontinuity = this.#held;
        this.#position = { epoch: f.epoch, offset: f.offset };
        this.#held = this.#ready = true;
        this.#emit({ kind: "snapshot", topic: this.name, position: this.position!, discontinuity });
        return Next.Nothing;
      }
      case "event": {
        const f = frame as Event & { payload: T | null };
        if (!at) return Next.Nothing; // waiting for a snapshot
        if (f.epoch !== at.epoch) return Next.Resync;
        if (f.offset <= at.offset) return Next.Nothing; // a duplicate
        if (f.offset !== at.offset + 1) return Next.Resync;
        if (f.event === "DELETED") {
          this.#state.delete(f.entity_id);
          this.#changed.delete(f.entity_id);
        } else {
          this.#state.set(f.entity_id, f.payload as T);
          const ms = Date.parse(f.ts);
          if (ms) this.#changed.set(f.entity_id, ms);
        }
        at.offset = f.offset;
        this.#emit({ kind: "event", topic: this.name, position: this.position!, event: f });
        return Next.Nothing;
      }
      case "coalesced": {
        const f = frame;
        if (!at || f.epoch !== at.epoch || f.from !== at.offset) return Next.Resync;
        for (const [id, payload] of Object.entries(f.state)) this.#state.set(id, payload as T);
        for (const [id, ms] of Object.entries(f.changed ?? {})) this.#changed.set(id, ms);
        for (const id of f.deleted) {
          this.#state.delete(id);
          this.#changed.delete(id);
        }
        at.offset = f.offset;
        this.#emit({ kind: "coalesced", topic: this.name, position: this.position!, frame: f });
        return Next.Nothing;
      }
      case "resumed":
        if (!at || frame.epoch !== at.epoch || frame.offset !== at.offset) return Next.Resync;
        this.#ready = true;
        this.#touch();
        return Next.Nothing;
    }
    return Next.Nothing;
  }

  /** @internal Forgets the position: the next subscribe asks for a snapshot. */
  forget(): void {
    this.#ready = false;
    this.#position = null;
  }

  /** @internal Marks the topic as not updating (`reason`), or as updating (`null`). */
  mark(reason: string | null): void {
    if (this.#stale !== reason) {
      this.#stale = reason;
      this.#touch();
    }
  }

  /** @internal The server ended the subscription. */
  end(error: PulseboardError): void {
    this.#ended = error;
    this.#touch();
  }

  #emit(change: Change<T>): void {
    // Listeners read `view`: it must be the new one.
    this.#view = null;
    for (const listener of [...this.#changes]) listener(change);
    this.#touch();
  }

  #touch(): void {
    this.#view = null;
    for (const watcher of [...this.#watchers]) watcher();
  }
}
