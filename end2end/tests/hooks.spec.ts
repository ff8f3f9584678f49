// Alerts from a real Alertmanager on boards/examples/alerts.toml, in a real Chromium: a
// fired alert arrives (its light pulses, its feed item enters) and leaves when resolved.
import { test, expect } from "@playwright/test";
import { copyFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { boardsCopy, startAlertmanager, startServer, type Alertmanager, type Server } from "./server";

const SECRET = "a-secret-for-the-browser-test";

test("an alert fired through a real Alertmanager arrives on the alerts board and leaves when resolved", async ({
  page,
}) => {
  const sources = mkdtempSync(join(tmpdir(), "pulseboard-hooks-"));
  writeFileSync(
    join(sources, "hooks.toml"),
    `[[hook]]\nname = "alerts"\ntype = "alertmanager"\nsecret = "\${HOOK_SECRET}"\n`,
  );
  const boards = boardsCopy();
  copyFileSync(join(__dirname, "..", "..", "boards", "examples", "alerts.toml"), join(boards, "alerts.toml"));
  let server: Server | undefined;
  let alertmanager: Alertmanager | undefined;
  try {
    server = await startServer({ boardsDir: boards, env: { PULSEBOARD_SOURCES: sources, HOOK_SECRET: SECRET } });
    alertmanager = await startAlertmanager(`${server.url}/api/v1/hooks/alerts`, SECRET);
    await page.goto(`${server.url}/b/alerts`);
    await expect(page.locator(".connection")).toHaveAttribute("data-status", "live");

    const labels = { alertname: "HighLatency", instance: "web-1", severity: "critical" };
    await alertmanager.alert(labels, "p95 over 2 s", true);
    const light = page.locator(".status-item", { hasText: "HighLatency on web-1" });
    // The pulse lasts about two seconds: looked for every 50 ms from the start, rather than
    // after a wait for the light whose polls grow to a second apart (once, in CI, the pulse
    // was over by the time the class was looked at).
    const lit = () =>
      page.evaluate(() => {
        const item = [...document.querySelectorAll<HTMLElement>(".status-item")].find((e) =>
          e.textContent?.includes("HighLatency on web-1"),
        );
        return item ? `${item.dataset.level} ${item.className}` : "";
      });
    await expect.poll(lit, { timeout: 15_000, intervals: [50] }).toMatch(/^critical .*\bchanged\b/);
    await expect(light).toHaveAttribute("data-level", "critical");
    const fired = page.locator(".feed-item", { hasText: "HighLatency on web-1 firing: p95 over 2 s" });
    await expect(fired).toBeVisible();

    await alertmanager.alert(labels, "p95 over 2 s", false);
    await expect(light).toHaveCount(0, { timeout: 15_000 });
    await expect(page.locator(".feed-item", { hasText: "HighLatency on web-1 resolved" })).toBeVisible();
  } finally {
    await alertmanager?.stop();
    await server?.stop();
  }
});
