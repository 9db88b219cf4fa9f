// The shared-memory transport between rank threads of one process. Channel
// operations (shm-channel.ts) advance without blocking; this file loops
// over them and waits on the rank's doorbell word when nothing can move:
// a short spin (a peer is usually microseconds away), then Atomics.wait in
// bounded slices, checking the world's cancel word, the peers' descriptors
// (to catch mismatched calls) and the timeout between slices. User
// point-to-point traffic has a driver of its own (shm-user-p2p.ts), which
// this loop also moves along while a collective waits.
import { CommCancelledError, CommCellEndedError, CommMismatchError, CommTimeoutError } from "./comm-errors";
import {
  callLabel, descriptorsAgree, DESCRIPTOR_WORDS, mismatchOfMembers, postDescriptor, readPostedDescriptor, sameCallNumber,
  type Descriptor, type MemberCall,
} from "./descriptor";
import { agreementFrames } from "./agreement";
import { blameTimeout } from "./timeout-blame";
import { zeroTraffic } from "./wire-stats";
import { Nic, Pacer, SharedIngress } from "./link";
import { ChannelRecv, ChannelSend, type ChannelMemory, type FrameCheck } from "./shm-channel";
import {
  COLLECTIVE_CONTEXT, DESCRIPTOR_AT, DOORBELL, ENTERED, REASON_AT_WORD, REASON_BYTES, REASON_LEN, ShmLayout, STATE,
  USER_CONTEXT, type ShmWorldInit,
} from "./shm-layout";
import type { CallContext, RecvSpec, SendSpec, Transport } from "./transport";
import { WireCounters } from "./wire-counters";
import { ShmUserPointToPoint } from "./shm-user-p2p";
import { availableParallelism } from "node:os";

/**
 * How long a rank polls before sleeping when ranks outnumber cores, milliseconds: a spinning rank
 * would only take the core from the peer it waits for, so it sleeps almost at once. Otherwise it
 * polls for the world's `spinMs` (shm-world.ts says why 1 ms).
 */
const SPIN_MS_OVERSUBSCRIBED = 0.002;
/** Longest single sleep, milliseconds: bounds how late a cancel or timeout is seen. */
const SLICE_MS = 50;
/**
 * How long a rank that found a mismatch waits for the members that have not made the call yet,
 * milliseconds, so its error can name their calls too (only on the error path).
 */
const MISMATCH_GATHER_MS = 500;

export const STATE_RUNNING = 0;
export const STATE_CANCELLED = 1;
export const STATE_MISMATCH = 2;
/** transient: the reason text is being written */
const STATE_STOPPING = 3;

/** Moves the world out of running (first caller wins), writes the reason, wakes every rank. */
export function stopWorld(ctl: Int32Array, layout: ShmLayout, state: number, reason: string): void {
  if (Atomics.compareExchange(ctl, STATE, STATE_RUNNING, STATE_STOPPING) !== STATE_RUNNING) return;
  writeReason(ctl, reason);
  Atomics.store(ctl, STATE, state);
  for (let r = 0; r < layout.size; r++) {
    const word = layout.rankWord(r, DOORBELL);
    Atomics.add(ctl, word, 1);
    Atomics.notify(ctl, word);
  }
}

export class ShmTransport implements Transport {
  readonly kind = "shm";
  readonly size: number;
  readonly layout: ShmLayout;
  readonly mem: ChannelMemory;
  readonly ctl: Int32Array;
  private readonly bellWord: number;
  private readonly user: ShmUserPointToPoint;
  private readonly spinMs: number;
  /** this rank's emulated network interface: its paced sends share its egress and take time on the receivers' ingress */
  private readonly nic: Nic;
  /** the newest epoch (cell) this rank has made a call in */
  private epoch = 0;

  constructor(
    readonly init: ShmWorldInit,
    readonly rank: number,
    readonly wire: WireCounters = new WireCounters(rank),
  ) {
    this.size = init.size;
    this.layout = ShmLayout.of(init);
    this.ctl = new Int32Array(init.control);
    this.mem = { ctl: this.ctl, data: new Uint8Array(init.memory.buffer), layout: this.layout };
    this.bellWord = this.layout.rankWord(rank, DOORBELL);
    this.spinMs = this.size <= availableParallelism() ? init.spinMs : SPIN_MS_OVERSUBSCRIBED;
    this.nic = new Nic(new SharedIngress(init.ingressClocks, init.size));
    this.user = new ShmUserPointToPoint({
      rank, ctl: this.ctl, layout: this.layout, bellWord: this.bellWord, sliceMs: SLICE_MS,
      ring: (peer) => this.ring(peer),
      checkState: (call) => this.checkState(call),
      nextPacingMs: (ops) => this.nextPacingMs(ops),
      cellEnded: (call, why) => this.cellEnded(call, why),
    });
  }

