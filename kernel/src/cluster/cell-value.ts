/**
 * Runs on a rank: turns the last expression's value into a `CellValue` that
 * structured-clones cheaply and is valid JSON. Typed arrays and tf.Tensors
 * become plain (nested) arrays; values JSON cannot hold become their text.
 */
import { inspect } from "node:util";
import type { CellValue } from "./protocol";

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

export function toCellValue(value: unknown): CellValue {
  if (value === undefined) return {};
  const text = describe(value);
  return { json: toJson(value, new Set()), text };
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
