// Test harness: a real TCP world of N child processes (node --import tsx),
// formed through a real rendezvous server; IPC uses structured clone
// ("advanced" serialization) so typed arrays arrive as typed arrays.
import { fork, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { startTcpRendezvous, type Rendezvous } from "../../kernel/src/comm";
import type { RankReply } from "./comm-harness";

export class ProcessWorld {
  readonly children: ChildProcess[] = [];
  private nextId = 1;
  private constructor(private readonly rendezvous: Rendezvous) {}

  /**
   * `comm`: more options of each rank's connectTcpWorld (JSON, e.g. `resultPool`); `privateTmp`:
   * ranks that run in a mount namespace of their own with an empty /tmp (`unshare`, as root), so
   * their Unix sockets cannot be reached from the others, as in a container on the same machine.
   */
  static async start(size: number, options: { timeoutMs?: number; transport?: "tcp" | "unix"; comm?: object; privateTmp?: number[] } = {}): Promise<ProcessWorld> {
    const rendezvous = await startTcpRendezvous(size);
    const world = new ProcessWorld(rendezvous);
    const ready: Promise<void>[] = [];
    for (let rank = 0; rank < size; rank++) {
      const child = fork(
        path.join(__dirname, "comm-tcp-rank.ts"),
        [String(rank), String(size), rendezvous.address, String(options.timeoutMs ?? 20_000), options.transport ?? "tcp", ...(options.comm ? [JSON.stringify(options.comm)] : [])],
        options.privateTmp?.includes(rank)
          ? {
              // unshare runs sh in a new mount namespace, which mounts a fresh tmpfs over the rank's own
              // TMPDIR (not /tmp itself: the checkout may live there) and execs node ($0) with its arguments
              execPath: "unshare",
              execArgv: ["--mount", "--propagation", "private", "sh", "-c", 'mount -t tmpfs tmpfs "$TMPDIR" && exec "$0" "$@"', process.execPath, "--import", "tsx"],
              env: { ...process.env, TMPDIR: world.privateDir() },
              serialization: "advanced",
              stdio: ["ignore", "inherit", "inherit", "ipc"],
            }
          : { execArgv: ["--import", "tsx"], serialization: "advanced", stdio: ["ignore", "inherit", "inherit", "ipc"] },
      );
      world.children.push(child);
      // the world's secret goes over the IPC channel, never in argv
      child.send({ world: rendezvous.credentials.world, secret: rendezvous.credentials.secret.toString("hex") });
      ready.push(new Promise((resolve) => child.once("message", () => resolve())));
    }
    await Promise.all(ready);
    rendezvous.close();
    return world;
  }

  run(name: string, args: unknown[] = []): Promise<RankReply[]> {
    const id = this.nextId++;
    return Promise.all(
      this.children.map(
        (child, rank) =>
          new Promise<RankReply>((resolve) => {
            const onMessage = (m: RankReply & { id: number }) => {
              if (m.id !== id) return;
              child.off("message", onMessage);
              resolve(m);
            };
            child.on("message", onMessage);
            child.once("exit", (code, signal) => resolve({ rank, ok: false, error: { name: "Exit", message: `exited ${code ?? signal}` } }));
            child.send({ id, name, arg: args[rank] });
          }),
      ),
    );
  }

  async values(name: string, args: unknown[] = []): Promise<unknown[]> {
    const replies = await this.run(name, args);
    for (const r of replies) if (!r.ok) throw new Error(`rank ${r.rank}: ${r.error!.name}: ${r.error!.message}`);
    return replies.map((r) => r.value);
  }

  /** A directory the private-/tmp ranks mount over (empty as the other ranks see it). */
  private privateDirPath?: string;
  private privateDir(): string {
    this.privateDirPath ??= fs.mkdtempSync(path.join(os.tmpdir(), "distlab-private-tmp-"));
    return this.privateDirPath;
  }

  close(): void {
    for (const c of this.children) if (c.exitCode === null) c.kill("SIGKILL");
    if (this.privateDirPath) fs.rmSync(this.privateDirPath, { recursive: true, force: true });
  }
}
