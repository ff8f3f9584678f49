// The frontend budget, measured in Debian's Chromium against the release server with nothing
// in front. Prints Markdown rows that benches/frontend-budget collects:
//
// - what the demo board's first load and a reload transferred (scripts, styles, WASM);
// - time from navigation to the first live snapshot painted, with the CPU slowed 4× and the
//   network throttled to 1.6 Mbit/s and 150 ms RTT (as Lighthouse emulates a mid-range
//   phone on a slow link), median of three cold loads;
// - long tasks (over 50 ms) and dropped frames while the board's topics update at 50 and 200
//   updates/s, with the CPU slowed 4×, with the animations on and with reduced motion, and
//   whether the board still showed the latest count at the end.
//
// PULSEBOARD_RATES=1,50 runs the frames at other rates than 50 and 200 updates/s (1 shows
// what the board costs with almost nothing changing); PULSEBOARD_TRACE=file.json records a
// Chromium trace of each frames run, and PULSEBOARD_TRACE_MORE adds trace categories to it
// (disabled-by-default-devtools.timeline.invalidationTracking says why each element was
// restyled).
import { test, type Page } from "@playwright/test";
import { startServer, type Server } from "../tests/server";
import { load } from "../tests/transfer";

const SECONDS = 10;
const CPU_SLOWDOWN = 4;
const kb = (bytes: number) => (bytes / 1000).toFixed(1);

async function slowDown(page: Page, network: boolean) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Emulation.setCPUThrottlingRate", { rate: CPU_SLOWDOWN });
  if (network) {
    await cdp.send("Network.enable");
    await cdp.send("Network.emulateNetworkConditions", {
      offline: false,
      latency: 150,
      downloadThroughput: (1.6 * 1024 * 1024) / 8,
      uploadThroughput: (750 * 1024) / 8,
    });
  }
}

/** Writes to the demo board's topics at `rate` batches a second; returns the last signups count. */
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
    const response = await fetch(`${server.url}/api/v1/batch`, {
      method: "POST",
      headers: { "content-type": "application/json", ...server.auth },
      body: JSON.stringify({ writes }),
    });
    if (!response.ok) throw new Error(`batch: ${response.status} ${await response.text()}`);
    next += interval;
    const wait = next - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  return n;
}

test("transfer: first load and reload", async ({ page }) => {
  const server = await startServer({ demo: true });
  try {
    const first = await load(page, server.boardUrl);
    for (const file of first.files) {
      console.log(`| first load | ${file.path.split("/").pop()} | ${file.encoding} | ${kb(file.bodyBytes)} |`);
    }
    console.log(`| first load | **total** | | **${kb(first.bodyBytes)}** |`);
    const again = await load(page, server.boardUrl);
    console.log(`| reload | scripts, styles, WASM | | ${kb(again.transferBytes)} |`);
  } finally {
    await server.stop();
  }
});

test("time to first live paint, 4x CPU, 1.6 Mbit/s, 150 ms RTT", async ({ browser }) => {
  const server = await startServer({ demo: true });
  try {
    const times: number[] = [];
    for (let run = 0; run < 3; run++) {
      const context = await browser.newContext();
      const page = await context.newPage();
      await slowDown(page, true);
      // The first animation frame after a widget shows a value: that frame has been painted.
      await page.addInitScript(() => {
        const w = window as any;
        const watch = () => {
          if (document.querySelector(".counter-value")) {
            requestAnimationFrame(() => (w.livePaint = performance.now()));
          } else {
            requestAnimationFrame(watch);
          }
        };
        requestAnimationFrame(watch);
      });
      await page.goto(server.boardUrl);
      await page.waitForFunction(() => (window as any).livePaint !== undefined, undefined, { timeout: 60_000 });
      times.push(await page.evaluate(() => (window as any).livePaint as number));
      await context.close();
    }
    times.sort((a, b) => a - b);
    console.log(`| first live paint | ${times.map((t) => t.toFixed(0)).join(", ")} | ${times[1].toFixed(0)} |`);
  } finally {
    await server.stop();
  }
});

