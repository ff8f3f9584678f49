import { defineConfig } from "@playwright/test";

// Each test starts its own Pulseboard server (see tests/server.ts), so the suite needs only
// the built binary and site: scripts/test builds them and passes their paths in.
export default defineConfig({
  testDir: "./tests",
  timeout: 60_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  // The JSON report lets scripts/test print one plain "N passed, N failed" line for CI.
  reporter: [["list"], ["json", { outputFile: "test-results/report.json" }]],
  use: {
    browserName: "chromium",
    viewport: { width: 1280, height: 800 },
    // The board's own look; the theme tests switch the scheme themselves.
    colorScheme: "dark",
    launchOptions: {
      executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    },
  },
});
