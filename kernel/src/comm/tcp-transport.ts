// The TCP transport between rank processes (or hosts): one connection per
// pair of ranks, Nagle off, frames of transport.ts. Sends are cut into 1 MiB
// writes that respect backpressure (wait for 'drain'), and are queued per
// connection so frames never interleave; receives are delivered piece by
// piece as bytes arrive (pipelined with the sender), or buffered when they
// arrive before the matching receive is posted. A closed connection or a
// mismatched frame stops the world: every rank is told and every wait ends.
import type { Socket } from "node:net";
import { CommCancelledError, CommMismatchError, CommTimeoutError, PeerLostError } from "./comm-errors";
import { callLabel, descriptorsAgree, mismatchMessage, type Descriptor } from "./descriptor";
import { Pacer } from "./link";
import { CONTEXT_ABORT, CONTEXT_COLLECTIVE, CONTEXT_USER, encodeHeader, FrameReader } from "./tcp-frames";
import type { CallContext, RecvSpec, SendSpec, Transport } from "./transport";

const WRITE_BYTES = 1024 * 1024;
/**
 * Bytes handed to the socket but not yet to the kernel before a sender
 * waits. Waiting for 'drain' after every write would let the kernel's send
 * buffer run dry while the event loop comes round; keeping a few writes
 * queued keeps the connection busy (each write's callback frees its bytes).
 */
const IN_FLIGHT_BYTES = 4 * 1024 * 1024;

interface Arrived {
  desc: Descriptor;
  payloadBytes: number;
  pieces: Uint8Array[];
  complete: boolean;
}

interface Pending {
  spec: RecvSpec;
  call: CallContext;
  check(sender: Descriptor, payloadBytes: number): void;
  resolve(): void;
  reject(e: unknown): void;
}

class PeerLink {
  sendQueue: Promise<void> = Promise.resolve();
  /** frames by context that arrived before a receive claimed them */
  arrived: Arrived[][] = [[], []];
  /** receives waiting, per context, in posting order */
  pending: Pending[][] = [[], []];
  current?: { context: number; arrived?: Arrived; pending?: Pending };
  lastActivity = performance.now();
  /** bytes written to the socket whose write callback has not run yet */
  inFlight = 0;
  /** a sender waiting for inFlight to drop under IN_FLIGHT_BYTES */
  wakeSender?: () => void;
  constructor(readonly socket: Socket) {}
}

export class TcpTransport implements Transport {
  readonly kind = "tcp";
  private readonly links = new Map<number, PeerLink>();
  private stopped?: Error;

  constructor(
    readonly rank: number,
    readonly size: number,
    sockets: Map<number, Socket>,
  ) {
    for (const [peer, socket] of sockets) {
      const link = new PeerLink(socket);
      this.links.set(peer, link);
      socket.setNoDelay(true);
      const reader = new FrameReader(this.sinkFor(peer, link), peer);
      socket.on("data", (chunk: Buffer) => {
        link.lastActivity = performance.now();
        try {
          reader.push(chunk);
        } catch (e) {
          this.stop(e as Error, true);
        }
      });
      const lost = (why: string) => {
        if (!this.stopped) this.stop(new PeerLostError(this.rank, peer, why), true);
      };
      socket.on("error", (e) => lost(`connection error: ${e.message}`));
      socket.on("close", () => lost("connection closed (process exited or link cut)"));
    }
  }

  enter(): void {}

  async exchange(call: CallContext, sends: SendSpec[], recvs: RecvSpec[]): Promise<void> {
    const all = [
      ...sends.map((s) => this.sendFrame(call, s, CONTEXT_COLLECTIVE)),
      ...recvs.map((r) => this.recvFrame(call, r, CONTEXT_COLLECTIVE, (sender, bytes) => this.checkCollective(call, r, sender, bytes))),
    ];
    await this.withTimeout(call, [...sends.map((s) => s.peer), ...recvs.map((r) => r.peer)], Promise.all(all));
  }

  sendUser(call: CallContext, spec: SendSpec): Promise<void> {
    return this.withTimeout(call, [spec.peer], this.sendFrame(call, spec, CONTEXT_USER));
  }

