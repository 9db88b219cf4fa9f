/**
 * TLS on a TCP world's connections between hosts (`--data-tls`, or on by
 * itself where the kernel reached the agents over TLS; docs/distributed.md).
 * The ranks hold no certificates: both ends already share the world's
 * secret (data-handshake.ts), so TLS 1.3 runs with a pre-shared key derived
 * from it (RFC 8446 PSK with (EC)DHE key exchange, so a recorded session
 * stays unreadable even if the secret leaks later). A peer without the
 * secret fails the TLS handshake itself; the data handshake then runs
 * inside TLS as on a plain connection. Ranks of one host talk over Unix
 * sockets and never encrypt (nothing crosses a network).
 */
import { createHmac } from "node:crypto";
import type * as tls from "node:tls";

/** AES-GCM runs on the CPU's AES instructions; SHA-256 is the hash the PSK is bound to. */
const CIPHER_SUITE = "TLS_AES_128_GCM_SHA256";
const PSK_IDENTITY = "distlab-world";

/** The world's TLS key: its own derivation, so the TLS layer never holds the handshake's secret itself. */
function pskOf(secret: Buffer): Buffer {
  return createHmac("sha256", secret).update("distlab-data-tls-psk").digest();
}

export function dataTlsServerOptions(secret: Buffer): tls.TlsOptions {
  const psk = pskOf(secret);
  return { minVersion: "TLSv1.3", ciphers: CIPHER_SUITE, pskCallback: (_socket, identity) => (identity === PSK_IDENTITY ? psk : null) };
}

export function dataTlsClientOptions(secret: Buffer): tls.ConnectionOptions {
  const psk = pskOf(secret);
  return {
    minVersion: "TLSv1.3",
    ciphers: CIPHER_SUITE,
    pskCallback: () => ({ psk, identity: PSK_IDENTITY }),
    // The PSK authenticates the server; there is no certificate or name to check.
    checkServerIdentity: () => undefined,
  };
}
