/**
 * `dist.checkpoint(path, state, { shards })` and `dist.restore(path)`: every
 * rank of the group calls them (they are collectives), on any backend.
 *
 * - `{ shards: "rank0" }`: rank 0 writes its `state` to `path`; the other
 *   ranks' states are not stored (they hold the same replicated values).
 *   restore: rank 0 reads and verifies the file and broadcasts it, so ranks
 *   on other hosts need no copy of the file.
 * - `{ shards: "per-rank" }`: each rank writes its own state to a shard
 *   `PATH.<save id>.rank<R>-of-<N>` next to `path`, then, once every shard is
 *   on disk, rank 0 writes `path` itself as a small manifest naming the save.
 *   A crash before the manifest's rename leaves the previous manifest, which
 *   still names the previous save's shards (a rank deletes its older shards
 *   only after the new manifest is written). restore: rank 0 reads the
 *   manifest, each rank reads and verifies its own shard; it needs a group
 *   of the size that saved.
 *
 * Every file is written atomically with its checksum (checkpoint-file.ts);
 * restore names the file that is missing or damaged.
 */
import { readdirSync, unlinkSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { randomInt } from "node:crypto";
import type { Communicator } from "../comm/types";
import { CheckpointError, encodeCheckpoint, decodeCheckpoint, readCheckpointFile, writeFileAtomically, type CheckpointHeader } from "./checkpoint-file";
import { decodeState, encodeState } from "./checkpoint-state";

type Tf = typeof import("@tensorflow/tfjs");

export type ShardMode = CheckpointHeader["shards"];
export interface CheckpointOptions {
  /** Who writes: "rank0" (rank 0's state, for every rank) or "per-rank" (each rank its own shard). */
  shards: ShardMode;
}
export interface CheckpointInfo {
  /** Files this rank wrote (rank 0's list includes the manifest or the single file). */
  files: string[];
  /** Bytes this rank wrote. */
  bytes: number;
  /** The save's id, the same on every rank. */
  saveId: number;
}

const SHARD_MODES: readonly ShardMode[] = ["rank0", "per-rank"];

export function shardPath(path: string, saveId: number, rank: number, size: number): string {
  return `${path}.${saveId.toString(16)}.rank${rank}-of-${size}`;
}

export interface CheckpointApi {
  checkpoint(path: string, state: unknown, options: CheckpointOptions): Promise<CheckpointInfo>;
  restore<T = unknown>(path: string): Promise<T>;
}

/** `loadTf` is asked for TensorFlow.js only when a restored state holds tensors. */
export function createCheckpointApi(current: () => Communicator, loadTf: () => Tf): CheckpointApi {
  return {
    async checkpoint(path, state, options) {
      if (typeof path !== "string" || path === "") throw new TypeError(`dist.checkpoint: path must be a non-empty string, got ${JSON.stringify(path)}`);
      const mode = options?.shards;
      if (!SHARD_MODES.includes(mode)) {
        throw new TypeError(
          `dist.checkpoint: say who writes with { shards: "rank0" } (rank 0 writes its state for all ranks) or { shards: "per-rank" } (each rank writes its own shard); got ${JSON.stringify(options)}`,
        );
      }
      const comm = current();
      // Rank 0 draws the save id; every rank learns it and checks that all asked for the same mode.
      // Collectives return their result (it may not be written into the argument).
      const agreed = await comm.broadcast(Float64Array.of(randomInt(2 ** 47), SHARD_MODES.indexOf(mode)), 0);
      const saveId = agreed[0]!;
      if (agreed[1] !== SHARD_MODES.indexOf(mode)) {
        throw new CheckpointError(`dist.checkpoint: rank ${comm.rank} asked for { shards: "${mode}" }, rank 0 for { shards: "${SHARD_MODES[agreed[1]!]}" }; every rank must say the same`);
      }
      const header = (rank: number): CheckpointHeader => ({ shards: mode, rank, size: comm.size, saveId, written: new Date().toISOString() });
      const files: string[] = [];
      let bytes = 0;
      const write = (file: string, content: Buffer) => {
        writeFileAtomically(file, content);
        files.push(file);
        bytes += content.byteLength;
      };
      let body: Buffer | undefined;
      if (mode === "per-rank" || comm.rank === 0) {
        try {
          body = await encodeState(state);
        } catch (error) {
          throw new CheckpointError(`dist.checkpoint: rank ${comm.rank}'s state cannot be stored: ${(error as Error).message} (functions, class instances with native handles and the like do not clone)`);
        }
      }
      if (mode === "rank0") {
        if (comm.rank === 0) write(path, encodeCheckpoint(header(0), body!));
        await comm.barrier();
        return { files, bytes, saveId };
      }
      write(shardPath(path, saveId, comm.rank, comm.size), encodeCheckpoint(header(comm.rank), body!));
      // Every shard is on disk before the manifest names them.
      await comm.barrier();
      if (comm.rank === 0) write(path, encodeCheckpoint(header(0), Buffer.alloc(0)));
      await comm.barrier();
      removeOlderShards(path, saveId, comm.rank, comm.size);
      return { files, bytes, saveId };
    },

    async restore<T>(path: string): Promise<T> {
      if (typeof path !== "string" || path === "") throw new TypeError(`dist.restore: path must be a non-empty string, got ${JSON.stringify(path)}`);
      const comm = current();
      // Rank 0 reads `path` (the whole state, or the manifest) and shares it; a failure there is every rank's error.
      const shared = await fromRank0(comm, () => readFileBytes(path));
      const { header, body } = decodeCheckpoint(path, shared);
      if (header.shards === "rank0") return decodeState(body, loadTf) as T;
      if (header.size !== comm.size) {
        throw new CheckpointError(
          `dist.restore: ${path} was saved as ${header.size} per-rank shards, but this group has ${comm.size} ranks; restore it with -n ${header.size} (a { shards: "rank0" } checkpoint restores on any size)`,
        );
      }
      const shard = shardPath(path, header.saveId, comm.rank, comm.size);
      let state: unknown;
      let failure: Error | undefined;
      try {
        const own = readCheckpointFile(shard);
        if (own.header.saveId !== header.saveId || own.header.rank !== comm.rank || own.header.size !== comm.size) {
          throw new CheckpointError(`dist.restore: ${shard} does not belong to the save ${path} names (its header says rank ${own.header.rank} of ${own.header.size}, save ${own.header.saveId.toString(16)})`);
        }
        state = decodeState(own.body, loadTf);
      } catch (error) {
        failure = error as Error;
      }
      // Every rank learns which ranks could not read their shard, so none waits for them.
      const flags = new Float64Array(comm.size);
      flags[comm.rank] = failure ? 1 : 0;
      const failed = await comm.allReduce(flags, { op: "max" });
      if (failure) throw failure;
      const ranks = [...failed].flatMap((flag, rank) => (flag ? [rank] : []));
      if (ranks.length > 0) throw new CheckpointError(`dist.restore: ${path}: rank${ranks.length > 1 ? "s" : ""} ${ranks.join(", ")} could not read ${ranks.length > 1 ? "their shards" : "its shard"} (see ${ranks.length > 1 ? "their" : "its"} error)`);
      return state as T;
    },
  };
}

/** The bytes of `path`, or the CheckpointError naming it. */
function readFileBytes(path: string): Buffer {
  const { header, body } = readCheckpointFile(path);
  return encodeCheckpoint(header, body);
}

/** Rank 0 runs `read`; every rank gets its bytes, or throws the same error rank 0 got. */
async function fromRank0(comm: Communicator, read: () => Buffer): Promise<Buffer> {
  let bytes: Buffer | undefined;
  let message = "";
  if (comm.rank === 0) {
    try {
      bytes = read();
    } catch (error) {
      message = (error as Error).message;
    }
  }
  const payload = comm.rank === 0 ? (bytes ?? Buffer.from(message, "utf8")) : undefined;
  // Collectives return their result (it may not be written into the argument).
  let head = Float64Array.of(bytes ? 1 : 0, payload?.byteLength ?? 0);
  if (comm.size > 1) head = await comm.broadcast(head, 0);
  let data = payload ? new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength) : new Uint8Array(head[1]!);
  if (comm.size > 1 && data.byteLength > 0) data = await comm.broadcast(data, 0);
  // A copy: the collective's result buffer may be reused by a later collective.
  const received = Buffer.from(data);
  if (head[0] !== 1) throw new CheckpointError(received.toString("utf8"));
  return received;
}

/** Deletes this rank's shards of `path` from other saves (rank 0 also those of ranks beyond the group). Best effort. */
function removeOlderShards(path: string, saveId: number, rank: number, size: number): void {
  const prefix = `${basename(path)}.`;
  const pattern = /^([0-9a-f]+)\.rank(\d+)-of-(\d+)$/;
  let names: string[];
  try {
    names = readdirSync(dirname(path));
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const match = pattern.exec(name.slice(prefix.length));
    if (!match || Number.parseInt(match[1]!, 16) === saveId) continue;
    const shardRank = Number(match[2]);
    if (shardRank === rank || (rank === 0 && shardRank >= size)) {
      try {
        unlinkSync(join(dirname(path), name));
      } catch {
        // Another rank's cleanup got there first.
      }
    }
  }
}
