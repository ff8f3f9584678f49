import { defineConfig } from "@playwright/test";
import base from "./playwright.config";

// Measurements, not tests: benches/frontend-budget runs these against the release build.
export default defineConfig({
  ...base,
  testDir: "./bench",
  timeout: 120_000,
  reporter: [["line"]],
});
