// Which algorithm a collective runs: the caller's `{algorithm}` when it is
// available for the op, group and transport, else the automatic choice by
// transport and message size (the table in docs/collectives.md).
import { isPowerOfTwo } from "./algorithms-rhd";
import type { Algorithm } from "./types";

export type ChoosableOp = "allReduce" | "reduceScatter" | "allGather" | "broadcast";

export const SUPPORTED: Record<ChoosableOp, readonly Algorithm[]> = {
  allReduce: ["ring", "recursive-doubling", "rhd", "direct", "pairwise"],
  reduceScatter: ["ring", "rhd", "direct"],
  allGather: ["ring", "rhd", "direct"],
  broadcast: ["ring", "recursive-doubling", "direct"],
};

/**
 * Largest group for which allReduce over a network picks `pairwise` by itself: each rank then
 * sends to n-1 peers at once, measured faster than the ring for 3 ranks (veth between network
 * namespaces, TCP loopback) and no slower for 4 (loopback); larger groups keep the ring.
 */
export const PAIRWISE_MAX_RANKS = 4;
/**
 * Largest allReduce (bytes a rank) for which `pairwise` is picked by itself. Its gain is steps (2
 * instead of 2(n-1)), which counts where a step's fixed cost is a large share of the call; its
 * cost is CPU (a later peer's piece lands in scratch memory and is copied once more before it is
 * added), which counts where the call is long. Between 3 network namespaces it took 1 MiB from
 * 0.26 to 0.37-0.49 GB/s busbw, was level with the ring at 4 and 16 MiB and 5-25% slower at 64 MiB.
 */
export const PAIRWISE_MAX_BYTES = 4 * 1024 * 1024;

/** Below this many bytes per rank, latency (steps) outweighs bandwidth (volume). */
export const SMALL_MESSAGE_BYTES = 64 * 1024;

export interface ChoiceContext {
  /** the shm world communicator without an emulated link: the direct paths apply */
  direct: boolean;
  /** group size */
  n: number;
  /** this rank's input bytes */
  bytes: number;
  /** the transport reaches peers over TCP/IP (ranks on other hosts, or forced tcp) */
  overNetwork?: boolean;
  /** an allReduce the transport would run on its native ring (tcp-native-ring.ts) */
  nativeRing?: boolean;
}

export function chooseAlgorithm(op: ChoosableOp, wanted: Algorithm | undefined, c: ChoiceContext): Algorithm {
  if (wanted !== undefined) {
    if (!SUPPORTED[op].includes(wanted)) throw unsupported(op, wanted, SUPPORTED[op]);
    if (wanted === "direct" && !c.direct) {
      throw new RangeError(`${op}: algorithm "direct" needs the world communicator of a shm (thread) world without an emulated link`);
    }
    if (wanted === "rhd" && op !== "allReduce" && !isPowerOfTwo(c.n)) {
      throw new RangeError(`${op}: algorithm "rhd" needs a power-of-two group size, got ${c.n} ranks; use "ring"`);
    }
    return wanted;
  }
  if (c.direct) return "direct";
  const small = c.bytes <= SMALL_MESSAGE_BYTES;
  switch (op) {
    case "allReduce":
      if (small) return "recursive-doubling";
      // the native ring's steps cost no JavaScript: between 3 hosts it beat the pairwise exchange
      // at 1 MiB (0.58-0.59 GB/s against 0.42-0.47) and 4 MiB
      if (c.nativeRing) return "ring";
      return c.overNetwork && c.n >= 3 && c.n <= PAIRWISE_MAX_RANKS && c.bytes <= PAIRWISE_MAX_BYTES ? "pairwise" : "ring";
    case "reduceScatter":
    case "allGather":
      return small && isPowerOfTwo(c.n) ? "rhd" : "ring";
    case "broadcast":
      return small || c.n <= 2 ? "recursive-doubling" : "ring";
  }
}

export function unsupported(op: string, algorithm: string, supported: readonly string[]): RangeError {
  return new RangeError(`${op}: algorithm ${JSON.stringify(algorithm)} is not available; use ${supported.map((s) => JSON.stringify(s)).join(" or ")}`);
}
