// An operator's view in a real browser: the release binary alone in an empty directory serves
// a live board (its WASM, script and styles from inside it), and the admin view follows
// connections as they come and go and makes and revokes keys that work at once.
import { test, expect } from "@playwright/test";
import { spawn } from "node:child_process";
import { copyFileSync, mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer } from "./server";

test("the release binary alone in an empty directory serves the demo board live", async ({ page }) => {
  const dir = mkdtempSync(join(tmpdir(), "pulseboard-alone-"));
  copyFileSync(process.env.PULSEBOARD_BIN!, join(dir, "pulseboard"));
  expect(readdirSync(dir)).toEqual(["pulseboard"]);
  // Nothing that names the build's site folder: no LEPTOS_* variable, no Leptos.toml here.
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("LEPTOS_")));
  const child = spawn(join(dir, "pulseboard"), [], {
    cwd: dir,
    env: { ...env, PULSEBOARD_LISTEN: "127.0.0.1:0", PULSEBOARD_DEMO: "true" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let output = "";
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on("data", (chunk) => {
      output += chunk;
      const found = output.match(/listening on (http:\/\/[\d.]+:\d+)/);
      if (found) resolve(found[1]);
    });
    child.once("exit", (code) => reject(new Error(`the server exited early (${code}):\n${output}`)));
  });
  try {
    expect(output).toContain("serving the site built into this binary");
    const files: { url: string; status: number; encoding?: string }[] = [];
    page.on("response", (response) => {
      if (response.url().includes("/pkg/"))
        files.push({ url: response.url(), status: response.status(), encoding: response.headers()["content-encoding"] });
    });
    await page.goto(`${url}/`);
    // One board (the demo): the list opens it directly.
    await expect(page).toHaveURL(`${url}/b/demo`);
    await expect(page.locator(".connection")).toHaveAttribute("data-status", "live");
    const orders = page.locator('.counter[data-entity="orders"] .counter-value');
    await expect(orders).not.toHaveText("");
    const first = await orders.textContent();
    await expect(orders).not.toHaveText(first!, { timeout: 10_000 });
    // The stylesheet applied: the grid is laid out by it.
    expect(await page.locator(".board-grid").evaluate((grid) => getComputedStyle(grid).display)).toBe("grid");
    for (const kind of [".wasm", ".js", ".css"]) {
      const file = files.find((f) => f.url.endsWith(kind));
      expect(file, `${kind} loaded`).toBeDefined();
      expect(file!.status).toBe(200);
      expect(file!.encoding).toBe("br");
    }
    const icon = await page.request.get(`${url}/favicon.svg`);
    expect(icon.status()).toBe(200);
    expect(icon.headers()["content-type"]).toContain("image/svg+xml");
    expect(readdirSync(dir).sort()).toEqual(["data", "pulseboard"]);
  } finally {
    child.kill("SIGTERM");
    await exited;
  }
});

test("the admin view follows a second browser's connection and makes and revokes a working key", async ({ page, browser }) => {
  const server = await startServer({ demo: true });
  try {
    const refused = await page.goto(`${server.url}/admin`);
    expect(refused!.status()).toBe(401);
    await page.getByRole("link", { name: "Sign in" }).click();
    await page.getByLabel("Admin key").fill(server.key);
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page).toHaveURL(`${server.url}/admin`);
    await expect(page.getByRole("heading", { name: "Pulseboard admin" })).toBeVisible();
    const demoPages = page.locator('tr[data-board="demo"] .admin-pages');
    await expect(demoPages).toHaveCount(0);

    const other = await browser.newContext();
    const screen = await other.newPage();
    await screen.goto(server.boardUrl);
    await expect(screen.locator(".connection")).toHaveAttribute("data-status", "live");
    await expect(demoPages).toHaveText("1");
    await expect(page.locator("#admin-connections .num").nth(1)).toHaveText("1");
    await other.close();
    // Gone once its grace is over (1 s in the tests).
    await expect(demoPages).toHaveCount(0, { timeout: 10_000 });
    await expect(page.locator("#admin-connections .num").first()).toHaveText("0");

    await page.getByLabel("Name").fill("deploy bot");
    await page.getByLabel("Scopes").fill("publish:metric:*");
    await page.getByRole("button", { name: "Make it" }).click();
    const secret = (await page.locator("#admin-made .admin-secret").first().textContent())!;
    expect(secret).toMatch(/^pb_/);
    const publish = () =>
      fetch(`${server.url}/api/v1/topics/metric:deploys`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${secret}` },
        body: JSON.stringify({ ops: [{ op: "incr", entity_id: "n", by: 1 }] }),
      });
    expect((await publish()).status).toBe(200);
    const row = page.locator("#admin-keys tr", { hasText: "deploy bot" });
    await expect(row).toContainText("in force");
    await expect(page.locator("tr", { hasText: "metric:deploys" })).toBeVisible();
    await row.getByRole("button", { name: "Revoke" }).click();
    await expect(page.locator("#admin-made")).toContainText("revoked");
    await expect(row).toContainText("revoked");
    expect((await publish()).status).toBe(401);
    await expect(page.locator("tr", { hasText: "key_revoked" })).toBeVisible();
  } finally {
    await server.stop();
  }
});
