// The demo board in a real Chromium against real servers: hydration, live updates, motion,
// presence, recovery from a server restart, and reduced motion.
import { test, expect, type Page } from "@playwright/test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { boardsCopy, startServer, type Server } from "./server";

const KPIS = "metric:kpis";
const LEADERS = "board:leaders";
const ACTIVITY = "feed:activity";

async function seed(server: Server) {
  await server.publish(KPIS, [
    { op: "set", entity_id: "signups", payload: 100 },
    { op: "set", entity_id: "orders", payload: 10 },
    { op: "set", entity_id: "errors", payload: 0 },
  ]);
  await server.publish(LEADERS, [
    { op: "set", entity_id: "a", payload: { name: "Alpha", score: 30 } },
    { op: "set", entity_id: "b", payload: { name: "Bravo", score: 20 } },
    { op: "set", entity_id: "c", payload: { name: "Charlie", score: 10 } },
  ]);
  for (let n = 1; n <= 8; n++) {
    await server.publish(ACTIVITY, [{ op: "push", payload: { kind: "deploy", text: `Deploy ${n}` }, max: 8 }]);
  }
}

/** A boards directory whose demo board calls its numbers stale after 2 s instead of 30 s. */
function quickToGoStale(): string {
  const boardsDir = boardsCopy();
  const file = join(boardsDir, "demo.toml");
  writeFileSync(file, readFileSync(file, "utf8").replaceAll('stale_after = "30s"', 'stale_after = "2s"'));
  return boardsDir;
}

async function openBoard(page: Page, server: Server) {
  await page.goto(server.boardUrl);
  await expect(page.locator(".connection")).toHaveAttribute("data-status", "live");
  await expect(page.locator('.counter[data-entity="signups"] .counter-value')).toBeVisible();
}

/**
 * Resolves once `predicate` holds on some animation frame; start it before the change. A
 * function, not a string: Playwright polls a string with eval, which the page's CSP forbids.
 */
function onSomeFrame(page: Page, predicate: () => boolean | undefined) {
  return page.waitForFunction(predicate, undefined, { polling: "raf", timeout: 10_000 });
}

test("the demo board renders skeletons, hydrates cleanly, and moves", async ({ page }) => {
  const server = await startServer({ demo: true });
  const problems: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") problems.push(`${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  try {
    const html = await (await fetch(server.boardUrl)).text();
    expect(html).toContain("skeleton");
    expect(html).toContain('data-status="connecting"');

    await openBoard(page, server);
    const signups = page.locator('.counter[data-entity="signups"] .counter-value');
    const before = await signups.textContent();
    await expect.poll(() => signups.textContent(), { timeout: 15_000 }).not.toBe(before);
    await expect(page.locator(".leaderboard-row")).toHaveCount(5);
    await expect(page.locator(".feed-item").first()).toBeVisible({ timeout: 15_000 });

    expect(problems).toEqual([]);
  } finally {
    await server.stop();
  }
});

test("the leaderboard reorders with a transform transition", async ({ page }) => {
  const server = await startServer();
  try {
    await seed(server);
    await openBoard(page, server);
    const charlie = page.locator('.leaderboard-row[data-key="c"]');
    await expect(charlie.locator(".rank")).toHaveText("3");

    const moving = onSomeFrame(page, () =>
      document
        .querySelector('.leaderboard-row[data-key="c"]')
        ?.getAnimations()
        .some((a) => (a as CSSTransition).transitionProperty === "transform" && a.playState === "running"),
    );
    await server.publish(LEADERS, [{ op: "incr", entity_id: "c", field: "score", by: 100 }]);
    await moving;
    await expect(charlie.locator(".rank")).toHaveText("1");
    await expect(charlie.locator(".rank-change.up")).toBeVisible();
    await expect(page.locator('.leaderboard-row[data-key="a"] .rank')).toHaveText("2");
  } finally {
    await server.stop();
  }
});

test("a new feed item enters with its animation and the oldest leaves", async ({ page }) => {
  const server = await startServer();
  try {
    await seed(server);
    await openBoard(page, server);
    await expect(page.locator(".feed-item")).toHaveCount(8);
    const oldest = page.locator(".feed-item", { hasText: "Deploy 1" });
    await expect(oldest).toBeVisible();

    const entering = onSomeFrame(page, () =>
      [...document.querySelectorAll(".feed-card.enter")].some(
        (card) =>
          card.textContent!.includes("Fresh") &&
          card.getAnimations().some((a) => (a as CSSAnimation).animationName === "feed-enter"),
      ),
    );
    const leaving = onSomeFrame(page, () =>
      [...document.querySelectorAll(".feed-item.leaving")].some((item) => item.textContent!.includes("Deploy 1")),
    );
    await server.publish(ACTIVITY, [{ op: "push", payload: { kind: "order", text: "Fresh order" }, max: 8 }]);
    await entering;
    await leaving;
    await expect(oldest).toHaveCount(0);
    await expect(page.locator(".feed-item")).toHaveCount(8);
    const top = page.locator('.feed-item[style*="--i: 0"]');
    await expect(top).toContainText("Fresh order");
  } finally {
    await server.stop();
  }
});

