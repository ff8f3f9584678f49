// Every widget type, each on a fixture topic of its own: it renders from the topic's data and
// follows the next change without a reload.
import { test, expect } from "@playwright/test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { boardsCopy, startServer } from "./server";

const FIXTURE = `
title = "Fixture"
columns = 3

[[widget]]
type = "number"
topic = "fx:numbers"
entity = "n"
title = "N"
unit = "ms"

[[widget]]
type = "number"
topic = "fx:numbers"
entity = "w"
title = "W"
delta = "1m"

[[widget]]
type = "sparkline"
topic = "fx:series"
entity = "s"
title = "S"
points = 5

[[widget]]
type = "leaderboard"
topic = "fx:ranks"
title = "Ranks"
limit = 3

[[widget]]
type = "feed"
topic = "fx:feed"
title = "Feed"
rows = 3

[[widget]]
type = "gauge"
topic = "fx:numbers"
entity = "g"
title = "G"
max = 10
decimals = 1

[[widget]]
type = "status"
topic = "fx:status"
title = "Status"

[[widget]]
type = "text"
title = "Note"
markdown = "Hello **fixture** <script>window.pwned = 1</script> [bad](javascript:window.pwned=2)"

[[widget]]
type = "clock"
title = "Tokyo"
timezone = "Asia/Tokyo"

[[widget]]
type = "presence"
title = "Watching"
`;

test("every widget type renders from its fixture topic and updates live", async ({ page, browser }) => {
  const boardsDir = boardsCopy();
  writeFileSync(join(boardsDir, "fixture.toml"), FIXTURE);
  const server = await startServer({ boardsDir });
  try {
    await server.publish("fx:numbers", [
      { op: "set", entity_id: "n", payload: 1200 },
      { op: "set", entity_id: "g", payload: 2.5 },
      { op: "set", entity_id: "w", payload: 100 },
    ]);
    for (const value of [3, 5, 4]) {
      await server.publish("fx:series", [{ op: "append", entity_id: "s", value }]);
    }
    await server.publish("fx:ranks", [
      { op: "set", entity_id: "a", payload: { name: "Ann", score: 3 } },
      { op: "set", entity_id: "b", payload: { name: "Bob", score: 2 } },
    ]);
    // An item that says when it happened; the page's clock (faked below) is a minute on.
    const first = { kind: "deploy", text: "First", at: Date.parse("2026-01-01T03:03:00Z") };
    await server.publish("fx:feed", [{ op: "push", payload: first }]);
    await server.publish("fx:status", [{ op: "set", entity_id: "db", payload: "up" }]);

    // 2026-01-01 03:04 UTC is 12:04 in Tokyo.
    await page.clock.install({ time: new Date("2026-01-01T03:04:00Z") });
    await page.goto(`${server.url}/b/fixture`);
    await expect(page.locator(".connection")).toHaveAttribute("data-status", "live");

    const number = page.locator('.counter[data-entity="n"] .counter-value');
    const sparkline = page.locator(".sparkline");
    const gauge = page.locator(".gauge");
    const clock = page.locator(".clock");
    await expect(number).toHaveText("1,200 ms");
    await expect(sparkline.locator(".sparkline-value")).toHaveText("4");
    await expect(sparkline.locator(".sparkline-value")).toHaveAttribute("data-points", "3");
    const line = await sparkline.locator(".sparkline-line").getAttribute("d");
    await expect(page.locator('.leaderboard-row[data-key="a"] .rank')).toHaveText("1");
    await expect(page.locator('.leaderboard-row[data-key="b"] .name')).toHaveText("Bob");
    await expect(page.locator(".feed-text")).toHaveText(["First"]);
    await expect(page.locator(".feed-age")).toHaveText(["1 min ago"]);
    await expect(gauge.locator(".gauge-value")).toHaveText("2.5");
    await expect(page.locator('.status-item[data-key="db"]')).toHaveAttribute("data-level", "ok");
    await expect(page.locator('.status-item[data-key="db"]')).not.toHaveClass(/changed/);
    const text = page.locator(".text-body");
    await expect(text.locator("strong")).toHaveText("fixture");
    // Raw HTML is shown as text and never runs; the script link is gone, its words kept.
    await expect(text).toContainText("<script>window.pwned = 1</script>");
    await expect(text.locator("script, a")).toHaveCount(0);
    await expect(text).toContainText("bad");
    await expect(clock.locator(".clock-time")).toHaveText(/^12:04/);
    await expect(clock.locator(".clock-date")).toContainText("January 1");
    await expect(page.locator(".presence-widget .presence")).toContainText("1 person");

    // The next change to each topic shows on the open page.
    await page.evaluate(() => ((window as any).samePage = true));
    await server.publish("fx:numbers", [
      { op: "incr", entity_id: "n", by: 34 },
      { op: "set", entity_id: "g", payload: 7 },
    ]);
    await server.publish("fx:series", [{ op: "append", entity_id: "s", value: 9 }]);
    await server.publish("fx:ranks", [{ op: "incr", entity_id: "b", field: "score", by: 5 }]);
    await server.publish("fx:feed", [{ op: "push", payload: { kind: "order", text: "Second" } }]);
    await server.publish("fx:status", [{ op: "set", entity_id: "db", payload: "down" }]);
    await page.clock.runFor(60_000);
    // A minute after the page first saw W at 100, it is 130: its arrow is the minute's change.
    await page.clock.runFor(1_000);
    await server.publish("fx:numbers", [{ op: "set", entity_id: "w", payload: 130 }]);
    await expect(page.locator('.counter[data-entity="w"] .delta')).toHaveText("▲30 in 1 min");
    const second = await browser.newPage();
    await second.goto(`${server.url}/b/fixture`);

    await expect(number).toHaveText("1,234 ms");
    await expect(sparkline.locator(".sparkline-value")).toHaveText("9");
    await expect(sparkline.locator(".sparkline-value")).toHaveAttribute("data-points", "4");
    expect(await sparkline.locator(".sparkline-line").getAttribute("d")).not.toBe(line);
    await expect(page.locator('.leaderboard-row[data-key="b"] .rank')).toHaveText("1");
    await expect(page.locator('.leaderboard-row[data-key="a"] .rank')).toHaveText("2");
    await expect(page.locator(".feed-text")).toHaveCount(2);
    await expect(page.locator(".feed-text", { hasText: "Second" })).toBeVisible();
    // Relative times stay current: the first item is a minute older now.
    await expect(page.locator(".feed-item", { hasText: "First" }).locator(".feed-age")).toHaveText("2 min ago");
    await expect(gauge.locator(".gauge-value")).toHaveText("7.0");
    await expect(page.locator('.status-item[data-key="db"]')).toHaveAttribute("data-level", "critical");
    // The light that changed pulses; it did not on the first drawing.
    await expect(page.locator('.status-item[data-key="db"]')).toHaveClass(/changed/);
    await expect(clock.locator(".clock-time")).toHaveText(/^12:05/);
    await expect(page.locator(".presence-widget .presence")).toContainText("2 people");
    expect(await page.evaluate(() => (window as any).samePage)).toBe(true);
    expect(await page.evaluate(() => (window as any).pwned)).toBeUndefined();
    await second.close();
  } finally {
    await server.stop();
  }
});
