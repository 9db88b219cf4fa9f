// Step: Node packages of the workspace, installed only when the lockfile or a
// workspace manifest changed since the last successful install.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { hashFiles, stampMatches, writeStamp } from "./stamps.mjs";
import { runCommand } from "./process.mjs";

function manifestPaths(root) {
  const rootManifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  const workspaces = Array.isArray(rootManifest.workspaces) ? rootManifest.workspaces : [];
  return [
    join(root, "package-lock.json"),
    join(root, "package.json"),
    ...workspaces.map((workspace) => join(root, workspace, "package.json")),
  ];
}

export const nodePackagesStep = {
  name: "node packages",
  async run({ root }) {
    const nodeModules = join(root, "node_modules");
    const stamp = join(nodeModules, ".distlab-setup", "packages.sha256");
    const digest = hashFiles(manifestPaths(root));
    if (existsSync(nodeModules) && stampMatches(stamp, digest)) return "up to date";

    const hasLockfile = existsSync(join(root, "package-lock.json"));
    // `npm ci` wipes node_modules first: right for a fresh clone, wrong for a
    // working tree whose node_modules other processes are using, so an
    // existing tree is brought up to the lockfile with `npm install`.
    const verb = hasLockfile && !existsSync(nodeModules) ? "ci" : "install";
    await runCommand("npm", [verb, "--no-audit", "--no-fund"], {
      cwd: root,
      hint: "check the npm error above; `npm ci` needs package-lock.json to match every package.json",
    });
    writeStamp(stamp, digest);
    return `installed with npm ${verb}`;
  },
};
