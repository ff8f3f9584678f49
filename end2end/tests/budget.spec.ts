// The frontend budget, held: a board's first load of scripts, styles and WASM, as
// transferred, stays within 200 KB, and a reload fetches none of them again. Sizes, not
// timings: the same build gives the same figures, so this fails only when the build grew.
import { expect, test } from "@playwright/test";
import { startServer } from "./server";
import { BUDGET_BYTES, load } from "./transfer";

test("the demo board's first load stays within its budget, and a reload fetches only the page", async ({ page }) => {
  const server = await startServer({ demo: true });
  try {
    const first = await load(page, server.boardUrl);
    const kinds = first.files.map((f) => f.path.split(".").pop()).sort();
    expect(kinds).toEqual(["css", "js", "wasm"]);
    for (const file of first.files) expect(file.encoding, file.path).toMatch(/^(br|gzip)$/);
    expect(first.bodyBytes, JSON.stringify(first.files, null, 1)).toBeLessThanOrEqual(BUDGET_BYTES);

    const again = await load(page, server.boardUrl);
    expect(again.transferBytes, JSON.stringify(again.files, null, 1)).toBe(0);
  } finally {
    await server.stop();
  }
});

test("the build goes out compressed as the client asks, kept for good only at its own version", async () => {
  const server = await startServer();
  try {
    const page = await fetch(server.boardUrl);
    expect(page.headers.get("cache-control")).toBe("no-cache");
    const html = await page.text();
    const wasm = html.match(/\/pkg\/[0-9a-f]{16}\/pulseboard\.wasm/)?.[0];
    expect(wasm, "the page links the WASM at its version").toBeTruthy();
    const get = (path: string, encoding?: string) =>
      fetch(`${server.url}${path}`, { headers: encoding ? { "accept-encoding": encoding } : {} });

    for (const [asked, sent] of [["br, gzip", "br"], ["gzip", "gzip"], ["identity", null]] as const) {
      const response = await get(wasm!, asked);
      expect(response.status).toBe(200);
      expect(response.headers.get("content-encoding"), asked).toBe(sent);
      expect(response.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
      expect(response.headers.get("vary")).toMatch(/accept-encoding/i);
    }
    // Node's fetch undoes the encoding: the body is the WASM either way.
    const body = new Uint8Array(await (await get(wasm!, "br")).arrayBuffer());
    expect(Array.from(body.slice(0, 4))).toEqual([0x00, 0x61, 0x73, 0x6d]);

    // A page of another build (a screen loaded before an upgrade) gets this build's file,
    // but must not keep it under that build's address.
    const other = await get(wasm!.replace(/[0-9a-f]{16}/, "0000000000000000"), "gzip");
    expect(other.status).toBe(200);
    expect(other.headers.get("cache-control")).toBe("no-store");
    expect((await get(wasm!.replace("pulseboard.wasm", "missing.wasm"))).status).toBe(404);
  } finally {
    await server.stop();
  }
});
