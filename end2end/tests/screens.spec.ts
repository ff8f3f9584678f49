// A board on a wall screen: kiosk mode, light and dark themes (with their contrast checked and
// their screenshots saved for the README), playlists, the "reload every screen" command, and
// polite announcements for screen readers.
import { test, expect, type Page } from "@playwright/test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { boardsCopy, startServer, type Server } from "./server";

/** Data that puts every colour the board has on screen: levels, deltas, every feed kind. */
async function seedEveryColour(server: Server) {
  await server.publish("metric:kpis", [
    { op: "set", entity_id: "signups", payload: 1280 },
    { op: "set", entity_id: "orders", payload: 34_200 },
    { op: "set", entity_id: "errors", payload: 12 },
  ]);
  await server.publish("metric:kpis", [
    { op: "incr", entity_id: "signups", by: 4 },
    { op: "incr", entity_id: "orders", by: -10 },
    { op: "set", entity_id: "errors", payload: 55 },
  ]);
  await server.publish("metric:system", [{ op: "set", entity_id: "cpu", payload: 81.5 }]);
  for (const value of [120, 135, 128, 150, 142, 160, 151, 149, 170, 158]) {
    await server.publish("metric:system", [{ op: "append", entity_id: "latency", value }]);
  }
  await server.publish("status:services", [
    { op: "set", entity_id: "api", payload: { name: "api", state: "up" } },
    { op: "set", entity_id: "auth", payload: { name: "auth", state: "degraded" } },
    { op: "set", entity_id: "billing", payload: { name: "billing", state: "down" } },
    { op: "set", entity_id: "search", payload: { name: "search", state: "pending" } },
  ]);
  const teams = ["Aurora", "Borealis", "Cirrus", "Dune", "Ember"];
  await server.publish(
    "board:leaders",
    teams.map((name, i) => ({ op: "set", entity_id: name.toLowerCase(), payload: { name, score: 900 - 70 * i } })),
  );
  await server.publish("board:leaders", [{ op: "incr", entity_id: "dune", field: "score", by: 300 }]);
  const items = [
    { kind: "signup", text: "New signup from Lisbon" },
    { kind: "order", text: "Order #48213 from Osaka" },
    { kind: "deploy", text: "Deployed api v1.14.2" },
  ];
  for (const payload of [...items, ...items]) {
    await server.publish("feed:activity", [{ op: "push", payload, max: 8 }]);
  }
}

async function openDemo(page: Page, server: Server, query = "") {
  await page.goto(`${server.boardUrl}${query}`);
  await expect(page.locator(".connection")).toHaveAttribute("data-status", "live");
  await expect(page.locator(".feed-item")).toHaveCount(6);
}

/** Whether the page can scroll in either direction. */
function scrolls(page: Page) {
  return page.evaluate(() => {
    const root = document.documentElement;
    return root.scrollHeight > innerHeight || root.scrollWidth > innerWidth;
  });
}

for (const [width, height] of [
  [1920, 1080],
  [1280, 720],
]) {
  test(`kiosk mode fits the whole board on a ${width}×${height} screen`, async ({ page }) => {
    const server = await startServer();
    try {
      await seedEveryColour(server);
      await page.setViewportSize({ width, height });
      // Without kiosk the demo board is taller than a TV.
      await openDemo(page, server);
      expect(await scrolls(page)).toBe(true);

      await openDemo(page, server, "?kiosk=1");
      expect(await scrolls(page)).toBe(false);
      // No chrome, no cursor; the connection badge only when something is wrong.
      await expect(page.locator(".board-header h1")).toBeHidden();
      await expect(page.locator(".connection")).toBeHidden();
      expect(await page.locator(".board").evaluate((e) => getComputedStyle(e).cursor)).toBe("none");
      // Every widget is on screen, inside the viewport.
      for (const cell of await page.locator(".cell").all()) {
        const box = (await cell.boundingBox())!;
        expect(box.y + box.height).toBeLessThanOrEqual(height);
        expect(box.x + box.width).toBeLessThanOrEqual(width);
      }
    } finally {
      await server.stop();
    }
  });
}