// The restarted server has an empty data dir, so its topics have a new epoch and the page
// must take a fresh snapshot rather than resume.
test("a restarted server is picked up without a reload, from a fresh snapshot", async ({ page }) => {
  const server = await startServer();
  let again: Server | undefined;
  try {
    await seed(server);
    await openBoard(page, server);
    const signups = page.locator('.counter[data-entity="signups"] .counter-value');
    await expect(signups).toHaveAttribute("data-value", "100");
    await page.evaluate(() => ((window as any).samePage = true));

    await server.stop();
    await expect(page.locator(".connection")).toHaveAttribute("data-status", "reconnecting");

    again = await startServer({ port: server.port, boardsDir: server.boardsDir });
    await again.publish(KPIS, [{ op: "set", entity_id: "signups", payload: 777 }]);
    await expect(page.locator(".connection")).toHaveAttribute("data-status", "live", { timeout: 45_000 });
    await expect(signups).toHaveAttribute("data-value", "777");
    await expect(signups).toHaveText("777");
    // The old server's leaderboard is gone: the new epoch brought a fresh, empty snapshot.
    await expect(page.locator(".leaderboard-row")).toHaveCount(0);
    expect(await page.evaluate(() => (window as any).samePage)).toBe(true);
  } finally {
    await again?.stop();
  }
});

test("with reduced motion, nothing animates", async ({ page }) => {
  await page.emulateMedia({ reducedMotion: "reduce" });
  const server = await startServer();
  try {
    await seed(server);
    await openBoard(page, server);
    await page.evaluate(() => {
      const w = window as any;
      w.mostAnimations = 0;
      const sample = () => {
        w.mostAnimations = Math.max(w.mostAnimations, document.getAnimations().length);
        requestAnimationFrame(sample);
      };
      requestAnimationFrame(sample);
    });
    await server.publish(LEADERS, [{ op: "incr", entity_id: "c", field: "score", by: 100 }]);
    await server.publish(ACTIVITY, [{ op: "push", payload: { kind: "order", text: "Calm order" }, max: 8 }]);
    await server.publish(KPIS, [{ op: "incr", entity_id: "signups", by: 900 }]);
    await expect(page.locator('.leaderboard-row[data-key="c"] .rank')).toHaveText("1");
    await expect(page.locator(".feed-item", { hasText: "Calm order" })).toBeVisible();
    // The counter jumps straight to its value instead of counting up.
    await expect(page.locator('.counter[data-entity="signups"] .counter-value')).toHaveText("1,000");
    await page.waitForTimeout(1_000);
    expect(await page.evaluate(() => (window as any).mostAnimations)).toBe(0);
  } finally {
    await server.stop();
  }
});

test("editing the board file changes the open page without a reload", async ({ page }) => {
  const server = await startServer();
  try {
    await seed(server);
    await openBoard(page, server);
    await page.evaluate(() => ((window as any).samePage = true));
    await expect(page.locator(".board-header h1")).toHaveText("Demo");

    // A new title, and the errors counter replaced by a feed of a topic the page did not read.
    const file = join(server.boardsDir, "demo.toml");
    const edited = readFileSync(file, "utf8")
      .replace('title = "Demo"', 'title = "Ops wall"')
      .replace('entity = "errors"\ntitle = "Errors"', 'entity = "latency"\ntitle = "Latency"');
    writeFileSync(file, edited);
    await server.publish(KPIS, [{ op: "set", entity_id: "latency", payload: 42 }]);

    await expect(page.locator(".board-header h1")).toHaveText("Ops wall");
    await expect(page.locator('.counter[data-entity="latency"] .counter-value')).toHaveText("42");
    await expect(page.locator('.counter[data-entity="errors"]')).toHaveCount(0);
    // Widgets the edit did not touch keep their state.
    await expect(page.locator(".leaderboard-row")).toHaveCount(3);
    expect(await page.evaluate(() => (window as any).samePage)).toBe(true);
  } finally {
    await server.stop();
  }
});

