/**
 * Starts the distlab kernel process: reads the connection file, builds the
 * backend that runs cells, and serves the Jupyter protocol until shutdown.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import type { KernelBackend } from "./protocol/backend";
import { readConnectionFile } from "./protocol/connection";
import { Kernel, type KernelDescription } from "./protocol/kernel";
import { createBackend } from "./router";

export { packageVersion } from "./version";
import { packageVersion } from "./version";

function typescriptVersion(): string {
  // From its package.json: loading TypeScript itself (9 MB of JavaScript) would cost the kernel's thread about 0.15 s of its start.
  return (require("@tslab/typescript-for-tslab/package.json") as { version: string }).version;
}

export function kernelDescription(): KernelDescription {
  const version = packageVersion();
  return {
    implementation: "distlab",
    implementation_version: version,
    banner: `distlab ${version}: TypeScript with %%distributed cells (TypeScript ${typescriptVersion()}, Node ${process.version})`,
    language_info: {
      name: "typescript",
      version: typescriptVersion(),
      mimetype: "text/typescript",
      file_extension: ".ts",
      codemirror_mode: { name: "javascript", typescript: true },
      pygments_lexer: "typescript",
    },
    help_links: [{ text: "distlab", url: "https://github.com/distlab/distlab#readme" }],
  };
}

/** `backend` defaults to router.ts's composition of the TypeScript REPL and the %%distributed magics. */
export async function runKernel(connectionFile: string, backend: KernelBackend = createBackend()): Promise<Kernel> {
  const connection = readConnectionFile(connectionFile);
  const kernel = new Kernel({
    connection,
    backend,
    description: kernelDescription(),
    onExit: (code) => process.exit(code),
  });
  // The kernel outlives anything a cell does: stray errors are shown, never fatal.
  process.on("uncaughtException", (error) => kernel.reportBackgroundError(error));
  process.on("unhandledRejection", (reason) => kernel.reportBackgroundError(reason));
  process.on("SIGTERM", () => void kernel.shutdown(false));
  await kernel.start();
  return kernel;
}
