/**
 * Browser tests: Debian's Chromium (never a downloaded browser) against a real
 * JupyterLab that each spec starts. WebGL runs on SwiftShader in headless mode.
 * Screenshots land in test-artifacts/browser/.
 */
import { defineConfig } from "@playwright/test";

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
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      args: ["--no-sandbox", "--enable-unsafe-swiftshader", "--use-angle=swiftshader", "--ignore-gpu-blocklist"],
    },
    trace: "retain-on-failure",
  },
});
