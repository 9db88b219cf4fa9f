// Step (browser tests only: `npm test`, `npm run test:browser`): a Chromium for
// Playwright. `npm run lab` never runs it, so JupyterLab needs no browser of ours.
//
// Where Playwright looks, in order (test/browser/playwright.config.ts reads the
// same): $CHROMIUM_PATH, Debian's /usr/bin/chromium, then Playwright's own
// downloaded Chromium (`npx playwright install chromium`). On Debian, as root,
// a missing browser is installed from Debian's `chromium` package.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { ensureDebianPackages } from "./debian.mjs";
import { runCommand, SetupError } from "./process.mjs";

export const DEBIAN_CHROMIUM = "/usr/bin/chromium";

/** Playwright's own Chromium when it has been downloaded, else undefined. */
function playwrightChromium(root) {
  try {
    const require = createRequire(join(root, "package.json"));
    const path = require("playwright-core").chromium.executablePath();
    return path && existsSync(path) ? path : undefined;
  } catch {
    return undefined;
  }
}

/** `{ path, source }` of the Chromium the browser tests will drive, or undefined. */
export function findChromium(root, env = process.env) {
  if (env.CHROMIUM_PATH) {
    if (!existsSync(env.CHROMIUM_PATH)) {
      throw new SetupError(`CHROMIUM_PATH=${env.CHROMIUM_PATH} does not exist`, "point CHROMIUM_PATH at a Chromium executable, or unset it");
    }
    return { path: env.CHROMIUM_PATH, source: "CHROMIUM_PATH" };
  }
  if (existsSync(DEBIAN_CHROMIUM)) return { path: DEBIAN_CHROMIUM, source: "Debian's chromium" };
  const downloaded = playwrightChromium(root);
  return downloaded ? { path: downloaded, source: "Playwright's Chromium" } : undefined;
}

async function onDebian() {
  try {
    await runCommand("dpkg-query", ["--version"]);
    return existsSync("/etc/debian_version");
  } catch {
    return false;
  }
}

const HOW_TO_GET_CHROMIUM = [
  "on Debian or Ubuntu: `sudo apt-get install chromium` (Ubuntu's is a snap: `sudo snap install chromium`, then CHROMIUM_PATH=/snap/bin/chromium)",
  "anywhere downloads are allowed: `npx playwright install chromium` (Playwright's own build)",
  "or point CHROMIUM_PATH at any Chromium or Chrome",
].join("; ");

export const browserStep = {
  name: "chromium for tests",
  async run({ root }) {
    const found = findChromium(root);
    if (found) {
      // A browser that is there but does not start (a broken package, a launcher without its binary) fails here, not mid-test.
      const version = await runCommand(found.path, ["--version"], {
        hint: `${found.path} (${found.source}) is there but does not run; ${HOW_TO_GET_CHROMIUM}`,
      });
      return `${version.trim().split("\n").pop()} (${found.source}, ${found.path})`;
    }
    const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
    if (isRoot && await onDebian()) {
      const did = await ensureDebianPackages(["chromium"]);
      return `Debian's chromium: ${did}`;
    }
    throw new SetupError("no Chromium for the browser tests (only `npm test` and `npm run test:browser` need one; `npm run lab` does not)",
      HOW_TO_GET_CHROMIUM);
  },
};
