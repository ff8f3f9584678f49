/**
 * Pulseboard's client: follow a server's topics (a snapshot, then every change, gapless
 * across reconnects), see who is on a board, and publish.
 *
 * ```ts
 * import { Pulseboard } from "pulseboard";
 * const client = new Pulseboard({ url: "http://127.0.0.1:3000" });
 * const kpis = client.topic("metric:kpis");
 * kpis.subscribe((view) => console.log(view.state));
 * ```
 */
export { Pulseboard, CLIENT } from "./client.js";
export type { Options, ConnectionView, Timers } from "./client.js";
export { Topic } from "./topic.js";
export type { Change, Position, TopicView } from "./topic.js";
export { Board } from "./board.js";
export type { BoardView } from "./board.js";
export { PulseboardError } from "./errors.js";
export type { Transport } from "./transports.js";
export { PROTOCOL } from "./frames.js";
export type * from "./frames.js";
