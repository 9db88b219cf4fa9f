// The TCP transport between rank processes (or hosts): two connections per
// pair of ranks, one per direction, Nagle off, frames of transport.ts. Each
// rank receives on the connection it opened, because only a socket made by
// net.connect takes the `onread` option that lets the socket read into
// memory we choose (tcp-frames.ts: straight into the receive's destination);
// it sends on the connection its peer opened (writing frames:
// tcp-peer-link.ts). Receives are delivered piece by piece as bytes arrive
// (pipelined with the sender), or kept when they arrive before the matching
// receive is posted (tcp-inbox.ts). A closed connection or a mismatched frame stops the
// world: every rank is told and every wait ends. Asking the other ranks where
// they are (for a timeout's message, a stalled collective, a mismatch's
// report) is tcp-probes.ts. Between hosts, a world allReduce can run on the
// native ring instead (tcp-native-ring.ts), under the same waits and probes.
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { CommCancelledError, CommCellEndedError, CommMismatchError, CommTimeoutError, PeerLostError } from "./comm-errors";
import { NativeRingLost, NativeRingMismatch, type NativeRing, type NativeRingCall } from "./tcp-native-ring";
import { agreementFrames } from "./agreement";
import { AgreementWindow, PendingAgreement } from "./agreement-window";
import { Countdown, type Part } from "./countdown";
import { DESCRIPTOR_WORDS, callLabel, descriptorsAgree, mismatchOfMembers, type Descriptor } from "./descriptor";
import type { CommArray } from "./types";
import { Nic } from "./link";
import { TcpIngress } from "./tcp-ingress";
import { PeerLink } from "./tcp-peer-link";
import {
  CONTEXT_ABORT, CONTEXT_COLLECTIVE, CONTEXT_PROBE, CONTEXT_PROBE_REPLY, CONTEXT_USER, encodeHeader, FrameReceiver, type ReadBinding,
} from "./tcp-frames";
import { MemberProbes, NO_CALL, PROBE_ANSWER_MS } from "./tcp-probes";
import { blameTimeout } from "./timeout-blame";
import { zeroTraffic } from "./wire-stats";
import { Inbox, type Pending } from "./tcp-inbox";
import type { CallContext, RecvSpec, SendSpec, Transport } from "./transport";
import { WaitTicker } from "./wait-ticker";
import { WireCounters } from "./wire-counters";

/**
 * How long a collective waits without finishing before it asks the members which call they are in,
 * milliseconds (doubling up to STALL_PROBE_MAX_MS while it keeps waiting). Members that disagree
 * can wait for each other's data forever (each naming another root); their answers show the
 * disagreement. Costs nothing on calls that finish sooner.
 */
const STALL_PROBE_MS = 25;
const STALL_PROBE_MAX_MS = 1000;
/**
 * How long a rank whose ring connection closed waits for its framed connections to say why
 * (closed too: the neighbour is lost; an abort frame: the neighbour stopped the world), ms.
 */
const RING_LOSS_GRACE_MS = 100;
/** bytes of the descriptor a native ring call sends ahead of its data */
const DESCRIPTOR_BYTES = DESCRIPTOR_WORDS * 4;
/** the payload of a frame that carries only its header (an agreement frame) */
const EMPTY = new Uint8Array(0);

/** The two connections to one peer. */
export interface PeerSockets {
  /** the connection this rank opened (net.connect with `read.onread`); the peer's frames arrive on it */
  recv: Socket;
  read: ReadBinding;
  /** the connection the peer opened; this rank's frames leave on it */
  send: Socket;
}

