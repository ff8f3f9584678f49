// Network failures a wall screen lives through, in a real Chromium against a real server.
import { test, expect, type Page, type WebSocket } from "@playwright/test";
import { startProxy } from "./proxy";
import { startServer } from "./server";

/** A heartbeat every second and a 3 s idle timeout: a lost connection is noticed in seconds. */
const QUICK_HEARTBEAT = { PULSEBOARD_HEARTBEAT: "1", PULSEBOARD_IDLE_TIMEOUT: "3" };

/** Every frame each of the page's sockets receives, parsed, in order. */
function recordSockets(page: Page) {
  const sockets: object[][] = [];
  page.on("websocket", (socket: WebSocket) => {
    const frames: object[] = [];
    sockets.push(frames);
    socket.on("framereceived", ({ payload }) => frames.push(JSON.parse(String(payload))));
  });
  return sockets;
}

/** The offsets of a topic the page was given: a snapshot's, then each event's. */
function offsets(frames: any[], topic: string) {
  return frames
    .filter((f) => (f.type === "snapshot" || f.type === "event") && f.topic === topic)
    .map((f) => ({ type: f.type, offset: f.offset }));
}

test("a connection blackholed past the idle timeout is noticed and replaced, and resumes with no gap", async ({
  page,
}) => {
  const server = await startServer({ env: QUICK_HEARTBEAT });
  const proxy = await startProxy(server.url);
  try {
    await server.publish("metric:kpis", [{ op: "set", entity_id: "signups", payload: 100 }]);
    const sockets = recordSockets(page);
    await page.goto(`${proxy.url}/b/demo`);
    const status = page.locator(".connection");
    await expect(status).toHaveAttribute("data-status", "live");
    await expect(page.locator('.counter[data-entity="signups"] .counter-value')).toHaveAttribute("data-value", "100");
    await page.evaluate(() => ((window as any).samePage = true));
    // Every status the badge shows from here on: "reconnecting" may last less than a poll.
    await page.evaluate(() => {
      const badge = document.querySelector(".connection")!;
      const shown: string[] = ((window as any).statuses = []);
      new MutationObserver(() => shown.push(badge.getAttribute("data-status")!)).observe(badge, {
        attributes: true,
        attributeFilter: ["data-status"],
      });
    });

    proxy.blackhole();
    for (let n = 1; n <= 5; n++) {
      await server.publish("metric:kpis", [{ op: "incr", entity_id: "signups", by: 1 }]);
    }
    // Nothing reaches the page, and nothing says the connection is gone: the page notices
    // the silence itself, drops the connection and makes a new one.
    await expect.poll(() => page.evaluate(() => (window as any).statuses), { timeout: 10_000 }).toEqual([
      "reconnecting",
      "live",
    ]);
    await expect(page.locator('.counter[data-entity="signups"] .counter-value')).toHaveAttribute("data-value", "105");
    expect(await page.evaluate(() => (window as any).samePage)).toBe(true);

    // By offset: the first socket's snapshot, then on the new socket exactly the five events
    // it missed (a resume, not a snapshot), none twice.
    expect(sockets).toHaveLength(2);
    const before = offsets(sockets[0], "metric:kpis");
    const after = offsets(sockets[1], "metric:kpis");
    expect(before).toHaveLength(1);
    expect(before[0].type).toBe("snapshot");
    const start = before[0].offset;
    expect(after).toEqual([1, 2, 3, 4, 5].map((n) => ({ type: "event", offset: start + n })));
    expect(sockets[1].some((f: any) => f.type === "resumed" && f.topic === "metric:kpis" && f.replayed === 5)).toBe(true);

    // The server dropped its end of the dead connection too (its idle timer closed it): the
    // page is still one person.
    await expect(page.locator(".board-header .presence")).toContainText("1 person", { timeout: 8_000 });
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/^pulseboard_idle_closed_total 1$/m);
  } finally {
    await proxy.close();
    await server.stop();
  }
});

