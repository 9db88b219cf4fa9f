/**
 * The Jupyter wire format: how one message becomes zeromq frames and back.
 *
 *   [identities..., "<IDS|MSG>", signature, header, parent_header, metadata, content, buffers...]
 *
 * The signature is the hex HMAC of the four JSON frames under the connection
 * file's key; with an empty key, messages are unsigned (signature "").
 */
import { createHmac, getHashes, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, JupyterMessage } from "./messages";

export const DELIMITER = Buffer.from("<IDS|MSG>");

/** A frame sequence that is not a valid (or not an authentic) Jupyter message. */
export class WireError extends Error {
  override name = "WireError";
}

export class MessageSigner {
  private readonly algorithm: string;
  private readonly key: Buffer;

  /** `scheme` is the connection file's `signature_scheme`, e.g. "hmac-sha256". */
  constructor(scheme: string, key: string) {
    const match = /^hmac-(.+)$/.exec(scheme);
    if (!match || !getHashes().includes(match[1])) {
      throw new WireError(`signature_scheme ${JSON.stringify(scheme)} is not supported; use hmac-sha256`);
    }
    this.algorithm = match[1];
    this.key = Buffer.from(key, "utf8");
  }

  sign(frames: Buffer[]): string {
    if (this.key.length === 0) return "";
    const hmac = createHmac(this.algorithm, this.key);
    for (const frame of frames) hmac.update(frame);
    return hmac.digest("hex");
  }

  verify(signature: string, frames: Buffer[]): boolean {
    if (this.key.length === 0) return true;
    const expected = Buffer.from(this.sign(frames), "utf8");
    const given = Buffer.from(signature, "utf8");
    // timingSafeEqual needs equal lengths; a length mismatch is already a failure.
    return expected.length === given.length && timingSafeEqual(expected, given);
  }
}

function jsonFrame(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), "utf8");
}

export function encodeMessage(message: JupyterMessage, signer: MessageSigner, identities: Buffer[] = []): Buffer[] {
  const payload = [
    jsonFrame(message.header),
    jsonFrame(message.parent_header),
    jsonFrame(message.metadata),
    jsonFrame(message.content),
  ];
  return [...identities, DELIMITER, Buffer.from(signer.sign(payload), "utf8"), ...payload, ...message.buffers];
}

function parseJsonFrame(frame: Buffer, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(frame.toString("utf8"));
  } catch (error) {
    throw new WireError(`message ${what} is not JSON: ${(error as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new WireError(`message ${what} must be a JSON object`);
  }
  return value as Record<string, unknown>;
}

export function decodeMessage(frames: Buffer[], signer: MessageSigner): IncomingMessage {
  const delimiterIndex = frames.findIndex((frame) => frame.equals(DELIMITER));
  if (delimiterIndex < 0) throw new WireError("message has no <IDS|MSG> delimiter frame");
  const rest = frames.slice(delimiterIndex + 1);
  if (rest.length < 5) {
    throw new WireError(`message has ${rest.length} frames after <IDS|MSG>; expected at least 5`);
  }
  const [signature, header, parent, metadata, content, ...buffers] = rest;
  if (!signer.verify(signature.toString("utf8"), [header, parent, metadata, content])) {
    throw new WireError("message signature does not match the connection key");
  }
  const decodedHeader = parseJsonFrame(header, "header");
  if (typeof decodedHeader.msg_type !== "string" || typeof decodedHeader.msg_id !== "string") {
    throw new WireError("message header lacks a string msg_type or msg_id");
  }
  return {
    identities: frames.slice(0, delimiterIndex),
    header: decodedHeader as unknown as IncomingMessage["header"],
    parent_header: parseJsonFrame(parent, "parent_header") as IncomingMessage["parent_header"],
    metadata: parseJsonFrame(metadata, "metadata"),
    content: parseJsonFrame(content, "content"),
    buffers,
  };
}
