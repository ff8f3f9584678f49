// What a page load of a board transferred, as Chromium counts it (Resource Timing): the
// bytes of every script, stylesheet and WASM file, compressed as they crossed the wire.
import type { Page } from "@playwright/test";

export interface Transfer {
  /** Each script, stylesheet and WASM request: its path and what it cost. */
  files: { path: string; encoding: string; bodyBytes: number; transferBytes: number }[];
  /** Bytes of those bodies as sent (compressed): what the budget counts. */
  bodyBytes: number;
  /** The same with the response headers: 0 for a file the browser had cached. */
  transferBytes: number;
}

/**
 * The budget for a board's first load: scripts, styles and WASM, compressed. The demo board,
 * with every widget type, was 198.9 KB on 2026-12-02. A widget that does not fit pays for
 * itself first; the budget is not raised to fit it.
 */
export const BUDGET_BYTES = 200_000;

/** Opens `url`, waits until the board is live, and reports what it fetched. */
export async function load(page: Page, url: string): Promise<Transfer> {
  const encodings = new Map<string, string>();
  const record = (response: { url(): string; headers(): Record<string, string> }) =>
    encodings.set(new URL(response.url()).pathname, response.headers()["content-encoding"] ?? "identity");
  page.on("response", record);
  try {
    await page.goto(url);
    await page.locator('.connection[data-status="live"]').waitFor();
    const entries = await page.evaluate(() =>
      performance.getEntriesByType("resource").map((e) => {
        const r = e as PerformanceResourceTiming;
        return { name: r.name, bodyBytes: r.encodedBodySize, transferBytes: r.transferSize };
      }),
    );
    const files = entries
      .map((e) => ({ ...e, path: new URL(e.name).pathname }))
      .filter((e) => /\.(js|wasm|css)$/.test(e.path))
      .map(({ path, bodyBytes, transferBytes }) => ({
        path,
        encoding: encodings.get(path) ?? "cached",
        bodyBytes,
        transferBytes,
      }));
    return {
      files,
      bodyBytes: files.reduce((sum, f) => sum + f.bodyBytes, 0),
      transferBytes: files.reduce((sum, f) => sum + f.transferBytes, 0),
    };
  } finally {
    page.off("response", record);
  }
}
