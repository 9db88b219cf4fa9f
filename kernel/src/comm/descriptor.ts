// The descriptor every rank posts for each collective call: what it is doing
// and with what arguments. Ranks compare descriptors to catch mismatched calls
// (rank 0 in allReduce while rank 1 is in broadcast, or different lengths)
// instead of corrupting data or hanging.
import { dtypeName } from "./dtype";

export const OPCODES = [
  "send", "allReduce", "reduce", "reduceScatter", "allGather", "broadcast",
  "gather", "scatter", "allToAll", "barrier",
] as const;
export type OpName = (typeof OPCODES)[number];
export const REDUCE_OPS = ["sum", "mean", "max", "min", "product"] as const;
export const ALGORITHMS = ["ring", "recursive-doubling", "direct", "p2p", "rhd"] as const;

/** count = -1 means "any" (e.g. a scatter receiver learns its length from the root). */
export interface Descriptor {
  group: number;
  call: number;
  opcode: number;
  count: number;
  dtype: number;
  root: number;
  redop: number;
  algorithm: number;
}

/** Int32 words a descriptor takes in shared memory or in a frame header. */
export const DESCRIPTOR_WORDS = 8;

export function writeDescriptor(words: Int32Array, at: number, d: Descriptor): void {
  words[at] = d.group;
  words[at + 1] = d.call;
  words[at + 2] = d.opcode;
  words[at + 3] = d.count;
  words[at + 4] = d.dtype;
  words[at + 5] = d.root;
  words[at + 6] = d.redop;
  words[at + 7] = d.algorithm;
}

export function readDescriptor(words: Int32Array, at: number): Descriptor {
  return {
    group: Atomics.load(words, at),
    call: Atomics.load(words, at + 1),
    opcode: Atomics.load(words, at + 2),
    count: Atomics.load(words, at + 3),
    dtype: Atomics.load(words, at + 4),
    root: Atomics.load(words, at + 5),
    redop: Atomics.load(words, at + 6),
    algorithm: Atomics.load(words, at + 7),
  };
}

/** Human form: `allReduce #3 (1024 x float32, op sum, ring)`. */
export function describeCall(d: Descriptor): string {
  const op = OPCODES[d.opcode] ?? `op#${d.opcode}`;
  const parts = [`${d.count < 0 ? "any" : d.count} x ${dtypeName(d.dtype)}`];
  if (op === "allReduce" || op === "reduce" || op === "reduceScatter") parts.push(`op ${REDUCE_OPS[d.redop]}`);
  if (op === "broadcast" || op === "reduce" || op === "gather" || op === "scatter") parts.push(`root ${d.root}`);
  parts.push(ALGORITHMS[d.algorithm] ?? `algorithm#${d.algorithm}`);
  return `${op} #${d.call} (${parts.join(", ")})`;
}

export function callLabel(d: Descriptor): string {
  return `${OPCODES[d.opcode]} #${d.call}`;
}

/** Same call, same arguments? Both must be for the same group and call number. */
export function descriptorsAgree(a: Descriptor, b: Descriptor): boolean {
  return (
    a.group === b.group &&
    a.call === b.call &&
    a.opcode === b.opcode &&
    (a.count === b.count || a.count < 0 || b.count < 0) &&
    a.dtype === b.dtype &&
    a.root === b.root &&
    a.redop === b.redop &&
    a.algorithm === b.algorithm
  );
}

export function mismatchMessage(rankA: number, a: Descriptor, rankB: number, b: Descriptor): string {
  return `mismatched collectives: rank ${rankA} called ${describeCall(a)} but rank ${rankB} called ${describeCall(b)}`;
}
