/**
 * The TensorFlow.js internals distlab's overrides rely on, one entry per
 * override file, each with a check against the installed packages.
 *
 * Some overrides reach past TF.js's public API: they retune an unexported
 * program object, record into the webgpu backend's open compute pass with
 * its bookkeeping, replace its buffer pool's or its upload's method with one
 * that keeps the same bookkeeping, or read the wasm backend's heap. Such code
 * keeps running after a TF.js upgrade and may compute something else. So
 * kernel/package.json pins TF.js to TFJS_VERSION, and the unit test
 * test/unit/compute-tfjs-internals.test.ts runs every check here: a changed
 * internal fails it with the override and what changed, before any user
 * runs the override.
 *
 * A check reads the source that `require` loads (the packages' node
 * bundles) and compares the functions an override mirrors by a fingerprint
 * of their text: any edit to them fails the check, which then names the
 * function to review. A new fingerprint goes in only after the override was
 * checked against the new source.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";

/** The TF.js release the overrides were written against; kernel/package.json pins every @tensorflow package to it. */
export const TFJS_VERSION = "4.22.0";

export interface InternalsContract {
  /** The override file (under kernel/src/compute/) that relies on the internals. */
  override: string;
  /** What it relies on, in words. */
  reliesOn: string;
  /** What changed, or an empty list when the installed TF.js still has what `reliesOn` says. */
  check(): string[];
}

function packageFile(name: string, file: string): string {
  return join(dirname(require.resolve(`${name}/package.json`)), file);
}

function packageVersion(name: string): string {
  return (JSON.parse(readFileSync(packageFile(name, "package.json"), "utf8")) as { version: string }).version;
}

const bundles = new Map<string, string>();

/** The text of the file `require(name)` loads. */
function bundleText(name: string): string {
  let text = bundles.get(name);
  if (text === undefined) bundles.set(name, (text = readFileSync(require.resolve(name), "utf8")));
  return text;
}

/**
 * The source of the function that starts at `marker` (e.g.
 * "BufferManager.prototype.acquireBuffer = function"), up to its matching
 * closing brace (skipping strings and comments; the bundles have no regular
 * expression literals with braces or quotes in these functions); undefined
 * when the bundle has no such function.
 */
export function functionSource(text: string, marker: string): string | undefined {
  const start = text.indexOf(marker);
  if (start < 0) return undefined;
  const open = text.indexOf("{", start + marker.length);
  let depth = 0;
  let quote: string | undefined;
  for (let i = open; i < text.length; i++) {
    const c = text[i]!;
    if (quote !== undefined) {
      if (c === "\\") i++;
      else if (c === quote) quote = undefined;
      continue;
    }
    if (c === "/" && text[i + 1] === "/") i = text.indexOf("\n", i);
    else if (c === "/" && text[i + 1] === "*") i = text.indexOf("*/", i) + 1;
    else if (c === '"' || c === "'" || c === "`") quote = c;
    else if (c === "{") depth++;
    else if (c === "}" && --depth === 0) return text.slice(start, i + 1);
  }
  return undefined;
}

/** The first 16 hex digits of the SHA-256 of `source` with its white space folded. */
export function fingerprint(source: string): string {
  return createHash("sha256").update(source.replace(/\s+/g, " ").trim()).digest("hex").slice(0, 16);
}

/** Problems with the functions `expected` names (marker -> fingerprint) in package `name`'s bundle. */
function mirroredFunctions(name: string, expected: Readonly<Record<string, string>>): string[] {
  const text = bundleText(name);
  const problems: string[] = [];
  for (const [marker, print] of Object.entries(expected)) {
    const source = functionSource(text, marker);
    if (source === undefined) problems.push(`${name} no longer has \`${marker}\``);
    else if (fingerprint(source) !== print) problems.push(`${name}'s \`${marker}\` changed (fingerprint ${fingerprint(source)}, expected ${print})`);
  }
  return problems;
}

/** Problems with the methods `names` of `name`'s exported class `className`. */
function prototypeMethods(name: string, className: string, names: readonly string[]): string[] {
  const exported = (require(name) as Record<string, { prototype?: Record<string, unknown> } | undefined>)[className];
  if (exported?.prototype === undefined) return [`${name} no longer exports the class ${className}`];
  return names.filter((method) => typeof exported.prototype![method] !== "function").map((method) => `${name}'s ${className} has no method ${method}`);
}

/** Problems with the text snippets `snippets` that must stand in package `name`'s bundle. */
function bundleSays(name: string, snippets: readonly string[]): string[] {
  const text = bundleText(name);
  return snippets.filter((snippet) => !text.includes(snippet)).map((snippet) => `${name} no longer contains \`${snippet}\``);
}

const WEBGPU = "@tensorflow/tfjs-backend-webgpu";
const WASM = "@tensorflow/tfjs-backend-wasm";

