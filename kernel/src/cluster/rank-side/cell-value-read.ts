/**
 * Reads the tensors in a cell's last value before `toCellValue` shows them.
 *
 * `toCellValue` is synchronous (it also runs where nothing may be awaited),
 * and it reads tensors with `arraySync()`, which a GPU rank cannot do: TF.js's
 * webgpu backend in Node has no synchronous read of a GPU tensor. This reads
 * each tensor with `await t.array()` first and hands on a stand-in that
 * answers `arraySync()` with those values. It looks at the value itself and
 * one level into arrays and plain objects (`[loss, grads]`, `{ w, b }`),
 * which is where a cell's result puts tensors; deeper ones are shown as
 * `toCellValue` shows them.
 */
import { isTensor } from "./cell-value";

interface ReadableTensor {
  dtype: string;
  shape: number[];
  isDisposed?: boolean;
  array(): Promise<unknown>;
}

/** A tensor already read: what toCellValue needs of it. */
interface ReadTensor {
  dtype: string;
  shape: number[];
  isDisposed: false;
  arraySync(): unknown;
}

async function readOne(value: unknown): Promise<unknown> {
  if (!isTensor(value) || value.isDisposed || typeof (value as unknown as ReadableTensor).array !== "function") return value;
  const tensor = value as unknown as ReadableTensor;
  const values = await tensor.array();
  const read: ReadTensor = { dtype: tensor.dtype, shape: tensor.shape, isDisposed: false, arraySync: () => values };
  return read;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const prototype = Object.getPrototypeOf(value) as object | null;
  return prototype === Object.prototype || prototype === null;
}

/** The value with its tensors (top level, and one level into arrays and plain objects) already read. */
export async function readTensorsForDisplay(value: unknown): Promise<unknown> {
  try {
    if (isTensor(value)) return await readOne(value);
    if (Array.isArray(value) && value.some(isTensor)) return await Promise.all(value.map(readOne));
    if (isPlainObject(value) && Object.values(value).some(isTensor)) {
      const entries = await Promise.all(Object.entries(value).map(async ([key, item]) => [key, await readOne(item)] as const));
      return Object.fromEntries(entries);
    }
  } catch {
    // toCellValue reports a value that cannot be read, with the reason, and never throws.
  }
  return value;
}