  enter(call: CallContext): void {
    this.advanceEpoch(call.desc.epoch);
    postDescriptor(this.ctl, this.layout.rankWord(this.rank, ENTERED), this.layout.rankWord(this.rank, DESCRIPTOR_AT), call.desc);
    this.agree(call);
  }

  /**
   * The agreement frames of a one-way collective over channels (agreement.ts): payload-free frames on
   * the ring edges its data does not cover (counted under "agreement"). Run to completion here; a
   * disagreement that needs no frame to show (members waiting for each other's data) is seen by the
   * waiting loop, which reads the peers' posted descriptors.
   */
  private agree(call: CallContext): void {
    const frames = agreementFrames(call.desc, call.members ?? Array.from({ length: this.size }, (_, r) => r), this.rank);
    if (!frames) return;
    // not paced: an emulated link models the op's data, and the agreement is bookkeeping
    const agree: CallContext = { ...call, op: "agreement", traffic: zeroTraffic(), link: undefined };
    const ops: (ChannelSend | ChannelRecv)[] = [];
    if (frames.sendTo !== undefined) ops.push(this.sendOp(COLLECTIVE_CONTEXT, agree, { peer: frames.sendTo, payload: new Uint8Array(0) }, performance.now()));
    if (frames.recvFrom !== undefined) {
      const recv: RecvSpec = { peer: frames.recvFrom, bytes: 0, onData: () => undefined };
      // checked against the call's own descriptor
      ops.push(this.recvOp(COLLECTIVE_CONTEXT, agree, recv, this.collectiveCheck(call, recv)));
    }
    this.runUntilDone(call, ops);
  }

  /** A call of `epoch` begins: user sends and receives of older epochs (ended cells) still waiting end with an error. */
  private advanceEpoch(epoch: number): void {
    if (epoch <= this.epoch) return;
    this.epoch = epoch;
    this.user.endOlderThan(epoch);
  }

  private cellEnded(call: CallContext, why: string): Error {
    return new CommCellEndedError(this.rank, call.label, call.desc.epoch, `ended: ${why} (what an ended cell sent and nobody received is dropped)`);
  }

  ring(peer: number): void {
    const word = this.layout.rankWord(peer, DOORBELL);
    Atomics.add(this.ctl, word, 1);
    Atomics.notify(this.ctl, word);
  }

  async exchange(call: CallContext, sends: SendSpec[], recvs: RecvSpec[]): Promise<void> {
    const now = performance.now();
    const ops: (ChannelSend | ChannelRecv)[] = [];
    for (const s of sends) ops.push(this.sendOp(COLLECTIVE_CONTEXT, call, s, now));
    for (const r of recvs) ops.push(this.recvOp(COLLECTIVE_CONTEXT, call, r, this.collectiveCheck(call, r)));
    this.runUntilDone(call, ops);
  }

  /** Loops channel ops to completion, blocking in bounded slices; throws on timeout, cancel or mismatch. */
  runUntilDone(call: CallContext, ops: (ChannelSend | ChannelRecv)[]): void {
    this.blockUntil(
      call,
      () => {
        let moved = false;
        const now = ops.some((o) => (o as ChannelSend).pacer) ? performance.now() : 0;
        for (const op of ops) {
          if (op.done) continue;
          if (op.progress(now)) {
            moved = true;
            this.ring(op.peer);
          }
        }
        return moved;
      },
      () => ops.every((o) => o.done),
      () => ops.filter((o) => !o.done).map((o) => o.peer),
      () => this.nextPacingMs(ops),
    );
  }