const BACKGROUND = { light: "rgb(238, 241, 246)", dark: "rgb(11, 15, 23)" };
const pageBackground = (page: Page) =>
  page.evaluate(() => getComputedStyle(document.body).backgroundColor);

test("the theme follows the system, switches with it, and the address overrides it", async ({ page }) => {
  const server = await startServer();
  try {
    await seedEveryColour(server);
    await page.emulateMedia({ colorScheme: "light" });
    await openDemo(page, server);
    expect(await pageBackground(page)).toBe(BACKGROUND.light);
    // The system switching to dark switches an open board, without a reload.
    await page.emulateMedia({ colorScheme: "dark" });
    expect(await pageBackground(page)).toBe(BACKGROUND.dark);

    // The address wins over the system, both ways.
    await openDemo(page, server, "?theme=light");
    expect(await pageBackground(page)).toBe(BACKGROUND.light);
    await page.emulateMedia({ colorScheme: "light" });
    await openDemo(page, server, "?theme=dark");
    expect(await pageBackground(page)).toBe(BACKGROUND.dark);
  } finally {
    await server.stop();
  }
});

/**
 * Every visible piece of text on the board whose contrast with what is behind it is below
 * WCAG AA: 4.5:1, or 3:1 for large text (24px, or 18.66px bold).
 */
function lowContrast(page: Page) {
  return page.evaluate(() => {
    type Rgba = [number, number, number, number];
    const canvas = document.createElement("canvas").getContext("2d")!;
    // The canvas normalises any CSS colour (rgb(), color(srgb …), color-mix results) to rgba.
    const parse = (css: string): Rgba => {
      canvas.clearRect(0, 0, 1, 1);
      canvas.fillStyle = css;
      canvas.fillRect(0, 0, 1, 1);
      const [r, g, b, a] = canvas.getImageData(0, 0, 1, 1).data;
      return [r, g, b, a / 255];
    };
    const over = (top: Rgba, under: Rgba): Rgba => {
      const a = top[3] + under[3] * (1 - top[3]);
      const mix = (i: number) => (top[i] * top[3] + under[i] * under[3] * (1 - top[3])) / (a || 1);
      return [mix(0), mix(1), mix(2), a];
    };
    const behind = (element: Element | null): Rgba => {
      if (!element) return [255, 255, 255, 1];
      const own = parse(getComputedStyle(element).backgroundColor);
      return own[3] >= 1 ? own : over(own, behind(element.parentElement));
    };
    const luminance = ([r, g, b]: Rgba) => {
      const channel = (c: number) => {
        const s = c / 255;
        return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
      };
      return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
    };
    const failures: string[] = [];
    const walker = document.createTreeWalker(document.querySelector(".board")!, NodeFilter.SHOW_TEXT);
    const checked = new Set<Element>();
    while (walker.nextNode()) {
      const element = walker.currentNode.parentElement!;
      if (!walker.currentNode.textContent!.trim() || checked.has(element)) continue;
      checked.add(element);
      const style = getComputedStyle(element);
      const box = element.getBoundingClientRect();
      if (box.width === 0 || style.visibility === "hidden" || element.closest(".visually-hidden")) continue;
      const background = behind(element);
      const text = over(parse(style.color), background);
      const [light, dark] = [luminance(text), luminance(background)].sort((a, b) => b - a);
      const ratio = (light + 0.05) / (dark + 0.05);
      const size = parseFloat(style.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5)) {
        failures.push(`${element.className || element.tagName} "${element.textContent!.trim().slice(0, 30)}": ${ratio.toFixed(2)}`);
      }
    }
    return failures;
  });
}

