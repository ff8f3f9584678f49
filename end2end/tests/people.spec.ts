// People on a board, in a real Chromium with separate browser contexts (a context is one
// browser: its tabs share local storage, so they are one person): presence per person with a
// grace, typing, notes arriving live, a note's marker on a sparkline, and a guest told why it
// may not write.
import { test, expect, type Browser, type Page } from "@playwright/test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { boardsCopy, startServer, type Server } from "./server";

async function open(page: Page, url: string) {
  await page.goto(url);
  await expect(page.locator(".connection")).toHaveAttribute("data-status", "live");
  await expect(page.locator(".board-header .presence")).toHaveAttribute("data-people", /\d+/);
}

/** Records every count the page's presence shows, from now on. */
async function recordCounts(page: Page) {
  await page.evaluate(() => {
    const w = window as any;
    const presence = document.querySelector(".board-header .presence")!;
    w.counts = [presence.getAttribute("data-people")];
    new MutationObserver(() => w.counts.push(presence.getAttribute("data-people"))).observe(presence, {
      attributes: true,
    });
  });
}

async function newTab(browser: Browser) {
  return (await browser.newContext()).newPage();
}

test("one person's three tabs and another's one are 2 people; a reload or closing two tabs is no leave", async ({
  browser,
}) => {
  const server = await startServer();
  try {
    const ana = await browser.newContext();
    // The first tab makes the browser's id; the others, opened after, share it.
    const anaTabs = [await ana.newPage()];
    await open(anaTabs[0], server.boardUrl);
    anaTabs.push(await ana.newPage(), await ana.newPage());
    for (const tab of anaTabs.slice(1)) await open(tab, server.boardUrl);
    const bo = await newTab(browser);
    await open(bo, server.boardUrl);
    for (const page of [...anaTabs, bo]) {
      await expect(page.locator(".board-header .presence-count")).toHaveText("2 people");
      await expect(page.locator(".board-header .viewer")).toHaveCount(2);
    }
    await expect(bo.locator(".board-header .viewer.me")).toHaveCount(1);
    await recordCounts(bo);

    await anaTabs[0].reload();
    await expect(anaTabs[0].locator(".connection")).toHaveAttribute("data-status", "live");
    await anaTabs[1].close();
    await anaTabs[2].close();
    // Past the grace (a second in the tests): still two people, and never one on the way.
    await bo.waitForTimeout(2_500);
    await expect(bo.locator(".board-header .presence-count")).toHaveText("2 people");
    expect(await bo.evaluate(() => (window as any).counts)).not.toContain("1");

    await anaTabs[0].close();
    await expect(bo.locator(".board-header .presence-count")).toHaveText("1 person", { timeout: 5_000 });
  } finally {
    await server.stop();
  }
});

test("a note typed in one browser shows '… is writing' in another, then the note, with no reload", async ({
  browser,
}) => {
  const server = await startServer();
  try {
    // The writer's page carries the admin key (as a share link would carry its own).
    const writer = await newTab(browser);
    await open(writer, `${server.boardUrl}?token=${server.key}`);
    const reader = await newTab(browser);
    await open(reader, server.boardUrl);
    await reader.evaluate(() => ((window as any).samePage = true));

    await writer.getByRole("textbox", { name: "Note" }).pressSequentially("DB failover at 14:02, investigating", { delay: 20 });
    await expect(reader.locator(".notes-writing")).toContainText("e2e is writing…");
    await writer.getByLabel("Pin to").selectOption({ label: "API latency" });
    await writer.getByRole("button", { name: "Post" }).click();

    const note = reader.locator(".notes-list .note").first();
    await expect(note).toContainText("DB failover at 14:02, investigating");
    await expect(note.locator(".note-author")).toHaveText("e2e");
    await expect(note).toContainText("on API latency");
    await expect(reader.locator(".notes-writing")).not.toContainText("writing");
    await expect(reader.locator('.sparkline[data-entity="latency"]').locator("xpath=..").locator(".note-badge")).toHaveText(
      "1 note",
    );
    // The writer's form is ready for the next one.
    await expect(writer.getByRole("textbox", { name: "Note" })).toHaveValue("");
    expect(await reader.evaluate(() => (window as any).samePage)).toBe(true);
  } finally {
    await server.stop();
  }
});

test("a note pinned to a moment of a series is a marker at that moment on the sparkline", async ({ page }) => {
  const boardsDir = boardsCopy();
  writeFileSync(
    join(boardsDir, "api.toml"),
    `title = "API"
[[widget]]
type = "sparkline"
topic = "metric:api"
entity = "latency"
points = 5
`,
  );
  const server = await startServer({ boardsDir });
  try {
    for (const value of [10, 30, 20]) {
      await server.publish("metric:api", [{ op: "append", entity_id: "latency", value }]);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const snapshot = await (await fetch(`${server.url}/api/v1/topics/metric:api`, { headers: server.auth })).json();
    const times: number[] = snapshot.state.latency.points.map((point: number[]) => point[0]);
    // Half way from the first point to the second: five places, three points drawn at
    // 50, 75 and 100 of the drawing's 100 units, so the marker sits at 62.5.
    const moment = Math.round((times[0] + times[1]) / 2);
    const expected = 50 + ((moment - times[0]) / (times[1] - times[0])) * 25;
    const written = await fetch(`${server.url}/api/v1/boards/api/notes`, {
      method: "POST",
      headers: { "content-type": "application/json", ...server.auth },
      body: JSON.stringify({ text: "deploy 3f2a91c", topic: "metric:api", entity: "latency", moment }),
    });
    expect(written.status).toBe(201);
    const { id } = await written.json();

    await open(page, `${server.url}/b/api`);
    const marker = page.locator(`.sparkline .note-marker[data-note="${id}"]`);
    await expect(marker).toHaveCount(1);
    expect(Number(await marker.getAttribute("x1"))).toBeCloseTo(expected, 1);
    await expect(page.locator(".note-badge")).toHaveText("1 note");
  } finally {
    await server.stop();
  }
});

test("an anonymous viewer of a public board cannot write a note, and is told why", async ({ page }) => {
  const server = await startServer();
  try {
    await open(page, server.boardUrl);
    await expect(page.locator(".notes-closed")).toContainText("Only people who may write to this board can leave notes");
    await expect(page.getByRole("textbox", { name: "Note" })).toBeHidden();
  } finally {
    await server.stop();
  }
});
