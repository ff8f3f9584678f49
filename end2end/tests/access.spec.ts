// Private boards in a real browser: locked without rights, opened by a share link (whose
// token the page hands to its socket), stopped with a notice when the link is revoked, and
// opened by an admin who signs in with the form.
import { test, expect } from "@playwright/test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { boardsCopy, startServer, type Server } from "./server";

const PRIVATE = `
title = "Ops"
private = true

[[widget]]
type = "number"
topic = "metric:ops"
entity = "n"
title = "Incidents"
`;

async function withPrivateBoard(): Promise<Server> {
  const boardsDir = boardsCopy();
  writeFileSync(join(boardsDir, "ops.toml"), PRIVATE);
  const server = await startServer({ boardsDir });
  await server.publish("metric:ops", [{ op: "set", entity_id: "n", payload: 3 }]);
  return server;
}

async function shareLink(server: Server): Promise<{ id: string; secret: string }> {
  const response = await fetch(`${server.url}/api/v1/keys`, {
    method: "POST",
    headers: { "content-type": "application/json", ...server.auth },
    body: JSON.stringify({ name: "lobby TV", scopes: ["read:ops"] }),
  });
  expect(response.status).toBe(201);
  return await response.json();
}

test("a share link shows a private board live, and its revocation stops the screen with a notice", async ({ page }) => {
  const server = await withPrivateBoard();
  const problems: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().includes("WebSocket")) problems.push(m.text());
  });
  try {
    const locked = await page.goto(`${server.url}/b/ops`);
    expect(locked!.status()).toBe(401);
    await expect(page.getByRole("heading", { name: "This board is private" })).toBeVisible();
    await expect(page.locator(".counter-value")).toHaveCount(0);
    problems.length = 0; // the 401 of the locked page itself is expected

    const link = await shareLink(server);
    await page.goto(`${server.url}/b/ops?token=${link.secret}`);
    await expect(page.locator(".connection")).toHaveAttribute("data-status", "live");
    const value = page.locator('.counter[data-entity="n"] .counter-value');
    await expect(value).toHaveText("3");
    await server.publish("metric:ops", [{ op: "incr", entity_id: "n", by: 1 }]);
    await expect(value).toHaveText("4");

    const revoked = await fetch(`${server.url}/api/v1/keys/${link.id}`, { method: "DELETE", headers: server.auth });
    expect(revoked.status).toBe(200);
    await expect(page.locator(".connection")).toHaveAttribute("data-status", "refused");
    await expect(page.getByRole("alert")).toContainText("the key was revoked");
    // It stays stopped rather than hammering the server with a link that will not work.
    const connections = async () => {
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      return Number(metrics.match(/^pulseboard_connections (\d+)/m)![1]);
    };
    await expect.poll(connections).toBe(0);
    await page.waitForTimeout(2500);
    expect(await connections()).toBe(0);
    await expect(page.locator(".connection")).toHaveAttribute("data-status", "refused");
    expect(problems).toEqual([]);
  } finally {
    await server.stop();
  }
});

test("an admin signs in with the form and comes back to the private board", async ({ page }) => {
  const server = await withPrivateBoard();
  try {
    await page.goto(`${server.url}/b/ops`);
    await page.getByRole("link", { name: "sign in" }).click();
    await page.getByLabel("Admin key").fill("pb_wrong");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page.getByRole("alert")).toContainText("not an admin key");
    await page.getByLabel("Admin key").fill(server.key);
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page).toHaveURL(`${server.url}/b/ops`);
    await expect(page.locator(".connection")).toHaveAttribute("data-status", "live");
    await expect(page.locator('.counter[data-entity="n"] .counter-value')).toHaveText("3");
    const cookies = await page.context().cookies();
    const session = cookies.find((c) => c.name === "pulseboard_session")!;
    expect(session.httpOnly).toBe(true);
    expect(session.sameSite).toBe("Strict");
  } finally {
    await server.stop();
  }
});