export class TcpTransport implements Transport {
  readonly kind = "tcp";
  /** Whether some peer is reached over TCP/IP (a Unix socket has no remote address). */
  readonly overNetwork: boolean;
  private readonly links = new Map<number, PeerLink>();
  private stopped?: Error;
  /** why the launcher cancelled this rank's communication (cancel()), if it has */
  private cancelled?: string;
  /** the waits out now, each by the function that cancels it */
  private readonly waits = new Set<(reason: string) => void>();
  /** this rank's emulated network interface: every paced send of the rank shares its egress */
  private readonly nic = new Nic();
  /** and every paced receive its ingress (tcp-ingress.ts) */
  private readonly ingress = new TcpIngress();
  /** the newest epoch (cell) this rank has made a call in */
  private epoch = 0;
  /** where this rank is, for the other ranks' probes, and its own probes (tcp-probes.ts) */
  private readonly probes: MemberProbes;
  /** checks every wait for a stall or a timeout, every STALL_PROBE_MS */
  private readonly ticker = new WaitTicker(STALL_PROBE_MS);
  /** fails the native ring call in flight with the world's stop (nativeAllReduce) */
  private nativeWaitEnd?: () => void;
  /** the agreement frames of recent one-way calls, awaited late (agreement-window.ts) */
  private readonly agreements = new AgreementWindow();

  constructor(
    readonly rank: number,
    readonly size: number,
    peers: Map<number, PeerSockets>,
    readonly wire: WireCounters = new WireCounters(rank),
    /** the ring connections run natively (tcp-native-ring.ts), where the world has them */
    private readonly nativeRing?: NativeRing,
  ) {
    this.probes = new MemberProbes({
      rank,
      peers: () => [...this.links.keys()],
      sendControl: (peer, desc, context, body) => this.sendControl(peer, desc, context, body),
      stopped: () => this.stopped,
      stop: (error, tell) => this.stop(error, tell),
    });
    this.overNetwork = [...peers.values()].some(({ recv }) => recv.remoteAddress !== undefined);
    for (const [peer, { send, recv, read }] of peers) {
      let link: PeerLink | undefined;
      const inbox = new Inbox({
        control: (context, desc, body) => this.onControl(peer, context, desc, body),
        count: (call, bytes, messages) => this.wire.received(call, peer, bytes, messages),
        ended: (call, why) => new CommCellEndedError(this.rank, call.label, call.desc.epoch, `ended: ${why} (what an ended cell sent and nobody received is dropped)`),
        activity: () => (link!.lastActivity = performance.now()),
      });
      link = new PeerLink(peer, send, recv, inbox, {
        refused: (call) => (this.stopped ? this.rethrow(call) : undefined),
        writeFailed: (call, error) => {
          if (!this.stopped) this.stop(new PeerLostError(this.rank, peer, `connection error: ${(error as Error).message}`), true);
          return this.rethrow(call);
        },
        wire: this.wire,
        nic: this.nic,
      });
      this.links.set(peer, link);
      send.setNoDelay(true);
      recv.setNoDelay(true);
      send.resume(); // nothing arrives on it, but reading is how a close is noticed
      const receiver = new FrameReceiver(inbox, peer);
      read.attach({
        buffer: () => receiver.buffer(),
        received: (n) => this.guard(() => receiver.received(n)),
        push: (chunk) => this.guard(() => receiver.push(chunk)),
      });
      const lost = (why: string) => {
        if (!this.stopped) this.stop(new PeerLostError(this.rank, peer, why), true);
      };
      for (const socket of [send, recv]) {
        socket.on("error", (e) => lost(`connection error: ${e.message}`));
        socket.on("close", () => lost("connection closed (process exited or link cut)"));
      }
    }
  }

  /** A corrupt frame or a throwing receive stops the world instead of escaping into the socket. */
  private guard(read: () => void): void {
    try {
      read();
    } catch (e) {
      this.stop(e as Error, true);
    }
  }