  /**
   * The one waiting loop of this transport. `step` makes what progress it
   * can (true if any); `finished` says when to stop; `waitingFor` names the
   * world ranks still owed something, for errors and mismatch checks.
   */
  blockUntil(
    call: CallContext,
    step: () => boolean,
    finished: () => boolean,
    waitingFor: () => number[],
    nextDueMs: () => number = () => Infinity,
  ): void {
    let lastProgress = -1;
    let spinStart = -1;
    for (;;) {
      const bell = Atomics.load(this.ctl, this.bellWord);
      this.checkState(call);
      const moved = step();
      if (this.user.pending) this.user.progress();
      if (finished()) return;
      if (moved) {
        spinStart = -1;
        lastProgress = -1;
        continue;
      }
      const due = nextDueMs();
      const now = performance.now();
      if (spinStart < 0) spinStart = now;
      if (due === Infinity && now - spinStart < this.spinMs) continue; // paced sends sleep until due instead
      if (lastProgress < 0) lastProgress = now;
      const peers = waitingFor();
      this.checkPeers(call, peers);
      const waited = now - lastProgress;
      if (waited > call.timeoutMs) {
        throw new CommTimeoutError(this.rank, callLabel(call.desc), peers, waited, this.blame(call));
      }
      const sleep = Math.min(SLICE_MS, call.timeoutMs - waited + 1, due);
      Atomics.wait(this.ctl, this.bellWord, bell, Math.max(0, sleep));
      spinStart = -1;
    }
  }

  private nextPacingMs(ops: (ChannelSend | ChannelRecv)[]): number {
    let due = Infinity;
    const now = performance.now();
    for (const op of ops) {
      if (op instanceof ChannelSend && op.pacer && !op.done) due = Math.min(due, op.pacer.nextDueMs(op.payloadSent(), now));
    }
    return due;
  }

  checkState(call: CallContext): void {
    let state = Atomics.load(this.ctl, STATE);
    // another thread is writing the reason (a few microseconds): wait for it, so a rank that lost the
    // race to stop the world still throws instead of carrying on as if the world were running
    while (state === STATE_STOPPING) state = Atomics.load(this.ctl, STATE);
    if (state === STATE_RUNNING) return;
    const reason = this.reason();
    if (state === STATE_MISMATCH) throw new CommMismatchError(reason);
    throw new CommCancelledError(this.rank, callLabel(call.desc), reason);
  }

  /** A peer that has entered the same call number of the same group with other arguments is a mismatch. */
  private checkPeers(call: CallContext, peers: number[]): void {
    const mine = call.desc;
    if (mine.opcode === 0) return; // point-to-point: checked on the frame
    for (const peer of peers) {
      const theirs = this.peerDescriptor(peer);
      if (theirs && theirs.group === mine.group && theirs.call === mine.call && !descriptorsAgree(mine, theirs)) {
        this.abort(STATE_MISMATCH, this.mismatchReport(call, peer, theirs));
        this.checkState(call);
      }
    }
  }

  /**
   * The message of a mismatch this rank found between its call and `theirs` (rank `peer`'s): every
   * member's call, read from their entered descriptors. Members that have not made the call yet get
   * up to MISMATCH_GATHER_MS to make it; one still outside is named with its latest call.
   */
  mismatchReport(call: CallContext, peer: number, theirs: Descriptor): string {
    const mine = call.desc;
    const members = call.members ?? Array.from({ length: this.size }, (_, r) => r);
    const found = new Map<number, Descriptor | undefined>([[this.rank, mine], [peer, theirs]]);
    const until = performance.now() + Math.min(MISMATCH_GATHER_MS, call.timeoutMs);
    for (;;) {
      const bell = Atomics.load(this.ctl, this.bellWord);
      let missing = false;
      for (const r of members) {
        if (sameCallNumber(mine, found.get(r))) continue;
        const desc = this.peerDescriptor(r);
        found.set(r, desc);
        if (!sameCallNumber(mine, desc)) missing = true;
      }
      // another rank stopped the world first: its message is the one every rank throws
      if (!missing || performance.now() > until || Atomics.load(this.ctl, STATE) !== STATE_RUNNING) break;
      Atomics.wait(this.ctl, this.bellWord, bell, 5);
    }
    const calls: MemberCall[] = members.map((rank) => ({ rank, desc: found.get(rank) }));
    return mismatchOfMembers(mine, calls);
  }

  /** Which members of a timed-out collective's group have not entered it (read from their entered descriptors). */
  private blame(call: CallContext): ReturnType<typeof blameTimeout> | undefined {
    if (call.desc.opcode === 0) return undefined;
    const members = (call.members ?? Array.from({ length: this.size }, (_, r) => r)).filter((p) => p !== this.rank);
    return blameTimeout(
      call.desc,
      members.map((rank) => ({ rank, answered: true, desc: this.peerDescriptor(rank), waitingFor: [], pointToPoint: this.user.peerOp(rank) })),
    );
  }

