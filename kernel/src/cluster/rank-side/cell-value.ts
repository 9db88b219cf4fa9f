/**
 * Runs on a rank: turns the last expression's value into a `CellValue` that
 * structured-clones cheaply and is valid JSON. Typed arrays and tf.Tensors
 * become plain (nested) arrays; values JSON cannot hold become their text.
 */
import { inspect } from "node:util";
import { toRemoteErrorData } from "../../errors";
import type { CellValue } from "../rank-messages";

/** The subset of tf.Tensor this module touches. */
interface TensorLike {
  dtype: string;
  shape: number[];
  arraySync(): unknown;
  isDisposed?: boolean;
}

export function isTensor(value: unknown): value is TensorLike {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as TensorLike).arraySync === "function" &&
    Array.isArray((value as TensorLike).shape) &&
    typeof (value as TensorLike).dtype === "string"
  );
}

/**
 * Most JSON one rank's value may put in the cell's `application/json` (bytes of UTF-8). A larger
 * value crosses as a note instead: every rank's value travels to the kernel and into the notebook
 * file, and `%dist pull` is the way to move a big one whole.
 */
export const RESULT_JSON_CAP_BYTES = 1 << 20;

/** Never throws: a value whose getters or Proxy traps throw is shown as such. */
export function toCellValue(value: unknown): CellValue {
  if (value === undefined) return {};
  let text: string;
  try {
    text = describe(value);
  } catch (error) {
    text = `<the value could not be shown: reading it threw ${toRemoteErrorData(error).message}>`;
  }
  let json: unknown;
  try {
    json = toJson(value, new Set());
  } catch {
    return { json: text, text };
  }
  const bytes = jsonBytes(json);
  if (bytes <= RESULT_JSON_CAP_BYTES) return { json, text };
  const note =
    `value left out of application/json: its JSON is ${formatMiB(bytes)}, over the ${formatMiB(RESULT_JSON_CAP_BYTES)} cap per rank; ` +
    "assign it to a variable (const NAME = ...) and copy it whole with %dist pull NAME";
  return { json: note, text: `${text}\n(${note})` };
}

function jsonBytes(json: unknown): number {
  return Buffer.byteLength(JSON.stringify(json) ?? "null", "utf8");
}

function formatMiB(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

function describe(value: unknown): string {
  if (isTensor(value)) {
    if (value.isDisposed) return `Tensor(${value.dtype}, [${value.shape.join(", ")}], disposed)`;
    return `Tensor(${value.dtype}, [${value.shape.join(", ")}]) ${inspect(value.arraySync(), { depth: 4, breakLength: 120 })}`;
  }
  return inspect(value, { depth: 4, breakLength: 120, maxArrayLength: 50 });
}

/** JSON-safe copy: NaN/Infinity, functions, symbols and bigints become text; cycles become "[Circular]". */
function toJson(value: unknown, seen: Set<object>): unknown {
  if (value === null || typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "number") return Number.isFinite(value) ? value : String(value);
  if (typeof value === "bigint" || typeof value === "symbol" || typeof value === "function") return describeShort(value);
  if (value === undefined) return null;
  if (isTensor(value)) return value.isDisposed ? "disposed tensor" : toJson(value.arraySync(), seen);
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    return Array.from(value as unknown as ArrayLike<number | bigint>, (item) => toJson(item, seen));
  }
  if (typeof value !== "object") return String(value);
  if (seen.has(value)) return "[Circular]";
  seen.add(value);
  try {
    if (Array.isArray(value)) return value.map((item) => toJson(item, seen));
    if (value instanceof Map) return Object.fromEntries([...value].map(([key, item]) => [String(key), toJson(item, seen)]));
    if (value instanceof Set) return [...value].map((item) => toJson(item, seen));
    if (value instanceof Date) return value.toISOString();
    if (value instanceof Error) return `${value.name}: ${value.message}`;
    const prototype = Object.getPrototypeOf(value) as object | null;
    if (prototype !== Object.prototype && prototype !== null) return describeShort(value);
    const copy: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) copy[key] = toJson(item, seen);
    return copy;
  } finally {
    seen.delete(value);
  }
}

function describeShort(value: unknown): string {
  return inspect(value, { depth: 1, breakLength: Infinity });
}
