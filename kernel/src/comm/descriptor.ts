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
export const ALGORITHMS = ["ring", "recursive-doubling", "direct", "p2p", "rhd", "pairwise"] as const;

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
  /**
   * The cell that made the call (its id; 0 outside cells). Frames of an ended
   * cell never match a later cell's receives: transports drop them.
   */
  epoch: number;
  /** shapeHash() of the caller's tensor shape; 0 = no shape given (a flat array) */
  shape: number;
}

/** Int32 words a descriptor takes in shared memory or in a frame header. */
export const DESCRIPTOR_WORDS = 8;

/**
 * Word layout (opcode, redop and algorithm are small codes and share word 2):
 * 0 group, 1 call, 2 opcode | redop << 8 | algorithm << 16, 3 count, 4 dtype, 5 root, 6 epoch, 7 shape.
 */
export function writeDescriptor(words: Int32Array, at: number, d: Descriptor): void {
  words[at] = d.group;
  words[at + 1] = d.call;
  words[at + 2] = (d.opcode & 0xff) | ((d.redop & 0xff) << 8) | ((d.algorithm & 0xff) << 16);
  words[at + 3] = d.count;
  words[at + 4] = d.dtype;
  words[at + 5] = d.root;
  words[at + 6] = d.epoch;
  words[at + 7] = d.shape;
}

/**
 * Posts a rank's descriptor where other threads read it while it changes, under a sequence lock on
 * `seqWord`: odd while the words are being written, even (and larger) once they are whole; 0 = never
 * posted. Call numbers count per group, so two calls in a row can share a number (allReduce #1 of a tp
 * group, then barrier #1 of the world): the sequence, not the call number, tells a reader that the
 * words moved under it. Only the owning rank writes its words.
 */
export function postDescriptor(words: Int32Array, seqWord: number, at: number, d: Descriptor): void {
  const seq = Atomics.load(words, seqWord);
  Atomics.store(words, seqWord, seq + 1);
  writeDescriptor(words, at, d);
  Atomics.store(words, seqWord, seq + 2);
}

/** The descriptor postDescriptor() left at `at`, whole; undefined when none was posted or it is being rewritten. */
export function readPostedDescriptor(words: Int32Array, seqWord: number, at: number): Descriptor | undefined {
  const before = Atomics.load(words, seqWord);
  if (before === 0 || before % 2 === 1) return undefined;
  const desc = readDescriptor(words, at);
  return Atomics.load(words, seqWord) === before ? desc : undefined;
}

export function readDescriptor(words: Int32Array, at: number): Descriptor {
  const codes = Atomics.load(words, at + 2);
  return {
    group: Atomics.load(words, at),
    call: Atomics.load(words, at + 1),
    opcode: codes & 0xff,
    count: Atomics.load(words, at + 3),
    dtype: Atomics.load(words, at + 4),
    root: Atomics.load(words, at + 5),
    redop: (codes >> 8) & 0xff,
    algorithm: (codes >> 16) & 0xff,
    epoch: Atomics.load(words, at + 6),
    shape: Atomics.load(words, at + 7),
  };
}

/** Shapes seen on this thread by hash, so a mismatch message can print a peer's shape when it is known here. */
const knownShapes = new Map<number, string>();

/** A nonzero 31-bit FNV-1a hash of a tensor shape ([2, 3] and [3, 2] differ); 0 is kept for "no shape". */
export function shapeHash(shape: readonly number[]): number {
  let h = 0x811c9dc5;
  for (const dim of [shape.length, ...shape]) {
    for (let b = 0; b < 4; b++) {
      h ^= (dim >>> (8 * b)) & 0xff;
      h = Math.imul(h, 0x01000193);
    }
  }
  const hash = (h & 0x7fffffff) || 1;
  if (knownShapes.size < 1024) knownShapes.set(hash, `[${shape.join(", ")}]`);
  return hash;
}

function describeShape(hash: number): string {
  return knownShapes.get(hash) ?? `another shape (hash ${hash.toString(16)})`;
}

/** Human form: `allReduce #3 (1024 x float32, op sum, ring)`. */
export function describeCall(d: Descriptor): string {
  const op = OPCODES[d.opcode] ?? `op#${d.opcode}`;
  const parts = [`${d.count < 0 ? "any" : d.count} x ${dtypeName(d.dtype)}`];
  if (d.shape !== 0) parts.push(`shape ${describeShape(d.shape)}`);
  if (op === "allReduce" || op === "reduce" || op === "reduceScatter") parts.push(`op ${REDUCE_OPS[d.redop]}`);
  if (op === "broadcast" || op === "reduce" || op === "gather" || op === "scatter") parts.push(`root ${d.root}`);
  parts.push(ALGORITHMS[d.algorithm] ?? `algorithm#${d.algorithm}`);
  const cell = d.epoch > 0 ? ` of cell ${d.epoch}` : "";
  return `${op} #${d.call}${cell} (${parts.join(", ")})`;
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
    a.algorithm === b.algorithm &&
    a.epoch === b.epoch &&
    (a.shape === b.shape || a.shape === 0 || b.shape === 0)
  );
}

export function mismatchMessage(rankA: number, a: Descriptor, rankB: number, b: Descriptor): string {
  return `mismatched collectives: rank ${rankA} called ${describeCall(a)} but rank ${rankB} called ${describeCall(b)}`;
}

/** Has `theirs` entered the call `mine` (same group, cell and call number)? */
export function sameCallNumber(mine: Descriptor, theirs: Descriptor | undefined): theirs is Descriptor {
  return theirs !== undefined && theirs.group === mine.group && theirs.epoch === mine.epoch && theirs.call === mine.call;
}

/** One member's call as the rank that found a mismatch learned it; desc undefined: it has made no collective call. */
export interface MemberCall {
  rank: number;
  desc?: Descriptor;
}

/**
 * The mismatch naming every member's call, in rank order:
 * `mismatched collectives: rank 0 called allReduce #3 (...); rank 1 called broadcast #3 (...); rank 2 has not made
 * call #3 (its latest call: ...)`. `mine` is the call of the rank that found it: it says which call number each member is at.
 */
export function mismatchOfMembers(mine: Descriptor, members: readonly MemberCall[]): string {
  const parts = [...members].sort((a, b) => a.rank - b.rank).map(({ rank, desc }) =>
    sameCallNumber(mine, desc)
      ? `rank ${rank} called ${describeCall(desc)}`
      : `rank ${rank} has not made call #${mine.call} (its latest call: ${desc ? describeCall(desc) : "none"})`,
  );
  return `mismatched collectives: ${parts.join("; ")}`;
}