export const TFJS_INTERNALS: readonly InternalsContract[] = [
  {
    override: "(every override)",
    reliesOn: `TensorFlow.js ${TFJS_VERSION} exactly: the release the internals below were read from`,
    check: () =>
      ["@tensorflow/tfjs", "@tensorflow/tfjs-core", WASM, WEBGPU]
        .map((name) => [name, packageVersion(name)] as const)
        .filter(([, version]) => version !== TFJS_VERSION)
        .map(([name, version]) => `${name} is ${version}, not ${TFJS_VERSION}`),
  },
  {
    override: "webgpu/batch-mat-mul.ts",
    reliesOn:
      "MatMulPackedProgram (not exported): its fields (workgroupSize, elementsPerThread, dispatch, dispatchLayout, fitAOuter/BOuter/Inner, " +
      "isVec4, isVectorA, transposeA/B, activation, sequentialAccessByThreads), its shaderKey format and getShapeFit; " +
      "webgpu_util.computeDispatch; WebGPUBackend.runWebGPUProgram(program, inputs, dtype, uniforms, output), whose uniforms[2] is dimInner",
    check: () => [
      ...mirroredFunctions(WEBGPU, {
        "function MatMulPackedProgram(": "7333f49f06a4787b",
        "MatMulPackedProgram.prototype.getShapeFit = function": "86b961b5f7e2ab9e",
        "function computeDispatch(": "2fae09cd9a1ebfe1",
        "WebGPUBackend.prototype.runWebGPUProgram = function": "440aaab9d9711a68",
      }),
      ...prototypeMethods(WEBGPU, "WebGPUBackend", ["runWebGPUProgram"]),
      ...(typeof (require(WEBGPU) as { webgpu_util?: { computeDispatch?: unknown } }).webgpu_util?.computeDispatch === "function"
        ? []
        : [`${WEBGPU} no longer exports webgpu_util.computeDispatch`]),
    ],
  },
  {
    override: "webgpu/dispatch.ts",
    reliesOn:
      "WebGPUBackend's members device, tensorMap, bufferManager, commandEncoder, computePassEncoder, commandQueueOwnedIds, uniformPendingDisposal, " +
      "dispatchCountInPass, activeTimers, querySet and the methods uploadToGPU, ensureCommandEncoderReady, endComputePassEncoder, submitQueue, " +
      "refCount, getQueryTime, makeTensorInfo; recordAndSubmit's bookkeeping, which recordDispatch repeats",
    check: () => [
      ...prototypeMethods(WEBGPU, "WebGPUBackend", ["uploadToGPU", "ensureCommandEncoderReady", "endComputePassEncoder", "submitQueue", "refCount", "getQueryTime", "makeTensorInfo"]),
      ...mirroredFunctions(WEBGPU, { "WebGPUBackend.prototype.recordAndSubmit = function": "86f3d884c3b98e7c" }),
    ],
  },
  {
    override: "webgpu/buffer-pool.ts",
    reliesOn: "BufferManager's freeBuffers, usedBuffers, numFreeBuffers, numUsedBuffers, numBytesUsed and acquireBuffer's bookkeeping, which its replacement repeats",
    check: () => mirroredFunctions(WEBGPU, { "BufferManager.prototype.acquireBuffer = function": "ed8f7f42e373c81e" }),
  },
  {
    override: "webgpu/upload.ts",
    reliesOn: "WebGPUBackend.uploadToGPU(dataId) and the tensorMap entry it reads (values, resource, dtype, shape); its replacement keeps the same entry up to date",
    check: () => mirroredFunctions(WEBGPU, { "WebGPUBackend.prototype.uploadToGPU = function": "f20d81cc8855608f" }),
  },
  {
    override: "webgpu/host-tuning.ts",
    reliesOn: "the flags WEBGPU_CPU_FORWARD (default true) and WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE (default 15), changed only where they still have those defaults",
    check: () =>
      bundleSays(WEBGPU, [
        "ENV.registerFlag('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE', function () { return 15; });",
        "ENV.registerFlag('WEBGPU_CPU_FORWARD', function () { return true; });",
      ]),
  },
  {
    override: "wasm/tensor-info.ts",
    reliesOn: "BackendWasm's makeOutput, disposeData, typedArrayFromHeap, refCount, incRef, its dataIdMap entries' memoryOffset and its wasm module's exported memory",
    check: () => [
      ...prototypeMethods(WASM, "BackendWasm", ["makeOutput", "disposeData", "typedArrayFromHeap", "refCount", "incRef"]),
      ...bundleSays(WASM, ["_this.dataIdMap = new tfjsCore.DataStorage(", "memoryOffset"]),
    ],
  },
];

/** Every problem, prefixed with the override it affects; empty when all hold. */
export function checkTfjsInternals(contracts: readonly InternalsContract[] = TFJS_INTERNALS): string[] {
  return contracts.flatMap((contract) => contract.check().map((problem) => `${contract.override}: ${problem} (it relies on ${contract.reliesOn})`));
}