  peerDescriptor(peer: number): Descriptor | undefined {
    return readPostedDescriptor(this.ctl, this.layout.rankWord(peer, ENTERED), this.layout.rankWord(peer, DESCRIPTOR_AT));
  }

  /** Stops the whole world: every rank's waits end with this reason. */
  abort(state: number, reason: string): void {
    stopWorld(this.ctl, this.layout, state, reason);
  }

  private reason(): string {
    const len = Atomics.load(this.ctl, REASON_LEN);
    const bytes = new Uint8Array(this.ctl.buffer, REASON_AT_WORD * 4, Math.min(len, REASON_BYTES));
    return new TextDecoder().decode(bytes.slice());
  }

  private collectiveCheck(call: CallContext, spec: RecvSpec): FrameCheck {
    return (sender, payloadBytes) => {
      if (!descriptorsAgree(call.desc, sender)) {
        const message = this.mismatchReport(call, spec.peer, sender);
        this.abort(STATE_MISMATCH, message);
        throw new CommMismatchError(message);
      }
      if (spec.bytes !== undefined && spec.bytes !== payloadBytes) {
        throw new Error(`rank ${this.rank} in ${callLabel(call.desc)}: rank ${spec.peer} sent ${payloadBytes} bytes, expected ${spec.bytes}`);
      }
    };
  }

  private sendOp(context: number, call: CallContext, s: SendSpec, nowMs: number): ChannelSend {
    const channel = this.layout.channelIndex(context, this.rank, s.peer);
    const pacer = call.link ? new Pacer(call.link, s.payload.length, this.nic, nowMs, s.peer) : undefined;
    const count = (payload: number, framing: number, messages: number) => this.wire.sent(call, s.peer, payload, messages, framing);
    return new ChannelSend(this.mem, channel, context, s.peer, call.desc, s.payload, pacer, count);
  }

  private recvOp(context: number, call: CallContext, r: RecvSpec, check: FrameCheck): ChannelRecv {
    const channel = this.layout.channelIndex(context, r.peer, this.rank);
    const count = (payload: number, _framing: number, messages: number) => this.wire.received(call, r.peer, payload, messages);
    const ended = (senderEpoch: number) => this.cellEnded(call, `rank ${r.peer} had already begun cell ${senderEpoch}`);
    return new ChannelRecv(this.mem, channel, context, r.peer, r, check, count, call.desc.epoch, ended);
  }

  // ---- user point-to-point: ordered per pair, separate rings, driven asynchronously ----

  sendUser(call: CallContext, spec: SendSpec): Promise<void> {
    this.advanceEpoch(call.desc.epoch);
    return this.user.start(call, this.sendOp(USER_CONTEXT, call, spec, performance.now()));
  }

  recvUser(call: CallContext, spec: RecvSpec): Promise<void> {
    this.advanceEpoch(call.desc.epoch);
    const check: FrameCheck = (sender, payloadBytes) => {
      if (sender.dtype !== call.desc.dtype || payloadBytes !== spec.bytes) {
        throw new CommMismatchError(
          `rank ${this.rank} recv #${call.desc.call} from rank ${spec.peer} expected ${call.desc.count} x dtype ${call.desc.dtype} ` +
            `(${spec.bytes} bytes) but rank ${spec.peer} sent ${sender.count} x dtype ${sender.dtype} (${payloadBytes} bytes) as its send #${sender.call}`,
        );
      }
    };
    return this.user.start(call, this.recvOp(USER_CONTEXT, call, spec, check));
  }

  /** Nothing to wait for: every check here is done inside its call (agreements included). */
  async settle(): Promise<void> {}

  async close(): Promise<void> {
    this.user.close();
  }
}

export function writeReason(ctl: Int32Array, reason: string): void {
  const bytes = new TextEncoder().encode(reason).subarray(0, REASON_BYTES);
  new Uint8Array(ctl.buffer, REASON_AT_WORD * 4, REASON_BYTES).set(bytes);
  Atomics.store(ctl, REASON_LEN, bytes.length);
}

export { DESCRIPTOR_WORDS };
