/**
 * An executed copy of a tutorial for the browser tests: the one the notebook
 * test (test/kernel/test_notebooks.py) left in test-artifacts/notebooks/ when
 * it is newer than the tutorial and the kernel's plot code and ran without
 * errors (as `npm test` runs the kernel layer first), else a fresh execution
 * against the real kernel (test/browser/execute_tutorial.py, about a minute).
 */
import { spawn } from "node:child_process";
import { copyFileSync, existsSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";

const ROOT = resolve(__dirname, "..", "..");

export interface NotebookOutput {
  output_type: string;
  data?: Record<string, unknown>;
}
export interface Notebook {
  cells: { cell_type: string; source: string | string[]; metadata?: { tags?: string[] }; outputs?: NotebookOutput[] }[];
}

/** Executed to the end, errors only in cells tagged raises-exception (which the notebook test checks). */
function ranCleanly(path: string): boolean {
  const notebook = JSON.parse(readFileSync(path, "utf8")) as Notebook;
  const code = notebook.cells.filter((cell) => cell.cell_type === "code");
  const unexpected = code.filter((cell) => !cell.metadata?.tags?.includes("raises-exception"))
    .some((cell) => (cell.outputs ?? []).some((output) => output.output_type === "error"));
  return code.at(-1)?.outputs !== undefined && code.some((cell) => (cell.outputs ?? []).length > 0) && !unexpected;
}

/** Writes the executed `name` (e.g. "08-stragglers.ipynb") to `dest`; says where it came from. */
export async function executedTutorial(name: string, dest: string): Promise<string> {
  const source = join(ROOT, "notebooks", name);
  const artifact = join(process.env.DISTLAB_TEST_ARTIFACTS ?? join(ROOT, "test-artifacts"), "notebooks", name);
  const inputs = [source, join(ROOT, "kernel", "dist", "techniques", "plot.js"), join(ROOT, "kernel", "dist", "techniques", "loss-plot.js")];
  if (existsSync(artifact) && inputs.every((input) => statSync(artifact).mtimeMs > statSync(input).mtimeMs) && ranCleanly(artifact)) {
    copyFileSync(artifact, dest);
    return `the notebook test's executed copy ${artifact}`;
  }
  let log = "";
  const code = await new Promise<number | null>((done) => {
    const child = spawn(join(ROOT, ".venv", "bin", "python"), [join(__dirname, "execute_tutorial.py"), source, dest], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.on("data", (d) => (log += d));
    child.stderr.on("data", (d) => (log += d));
    child.on("close", done);
  });
  if (code !== 0) throw new Error(`executing ${name} failed (exit ${code}):\n${log.slice(-4000)}`);
  return `a fresh execution of ${source}`;
}
