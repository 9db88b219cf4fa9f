/**
 * One outgoing connection of the hosts layer, whichever side dials (the kernel an agent, or an
 * agent the kernel): plain TCP, or TLS whose certificate is checked against a CA file or a pinned
 * SHA-256 fingerprint before a byte is exchanged. Rejects with the reason; the caller says who
 * could not be reached.
 */
import * as net from "node:net";
import * as tls from "node:tls";

/** How a dialled peer's TLS certificate is trusted: a CA's certificate, or a pinned fingerprint. */
export type TlsTrust = { ca: Buffer } | { fingerprint: string };

/** Why a dial failed: the socket's own error (refused, reset, a TLS alert), no connection in time, or a certificate not pinned. */
export class DialError extends Error {
  constructor(
    message: string,
    readonly kind: "socket" | "timeout" | "fingerprint",
  ) {
    super(message);
  }
}

export interface CheckedDial {
  host: string;
  port: number;
  tls?: TlsTrust;
  timeoutMs: number;
  /** The message for a certificate whose fingerprint is not the pinned one. */
  fingerprintMismatch: (seen: string, pinned: string) => string;
}

export function dialChecked(options: CheckedDial): Promise<net.Socket> {
  const trust = options.tls;
  const pinned = trust && "fingerprint" in trust ? trust.fingerprint : undefined;
  const socket = trust
    ? tls.connect({
        host: options.host,
        port: options.port,
        minVersion: "TLSv1.2",
        ...(net.isIP(options.host) ? {} : { servername: options.host }),
        // A pinned fingerprint replaces the CA check (self-signed certificates); it is compared below, before any byte is sent.
        ...("ca" in trust ? { ca: trust.ca } : { rejectUnauthorized: false }),
      })
    : net.connect({ host: options.host, port: options.port });
  socket.setNoDelay(true);
  return new Promise((resolve, reject) => {
    const fail = (error: DialError) => {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    };
    const onError = (error: Error) => fail(new DialError(error.message, "socket"));
    const timer = setTimeout(() => fail(new DialError(`no connection within ${options.timeoutMs / 1000} s`, "timeout")), options.timeoutMs);
    socket.once("error", onError);
    socket.once(trust ? "secureConnect" : "connect", () => {
      if (pinned !== undefined) {
        const seen = (socket as tls.TLSSocket).getPeerCertificate().fingerprint256;
        if (seen !== pinned) return fail(new DialError(options.fingerprintMismatch(seen, pinned), "fingerprint"));
      }
      clearTimeout(timer);
      socket.removeListener("error", onError);
      resolve(socket);
    });
  });
}
