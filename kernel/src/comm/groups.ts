// Sub-communicators: newGroup's rank checks and the device mesh. A mesh of
// shape [2, 2] with names ['dp', 'tp'] over 4 ranks lays ranks out row-major
// (rank = dp * 2 + tp); axis('tp') is the group of ranks sharing this rank's
// dp coordinate, axis('dp') the group sharing its tp coordinate.
import type { Communicator, DeviceMesh } from "./types";

export function checkGroupRanks(ranks: readonly number[], size: number, where: string): void {
  if (!Array.isArray(ranks) || ranks.length === 0) throw new TypeError(`${where}: ranks must be a non-empty array of ranks`);
  const seen = new Set<number>();
  for (const r of ranks) {
    if (!Number.isInteger(r) || r < 0 || r >= size) throw new RangeError(`${where}: rank ${r} is not in [0, ${size - 1}]`);
    if (seen.has(r)) throw new RangeError(`${where}: rank ${r} appears twice`);
    seen.add(r);
  }
}

export function buildMesh(parent: Communicator, shape: readonly number[], names: readonly string[]): DeviceMesh {
  if (shape.length === 0 || shape.length !== names.length) {
    throw new RangeError(`mesh: shape [${shape.join(", ")}] and names [${names.join(", ")}] must be non-empty and of equal length`);
  }
  if (new Set(names).size !== names.length) throw new RangeError(`mesh: axis names must differ, got [${names.join(", ")}]`);
  for (let i = 0; i < shape.length; i++) {
    if (!Number.isInteger(shape[i]) || shape[i] < 1) throw new RangeError(`mesh: degree of ${names[i]} must be a positive integer, got ${shape[i]}`);
  }
  const product = shape.reduce((a, b) => a * b, 1);
  if (product !== parent.size) {
    const terms = names.map((n, i) => `${n}=${shape[i]}`).join(" * ");
    throw new RangeError(`mesh: ${terms} = ${product}, but the communicator has ${parent.size} ranks`);
  }
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  const coordsOf = (rank: number) => shape.map((d, i) => Math.floor(rank / strides[i]) % d);
  const mine = coordsOf(parent.rank);
  const axes = new Map<string, Communicator>();
  // Every rank creates every axis group in the same order so group ids agree; each keeps its own.
  for (let axis = 0; axis < shape.length; axis++) {
    const lines = new Map<string, number[]>();
    for (let r = 0; r < parent.size; r++) {
      const c = coordsOf(r);
      const key = c.filter((_, i) => i !== axis).join(",");
      if (!lines.has(key)) lines.set(key, []);
      lines.get(key)!.push(r);
    }
    const myKey = mine.filter((_, i) => i !== axis).join(",");
    for (const [key, ranks] of lines) {
      const group = parent.newGroup(ranks, `${names[axis]}[${key}]`);
      if (key === myKey) axes.set(names[axis], group);
    }
  }
  const coords: Record<string, number> = {};
  names.forEach((n, i) => (coords[n] = mine[i]));
  return {
    shape: [...shape],
    names: [...names],
    coords,
    axis(name: string): Communicator {
      const c = axes.get(name);
      if (!c) throw new RangeError(`mesh: no axis named ${JSON.stringify(name)}; axes are ${names.join(", ")}`);
      return c;
    },
  };
}
