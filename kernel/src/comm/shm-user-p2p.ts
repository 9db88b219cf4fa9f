// User point-to-point traffic (dist.send / dist.recv and their i-forms) of
// one shm rank: ordered per pair on rings of their own, driven by
// Atomics.waitAsync, so an isend stays live while the rank awaits something
// else, and moved along by the transport's blocking loop while a collective
// waits (shm-transport.ts). Each waiting op is published in shared memory,
// so a peer's timeout can say which send or recv this rank is stuck in.
import { CommTimeoutError } from "./comm-errors";
import { ChannelSend, type ChannelRecv } from "./shm-channel";
import { type ShmLayout, USER_OP_CALL, USER_OP_KIND, USER_OP_PEER } from "./shm-layout";
import type { CallContext } from "./transport";

/** What the driver needs of its rank's transport. */
export interface UserP2pHost {
  readonly rank: number;
  readonly ctl: Int32Array;
  readonly layout: ShmLayout;
  /** index in ctl of this rank's doorbell word */
  readonly bellWord: number;
  /** longest single wait, ms: bounds how late a cancel or timeout is seen */
  readonly sliceMs: number;
  /** wakes `peer` (its doorbell) */
  ring(peer: number): void;
  /** throws if the world was cancelled or stopped by a mismatch */
  checkState(call: CallContext): void;
  /** ms until the earliest of `ops`' paced (link-emulated) sends may move again; Infinity if none */
  nextPacingMs(ops: (ChannelSend | ChannelRecv)[]): number;
  /** the error of a call whose cell ended, saying `why` */
  cellEnded(call: CallContext, why: string): Error;
}

interface UserOp {
  op: ChannelSend | ChannelRecv;
  call: CallContext;
  lastProgressMs: number;
  resolve(): void;
  reject(e: unknown): void;
}

type WaitAsync = (
  a: Int32Array, index: number, value: number, timeoutMs: number,
) => { async: false; value: string } | { async: true; value: Promise<string> };

export class ShmUserPointToPoint {
  /** waiting ops, in the order they were posted */
  private readonly ops = new Set<UserOp>();
  private driving = false;

  constructor(private readonly host: UserP2pHost) {}

  get pending(): boolean {
    return this.ops.size > 0;
  }

  /** Resolves once `op` has moved all its bytes; rejects on timeout, cancel, mismatch or close. */
  start(call: CallContext, op: ChannelSend | ChannelRecv): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.ops.add({ op, call, lastProgressMs: performance.now(), resolve, reject });
      this.progress();
      if (this.ops.size > 0) void this.drive();
    });
  }

  /**
   * A call of `epoch` began: ops of older epochs (ended cells) still waiting end with an error; one
   * that has begun moving a frame finishes it (the peer drops an ended cell's frame whole).
   */
  endOlderThan(epoch: number): void {
    for (const u of this.ops) {
      if (u.call.desc.epoch >= epoch || u.op.started) continue;
      this.ops.delete(u);
      u.reject(this.host.cellEnded(u.call, `it was still waiting when this rank began cell ${epoch}`));
    }
    this.publish();
  }

  /** Moves what can move now; true if anything did. */
  progress(): boolean {
    let moved = false;
    const now = performance.now();
    // One ring a direction per peer: a message larger than the free ring goes in pieces, and a
    // later message to (or from) the same peer must wait until it is whole, or the two would
    // interleave in the ring. Ops are kept in the order they were posted, so the first
    // unfinished one of each lane goes; the others wait behind it.
    const busyLanes = new Set<string>();
    for (const u of this.ops) {
      const lane = `${u.op instanceof ChannelSend ? "to" : "from"} ${u.op.peer}`;
      if (busyLanes.has(lane)) {
        // Waiting behind a message that still moves is no stall: the one in front has its own timeout.
        u.lastProgressMs = now;
        continue;
      }
      try {
        if (u.op.progress(now)) {
          moved = true;
          u.lastProgressMs = now;
          this.host.ring(u.op.peer);
        }
        if (u.op.done) {
          this.ops.delete(u);
          u.resolve();
        } else {
          busyLanes.add(lane);
          this.host.checkState(u.call);
          if (now - u.lastProgressMs > u.call.timeoutMs) {
            throw new CommTimeoutError(this.host.rank, u.call.label, [u.op.peer], now - u.lastProgressMs);
          }
        }
      } catch (e) {
        this.ops.delete(u);
        u.reject(e);
      }
    }
    this.publish();
    return moved;
  }

  /** The oldest point-to-point call `peer` is waiting in, as it published it (`send #2 to rank 0`), if any. */
  peerOp(peer: number): string | undefined {
    const { ctl, layout } = this.host;
    const kind = Atomics.load(ctl, layout.rankWord(peer, USER_OP_KIND));
    if (kind === 0) return undefined;
    const other = Atomics.load(ctl, layout.rankWord(peer, USER_OP_PEER));
    const n = Atomics.load(ctl, layout.rankWord(peer, USER_OP_CALL));
    return kind === 1 ? `send #${n} to rank ${other}` : `recv #${n} from rank ${other}`;
  }

  /** Rejects every waiting op: the communicator is closing. */
  close(): void {
    for (const u of this.ops) u.reject(new Error(`rank ${this.host.rank}: communicator closed during ${u.call.label}`));
    this.ops.clear();
  }

  /** Publishes this rank's oldest waiting call (or none) for a peer's timeout blame. */
  private publish(): void {
    const { ctl, layout, rank } = this.host;
    const oldest = this.ops.values().next().value as UserOp | undefined;
    const kindWord = layout.rankWord(rank, USER_OP_KIND);
    if (!oldest) {
      if (Atomics.load(ctl, kindWord) !== 0) Atomics.store(ctl, kindWord, 0);
      return;
    }
    Atomics.store(ctl, kindWord, 0);
    Atomics.store(ctl, layout.rankWord(rank, USER_OP_PEER), oldest.op.peer);
    Atomics.store(ctl, layout.rankWord(rank, USER_OP_CALL), oldest.call.desc.call);
    Atomics.store(ctl, kindWord, oldest.op instanceof ChannelSend ? 1 : 2);
  }

  private async drive(): Promise<void> {
    if (this.driving) return;
    this.driving = true;
    const { ctl, bellWord, sliceMs } = this.host;
    try {
      while (this.ops.size > 0) {
        const bell = Atomics.load(ctl, bellWord);
        if (this.progress()) {
          await new Promise((r) => setImmediate(r)); // let the rank's other work run between pieces
          continue;
        }
        if (this.ops.size === 0) break;
        // Woken by the doorbell, or when a paced (link-emulated) send may move its next bytes.
        const due = this.host.nextPacingMs([...this.ops].map((u) => u.op));
        const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;
        const result = waitAsync(ctl, bellWord, bell, Math.max(0, Math.min(sliceMs, due)));
        // A wait that ended at once (the bell moved, or due now) still yields to the rank's other work.
        await (result.async ? result.value : new Promise((r) => setImmediate(r)));
      }
    } finally {
      this.driving = false;
    }
  }
}
