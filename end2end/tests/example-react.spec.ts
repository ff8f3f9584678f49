// The example app (examples/react: Vite, React, TanStack Query, pulseboard/react) in two
// browsers: one that may write the shared list, one guest that may only read it.
import { expect, test, type Page } from "@playwright/test";
import { readFileSync, writeFileSync, mkdtempSync, existsSync } from "node:fs";
import { createServer, type Server as HttpServer } from "node:http";
import { tmpdir } from "node:os";
import { extname, join } from "node:path";
import { freePort, startServer, type Server } from "./server";

const DIST = join(__dirname, "..", "..", "examples", "react", "dist");
const TYPES: Record<string, string> = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css" };

/** Serves the app's build, as any static host would. */
async function serveApp(): Promise<{ url: string; close(): void }> {
  const http: HttpServer = createServer((request, response) => {
    const path = new URL(request.url!, "http://x").pathname;
    const file = join(DIST, path === "/" ? "index.html" : path);
    if (!file.startsWith(DIST) || !existsSync(file)) return void response.writeHead(404).end();
    response.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" });
    response.end(readFileSync(file));
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const port = (http.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, close: () => http.close() };
}

const texts = (page: Page) => page.getByLabel("Text").evaluateAll((inputs) => inputs.map((i) => (i as HTMLInputElement).value));

test("two people edit the shared list: optimistic, refused with the reason, and whole after a restart", async ({ browser }) => {
  test.skip(!existsSync(DIST), "examples/react is not built (scripts/test builds it)");
  const app = await serveApp();
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), "pulseboard-example-"));
  const boardsDir = mkdtempSync(join(tmpdir(), "pulseboard-example-boards-"));
  writeFileSync(join(boardsDir, "shared-list.toml"), 'title = "Shared list"\n\n[[widget]]\ntype = "feed"\ntopic = "list:shared"\n\n[[widget]]\ntype = "presence"\n');
  const env = { PULSEBOARD_ALLOWED_ORIGINS: app.url, PULSEBOARD_RECONNECT_SPREAD: "3" };
  let server: Server = await startServer({ port, dataDir, boardsDir, env });
  const made = await fetch(`${server.url}/api/v1/keys`, {
    method: "POST",
    headers: { "content-type": "application/json", ...server.auth },
    body: JSON.stringify({ name: "list editor", scopes: ["publish:list:*"] }),
  });
  const { secret } = await made.json();

  const writer = await (await browser.newContext()).newPage();
  const guest = await (await browser.newContext()).newPage();
  await writer.goto(`${app.url}/?server=${server.url}&token=${secret}`);
  await guest.goto(`${app.url}/?server=${server.url}`);
  for (const page of [writer, guest]) {
    await expect(page.getByTestId("connection")).toHaveText("open · websocket");
    await expect(page.getByTestId("presence")).toContainText("2 here");
  }

  // An add shows at once where it was made (pending until the server's event), and arrives
  // in the other browser.
  await writer.getByLabel("New item").fill("milk");
  await writer.getByRole("button", { name: "Add" }).click();
  await expect(writer.getByTestId("item")).toHaveCount(1, { timeout: 500 });
  await expect(guest.getByTestId("item")).toHaveCount(1);
  expect(await texts(guest)).toEqual(["milk"]);
  await expect(writer.locator("li.pending")).toHaveCount(0);

  // The guest may not write: the rename shows, then is rolled back with the server's reason.
  await guest.getByLabel("Text").fill("eggs");
  await guest.getByRole("button", { name: "Rename" }).click();
  await expect(guest.getByTestId("refusal")).toContainText("Rename refused: may not publish to `list:shared`");
  await expect(guest.getByTestId("text")).toHaveText("milk");
  expect(await texts(writer)).toEqual(["milk"]);

  // A rename and a delete by the writer reach the guest.
  await writer.getByLabel("New item").fill("bread");
  await writer.getByRole("button", { name: "Add" }).click();
  await writer.getByLabel("Text").first().fill("oat milk");
  await writer.getByRole("button", { name: "Rename" }).first().click();
  await expect.poll(() => texts(guest)).toEqual(["oat milk", "bread"]);

  // The server restarts; while the pages wait to come back (each a random moment within
  // reconnect_spread), more is written: both pages resume with all of it, once.
  await server.stop();
  server = await startServer({ port, dataDir, boardsDir, env });
  const adds = ["x1", "x2", "x3"].map((text, i) => ({ op: "set", entity_id: `z-${i}`, payload: { text, at: Date.now() + i } }));
  await server.publish("list:shared", adds);
  await server.publish("list:shared", [{ op: "delete", entity_id: (await writer.getByTestId("item").last().getAttribute("data-id"))! }]);
  const truth = ["oat milk", "x1", "x2", "x3"];
  for (const page of [writer, guest]) {
    await expect.poll(() => texts(page), { timeout: 15_000 }).toEqual(truth);
    await expect(page.getByTestId("connection")).toHaveText("open · websocket");
  }
  // And the list goes on being shared after the restart.
  await writer.getByLabel("New item").fill("after");
  await writer.getByRole("button", { name: "Add" }).click();
  await expect.poll(() => texts(guest)).toEqual([...truth, "after"]);

  await server.stop();
  app.close();
});
