/**
 * Browser tests: Chromium against a real JupyterLab that each spec starts. The
 * browser is $CHROMIUM_PATH, else Debian's /usr/bin/chromium, else Playwright's
 * own download (`npx playwright install chromium`); scripts/setup/browser.mjs
 * checks the same list and says how to get one. WebGL runs on SwiftShader in headless mode.
 * Screenshots land in test-artifacts/browser/.
 */
import { existsSync } from "node:fs";
import { defineConfig } from "@playwright/test";

const DEBIAN_CHROMIUM = "/usr/bin/chromium";
/** undefined: Playwright's own Chromium. */
const chromiumPath = process.env.CHROMIUM_PATH ?? (existsSync(DEBIAN_CHROMIUM) ? DEBIAN_CHROMIUM : undefined);

export default defineConfig({
  testDir: ".",
  testMatch: /.*\.spec\.ts$/,
  timeout: 180_000,
  workers: 1,
  outputDir: "../../test-artifacts/browser/results",
  reporter: [["list"]],
  use: {
    viewport: { width: 1400, height: 900 },
    launchOptions: {
      executablePath: chromiumPath,
      args: ["--no-sandbox", "--enable-unsafe-swiftshader", "--use-angle=swiftshader", "--ignore-gpu-blocklist"],
    },
    trace: "retain-on-failure",
  },
});