test("a broken file holds a public board private until fixed: a share link keeps it under a banner, a guest waits", async ({
  page,
  context,
}) => {
  const server = await startServer();
  try {
    await seed(server);
    // A screen opened with a link that may read the board, and an anonymous one.
    await page.goto(`${server.boardUrl}?token=${server.key}`);
    await expect(page.locator(".connection")).toHaveAttribute("data-status", "live");
    const guest = await context.newPage();
    await openBoard(guest, server);
    const file = join(server.boardsDir, "demo.toml");
    const good = readFileSync(file, "utf8");
    // It might be the edit that made the board private: nobody can tell, so it fails closed.
    writeFileSync(file, good.replace('type = "feed"', 'type = "fed"'));

    const banner = page.locator(".board-problem");
    await expect(banner).toBeVisible();
    await expect(banner).toHaveAttribute("role", "alert");
    await expect(banner).toContainText("demo.toml:");
    await expect(banner).toContainText("fed");
    // The last good board stays up, live, for the share link.
    await expect(page.locator(".feed-item")).toHaveCount(8);
    await server.publish(KPIS, [{ op: "set", entity_id: "orders", payload: 11 }]);
    await expect(page.locator('.counter[data-entity="orders"] .counter-value')).toHaveAttribute("data-value", "11");

    // The guest gets nothing of it: its connection is closed and keeps trying.
    await expect(guest.locator(".connection")).not.toHaveAttribute("data-status", "live");
    await expect(guest.locator(".board-problem")).toHaveCount(0);
    await expect(guest.locator('.counter[data-entity="orders"] .counter-value')).not.toHaveAttribute("data-value", "11");

    // A page opened now: the share link gets the last good board and the banner; a guest
    // gets a page that tries again by itself.
    const html = await (await fetch(`${server.boardUrl}?token=${server.key}`)).text();
    expect(html).toContain("board-problem");
    expect(html).toContain('data-entity="orders"');
    const held = await fetch(server.boardUrl);
    expect(held.status).toBe(503);
    expect(await held.text()).toContain("being fixed");

    writeFileSync(file, good);
    await expect(banner).toHaveCount(0);
    // The guest is let in again by itself, and catches up.
    await expect(guest.locator(".connection")).toHaveAttribute("data-status", "live", { timeout: 20_000 });
    await expect(guest.locator('.counter[data-entity="orders"] .counter-value')).toHaveAttribute("data-value", "11");
  } finally {
    await server.stop();
  }
});

test("the board list links every board, and an unknown board is a 404", async ({ page }) => {
  const server = await startServer();
  try {
    // With one board, `/` opens it; with two, it lists them.
    await page.goto(server.url);
    await expect(page).toHaveURL(server.boardUrl);
    writeFileSync(join(server.boardsDir, "ops.toml"), 'title = "Ops"\nprivate = true\n[[widget]]\ntype = "clock"\n');
    // The private one shows only to who may read it (a visitor still goes straight to the
    // demo); an admin's link sees both, once the file is read (within half a second).
    await expect(async () => {
      await page.goto(`${server.url}/?token=${server.key}`);
      await expect(page.locator(".board-list li")).toHaveCount(2, { timeout: 500 });
    }).toPass();
    await expect(page.locator('li[data-board="ops"] .board-list-private')).toHaveText("private");
    await expect(page.locator('li[data-board="demo"] .board-list-facts')).toContainText(/\d+ (person|people) here/);
    await page.locator(".board-list a", { hasText: "Demo" }).click();
    await expect(page).toHaveURL(server.boardUrl);
    await expect(page.locator(".connection")).toHaveAttribute("data-status", "live");

    const missing = await fetch(`${server.url}/b/nope`);
    expect(missing.status).toBe(404);
    expect(await missing.text()).toContain("No board named");
  } finally {
    await server.stop();
  }
});

test("a number takes its threshold level, shown in colour and in words", async ({ page }) => {
  const server = await startServer();
  try {
    await seed(server);
    await openBoard(page, server);
    const errors = page.locator('.counter[data-entity="errors"]');
    await expect(errors).toHaveAttribute("data-level", "ok");
    await expect(errors.locator(".level-badge")).toHaveCount(0);

    await server.publish(KPIS, [{ op: "set", entity_id: "errors", payload: 60 }]);
    await expect(errors).toHaveAttribute("data-level", "critical");
    await expect(errors.locator(".level-badge")).toHaveText("critical");
    // The demo board says a rise in errors is bad news: the arrow is red, not green.
    await expect(errors.locator(".delta.up.bad")).toBeVisible();
    const red = await errors.locator(".counter-value").evaluate((e) => getComputedStyle(e).color);
    expect(red).toBe("rgb(255, 107, 107)");
  } finally {
    await server.stop();
  }
});