// A backlog is caught up in one jump (the board "snaps": no motion for that frame). The
// jump is drawn with `.snap` on: the class is still there when the next frame starts, after
// the frame callbacks queued before it have run. What entered while the board was live must
// not play its entrance again when the jump ends.
test("a catch-up from a backlog snaps, and nothing that entered before it plays its entrance again", async ({
  page,
}) => {
  const server = await startServer({ env: QUICK_HEARTBEAT });
  const proxy = await startProxy(server.url);
  try {
    await page.goto(`${proxy.url}/b/demo`);
    await expect(page.locator(".connection")).toHaveAttribute("data-status", "live");
    // One item has to enter while the board is live. On a loaded machine the page can stall
    // past this test's 3 s idle timeout just after loading, and then the item arrives in a
    // catch-up without an entrance: publish another until one is seen entering.
    let live = "";
    let tries = 0;
    await expect(async () => {
      live = `Live order #${++tries}.`;
      await server.publish("feed:activity", [{ op: "push", payload: { kind: "order", text: live }, max: 8 }]);
      await expect(page.locator(".feed-card.enter", { hasText: live })).toHaveCount(1, { timeout: 2_000 });
    }).toPass({ timeout: 20_000 });
    // Its entrance (half a second) is over.
    await page.waitForTimeout(1_000);
    await page.evaluate(() => {
      const w = window as any;
      w.entrances = [];
      w.snapped = false;
      document.addEventListener("animationstart", (e) => w.entrances.push((e as AnimationEvent).animationName));
      const board = document.querySelector(".board")!;
      w.drawnSnapped = false;
      new MutationObserver(() => {
        if (!board.classList.contains("snap")) return;
        w.snapped = true;
        requestAnimationFrame(() => (w.drawnSnapped ||= board.classList.contains("snap")));
      }).observe(board, {
        attributes: true,
        attributeFilter: ["class"],
      });
    });

    proxy.blackhole();
    for (let n = 1; n <= 120; n++) {
      await server.publish("metric:kpis", [{ op: "incr", entity_id: "signups", by: 1 }]);
    }
    const signups = page.locator('.counter[data-entity="signups"] .counter-value');
    await expect(signups).toHaveAttribute("data-value", "120", { timeout: 15_000 });
    await page.waitForTimeout(500);
    expect(await page.evaluate(() => (window as any).snapped)).toBe(true);
    expect(await page.evaluate(() => (window as any).drawnSnapped), "the next frame drew the jump with .snap").toBe(true);
    const entrances: string[] = await page.evaluate(() => (window as any).entrances);
    expect(entrances.filter((name) => name === "feed-enter" || name === "fade-in")).toEqual([]);
    await expect(page.locator(".feed-card", { hasText: live })).toHaveCount(1);
  } finally {
    await proxy.close();
    await server.stop();
  }
});

test("where WebSocket is refused the board follows over SSE, then goes back to WebSocket when it can", async ({
  page,
}) => {
  const server = await startServer({ env: QUICK_HEARTBEAT });
  const proxy = await startProxy(server.url);
  proxy.refuseWebSocket = true;
  try {
    await server.publish("metric:kpis", [{ op: "set", entity_id: "signups", payload: 100 }]);
    const sockets = recordSockets(page);
    await page.goto(`${proxy.url}/b/demo`);
    const status = page.locator(".connection");
    const signups = page.locator('.counter[data-entity="signups"] .counter-value');
    await expect(status).toHaveAttribute("data-transport", "sse", { timeout: 15_000 });
    await expect(status).toHaveAttribute("data-status", "live");
    await expect(status).toContainText("SSE");
    await expect(signups).toHaveAttribute("data-value", "100");
    expect(sockets.every((frames) => frames.length === 0)).toBe(true);
    await page.evaluate(() => ((window as any).samePage = true));

    // Live over the event stream, board changes included.
    await server.publish("metric:kpis", [{ op: "incr", entity_id: "signups", by: 5 }]);
    await expect(signups).toHaveAttribute("data-value", "105");
    await expect(page.locator(".board-header .presence")).toContainText("1 person");

    // The network lets WebSocket through again: the page notices on its next try.
    proxy.refuseWebSocket = false;
    await expect(status).toHaveAttribute("data-transport", "websocket", { timeout: 10_000 });
    await expect(status).toHaveAttribute("data-status", "live");
    await server.publish("metric:kpis", [{ op: "incr", entity_id: "signups", by: 1 }]);
    await expect(signups).toHaveAttribute("data-value", "106");
    expect(await page.evaluate(() => (window as any).samePage)).toBe(true);
    // The switch resumed from where the stream left off rather than starting over.
    const open = sockets.find((frames) => frames.length > 0)!;
    expect(open.some((f: any) => f.type === "resumed" && f.topic === "metric:kpis")).toBe(true);
    expect(open.some((f: any) => f.type === "snapshot" && f.topic === "metric:kpis")).toBe(false);
  } finally {
    await proxy.close();
    await server.stop();
  }
});

