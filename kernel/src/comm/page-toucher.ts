// Faults in the pages of fresh shared memory on a helper thread. The first
// write to each 4 KiB page of new memory traps into the kernel, which finds
// and zeroes a page for it: for a 64 MiB block that costs several times a
// copy of the block (figures: docs/collectives.md, "Figures behind the code").
// The result pool (result-pool.ts) has spare blocks touched here while its
// rank goes on with its calls, so a call that needs a new block gets one
// whose pages are in place. Page tables belong to the process, so a page
// this thread touched is there for every rank thread.
import { Worker } from "node:worker_threads";

/** One write per 4 KiB page (a read would map the shared zero page and fault again on the write). */
const TOUCHER_SOURCE = `
const { parentPort } = require("node:worker_threads");
parentPort.on("message", ({ id, buffer }) => {
  const bytes = new Uint8Array(buffer);
  for (let i = 0; i < bytes.length; i += 4096) bytes[i] = 0;
  parentPort.postMessage(id);
});`;

export class PageToucher {
  private worker?: Worker;
  private nextId = 0;
  /** touches under way: id -> resolve */
  private readonly pending = new Map<number, () => void>();

  /**
   * Resolves once every page of `buffer` was written (zeros: its contents are undefined until the
   * caller writes them), or once the helper is gone: then no write of its is still to come.
   */
  touch(buffer: SharedArrayBuffer): Promise<void> {
    return new Promise<void>((resolve) => {
      const worker = this.start();
      if (!worker) return resolve();
      const id = ++this.nextId;
      this.pending.set(id, resolve);
      worker.ref(); // while a touch is under way its answer must be able to arrive
      worker.postMessage({ id, buffer });
    });
  }

  private start(): Worker | undefined {
    if (this.worker) return this.worker;
    try {
      this.worker = new Worker(TOUCHER_SOURCE, { eval: true });
    } catch {
      return undefined; // no thread to be had: the pool's rank touches its blocks itself
    }
    this.worker.unref();
    this.worker.on("message", (id: number) => {
      this.pending.get(id)?.();
      this.pending.delete(id);
      if (this.pending.size === 0) this.worker?.unref();
    });
    const gone = () => {
      for (const resolve of this.pending.values()) resolve();
      this.pending.clear();
      this.worker = undefined;
    };
    this.worker.on("error", gone);
    this.worker.on("exit", gone);
    return this.worker;
  }
}