for (const theme of ["light", "dark"] as const) {
  test(`the ${theme} theme meets WCAG AA contrast, and its screenshot is saved`, async ({ page }) => {
    const server = await startServer();
    try {
      await seedEveryColour(server);
      await page.setViewportSize({ width: 1600, height: 1000 });
      await openDemo(page, server, `?theme=${theme}`);
      await expect(page.locator('.counter[data-entity="errors"]')).toHaveAttribute("data-level", "critical");
      await expect(page.locator(".status-item")).toHaveCount(4);
      // Let the counters finish ticking and the feed settle before judging and capturing.
      await page.waitForTimeout(1_500);
      expect(await lowContrast(page)).toEqual([]);
      await page.screenshot({ path: `../docs/screenshots/board-${theme}.png`, fullPage: true });
    } finally {
      await server.stop();
    }
  });
}

test("a playlist moves on to the next board, keeping its options", async ({ page }) => {
  const boardsDir = boardsCopy();
  writeFileSync(join(boardsDir, "ops.toml"), 'title = "Ops"\n\n[[widget]]\ntype = "clock"\ntitle = "Here"\n');
  const server = await startServer({ boardsDir });
  try {
    await page.goto(`${server.boardUrl}?playlist=demo,ops&every=2s&theme=light`);
    await expect(page.locator(".board-header h1")).toHaveText("Demo");
    await expect(page.locator(".playlist-next")).toHaveText("Next: ops");
    await expect(page).toHaveURL(`${server.url}/b/ops?playlist=demo,ops&every=2s&theme=light`, { timeout: 10_000 });
    await expect(page.locator(".board-header h1")).toHaveText("Ops");
    await expect(page.locator(".board")).toHaveAttribute("data-theme", "light");
    // And round again.
    await expect(page).toHaveURL(/\/b\/demo\?playlist=/, { timeout: 10_000 });
  } finally {
    await server.stop();
  }
});

test("an operator reloads every open screen with one command", async ({ page, browser }) => {
  const server = await startServer();
  try {
    const other = await browser.newPage();
    await page.goto(server.boardUrl);
    await other.goto(server.boardUrl);
    for (const screen of [page, other]) {
      await expect(screen.locator(".connection")).toHaveAttribute("data-status", "live");
      await screen.evaluate(() => ((window as any).before = true));
    }
    const refused = await fetch(`${server.url}/api/v1/screens/reload`, {
      method: "POST",
      headers: { "content-type": "application/json", ...server.auth },
      body: JSON.stringify({ within_s: 9999 }),
    });
    expect(refused.status).toBe(422);
    expect((await refused.json()).code).toBe("invalid_request");

    const response = await fetch(`${server.url}/api/v1/screens/reload`, {
      method: "POST",
      headers: { "content-type": "application/json", ...server.auth },
      body: JSON.stringify({ within_s: 1 }),
    });
    expect(await response.json()).toEqual({ screens: 2, within_s: 1 });
    for (const screen of [page, other]) {
      // Mid-reload there is no page to ask: count that as not reloaded yet.
      const marked = () => screen.evaluate(() => (window as any).before ?? false).catch(() => true);
      await expect.poll(marked).toBe(false);
      await expect(screen.locator(".connection")).toHaveAttribute("data-status", "live");
    }
    await other.close();
  } finally {
    await server.stop();
  }
});

test("a figure crossing a threshold is announced politely, a plain tick is not", async ({ page }) => {
  const server = await startServer();
  try {
    await seedEveryColour(server);
    await openDemo(page, server);
    const announcer = page.locator('.board > [aria-live="polite"]');
    await expect(announcer).toHaveText("");
    await server.publish("metric:kpis", [{ op: "incr", entity_id: "signups", by: 1 }]);
    await server.publish("metric:kpis", [{ op: "set", entity_id: "errors", payload: 60 }]);
    await expect(page.locator('.counter[data-entity="errors"] .counter-value')).toHaveAttribute("data-value", "60");
    await expect(announcer).toHaveText("");

    await server.publish("metric:kpis", [{ op: "set", entity_id: "errors", payload: 25 }]);
    await expect(announcer).toHaveText("Errors: 25, warning");
    await server.publish("status:services", [
      { op: "set", entity_id: "billing", payload: { name: "billing", state: "up" } },
    ]);
    await expect(announcer).toHaveText("Services: billing is up");
  } finally {
    await server.stop();
  }
});
