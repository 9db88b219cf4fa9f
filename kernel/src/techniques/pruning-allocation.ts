/**
 * How a pruning target is spread over a model's weight tensors.
 *
 * - "uniform": every tensor to the same sparsity s_f (Zhu & Gupta 2017 prune layer by layer this way).
 * - "erdos-renyi": the density (1 - sparsity) of a tensor is proportional to the sum of its
 *   dimensions over their product, (fan_in + fan_out) / (fan_in x fan_out) for a matrix (Mocanu et
 *   al. 2018, "Scalable training of artificial neural networks with adaptive sparse connectivity";
 *   the ERK of Evci et al. 2020, "Rigging the lottery"). A small layer keeps a larger share of its
 *   weights than a wide one, where uniform cuts a 16-input first layer or a 10-class output layer
 *   as deeply as the wide middle. The scale is set so that the model keeps as many non-zeros as at
 *   uniform s_f; a tensor whose density would pass 1 stays dense and the rest share the remainder.
 */
export type PruningAllocation = "uniform" | "erdos-renyi";

export const PRUNING_ALLOCATIONS: readonly PruningAllocation[] = ["uniform", "erdos-renyi"];

/**
 * Final sparsity of each tensor (shapes of the prunable tensors, in order) so that the tensors
 * together hold about `targetSparsity` of their entries at zero.
 */
export function layerSparsities(shapes: readonly (readonly number[])[], targetSparsity: number, allocation: PruningAllocation): number[] {
  if (allocation === "uniform") return shapes.map(() => targetSparsity);
  const sizes = shapes.map((shape) => shape.reduce((a, b) => a * b, 1));
  const fans = shapes.map((shape) => shape.reduce((a, b) => a + b, 0));
  const alive = (1 - targetSparsity) * sizes.reduce((a, b) => a + b, 0);
  const dense = new Set<number>();
  // Each pass either settles the densities or makes one more tensor dense: at most one pass per tensor.
  for (;;) {
    const aliveLeft = alive - [...dense].reduce((sum, l) => sum + sizes[l]!, 0);
    const fanLeft = fans.reduce((sum, fan, l) => sum + (dense.has(l) ? 0 : fan), 0);
    const scale = fanLeft > 0 ? aliveLeft / fanLeft : 0;
    const density = sizes.map((size, l) => (dense.has(l) ? 1 : (scale * fans[l]!) / size));
    const overfull = density.findIndex((d, l) => d > 1 && !dense.has(l));
    if (overfull < 0) return density.map((d) => 1 - d);
    dense.add(overfull);
  }
}
