/**
 * Makes TF.js's webgpu buffer pool hand out buffers in a repeatable order.
 *
 * TF.js keeps one free list per (size, usage) and reuses the most recently
 * freed buffer. Which buffer a kernel gets then depends on the list's order,
 * which differs from one training step to the next, so the same kernel binds
 * different buffers every step and bind-group-cache.ts found almost no hits.
 * Handing out the free buffer that was created first makes the choice
 * depend only on which buffers are free: a step that starts with the same
 * set of free buffers (the steady state of a training loop) gets the same
 * buffers as the step before, and the cache hits on all but the first
 * steps (counts: docs/compute.md, "Figures behind the code").
 *
 * TF.js internals it relies on (pinned version; ../tfjs-internals.ts checks
 * them): BufferManager's lists and counters below, and acquireBuffer's
 * bookkeeping, which the replacement repeats.
 */

interface BufferManagerLike {
  freeBuffers: Map<string, object[]>;
  usedBuffers: Map<string, object[]>;
  numFreeBuffers: number;
  numUsedBuffers: number;
  numBytesUsed: number;
  acquireBuffer(size: number, usage: number, mappedAtCreation?: boolean, reuse?: boolean): object;
}

const INSTALLED = Symbol.for("distlab.compute.oldestFreeBuffer");

export function isBufferManager(value: unknown): value is BufferManagerLike {
  const m = value as Partial<BufferManagerLike> | undefined;
  return m !== undefined && m.freeBuffers instanceof Map && m.usedBuffers instanceof Map && typeof m.acquireBuffer === "function"
    && typeof m.numFreeBuffers === "number" && typeof m.numUsedBuffers === "number" && typeof m.numBytesUsed === "number";
}

/** Replaces `manager.acquireBuffer` (same bookkeeping as TF.js 4.x's); idempotent. Returns whether it was installed now. */
export function reuseOldestFreeBuffer(manager: BufferManagerLike): boolean {
  if ((manager as { [INSTALLED]?: true })[INSTALLED]) return false;
  const ids = new WeakMap<object, number>();
  let next = 1;
  const id = (buffer: object) => {
    let value = ids.get(buffer);
    if (value === undefined) ids.set(buffer, (value = next++));
    return value;
  };
  const stock = manager.acquireBuffer.bind(manager);
  manager.acquireBuffer = (size, usage, mappedAtCreation = false, reuse = true) => {
    const key = `${size}_${usage}`;
    const free = manager.freeBuffers.get(key);
    if (!reuse || mappedAtCreation || free === undefined || free.length === 0) {
      const buffer = stock(size, usage, mappedAtCreation, reuse);
      id(buffer);
      return buffer;
    }
    let oldest = 0;
    for (let i = 1; i < free.length; i++) if (id(free[i]!) < id(free[oldest]!)) oldest = i;
    const buffer = free[oldest]!;
    free[oldest] = free[free.length - 1]!;
    free.pop();
    manager.numFreeBuffers--;
    let used = manager.usedBuffers.get(key);
    if (used === undefined) manager.usedBuffers.set(key, (used = []));
    used.push(buffer);
    manager.numUsedBuffers++;
    manager.numBytesUsed += size;
    return buffer;
  };
  Object.defineProperty(manager, INSTALLED, { value: true });
  return true;
}