test("a change made on the board shows at once, is confirmed by the server, or is rolled back with a notice", async ({
  page,
}) => {
  const server = await startServer();
  try {
    await server.publish("status:services", [
      { op: "set", entity_id: "db", payload: { name: "Database", state: "down" } },
      { op: "set", entity_id: "api", payload: { name: "API", state: "up" } },
    ]);
    await server.publish("metric:office", [{ op: "set", entity_id: "visitors", payload: 3 }]);
    // Writing from a board needs a key that may publish: this page is opened with one as its
    // share link, which its socket passes on.
    await page.goto(`${server.boardUrl}?token=${server.key}`);
    await expect(page.locator(".connection")).toHaveAttribute("data-status", "live");
    const read = async (topic: string) =>
      (await (await fetch(`${server.url}/api/v1/topics/${topic}`, { headers: server.auth })).json()).state;

    // Acknowledging a service that is down: shown at once, then stored.
    const db = page.locator('.status-item[data-key="db"]');
    await expect(page.locator('.status-item[data-key="api"] .status-acknowledge')).toHaveCount(0);
    await db.getByRole("button", { name: "Acknowledge Database" }).click();
    await expect(db.locator(".status-acknowledged")).toBeVisible();
    await expect.poll(async () => (await read("status:services")).db).toEqual({
      name: "Database",
      state: "down",
      acknowledged: true,
    });
    // The publisher's next state clears it.
    await server.publish("status:services", [
      { op: "set", entity_id: "db", payload: { name: "Database", state: "degraded" } },
    ]);
    await expect(db.locator(".status-acknowledged")).toHaveCount(0);

    // A manual value steps at once and the server keeps count.
    const visitors = page.locator('.manual[data-entity="visitors"] .manual-value');
    await expect(visitors).toHaveText("3");
    await page.getByRole("button", { name: "Increase Visitors today" }).click();
    await expect(visitors).toHaveText("4");
    await expect.poll(async () => (await read("metric:office")).visitors).toBe(4);

    // Someone else made it something that cannot be counted: the step shows, the server
    // refuses it, and the page rolls it back and says so.
    await server.publish("metric:office", [{ op: "set", entity_id: "visitors", payload: "closed" }]);
    await expect(visitors).toHaveText("–");
    await page.evaluate(() => {
      const value = document.querySelector('.manual[data-entity="visitors"] .manual-value')!;
      const shown: string[] = ((window as any).shown = []);
      new MutationObserver(() => shown.push(value.textContent!)).observe(value, {
        childList: true,
        subtree: true,
        characterData: true,
      });
    });
    await page.getByRole("button", { name: "Increase Visitors today" }).click();
    const notice = page.locator(".write-refused");
    await expect(notice).toContainText("Changing Visitors today failed: ");
    await expect(notice).toContainText("cannot increment a non-number");
    await expect(visitors).toHaveText("–");
    expect(await page.evaluate(() => (window as any).shown)).toEqual(["1", "–"]);
    expect((await read("metric:office")).visitors).toBe("closed");
    await notice.getByRole("button", { name: "Dismiss" }).click();
    await expect(notice).toHaveCount(0);
  } finally {
    await server.stop();
  }
});
