// Step: the compiler snapshots for kernels started in notebooks/ (`distlab snapshots`,
// kernel/src/repl/compiler-snapshot.ts), so that the first kernel `npm run lab` starts has its
// TypeScript programs in a fraction of a second instead of creating them (1.5 s of CPU). Up to
// date after the first run (it checks the recorded inputs, a few milliseconds); a kernel would
// build them on its own once quiet, so a failure here is reported and does not stop the set-up.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { runCommand } from "./process.mjs";

export const compilerSnapshotsStep = {
  name: "compiler snapshots",
  async run({ root }) {
    const cli = join(root, "kernel", "dist", "cli.js");
    if (!existsSync(cli)) return "skipped: kernel/dist/cli.js does not exist yet (the kernel CLI is not built)";
    if (process.env.DISTLAB_COMPILER_SNAPSHOT === "0") return "skipped: DISTLAB_COMPILER_SNAPSHOT=0";
    try {
      const report = await runCommand(process.execPath, [cli, "snapshots"], { cwd: join(root, "notebooks") });
      const built = report.split("\n").filter((line) => line.includes(": built in"));
      return built.length === 0 ? "up to date for notebooks/" : `built for notebooks/: ${built.map((line) => line.replace(/ \(.*$/, "")).join("; ")}`;
    } catch (error) {
      return `not built (kernels build them once quiet): ${error.message}`;
    }
  },
};