test("a widget whose topic goes quiet is marked stale, and clears when it resumes", async ({ page }) => {
  const server = await startServer({ boardsDir: quickToGoStale() });
  try {
    await seed(server);
    await openBoard(page, server);
    const signups = page.locator(".cell", { has: page.locator('.counter[data-entity="signups"]') });
    const leaders = page.locator(".cell", { has: page.locator(".leaderboard") });
    await expect(signups).not.toHaveClass(/stale/);

    await expect(signups).toHaveClass(/stale/, { timeout: 10_000 });
    await expect(signups.locator(".stale-badge")).toContainText("No update for");
    // Widgets without a stale_after never go stale.
    await expect(leaders).not.toHaveClass(/stale/);

    await server.publish(KPIS, [{ op: "incr", entity_id: "signups", by: 1 }]);
    await expect(signups).not.toHaveClass(/stale/);
    await expect(signups.locator(".stale-badge")).toHaveCount(0);
  } finally {
    await server.stop();
  }
});

test("a board opened on a topic that went quiet before it loaded shows it stale on its first paint", async ({ page }) => {
  const server = await startServer({ boardsDir: quickToGoStale() });
  try {
    await seed(server);
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    // The same topic, another entity: only what each widget shows counts for it.
    await server.publish(KPIS, [{ op: "incr", entity_id: "orders", by: 1 }]);
    // On the first frame that shows the signups figure, its cell is already marked.
    await page.addInitScript(() => {
      const w = window as any;
      const watch = () => {
        const value = document.querySelector('.counter[data-entity="signups"] .counter-value');
        if (value) {
          w.firstPaint = {
            signups: value.closest(".cell")!.classList.contains("stale"),
            orders: document.querySelector('.counter[data-entity="orders"]')!.closest(".cell")!.classList.contains("stale"),
          };
        } else {
          requestAnimationFrame(watch);
        }
      };
      requestAnimationFrame(watch);
    });
    await page.goto(server.boardUrl);
    await page.waitForFunction(() => (window as any).firstPaint !== undefined);
    expect(await page.evaluate(() => (window as any).firstPaint)).toEqual({ signups: true, orders: false });
    const signups = page.locator(".cell", { has: page.locator('.counter[data-entity="signups"]') });
    await expect(signups.locator(".stale-badge")).toContainText(/No update for [3-9] s/);
  } finally {
    await server.stop();
  }
});

test("the gauge turns to its value and the status grid lights each service", async ({ page }) => {
  const server = await startServer();
  try {
    await seed(server);
    await server.publish("metric:system", [{ op: "set", entity_id: "cpu", payload: 50 }]);
    await server.publish("status:services", [
      { op: "set", entity_id: "api", payload: { name: "API", state: "up" } },
      { op: "set", entity_id: "db", payload: { name: "Database", state: "down" } },
    ]);
    await openBoard(page, server);

    const gauge = page.locator(".gauge");
    await expect(gauge.locator(".gauge-value")).toHaveText("50.0%");
    await expect(gauge).toHaveAttribute("data-level", "ok");
    await expect(gauge.locator(".gauge-needle")).toHaveAttribute("style", /rotate\(0\.00deg\)/);
    await server.publish("metric:system", [{ op: "set", entity_id: "cpu", payload: 95 }]);
    await expect(gauge.locator(".gauge-value")).toHaveText("95.0%");
    await expect(gauge).toHaveAttribute("data-level", "critical");
    await expect(gauge.locator(".gauge-needle")).toHaveAttribute("style", /rotate\(81\.00deg\)/);

    const db = page.locator('.status-item[data-key="db"]');
    await expect(page.locator(".status-item")).toHaveCount(2);
    await expect(db).toHaveAttribute("data-level", "critical");
    await expect(db.locator(".status-name")).toHaveText("Database");
    await expect(db.locator(".status-state")).toHaveText("down");
    await server.publish("status:services", [
      { op: "set", entity_id: "db", payload: { name: "Database", state: "degraded" } },
    ]);
    await expect(db).toHaveAttribute("data-level", "warn");
    await expect(db.locator(".status-state")).toHaveText("degraded");
    await expect(page.locator('.status-item[data-key="api"]')).toHaveAttribute("data-level", "ok");
  } finally {
    await server.stop();
  }
});
