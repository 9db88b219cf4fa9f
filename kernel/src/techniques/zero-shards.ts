/**
 * How ZeRO cuts a model's parameters into per-rank shards.
 *
 * The model's stages (embedding, blocks, head) are the units FSDP calls
 * "flat parameters": a unit's tensors laid back to back form one flat vector
 * of psi_u float32, in Stage.params order. Every collective of ZeRO moves one
 * unit's flat vector (or its shard). A ring allGather needs equal blocks, so a
 * unit whose psi_u the world size n does not divide is padded with zeros to
 *   P_u = ceil(psi_u / n) * n,   shard S_u = P_u / n,
 * and rank r owns elements [r S_u, (r + 1) S_u) of it. The padding, at most
 * n - 1 elements a unit, is reported (ShardPlan.padding) and counted by the
 * wire formulas (they use P = sum P_u).
 */
import * as tf from "@tensorflow/tfjs";

export interface UnitShard {
  /** the stage's name (embedding, block0, ...) */
  readonly name: string;
  /** shapes of the unit's parameters, in Stage.params order */
  readonly shapes: readonly (readonly number[])[];
  /** psi_u: the unit's parameter count */
  readonly size: number;
  /** P_u: psi_u padded to a multiple of the world size */
  readonly padded: number;
  /** S_u = P_u / n: the elements each rank owns */
  readonly shardLength: number;
  /** where this rank's shard starts in the padded flat vector: rank * S_u */
  readonly shardStart: number;
}

export interface ShardPlan {
  readonly units: readonly UnitShard[];
  /** psi: all parameters */
  readonly size: number;
  /** P = sum P_u */
  readonly padded: number;
  /** P - psi: zeros added so every unit splits evenly */
  readonly padding: number;
}

/** The shard plan of units with these parameter shapes on `worldSize` ranks, seen from `rank`. */
export function planShards(units: readonly { name: string; shapes: readonly (readonly number[])[] }[], worldSize: number, rank: number): ShardPlan {
  const planned = units.map(({ name, shapes }): UnitShard => {
    const size = shapes.reduce((sum, shape) => sum + shape.reduce((a, b) => a * b, 1), 0);
    const padded = Math.ceil(size / worldSize) * worldSize;
    const shardLength = padded / worldSize;
    return { name, shapes, size, padded, shardLength, shardStart: rank * shardLength };
  });
  const size = planned.reduce((sum, u) => sum + u.size, 0);
  const padded = planned.reduce((sum, u) => sum + u.padded, 0);
  return { units: planned, size, padded, padding: padded - size };
}

/** A unit's tensors back to back in a zeroed vector of P_u (the padding stays 0); read without blocking. */
export async function flattenUnit(unit: UnitShard, tensors: readonly tf.Tensor[]): Promise<Float32Array> {
  const flat = new Float32Array(unit.padded);
  const values = await Promise.all(tensors.map((t) => t.data()));
  let offset = 0;
  values.forEach((v) => {
    flat.set(v as Float32Array, offset);
    offset += v.length;
  });
  if (offset !== unit.size) throw new RangeError(`${unit.name}: ${offset} values for a unit of ${unit.size} parameters`);
  return flat;
}

/** The unit's tensors cut out of its (padded) flat vector, in Stage.params order. */
export function unflattenUnit(unit: UnitShard, flat: Float32Array): tf.Tensor[] {
  if (flat.length < unit.size) throw new RangeError(`${unit.name}: a flat vector of ${flat.length} for ${unit.size} parameters`);
  let offset = 0;
  return unit.shapes.map((shape) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const t = tf.tensor(flat.subarray(offset, offset + n), shape as number[], "float32");
    offset += n;
    return t;
  });
}
