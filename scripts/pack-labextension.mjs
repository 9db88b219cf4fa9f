#!/usr/bin/env node
// `npm pack` of the kernel (its prepack script): copies the built JupyterLab
// timeline extension into kernel/labextension, so the npm package carries it
// and its `distlab install` registers it next to the kernelspec. Build it
// first with `npm run setup` (or `npm run build:extension`).
import { cpSync, existsSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const built = join(root, "extension", "labextension");
const packed = join(root, "kernel", "labextension");

if (!existsSync(join(built, "package.json"))) {
  console.error(`pack: ${built} is not built; run \`npm run setup\` (or \`npm run build:extension\`) first`);
  process.exit(1);
}
if (!existsSync(join(root, "kernel", "dist", "cli.js"))) {
  console.error("pack: kernel/dist/cli.js is not built; run `npm run build` first");
  process.exit(1);
}
rmSync(packed, { recursive: true, force: true });
cpSync(built, packed, { recursive: true });
console.log(`pack: copied the timeline extension into ${packed}`);
