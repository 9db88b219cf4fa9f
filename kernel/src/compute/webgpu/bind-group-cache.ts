/**
 * Reuses WebGPU bind groups across TF.js kernels.
 *
 * TF.js's webgpu backend creates one bind group per dispatch (output,
 * inputs, uniforms). Through Dawn's Node binding that call costs about ten
 * times what dispatching does (figures: docs/compute.md, "Figures behind
 * the code"), which made it the largest single host cost of a tiny-GPT step. The buffers come from TF.js's buffer
 * pool and the step allocates in the same order every time, so the same
 * (layout, buffers) combinations recur step after step: a cache keyed by the
 * layout and the bound buffers serves them.
 *
 * Safe because a bind group only names buffers, not their contents (TF.js
 * writes each dispatch's uniforms into the buffer before the dispatch runs),
 * and a destroyed buffer is never looked up again (a new buffer gets a new
 * id). Pipelines answer getBindGroupLayout(0) with a new object per call, so
 * pipelines created after installing memoize their layouts; bind groups of
 * older pipelines, and anything not bound as plain buffers, go uncached.
 */

interface BufferLike { readonly size: number }
interface BufferBinding { buffer: BufferLike; offset?: number; size?: number }
interface BindGroupDescriptorLike { layout: object; entries: Iterable<{ binding: number; resource: unknown }> }
interface PipelineLike { getBindGroupLayout(index: number): object }
export interface DeviceLike {
  createBindGroup(descriptor: BindGroupDescriptorLike): object;
  createComputePipeline(descriptor: object): PipelineLike;
  createComputePipelineAsync(descriptor: object): Promise<PipelineLike>;
}

export interface BindGroupCacheStats { hits: number; misses: number; uncached: number; size: number }

const INSTALLED = Symbol.for("distlab.compute.bindGroupCache");

/** Layouts and buffers get small integer ids; WeakMaps let them be collected. */
function idMap(): (value: object) => number {
  const ids = new WeakMap<object, number>();
  let next = 1;
  return (value) => {
    let id = ids.get(value);
    if (id === undefined) ids.set(value, (id = next++));
    return id;
  };
}

function memoizeLayouts<P extends PipelineLike>(pipeline: P): P {
  const layouts: object[] = [];
  const stock = pipeline.getBindGroupLayout.bind(pipeline);
  Object.defineProperty(pipeline, "getBindGroupLayout", { value: (index: number) => (layouts[index] ??= stock(index)), configurable: true });
  return pipeline;
}

/**
 * Wraps `device`'s createBindGroup (and its pipeline constructors, to keep
 * layouts stable) with a cache of at most `maxEntries` bind groups, emptied
 * when full. Idempotent; returns counters for the benchmark.
 */
export function cacheBindGroups(device: DeviceLike, maxEntries = 16384): () => BindGroupCacheStats {
  const existing = (device as { [INSTALLED]?: () => BindGroupCacheStats })[INSTALLED];
  if (existing) return existing;
  const layoutId = idMap(), bufferId = idMap();
  const cache = new Map<string, object>();
  const stats = { hits: 0, misses: 0, uncached: 0 };
  const createBindGroup = device.createBindGroup.bind(device);
  const createPipeline = device.createComputePipeline.bind(device);
  const createPipelineAsync = device.createComputePipelineAsync.bind(device);
  device.createComputePipeline = (descriptor) => memoizeLayouts(createPipeline(descriptor));
  device.createComputePipelineAsync = async (descriptor) => memoizeLayouts(await createPipelineAsync(descriptor));
  device.createBindGroup = (descriptor) => {
    let key = `${layoutId(descriptor.layout)}`;
    for (const { binding, resource } of descriptor.entries) {
      const buffer = (resource as BufferBinding | undefined)?.buffer;
      if (buffer === undefined) {
        stats.uncached++;
        return createBindGroup(descriptor);
      }
      const { offset, size } = resource as BufferBinding;
      key += `|${binding}:${bufferId(buffer)}:${offset ?? 0}:${size ?? -1}`;
    }
    let group = cache.get(key);
    if (group !== undefined) {
      stats.hits++;
      return group;
    }
    stats.misses++;
    if (cache.size >= maxEntries) cache.clear();
    group = createBindGroup(descriptor);
    cache.set(key, group);
    return group;
  };
  const read = () => ({ ...stats, size: cache.size });
  Object.defineProperty(device, INSTALLED, { value: read });
  return read;
}
