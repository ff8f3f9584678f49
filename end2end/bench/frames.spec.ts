// Frame timing of the demo board in Chromium while its topics update at a set rate: long
// tasks (over 50 ms) and dropped frames, with the animations on and with reduced motion.
// Prints one Markdown row per run; benches/frontend-budget collects them.
import { test, type Page } from "@playwright/test";
import { startServer, type Server } from "../tests/server";

const SECONDS = 10;

async function drive(server: Server, rate: number) {
  const interval = 1000 / rate;
  const end = Date.now() + SECONDS * 1000;
  let n = 0;
  let next = Date.now();
  while (Date.now() < end) {
    n++;
    const writes = [
      { topic: "metric:kpis", ops: [{ op: "incr", entity_id: "signups", by: 1 }] },
      { topic: "board:leaders", ops: [{ op: "incr", entity_id: `t${n % 7}`, field: "score", by: (n * 37) % 90 }] },
    ];
    if (n % 5 === 0) {
      writes.push({ topic: "feed:activity", ops: [{ op: "push", payload: { kind: "order", text: `Order ${n}` }, max: 8 }] as any });
    }
    await fetch(`${server.url}/api/v1/batch`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ writes }),
    });
    next += interval;
    const wait = next - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
}

async function measure(page: Page, server: Server, rate: number, label: string) {
  await page.goto(server.boardUrl);
  await page.locator('.connection[data-status="live"]').waitFor();
  await page.evaluate(() => {
    const w = window as any;
    w.longTasks = [];
    new PerformanceObserver((list) => w.longTasks.push(...list.getEntries().map((e) => e.duration))).observe({
      type: "longtask",
      buffered: false,
    });
    w.frames = [];
    let last = performance.now();
    const tick = (now: number) => {
      w.frames.push(now - last);
      last = now;
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  await drive(server, rate);
  const { longTasks, frames } = await page.evaluate(() => ({
    longTasks: (window as any).longTasks as number[],
    frames: (window as any).frames as number[],
  }));
  const budget = 1000 / 60;
  const dropped = frames.reduce((sum, gap) => sum + Math.max(0, Math.round(gap / budget) - 1), 0);
  const worst = Math.max(0, ...longTasks);
  console.log(
    `| ${rate} | ${label} | ${frames.length} | ${dropped} | ${longTasks.length} | ${worst.toFixed(0)} |`,
  );
}

for (const rate of [50, 200]) {
  for (const motion of ["on", "reduced"] as const) {
    test(`${rate} updates/s, animations ${motion}`, async ({ page }) => {
      if (motion === "reduced") await page.emulateMedia({ reducedMotion: "reduce" });
      const server = await startServer();
      try {
        await measure(page, server, rate, motion === "on" ? "animations on" : "reduced motion");
      } finally {
        await server.stop();
      }
    });
  }
}
