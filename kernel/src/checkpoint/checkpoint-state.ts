/**
 * A rank's state as checkpoint bytes and back: v8's structured clone (typed
 * arrays, Maps, Dates, nested objects survive as they are), with tf.Tensors,
 * which do not clone, stored as { dtype, shape, data } and made tensors again
 * on restore. Tensors are found inside plain objects and arrays, at any depth.
 */
import { deserialize, serialize } from "node:v8";
import { isTensor } from "../cluster/rank-side/cell-value";

type Tf = typeof import("@tensorflow/tfjs");
type Tensor = import("@tensorflow/tfjs").Tensor;

/** The stored form of a tensor (a plain object v8 can clone). */
interface StoredTensor {
  __distlabTensor: 1;
  dtype: Tensor["dtype"];
  shape: number[];
  data: ArrayBufferView | string[];
}

/** Reads every tensor asynchronously (`await t.data()`): a GPU rank has no synchronous read. */
export async function encodeState(state: unknown): Promise<Buffer> {
  return serialize(await replaceTensors(state));
}

/** `tf`: TensorFlow.js, or a function that loads it (asked only when the state holds tensors). */
export function decodeState(body: Uint8Array, tf: Tf | (() => Tf)): unknown {
  return restoreTensors(deserialize(body), typeof tf === "function" ? tf : () => tf);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

async function replaceTensors(value: unknown): Promise<unknown> {
  if (isTensor(value)) {
    const tensor = value as Tensor;
    // data() may hand back the backend's own buffer: keep a copy.
    const data = (await tensor.data()) as ArrayBufferView | string[];
    return { __distlabTensor: 1, dtype: tensor.dtype, shape: [...tensor.shape], data: Array.isArray(data) ? [...data] : (data as Float32Array).slice() } satisfies StoredTensor;
  }
  if (Array.isArray(value)) return Promise.all(value.map(replaceTensors));
  if (isPlainObject(value)) {
    const entries = await Promise.all(Object.entries(value).map(async ([key, entry]) => [key, await replaceTensors(entry)] as const));
    return Object.fromEntries(entries);
  }
  return value;
}

function restoreTensors(value: unknown, tf: () => Tf): unknown {
  if (Array.isArray(value)) return value.map((entry) => restoreTensors(entry, tf));
  if (isPlainObject(value)) {
    if (value.__distlabTensor === 1) {
      const stored = value as unknown as StoredTensor;
      return tf().tensor(stored.data as Float32Array, stored.shape, stored.dtype);
    }
    return Object.fromEntries(Object.entries(value).map(([key, entry]) => [key, restoreTensors(entry, tf)]));
  }
  return value;
}
