// Test harness: a real shared-memory world of N worker threads, kept alive
// across many property-test cases. Workers run TypeScript through tsx's
// CommonJS hook, so tests need no build step.
import { Worker } from "node:worker_threads";
import * as path from "node:path";
import { createShmWorld, cancelShmWorld, type ShmWorldInit, type ShmWorldOptions, type CommOptions } from "../../kernel/src/comm";

export interface RankReply {
  rank: number;
  ok: boolean;
  value?: unknown;
  error?: { name: string; message: string };
}

export class ThreadWorld {
  readonly init: ShmWorldInit;
  private readonly workers: Worker[] = [];
  private nextId = 1;

  constructor(
    readonly size: number,
    options: ShmWorldOptions & { comm?: Omit<CommOptions, "onSpan"> & { spans?: boolean }; workerFile?: string; env?: NodeJS.ProcessEnv } = {},
  ) {
    this.init = createShmWorld(size, options);
    // The rank program: comm-worker.ts (comm scenarios) unless a test names another (techniques-worker.ts).
    const workerFile = options.workerFile ?? path.join(__dirname, "comm-worker.ts");
    for (let rank = 0; rank < size; rank++) {
      this.workers.push(
        // tsx's CommonJS hook compiles the TypeScript worker on load
        new Worker(`require("tsx/cjs"); require(${JSON.stringify(workerFile)});`, {
          eval: true,
          workerData: { init: this.init, rank, options: options.comm ?? {} },
          // the ranks' environment (default: this process's), e.g. DISTLAB_PEER_MEMORY=off
          ...(options.env ? { env: options.env } : {}),
        }),
      );
    }
  }

  /** Runs scenario `name` on every rank (args[rank] given to rank); resolves with each rank's reply. */
  run(name: string, args: unknown[] = [], timeoutMs = 60_000): Promise<RankReply[]> {
    const id = this.nextId++;
    return Promise.all(
      this.workers.map(
        (w, rank) =>
          new Promise<RankReply>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`rank ${rank}: scenario ${name} gave no reply in ${timeoutMs} ms`)), timeoutMs);
            const onMessage = (m: RankReply & { id: number }) => {
              if (m.id !== id) return;
              clearTimeout(timer);
              w.off("message", onMessage);
              resolve(m);
            };
            w.on("message", onMessage);
            w.postMessage({ id, name, arg: args[rank] });
          }),
      ),
    );
  }

  /** Like run, but throws the first rank's error. */
  async values(name: string, args: unknown[] = []): Promise<unknown[]> {
    const replies = await this.run(name, args);
    for (const r of replies) if (!r.ok) throw new Error(`rank ${r.rank}: ${r.error!.name}: ${r.error!.message}`);
    return replies.map((r) => r.value);
  }

  worker(rank: number): Worker {
    return this.workers[rank];
  }

  cancel(reason?: string): void {
    cancelShmWorld(this.init, reason);
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
