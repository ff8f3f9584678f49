// A board fed only by a pull source: a real prometheus scrapes the server under test, a
// source file turns its answers into topics, and a real Chromium shows them live, then dims
// them with the reason when prometheus goes away.
import { test, expect } from "@playwright/test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { boardsCopy, freePort, startPrometheus, startServer, type Prometheus, type Server } from "./server";

test("a board fed by a prometheus source shows live numbers and a status grid, and dims with the reason when prometheus stops", async ({
  page,
}) => {
  const port = await freePort();
  const sources = mkdtempSync(join(tmpdir(), "pulseboard-sources-"));
  writeFileSync(
    join(sources, "prometheus.toml"),
    `[[source]]
name = "hosts"
type = "prometheus"
url = "http://127.0.0.1:${port}"
query = "up"
entity = "{instance}"
topic = "status:hosts"
every = "1s"

[[source]]
name = "connections"
type = "prometheus"
url = "http://127.0.0.1:${port}"
query = "sum(pulseboard_connections)"
entity = "open"
topic = "metric:prometheus"
every = "1s"
`,
  );
  const boards = boardsCopy();
  writeFileSync(
    join(boards, "prometheus.toml"),
    `title = "Seen by Prometheus"
[[widget]]
type = "status"
topic = "status:hosts"
title = "Hosts"
field = "value"
thresholds = [{ at = 0, level = "critical" }, { at = 1, level = "ok" }]

[[widget]]
type = "number"
topic = "metric:prometheus"
entity = "open"
title = "Connections"
`,
  );
  let server: Server | undefined;
  let prometheus: Prometheus | undefined;
  try {
    server = await startServer({ boardsDir: boards, env: { PULSEBOARD_SOURCES: sources } });
    const target = new URL(server.url).host;
    prometheus = await startPrometheus(port, [target]);
    await page.goto(`${server.url}/b/prometheus`);
    await expect(page.locator(".connection")).toHaveAttribute("data-status", "live");

    // The server as a host in the grid, up.
    const host = page.locator(`.status-item[data-key="${target}"]`);
    await expect(host).toHaveAttribute("data-level", "ok", { timeout: 20_000 });
    // This page's own connection, as Prometheus scraped it: at least one.
    const open = page.locator('.counter[data-entity="open"] .counter-value');
    await expect(open).toHaveAttribute("data-value", /^[1-9]/, { timeout: 20_000 });

    await prometheus.stop();
    prometheus = undefined;
    const cells = page.locator(".cell.stale");
    await expect(cells).toHaveCount(2, { timeout: 10_000 });
    await expect(page.locator(".stale-badge").first()).toContainText("Not updating: prometheus cannot be reached");
    // What was there stays there.
    await expect(host).toHaveAttribute("data-level", "ok");
  } finally {
    await prometheus?.stop();
    await server?.stop();
  }
});
