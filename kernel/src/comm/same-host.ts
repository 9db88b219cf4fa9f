// Which peers of a tcp world share this machine, and the Unix socket dial
// that reaches them (tcp-world.ts: ranks on one host skip the TCP/IP stack).
// A hostname alone is not a machine: containers started from one image share
// it. And one machine is not one filesystem: a container with its own /tmp
// cannot see a peer's socket file, so a dial that cannot reach the path says
// so and the caller dials the peer's TCP address instead.
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import type { ReadBinding } from "./tcp-frames";

/**
 * This machine: its hostname and the kernel's boot id. A hostname alone names two machines alike
 * where images set it (containers started from one image with `--hostname worker`); the boot id
 * is random per boot, so two ranks that share both run under one kernel.
 */
export function machineId(): string {
  let boot = "";
  try {
    boot = fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    // not Linux: the hostname alone
  }
  return `${os.hostname()}/${boot}`;
}

/** The errors of a Unix socket path this rank cannot reach (another mount namespace, or a gone file): dial TCP instead. */
const UNREACHABLE_SOCKET = new Set(["ENOENT", "ECONNREFUSED", "EACCES", "ENOTDIR"]);

/**
 * A connected Unix socket to `socketPath` (reading through `read`), or the error that says the path
 * cannot be reached from this rank (UNREACHABLE_SOCKET: the caller dials TCP instead). Other socket
 * errors and the join's cancellation throw.
 */
export async function dialUnix(socketPath: string, read: ReadBinding, cancelled: Promise<never>): Promise<net.Socket | Error> {
  const socket = net.connect({ path: socketPath, onread: read.onread });
  try {
    await Promise.race([
      new Promise<void>((resolve, reject) => {
        socket.once("connect", resolve);
        socket.once("error", reject);
      }),
      cancelled,
    ]);
    return socket;
  } catch (error) {
    socket.destroy();
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== undefined && UNREACHABLE_SOCKET.has(code)) return error as Error;
    throw error;
  }
}
