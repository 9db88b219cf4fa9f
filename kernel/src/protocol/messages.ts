/**
 * Shapes of Jupyter messages (messaging protocol 5.3), as they travel between
 * the kernel and its frontends. Types only, plus the header factory that every
 * outgoing message goes through.
 */
import { randomUUID } from "node:crypto";
import { userInfo } from "node:os";

export const PROTOCOL_VERSION = "5.3";

export interface MessageHeader {
  msg_id: string;
  msg_type: string;
  session: string;
  username: string;
  /** ISO 8601 with a time zone. */
  date: string;
  version: string;
}

/** `parent_header` is `{}` on messages that answer nothing (e.g. the first status). */
export type ParentHeader = MessageHeader | Record<string, never>;

export interface JupyterMessage<Content = Record<string, unknown>> {
  header: MessageHeader;
  parent_header: ParentHeader;
  metadata: Record<string, unknown>;
  content: Content;
  buffers: Buffer[];
}

/** A message received on a ROUTER socket, with the routing prefix needed to answer it. */
export interface IncomingMessage extends JupyterMessage {
  /** zeromq routing identities that preceded `<IDS|MSG>`; replies go back to them. */
  identities: Buffer[];
}

function defaultUsername(): string {
  try {
    return userInfo().username;
  } catch {
    // userInfo() throws when the uid has no passwd entry (some containers).
    return "kernel";
  }
}

/** Builds headers for one kernel session: same `session` and `username` on all of them. */
export class HeaderFactory {
  readonly session = randomUUID();
  private readonly username = defaultUsername();

  make(msgType: string): MessageHeader {
    return {
      msg_id: randomUUID(),
      msg_type: msgType,
      session: this.session,
      username: this.username,
      date: new Date().toISOString(),
      version: PROTOCOL_VERSION,
    };
  }
}
