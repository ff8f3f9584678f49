/** Why something the client was asked to do did not happen. */
export class PulseboardError extends Error {
  /**
   * What went wrong, for code to branch on:
   * - the server's codes (`forbidden`, `unauthenticated`, `op_refused`, `store_unavailable`,
   *   `rate_limited`, …), from an `error` frame or an HTTP answer;
   * - `policy` (closed with 1008), `too_large` (1009): the connection stops, and says why;
   * - `protocol`: the server speaks a protocol version this client was not written for;
   * - `ended`: a subscription the server ended (4403, or access narrowed);
   * - `unknown_outcome`: the connection dropped after a write was sent and before its
   *   answer: it may or may not have been applied;
   * - `closed`: the client was closed; `timeout`: no answer in time; `network`.
   */
  readonly code: string;
  /** The HTTP status, for errors of the HTTP API. */
  readonly status?: number;
  /** The close code, for errors that closed the connection. */
  readonly closeCode?: number;

  constructor(code: string, message: string, extra?: { status?: number; closeCode?: number }) {
    super(message);
    this.name = "PulseboardError";
    this.code = code;
    this.status = extra?.status;
    this.closeCode = extra?.closeCode;
  }
}
