// Step: compile kernel/src to kernel/dist. `tsc -b` is incremental (it keeps
// .tsbuildinfo), so an unchanged tree costs about a second.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { runCommand, SetupError } from "./process.mjs";

export const typescriptStep = {
  name: "build kernel",
  async run({ root }) {
    const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
    if (!existsSync(tsc)) {
      throw new SetupError("TypeScript is not installed in node_modules", "rerun `npm run setup` so the node packages step installs it");
    }
    await runCommand(process.execPath, [tsc, "-b", "kernel"], {
      cwd: root,
      hint: "fix the TypeScript errors above, then rerun `npm run setup`",
    });
    // `npm ci` links a workspace's bin only if its file exists, and kernel/dist/cli.js is built
    // after it: link `distlab` now, so `npx distlab ...` works in a fresh clone.
    if (!existsSync(join(root, "node_modules", ".bin", "distlab"))) {
      await runCommand("npm", ["rebuild", "distlab", "--ignore-scripts"], { cwd: root, hint: "run `npm rebuild distlab` to see why the bin link failed" });
      return "kernel/dist up to date, linked the distlab command";
    }
    return "kernel/dist up to date";
  },
};
