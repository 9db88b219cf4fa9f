/**
 * Framing of the kernel <-> agent control connection: each frame is a
 * 4-byte big-endian length, then that many bytes of body. The reader checks
 * the length against a limit before it buffers anything, so a peer that
 * announces 1 GiB costs nothing but the 4 bytes it sent: the connection is
 * closed instead. Before authentication the limit is the handshake's
 * (a few KiB of JSON); after it, the limit is the largest task or result
 * (cell code, pushed values).
 */

/** Bytes of a frame's length prefix. */
export const FRAME_PREFIX_BYTES = 4;

/** A frame the reader refuses: its connection is closed, the agent keeps serving others. */
export class FrameError extends Error {
  override readonly name = "FrameError";
}

export function encodeFrame(body: Uint8Array): Buffer {
  const prefix = Buffer.alloc(FRAME_PREFIX_BYTES);
  prefix.writeUInt32BE(body.byteLength, 0);
  return Buffer.concat([prefix, body]);
}

/** Cuts a byte stream into frame bodies; `limit` (bytes of body) may be raised once the peer is trusted. */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(public limit: number) {}

  /** Takes the next bytes of the stream; returns every frame body now complete. Throws FrameError on an oversized frame. */
  push(chunk: Buffer): Buffer[] {
    this.append(chunk);
    const frames: Buffer[] = [];
    for (let frame = this.next(); frame !== undefined; frame = this.next()) frames.push(frame);
    return frames;
  }

  /** Takes the next bytes of the stream without cutting them: next() does, one frame at a time. */
  append(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.byteLength;
  }

  /**
   * The next whole frame body, or undefined until more bytes arrive. Throws FrameError when the
   * next frame is oversized. Bytes after the frame returned are not looked at: a handshake that
   * ends with this frame hands them on (drain()) as the next protocol's, whatever they hold.
   */
  next(): Buffer | undefined {
    if (this.buffered < FRAME_PREFIX_BYTES) return undefined;
    const length = this.peek(FRAME_PREFIX_BYTES).readUInt32BE(0);
    if (length > this.limit) throw new FrameError(`a frame of ${length} bytes is over the limit of ${this.limit} bytes`);
    if (this.buffered < FRAME_PREFIX_BYTES + length) return undefined;
    return this.take(FRAME_PREFIX_BYTES + length).subarray(FRAME_PREFIX_BYTES);
  }

  /** Hands over the bytes buffered past the last frame taken, and forgets them. */
  drain(): Buffer {
    const rest = Buffer.concat(this.chunks);
    this.chunks = [];
    this.buffered = 0;
    return rest;
  }

  private peek(bytes: number): Buffer {
    if (this.chunks[0]!.byteLength < bytes) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!.subarray(0, bytes);
  }

  private take(bytes: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const frame = all.subarray(0, bytes);
    const rest = all.subarray(bytes);
    this.chunks = rest.byteLength > 0 ? [rest] : [];
    this.buffered = rest.byteLength;
    return frame;
  }
}
