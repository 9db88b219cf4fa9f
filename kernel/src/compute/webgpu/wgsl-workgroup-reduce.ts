/**
 * WGSL shared by the row kernels (layer norm, causal softmax, causal
 * attention): a tree reduction over one workgroup in workgroup memory.
 */

/**
 * `fn workgroupReduce(lid: u32, value: f32, takeMax: bool) -> f32`: the sum
 * (or, with takeMax, the maximum) of `value` over the workgroup's `threads`
 * invocations (a power of two); every invocation gets the total. Declares the
 * workgroup array `partial`. Every invocation of the workgroup must call it.
 */
export function workgroupReduceWgsl(threads: number): string {
  if (!Number.isInteger(threads) || threads < 1 || (threads & (threads - 1)) !== 0) {
    throw new RangeError(`workgroupReduceWgsl: threads must be a power of two, got ${threads}`);
  }
  return /* wgsl */ `
var<workgroup> partial: array<f32, ${threads}>;
fn workgroupReduce(lid: u32, value: f32, takeMax: bool) -> f32 {
  partial[lid] = value;
  workgroupBarrier();
  for (var stride = ${threads / 2}u; stride > 0u; stride = stride >> 1u) {
    if (lid < stride) {
      let other = partial[lid + stride];
      partial[lid] = select(partial[lid] + other, max(partial[lid], other), takeMax);
    }
    workgroupBarrier();
  }
  let total = partial[0];
  workgroupBarrier();
  return total;
}`;
}