  enter(call: CallContext): void {
    this.advanceEpoch(call.desc.epoch);
    this.probes.enter(call.desc);
    // the ring edges this call's data does not cover (agreement.ts)
    const frames = agreementFrames(call.desc, call.members ?? [...Array(this.size).keys()], this.rank);
    if (!frames) return;
    // counted under "agreement", apart from the op's own traffic (payload-free frames: framing and messages only)
    // not paced: an emulated link models the op's data, and the agreement is bookkeeping
    const agree: CallContext = { ...call, op: "agreement", traffic: zeroTraffic(), link: undefined };
    const peers: number[] = [];
    const agreement = new PendingAgreement(call, peers);
    if (frames.sendTo !== undefined) {
      peers.push(frames.sendTo);
      this.sendFrame(agree, { peer: frames.sendTo, payload: EMPTY }, CONTEXT_COLLECTIVE, agreement.part());
    }
    if (frames.recvFrom !== undefined) {
      const spec: RecvSpec = { peer: frames.recvFrom, bytes: 0, onData: () => undefined };
      peers.push(frames.recvFrom);
      this.recvFrame(agree, spec, CONTEXT_COLLECTIVE, (sender, bytes) => this.checkCollective(call, spec, sender, bytes), agreement.part());
    }
    this.agreements.add(agreement);
  }

  exchange(call: CallContext, sends: SendSpec[], recvs: RecvSpec[]): Promise<void> {
    const peers = [...sends.map((s) => s.peer), ...recvs.map((r) => r.peer)];
    // the agreement frames of the call AGREEMENT_WINDOW calls back, if still in flight
    const due = this.agreements.due();
    for (const agreement of due) peers.push(...agreement.peers);
    return this.wait(call, peers, true, (parts) => {
      for (const spec of sends) this.sendFrame(call, spec, CONTEXT_COLLECTIVE, parts.part());
      for (const spec of recvs) {
        this.recvFrame(call, spec, CONTEXT_COLLECTIVE, (sender, bytes) => this.checkCollective(call, spec, sender, bytes), parts.part());
      }
      for (const agreement of due) agreement.whenDone(parts.part());
    });
  }

  /**
   * Awaits the agreement frames of every call made so far; rejects with the mismatch, lost peer or
   * timeout of the first that failed (naming that call).
   */
  settle(): Promise<void> {
    const pending = this.agreements.drain();
    if (pending.length === 0) return Promise.resolve();
    const last = pending[pending.length - 1]!;
    return this.wait(last.call, pending.flatMap((p) => p.peers), true, (parts) => {
      for (const agreement of pending) agreement.whenDone(parts.part());
    });
  }