  recvUser(call: CallContext, spec: RecvSpec): Promise<void> {
    const check = (sender: Descriptor, payloadBytes: number) => {
      if (sender.dtype !== call.desc.dtype || payloadBytes !== spec.bytes) {
        throw new CommMismatchError(
          `rank ${this.rank} recv #${call.desc.call} from rank ${spec.peer} expected ${call.desc.count} x dtype ${call.desc.dtype} ` +
            `(${spec.bytes} bytes) but rank ${spec.peer} sent ${sender.count} x dtype ${sender.dtype} (${payloadBytes} bytes) as its send #${sender.call}`,
        );
      }
    };
    return this.withTimeout(call, [spec.peer], this.recvFrame(call, spec, CONTEXT_USER, check));
  }

  private checkCollective(call: CallContext, spec: RecvSpec, sender: Descriptor, payloadBytes: number): void {
    if (!descriptorsAgree(call.desc, sender)) {
      const error = new CommMismatchError(mismatchMessage(this.rank, call.desc, spec.peer, sender));
      this.stop(error, true);
      throw error;
    }
    if (spec.bytes !== undefined && spec.bytes !== payloadBytes) {
      throw new Error(`rank ${this.rank} in ${callLabel(call.desc)}: rank ${spec.peer} sent ${payloadBytes} bytes, expected ${spec.bytes}`);
    }
  }

  /** Rejects with a timeout naming the peers when no byte moved on their links for timeoutMs. */
  private withTimeout<T>(call: CallContext, peers: number[], work: Promise<T>): Promise<T> {
    if (this.stopped) return Promise.reject(this.rethrow(call));
    let timer: NodeJS.Timeout | undefined;
    const started = performance.now();
    const watchdog = new Promise<never>((_, reject) => {
      const tick = () => {
        const idleSince = Math.max(started, ...peers.map((p) => this.links.get(p)?.lastActivity ?? started));
        const idle = performance.now() - idleSince;
        if (idle >= call.timeoutMs) reject(new CommTimeoutError(this.rank, call.label, [...new Set(peers)], idle));
        else timer = setTimeout(tick, Math.min(1000, call.timeoutMs - idle + 1));
      };
      timer = setTimeout(tick, Math.min(1000, call.timeoutMs));
    });
    return Promise.race([work, watchdog]).finally(() => clearTimeout(timer));
  }

  private sendFrame(call: CallContext, spec: SendSpec, context: number): Promise<void> {
    const link = this.linkOf(spec.peer);
    const run = async () => {
      if (this.stopped) throw this.rethrow(call);
      const payload = spec.payload;
      const pacer = call.link ? new Pacer(call.link, payload.length) : undefined;
      const now = performance.now();
      pacer?.allowed(now);
      if (pacer) await sleepMs(pacer.msUntilAllowed(0, now)); // the latency
      let flushed = Promise.resolve();
      const put = async (bytes: Uint8Array) => {
        const w = this.write(link, bytes);
        flushed = w.flushed;
        await w.room;
      };
      await put(encodeHeader(call.desc, payload.length, context));
      // paced links write in ~1 ms grains so the bytes leave at the emulated bandwidth
      const grain = pacer ? Math.max(4096, Math.min(WRITE_BYTES, Math.floor(call.link!.bandwidth * 0.001))) : WRITE_BYTES;
      for (let at = 0; at < payload.length; at += grain) {
        const end = Math.min(payload.length, at + grain);
        if (pacer) await sleepMs(pacer.msUntilAllowed(end, performance.now()));
        await put(payload.subarray(at, end));
      }
      // the socket holds views of the payload, not copies: the send is done (and the caller may
      // change the payload) only once the kernel has taken every byte; writes complete in order
      await flushed;
    };
    const done = link.sendQueue.then(run);
    link.sendQueue = done.catch(() => undefined);
    return done;
  }

  /** room: resolves when the sender may write more; flushed: when the kernel has taken these bytes. */
  private write(link: PeerLink, bytes: Uint8Array): { room: Promise<void>; flushed: Promise<void> } {
    let roomResolve!: () => void;
    const room = new Promise<void>((resolve) => (roomResolve = resolve));
    const flushed = new Promise<void>((resolve, reject) => {
      link.inFlight += bytes.length;
      link.socket.write(bytes, (err) => {
        link.inFlight -= bytes.length;
        if (link.inFlight < IN_FLIGHT_BYTES && link.wakeSender) {
          const wake = link.wakeSender;
          link.wakeSender = undefined;
          wake();
        }
        if (err) reject(err);
        else resolve();
      });
    });
    if (link.inFlight < IN_FLIGHT_BYTES) roomResolve();
    else link.wakeSender = roomResolve;
    // an error surfaces through flushed; room must not stay pending on it
    flushed.catch(() => roomResolve());
    return { room, flushed };
  }

