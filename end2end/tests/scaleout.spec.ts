// Several instances on one Redis, in a real Chromium: a board open on two of them follows a
// publish made to a third, and each page counts both people.
import { test, expect, type Page } from "@playwright/test";
import { startRedis, startServer, type Server } from "./server";

async function openBoard(page: Page, server: Server) {
  await page.goto(server.boardUrl);
  await expect(page.locator(".connection")).toHaveAttribute("data-status", "live");
}

test("a board open on instances A and B updates live from a publish to C, and both count 2 people", async ({
  browser,
}) => {
  const redis = await startRedis();
  const env = { PULSEBOARD_REDIS_URL: redis.url };
  const servers: Server[] = [];
  try {
    for (let n = 0; n < 3; n++) servers.push(await startServer({ env }));
    const [a, b, c] = servers;
    const onA = await browser.newPage();
    const onB = await browser.newPage();
    await openBoard(onA, a);
    await openBoard(onB, b);
    for (const page of [onA, onB]) {
      await expect(page.locator(".board-header .presence")).toHaveAttribute("data-people", "2");
      await expect(page.locator(".board-header .presence-count")).toHaveText("2 people");
    }
    await c.publish("metric:kpis", [{ op: "set", entity_id: "signups", payload: 4242 }]);
    for (const page of [onA, onB]) {
      const signups = page.locator('.counter[data-entity="signups"] .counter-value');
      await expect(signups).toHaveAttribute("data-value", "4242");
    }
    await onA.close();
    await onB.close();
  } finally {
    for (const server of servers) await server.stop();
    await redis.stop();
  }
});

test("while Redis is down a board keeps its last state, marked as not updating, and catches up after", async ({
  page,
}) => {
  let redis = await startRedis();
  const env = { PULSEBOARD_REDIS_URL: redis.url };
  const servers: Server[] = [];
  try {
    for (let n = 0; n < 2; n++) servers.push(await startServer({ env }));
    const [a, b] = servers;
    await a.publish("metric:kpis", [{ op: "set", entity_id: "signups", payload: 10 }]);
    await openBoard(page, a);
    const signups = page.locator('.counter[data-entity="signups"] .counter-value');
    await expect(signups).toHaveAttribute("data-value", "10");

    await redis.stop();
    await expect(page.locator(".board-stale")).toBeVisible();
    await expect(page.locator("main.board")).toHaveClass(/\bstale\b/);
    await expect(signups).toHaveAttribute("data-value", "10");
    await expect(page.locator(".connection")).toHaveAttribute("data-status", "live");

    redis = await startRedis({ port: redis.port, dir: redis.dir });
    await expect(page.locator(".board-stale")).toHaveCount(0);
    await expect(page.locator("main.board")).not.toHaveClass(/\bstale\b/);
    await b.publish("metric:kpis", [{ op: "set", entity_id: "signups", payload: 11 }]);
    await expect(signups).toHaveAttribute("data-value", "11");
  } finally {
    for (const server of servers) await server.stop();
    await redis.stop();
  }
});