  /**
   * Waits for the pieces of work `start` begins on `peers` (each reports through a part of the
   * countdown it is given). Ends when all are done, with the first failure, or with a timeout
   * naming the peers when no byte moved on their links for the call's timeoutMs. A collective's
   * wait (`collective`) also asks the members which call they are in while it stalls (after
   * STALL_PROBE_MS, then doubling): one in the same call with other arguments is a mismatch,
   * reported as if a frame had shown it, since members that disagree on who sends first (each
   * naming another root) would otherwise wait for each other until the timeout. A mismatch this
   * rank found is thrown as the error naming every member's call. One promise per wait, and no
   * timer of its own (countdown.ts and wait-ticker.ts say why).
   */
  private wait(call: CallContext, peers: number[], collective: boolean, start: (parts: Countdown) => void, onEnd?: () => void, onTick?: (now: number) => void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      // the work is not started: a cancelled or stopped world fails every call at once
      if (this.cancelled !== undefined) return reject(new CommCancelledError(this.rank, call.label, this.cancelled));
      if (this.stopped) return reject(this.rethrow(call));
      let unwatch: (() => void) | undefined;
      const cancelWait = (reason: string) => parts.end(new CommCancelledError(this.rank, call.label, reason));
      this.waits.add(cancelWait);
      const end = () => {
        this.waits.delete(cancelWait);
        unwatch?.();
        if (collective) this.probes.waitingFor = [];
        onEnd?.();
      };
      const parts = new Countdown(
        () => {
          end();
          resolve();
        },
        (e) => {
          end();
          // this rank found a mismatch: the error it throws is the one naming every member's call
          if (e instanceof CommMismatchError && this.probes.reporting) void this.probes.reporting.then(reject);
          else reject(e);
        },
      );
      if (collective) this.probes.waitingFor = peers; // may repeat a rank; made unique only when a probe asks
      const started = performance.now();
      let probeDelay = STALL_PROBE_MS;
      let nextProbeAt = started + STALL_PROBE_MS;
      unwatch = this.ticker.watch((now) => {
        if (parts.ended) return true;
        onTick?.(now);
        let idleSince = started;
        for (const peer of peers) idleSince = Math.max(idleSince, this.links.get(peer)?.lastActivity ?? started);
        const idle = now - idleSince;
        if (idle >= call.timeoutMs) {
          const waited = [...new Set(peers)];
          if (!collective) {
            parts.end(new CommTimeoutError(this.rank, call.label, waited, idle));
            return true;
          }
          // a collective: ask the members where they are, so the error names the rank that did not arrive
          void this.probes.whereabouts(call).then((found) => parts.end(new CommTimeoutError(this.rank, call.label, waited, idle, blameTimeout(call.desc, found, PROBE_ANSWER_MS))));
          return true;
        }
        if (collective && now >= nextProbeAt) {
          void this.probes.stalled(call, () => parts.ended);
          probeDelay = Math.min(2 * probeDelay, STALL_PROBE_MAX_MS);
          nextProbeAt = now + probeDelay;
        }
        return false;
      });
      try {
        start(parts);
      } catch (e) {
        parts.end(e); // e.g. no connection to a peer
      }
      parts.seal();
    });
  }

  /**
   * The world's ring allReduce of `x` into `out` (x's values copied there, then reduced in place)
   * on the native ring (tcp-native-ring.ts), or
   * undefined where it does not run there (no native ring, a sub-group, an emulated link, a dtype
   * or op it lacks): the caller then runs the framed ring. The wait is a collective's like any
   * other: stall probes, the timeout naming who did not arrive, cancel. A neighbour in another
   * call is reported as a mismatch; a call that ends unfinished stops the world (its ring
   * connection is left mid-stream).
   */
  nativeAllReduce(call: CallContext, x: CommArray, out: CommArray): Promise<void> | undefined {
    const ring = this.nativeRing;
    const world = call.members === undefined || call.members.every((m, i) => m === i) && call.members.length === this.size;
    if (!ring || call.link || !world || out.byteLength === 0 || !ring.takes(call.desc.dtype, call.desc.redop)) return undefined;
    if (x !== out) (out as Float64Array).set(x as Float64Array);
    const steps = 2 * (this.size - 1);
    /** the call in the addon, once the wait started it */
    let running: NativeRingCall | undefined;
    let progress = 0;
    /** the addon returned, and its result was handled, before the wait ended */
    let returned = false;
    return this.wait(
      call,
      [ring.left, ring.right],
      true,
      (parts) => {
        const part = parts.part();
        this.nativeWaitEnd = () => part.fail(this.rethrow(call));
        const native = ring.allReduce(out, call.desc);
        running = native;
        native.done.then(
          ({ sent, received }) => {
            returned = true;
            // one message a step each way, after the descriptor (its 32 bytes counted as framing)
            this.wire.sent(call, ring.right, sent - DESCRIPTOR_BYTES, steps, DESCRIPTOR_BYTES);
            this.wire.received(call, ring.left, received - DESCRIPTOR_BYTES, steps);
            part.done();
          },
          (error: Error) => {
            if (parts.ended) return; // stopped by the wait's end (cancel, timeout, stop): reported there
            returned = true;
            if (error instanceof NativeRingMismatch) {
              const theirs = native.leftDescriptor();
              this.probes.mismatch(call, ring.left, theirs);
              part.fail(new CommMismatchError(mismatchOfMembers(call.desc, [{ rank: this.rank, desc: call.desc }, { rank: ring.left, desc: theirs }])));
              return;
            }
            // A closed ring connection is either a lost neighbour (its framed connections close
            // too) or a neighbour that stopped the world and is telling why (an abort frame): both
            // arrive within moments and name the cause; failing that, the ring's own error does.
            const peer = error instanceof NativeRingLost ? error.peer : ring.left;
            setTimeout(() => this.stop(new PeerLostError(this.rank, peer, `ring connection: ${error.message}`), true), RING_LOSS_GRACE_MS);
          },
        );
      },
      () => {
        this.nativeWaitEnd = undefined;
        if (returned || !running) return; // finished, or failed and handled (a mismatch's report or a lost neighbour stops the world)
        running.stop();
        // a call ended unfinished leaves its connection mid-stream: no later call may use it
        void running.done.catch(() => {
          if (!this.stopped) this.stop(new Error(`rank ${this.rank}: ${call.label} ended before the native ring finished; the world's ring connections cannot be used again`), false);
        });
      },
      (now) => {
        // the addon moving bytes is the links' activity (no frame passes through JavaScript)
        const seen = running?.progress() ?? progress;
        if (seen === progress) return;
        progress = seen;
        for (const peer of [ring.left, ring.right]) {
          const link = this.links.get(peer);
          if (link) link.lastActivity = now;
        }
      },
    );
  }

  /** Whether a world allReduce of this dtype and reduce op (codes), with no emulated link, would run on the native ring. */
  takesNativeAllReduce(dtype: number, redop: number): boolean {
    return this.nativeRing?.takes(dtype, redop) === true;
  }

  sendUser(call: CallContext, spec: SendSpec): Promise<void> {
    this.advanceEpoch(call.desc.epoch);
    return this.userCall(call, spec.peer, (part) => this.sendFrame(call, spec, CONTEXT_USER, part));
  }

  /** Waits for one point-to-point frame, keeping `call` among the calls this rank waits in (a probe's answer names the oldest). */
  private userCall(call: CallContext, peer: number, start: (part: Part) => void): Promise<void> {
    this.probes.userCalls.add(call.label);
    return this.wait(call, [peer], false, (parts) => start(parts.part()), () => this.probes.userCalls.delete(call.label));
  }

  recvUser(call: CallContext, spec: RecvSpec): Promise<void> {
    this.advanceEpoch(call.desc.epoch);
    const check = (sender: Descriptor, payloadBytes: number) => {
      if (sender.dtype !== call.desc.dtype || payloadBytes !== spec.bytes) {
        throw new CommMismatchError(
          `rank ${this.rank} recv #${call.desc.call} from rank ${spec.peer} expected ${call.desc.count} x dtype ${call.desc.dtype} ` +
            `(${spec.bytes} bytes) but rank ${spec.peer} sent ${sender.count} x dtype ${sender.dtype} (${payloadBytes} bytes) as its send #${sender.call}`,
        );
      }
    };
    return this.userCall(call, spec.peer, (part) => this.recvFrame(call, spec, CONTEXT_USER, check, part));
  }

  private checkCollective(call: CallContext, spec: RecvSpec, sender: Descriptor, payloadBytes: number): void {
    if (!descriptorsAgree(call.desc, sender)) {
      this.probes.mismatch(call, spec.peer, sender);
      // the receive fails now; the exchange waits for the report and throws it
      throw new CommMismatchError(mismatchOfMembers(call.desc, [{ rank: this.rank, desc: call.desc }, { rank: spec.peer, desc: sender }]));
    }
    if (spec.bytes !== undefined && spec.bytes !== payloadBytes) {
      throw new Error(`rank ${this.rank} in ${callLabel(call.desc)}: rank ${spec.peer} sent ${payloadBytes} bytes, expected ${spec.bytes}`);
    }
  }

  /** Sends one frame to `spec.peer` (tcp-peer-link.ts); `part` reports once the kernel has taken every byte. */
  private sendFrame(call: CallContext, spec: SendSpec, context: number, part: Part): void {
    this.linkOf(spec.peer).sendFrame(call, spec, context, part);
  }

  /** Receives one frame into `spec`; `part` reports when it has all arrived (and passed `check`). */
  private recvFrame(call: CallContext, spec: RecvSpec, context: number, check: Pending["check"], part: Part): void {
    const link = this.linkOf(spec.peer);
    if (this.stopped) return part.fail(this.rethrow(call));
    if (!call.link) return link.inbox.post(context, { spec, call, check, resolve: part.done, reject: part.fail });
    // an emulated link: the frame is delivered once this rank's ingress had time for it
    let payload = spec.bytes ?? 0;
    const sized: RecvSpec = { ...spec, onStart: (bytes) => { payload = bytes; spec.onStart?.(bytes); } };
    const paced = () => {
      const hold = this.ingress.holdMs(payload, call.link, performance.now());
      if (hold > 0) setTimeout(part.done, hold);
      else part.done();
    };
    link.inbox.post(context, { spec: sized, call, check, resolve: paced, reject: part.fail });
  }

  /** A call of `epoch` begins: frames and receives of older epochs (ended cells) are dropped. */
  private advanceEpoch(epoch: number): void {
    if (epoch <= this.epoch) return;
    this.epoch = epoch;
    for (const link of this.links.values()) link.inbox.advance(epoch);
    this.agreements.dropBefore(epoch);
  }

  private onControl(peer: number, context: number, desc: Descriptor, body: string): void {
    if (context === CONTEXT_ABORT) {
      // root = 1: a mismatch; else the peer named by group was lost
      this.stop(desc.root === 1 ? new CommMismatchError(body) : new PeerLostError(this.rank, desc.group, `told by rank ${peer}: ${body}`), false);
    } else if (context === CONTEXT_PROBE) {
      this.probes.answer(peer, desc);
    } else if (context === CONTEXT_PROBE_REPLY) {
      this.probes.answered(peer, desc, body);
    }
  }

  /** Writes a control frame behind any frame being written to `peer`; nothing if there is no connection to it. */
  private sendControl(peer: number, desc: Descriptor, context: number, body?: Uint8Array): void {
    this.links.get(peer)?.sendControl(desc, context, body);
  }

  /**
   * Ends every wait now, and every call from now on at once, with a CommCancelledError naming the
   * call and `reason`: how a launcher wakes a rank blocked in communication (connectTcpWorld's
   * `signal`). The frames a cancelled call leaves behind stay unread: a cancelled world is not used
   * again, only closed.
   */
  cancel(reason: string): void {
    this.cancelled ??= reason;
    for (const cancelWait of [...this.waits]) cancelWait(reason);
  }

  /** Ends every wait with `error`; tells the other ranks when `tell`. */
  private stop(error: Error, tell: boolean): void {
    if (this.stopped) return;
    this.stopped = error;
    if (tell) {
      const kind = error instanceof CommMismatchError ? 1 : 2;
      const lostPeer = error instanceof PeerLostError ? error.peer : -1;
      const body = new TextEncoder().encode(error.message);
      const desc: Descriptor = { ...NO_CALL, group: lostPeer, count: body.length, dtype: 7, root: kind };
      for (const link of this.links.values()) {
        if (!link.send.destroyed) {
          link.send.write(encodeHeader(desc, body.length, CONTEXT_ABORT));
          link.send.write(body);
        }
      }
    }
    for (const link of this.links.values()) link.inbox.rejectAll((call) => this.rethrow(call));
    this.nativeWaitEnd?.();
    // the neighbours' native calls end at once (their connection closes) instead of at their timeout
    this.nativeRing?.close();
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

  /** Per peer, the TLS cipher suite its frames arrive under, or "none" (a plain or Unix socket). */
  ciphers(): Map<number, string> {
    return new Map([...this.links].map(([peer, link]) => {
      const cipher = "getCipher" in link.recv ? (link.recv as TLSSocket).getCipher() : undefined;
      return [peer, cipher?.standardName ?? "none"];
    }));
  }

  async close(): Promise<void> {
    this.stopped ??= new Error("communicator closed");
    this.ticker.stop();
    this.nativeRing?.close();
    for (const link of this.links.values()) {
      link.send.destroy();
      link.recv.destroy();
    }
  }
}