  private recvFrame(call: CallContext, spec: RecvSpec, context: number, check: Pending["check"]): Promise<void> {
    const link = this.linkOf(spec.peer);
    return new Promise<void>((resolve, reject) => {
      if (this.stopped) return reject(this.rethrow(call));
      const pending: Pending = { spec, call, check, resolve, reject };
      const early = link.arrived[context].shift();
      if (!early) {
        link.pending[context].push(pending);
        return;
      }
      try {
        check(early.desc, early.payloadBytes);
        spec.onStart?.(early.payloadBytes);
        let offset = 0;
        for (const piece of early.pieces) {
          spec.onData(piece, offset);
          offset += piece.length;
        }
        if (early.complete) return resolve();
        link.current = { context, pending }; // the rest streams in
      } catch (e) {
        reject(e);
      }
    });
  }

  private sinkFor(peer: number, link: PeerLink) {
    return {
      start: (context: number, desc: Descriptor, payloadBytes: number) => {
        if (context === CONTEXT_ABORT) {
          link.current = { context, arrived: { desc, payloadBytes, pieces: [], complete: false } };
          return;
        }
        const pending = link.pending[context].shift();
        if (pending) {
          try {
            pending.check(desc, payloadBytes);
            pending.spec.onStart?.(payloadBytes);
            link.current = { context, pending };
          } catch (e) {
            pending.reject(e);
            link.current = { context }; // drop the payload
          }
          return;
        }
        const arrived: Arrived = { desc, payloadBytes, pieces: [], complete: false };
        link.arrived[context].push(arrived);
        link.current = { context, arrived };
      },
      data: (piece: Uint8Array, offset: number) => {
        const cur = link.current!;
        if (cur.pending) cur.pending.spec.onData(piece, offset);
        else if (cur.arrived) cur.arrived.pieces.push(Uint8Array.prototype.slice.call(piece) as Uint8Array);
      },
      end: () => {
        const cur = link.current!;
        link.current = undefined;
        if (cur.context === CONTEXT_ABORT && cur.arrived) {
          const reason = new TextDecoder().decode(concat(cur.arrived.pieces));
          const lostPeer = cur.arrived.desc.group;
          this.stop(cur.arrived.desc.root === 1 ? new CommMismatchError(reason) : new PeerLostError(this.rank, lostPeer, `told by rank ${peer}: ${reason}`), false);
          return;
        }
        if (cur.pending) cur.pending.resolve();
        else if (cur.arrived) cur.arrived.complete = true;
      },
    };
  }

  /** Ends every wait with `error`; tells the other ranks when `tell`. */
  private stop(error: Error, tell: boolean): void {
    if (this.stopped) return;
    this.stopped = error;
    if (tell) {
      const kind = error instanceof CommMismatchError ? 1 : 2;
      const lostPeer = error instanceof PeerLostError ? error.peer : -1;
      const body = new TextEncoder().encode(error.message);
      const desc: Descriptor = { group: lostPeer, call: 0, opcode: 0, count: body.length, dtype: 7, root: kind, redop: 0, algorithm: 0 };
      for (const link of this.links.values()) {
        if (!link.socket.destroyed) {
          link.socket.write(encodeHeader(desc, body.length, CONTEXT_ABORT));
          link.socket.write(body);
        }
      }
    }
    for (const link of this.links.values()) {
      for (const queue of link.pending) for (const p of queue.splice(0)) p.reject(this.rethrow(p.call));
      if (link.current?.pending) link.current.pending.reject(this.rethrow(link.current.pending.call));
    }
  }

  private rethrow(call: CallContext): Error {
    const e = this.stopped!;
    if (e instanceof CommMismatchError || e instanceof PeerLostError) return e;
    return new CommCancelledError(this.rank, call.label, e.message);
  }

  private linkOf(peer: number): PeerLink {
    const link = this.links.get(peer);
    if (!link) throw new RangeError(`rank ${this.rank}: no connection to rank ${peer}`);
    return link;
  }

  async close(): Promise<void> {
    this.stopped ??= new Error("communicator closed");
    for (const link of this.links.values()) link.socket.destroy();
  }
}

function concat(pieces: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(pieces.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of pieces) { out.set(p, at); at += p.length; }
  return out;
}

function sleepMs(ms: number): Promise<void> {
  return ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve();
}