async function frames(page: Page, server: Server, rate: number, label: string) {
  await page.goto(server.boardUrl);
  await page.locator('.connection[data-status="live"]').waitFor();
  await slowDown(page, false);
  await page.evaluate(() => {
    const w = window as any;
    w.longTasks = [];
    new PerformanceObserver((list) => w.longTasks.push(...list.getEntries().map((e) => e.duration))).observe({
      type: "longtask",
      buffered: false,
    });
    // Long animation frames say where a slow frame's time went: scripts (and which), the
    // frame's own callbacks, or style, layout and paint.
    w.slowFrames = [];
    new PerformanceObserver((list) => {
      for (const e of list.getEntries() as any[]) {
        if (e.duration <= 50) continue;
        const end = e.startTime + e.duration;
        const scripts = (e.scripts as any[])
          .sort((a, b) => b.duration - a.duration)
          .slice(0, 2)
          .map((s) => `${s.invokerType} ${s.invoker} ${s.duration.toFixed(0)}`);
        w.slowFrames.push({
          duration: e.duration,
          summary:
            `before render ${(e.renderStart ? e.renderStart - e.startTime : e.duration).toFixed(0)}, ` +
            `frame callbacks ${(e.renderStart ? e.styleAndLayoutStart - e.renderStart : 0).toFixed(0)}, ` +
            `style+layout+paint ${(e.renderStart ? end - e.styleAndLayoutStart : 0).toFixed(0)} ms` +
            (scripts.length ? `; ${scripts.join("; ")}` : ""),
        });
      }
    }).observe({ type: "long-animation-frame", buffered: false });
    w.frames = [];
    let last = performance.now();
    const tick = (now: number) => {
      w.frames.push(now - last);
      last = now;
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  const tracing = process.env.PULSEBOARD_TRACE;
  const more = process.env.PULSEBOARD_TRACE_MORE?.split(",") ?? [];
  const categories = [...more, "devtools.timeline", "disabled-by-default-devtools.timeline", "v8", "blink", "cc", "gpu"];
  if (tracing) await page.context().browser()!.startTracing(page, { path: tracing, categories });
  const sent = await drive(server, rate);
  if (tracing) await page.context().browser()!.stopTracing();
  // Live and current: within a second of the last write, the board shows the last count.
  const counter = page.locator('.counter[data-entity="signups"] .counter-value');
  let shown = await counter.getAttribute("data-value");
  for (let i = 0; i < 10 && shown !== String(sent); i++) {
    await page.waitForTimeout(100);
    shown = await counter.getAttribute("data-value");
  }
  const { longTasks, frames, slowFrames } = await page.evaluate(() => ({
    longTasks: (window as any).longTasks as number[],
    frames: (window as any).frames as number[],
    slowFrames: (window as any).slowFrames as { duration: number; summary: string }[],
  }));
  slowFrames.sort((a, b) => b.duration - a.duration);
  const slowest = slowFrames.length ? `${slowFrames[0].duration.toFixed(0)} ms: ${slowFrames[0].summary}` : "none";
  const budget = 1000 / 60;
  const dropped = frames.reduce((sum, gap) => sum + Math.max(0, Math.round(gap / budget) - 1), 0);
  const worst = Math.max(0, ...longTasks);
  const current = shown === String(sent) ? "yes" : `no (${shown} of ${sent})`;
  console.log(
    `| ${rate} | ${label} | ${frames.length} | ${dropped} | ${longTasks.length} | ${worst.toFixed(0)} | ${current} | ${slowFrames.length} | ${slowest} |`,
  );
}

for (const rate of (process.env.PULSEBOARD_RATES ?? "50,200").split(",").map(Number)) {
  for (const motion of ["on", "reduced"] as const) {
    test(`${rate} updates/s, animations ${motion}, 4x CPU`, async ({ page }) => {
      if (motion === "reduced") await page.emulateMedia({ reducedMotion: "reduce" });
      const server = await startServer();
      try {
        await frames(page, server, rate, motion === "on" ? "animations on" : "reduced motion");
      } finally {
        await server.stop();
      }
    });
  }
}
