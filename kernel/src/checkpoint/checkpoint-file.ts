/**
 * One checkpoint file on disk, written so that a crash at any moment leaves
 * either the previous complete file or the new complete file, never a mix:
 * the bytes go to a temporary file in the same directory, which is fsynced,
 * renamed over the target (rename is atomic within a filesystem), and the
 * directory is fsynced so the rename itself survives a power loss.
 *
 * Layout (all of it covered by the trailing checksum, so a flipped bit or a
 * truncated copy anywhere is caught):
 *
 *   "DLCKPT1\n"            8 bytes of magic
 *   header length          u32 big-endian
 *   header                 JSON (CheckpointHeader), UTF-8
 *   body                   v8-serialized state (checkpoint-state.ts)
 *   SHA-256                32 bytes over everything above
 */
import { createHash, randomBytes } from "node:crypto";
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";

const MAGIC = Buffer.from("DLCKPT1\n", "latin1");
const DIGEST_BYTES = 32;

/** What a checkpoint file says about itself. */
export interface CheckpointHeader {
  /** "rank0": one file with rank 0's state for every rank; "per-rank": this file is one rank's shard. */
  shards: "rank0" | "per-rank";
  /** The writing rank and the group's size when it was written. */
  rank: number;
  size: number;
  /** Same for every shard of one save (rank 0 draws it): shards of different saves do not mix. */
  saveId: number;
  /** ISO time of the write. */
  written: string;
}

/** A checkpoint that is missing, damaged or does not fit the group; the message names the file. */
export class CheckpointError extends Error {
  override readonly name = "CheckpointError";
}

export function encodeCheckpoint(header: CheckpointHeader, body: Uint8Array): Buffer {
  const headerBytes = Buffer.from(JSON.stringify(header), "utf8");
  const length = Buffer.alloc(4);
  length.writeUInt32BE(headerBytes.byteLength, 0);
  const content = Buffer.concat([MAGIC, length, headerBytes, body]);
  return Buffer.concat([content, createHash("sha256").update(content).digest()]);
}

/** Checks magic and checksum; returns the header and the body. `where` names the call in errors. */
export function decodeCheckpoint(path: string, bytes: Buffer, where = "dist.restore"): { header: CheckpointHeader; body: Buffer } {
  if (bytes.byteLength < MAGIC.byteLength + 4 + DIGEST_BYTES || !bytes.subarray(0, MAGIC.byteLength).equals(MAGIC)) {
    throw new CheckpointError(`${where}: ${path} is not a distlab checkpoint (it does not start with the DLCKPT1 header)`);
  }
  const content = bytes.subarray(0, bytes.byteLength - DIGEST_BYTES);
  const stored = bytes.subarray(bytes.byteLength - DIGEST_BYTES);
  const actual = createHash("sha256").update(content).digest();
  if (!actual.equals(stored)) {
    throw new CheckpointError(
      `${where}: ${path} is damaged: its SHA-256 does not match its contents (stored ${stored.toString("hex").slice(0, 16)}..., computed ${actual.toString("hex").slice(0, 16)}...); restore an older checkpoint`,
    );
  }
  const headerLength = content.readUInt32BE(MAGIC.byteLength);
  const headerStart = MAGIC.byteLength + 4;
  let header: CheckpointHeader;
  try {
    header = JSON.parse(content.subarray(headerStart, headerStart + headerLength).toString("utf8")) as CheckpointHeader;
  } catch {
    throw new CheckpointError(`${where}: ${path} has a checksum that matches but a header that is not JSON (written by another program?)`);
  }
  return { header, body: content.subarray(headerStart + headerLength) };
}

/**
 * Writes `bytes` to `path` atomically (temporary file, fsync, rename, directory fsync).
 * A temporary file left by a crash is named `.NAME.tmp-...` next to `path`; it is never read.
 */
export function writeFileAtomically(path: string, bytes: Uint8Array): void {
  const directory = dirname(path);
  const temporary = join(directory, `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
  let fd: number | undefined;
  try {
    fd = openSync(temporary, "wx", 0o600);
    for (let written = 0; written < bytes.byteLength; ) written += writeSync(fd, bytes, written, bytes.byteLength - written);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(temporary, path);
  } catch (error) {
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(temporary);
    } catch {
      // Not created, or already renamed.
    }
    throw error;
  }
  const directoryFd = openSync(directory, "r");
  try {
    fsyncSync(directoryFd);
  } finally {
    closeSync(directoryFd);
  }
}

/** Reads and verifies one checkpoint file; a missing file is a CheckpointError naming it. */
export function readCheckpointFile(path: string, where = "dist.restore"): { header: CheckpointHeader; body: Buffer } {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new CheckpointError(`${where}: ${path}: ${code === "ENOENT" ? "no such checkpoint file" : (error as Error).message}`);
  }
  return decodeCheckpoint(path, bytes, where);
}
