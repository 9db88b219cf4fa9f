// The Communicator over any Transport: argument checks, call numbering and
// descriptors (for mismatch detection), algorithm choice, spans. Calls on
// one rank run one at a time, in the order they were made, across all of
// the rank's groups, so call numbers agree between ranks.
import { ALGORITHMS, OPCODES, REDUCE_OPS, shapeHash, type Descriptor, type OpName } from "./descriptor";
import { DTYPES, allocate, bytesOf, dtypeCode, elementBytes } from "./dtype";
import { checkLink } from "./link";
import { divideInPlace, jsReducer, type Reducer } from "./reduce-js";
import * as alg from "./algorithms";
import { recursiveDoublingAllGather, recursiveHalvingReduceScatter, rhdAllReduce } from "./algorithms-rhd";
import { chooseAlgorithm, unsupported, type ChoosableOp } from "./choose";
import type { CommCore } from "./comm-core";
import type { TypedArrayConstructor } from "./registered-memory";
import type { CallContext } from "./transport";
import { nowMicros } from "./transport";
import type { Algorithm, AllReduceOptions, CollectiveOptions, CommArray, Communicator, DeviceMesh, LinkModel } from "./types";
import type { TrafficCounts, WireStats } from "./wire-stats";
import { zeroTraffic } from "./wire-stats";
import { buildMesh, checkGroupRanks } from "./groups";

export class GroupCommunicator implements Communicator {
  readonly rank: number;
  readonly size: number;
  private calls = 0;
  private readonly p2pSent = new Map<number, number>();
  private readonly p2pReceived = new Map<number, number>();

  constructor(
    private readonly core: CommCore,
    readonly worldRanks: readonly number[],
    private readonly groupId: number,
    readonly name: string,
  ) {
    this.rank = worldRanks.indexOf(core.transport.rank);
    this.size = worldRanks.length;
  }

  // ---- registered memory ----
  alloc<T extends CommArray>(ctor: TypedArrayConstructor<T>, length: number): T {
    return this.core.memory.alloc(ctor, length);
  }

  free(array: CommArray): void {
    this.core.memory.free(array);
  }

  // ---- wire counters (one set per rank, shared with the groups) ----
  stats(): WireStats {
    return this.core.transport.wire.snapshot();
  }

  resetStats(): void {
    this.core.transport.wire.reset();
  }

  // ---- point to point ----
  send(x: CommArray, peer: number): Promise<void> { return this.isend(x, peer); }
  recv<T extends CommArray>(into: T, peer: number): Promise<T> { return this.irecv(into, peer); }

  isend(x: CommArray, peer: number): Promise<void> {
    const dtype = dtypeCode(x, `${this.name}.send`);
    this.checkPeer(peer, "send");
    const seq = (this.p2pSent.get(peer) ?? 0) + 1;
    let call: CallContext;
    try {
      call = this.context(0, seq, x.length, dtype, -1, 0, 3, undefined, "send");
    } catch (refused) {
      return Promise.reject(refused); // a send of an ended cell
    }
    this.p2pSent.set(peer, seq);
    call.label = `send #${seq} to rank ${peer}`;
    const span = this.spanStart();
    return this.core.transport.sendUser(call, { peer: this.worldRanks[peer], payload: bytesOf(x) }).then(() => {
      this.core.transport.wire.callFinished("send");
      if (span) this.emit("send", x.byteLength, "p2p", span, seq, call.traffic, peer);
    });
  }

  irecv<T extends CommArray>(into: T, peer: number): Promise<T> {
    const dtype = dtypeCode(into, `${this.name}.recv`);
    this.checkPeer(peer, "recv");
    const seq = (this.p2pReceived.get(peer) ?? 0) + 1;
    let call: CallContext;
    try {
      call = this.context(0, seq, into.length, dtype, -1, 0, 3, undefined, "recv");
    } catch (refused) {
      return Promise.reject(refused); // a recv of an ended cell
    }
    this.p2pReceived.set(peer, seq);
    call.label = `recv #${seq} from rank ${peer}`;
    const target = bytesOf(into);
    const span = this.spanStart();
    return this.core.transport
      .recvUser(call, { peer: this.worldRanks[peer], bytes: target.length, onData: (c, o) => target.set(c, o) })
      .then(() => {
        this.core.transport.wire.callFinished("recv");
        if (span) this.emit("recv", into.byteLength, "p2p", span, seq, call.traffic, peer);
        return into;
      });
  }

  // ---- collectives ----
  allReduce<T extends CommArray>(x: T, options: AllReduceOptions = {}): Promise<T> {
    const algorithm = this.choose("allReduce", x, options, redopOf(options));
    const given = this.core.givenOutput(this.name, x, x.length, options, "allReduce");
    return this.collective("allReduce", x, options, { redop: redopOf(options), algorithm }, (env, reduce, call) =>
      this.core.intoOutput(x, x.length, given, (out) => {
        if (algorithm === "direct") {
          this.core.direct!.allReduce(call, x, out, call.desc.redop);
          return meanIfAsked(out, options, this.size);
        }
        return (async () => {
          const overNetwork = this.core.transport.overNetwork === true;
          const native = algorithm === "ring" ? this.core.transport.nativeAllReduce?.(call, x, out) : undefined;
          if (native) await native;
          else if (algorithm === "ring") await alg.ringAllReduce(env, x, out, this.core.combining(x, call, reduce), alg.ringChunks(this.size, x.byteLength, overNetwork));
          else if (algorithm === "pairwise") {
            const chunks = alg.ringChunks(this.size, x.byteLength, overNetwork);
            await alg.pairwiseAllReduce(env, x, out, this.core.combining(x, call, reduce), chunks, (elements) => this.core.workspace(x, elements));
          } else {
            const { acc, reduce: simd, landing } = this.core.accumulator(x, call, reduce);
            if (algorithm === "rhd") await rhdAllReduce(env, acc, simd, landing);
            else await alg.recursiveDoublingAllReduce(env, acc, simd);
            if (acc !== out) out.set(acc as never);
          }
          return meanIfAsked(out, options, this.size);
        })();
      }));
  }

  reduce<T extends CommArray>(x: T, root: number, options: AllReduceOptions = {}): Promise<T> {
    this.checkPeer(root, "reduce root");
    return this.collective("reduce", x, options, { root, redop: redopOf(options), algorithm: "recursive-doubling" }, async (env, reduce) => {
      const acc = x.slice() as T;
      await alg.treeReduce(env, acc, root, reduce);
      if (this.rank !== root) return allocate(x, 0);
      if (options.op === "mean") divideInPlace(acc, this.size);
      return acc;
    });
  }

  reduceScatter<T extends CommArray>(x: T, options: AllReduceOptions = {}): Promise<T> {
    const algorithm = this.choose("reduceScatter", x, options);
    const length = blockLength(x.length, this.rank, this.size);
    const given = this.core.givenOutput(this.name, x, length, options, "reduceScatter");
    return this.collective("reduceScatter", x, options, { redop: redopOf(options), algorithm }, (env, reduce, call) =>
      this.core.intoOutput(x, length, given, (out) => {
        if (algorithm === "direct") {
          this.core.direct!.reduceScatter(call, x, out, call.desc.redop);
          return meanIfAsked(out, options, this.size);
        }
        return (async () => {
          if (algorithm === "rhd") {
            const { acc, reduce: simd, landing } = this.core.accumulator(x, call, reduce);
            await recursiveHalvingReduceScatter(env, acc, simd, this.size, landing);
            out.set(alg.block(acc, this.rank, this.size) as never);
          } else {
            // the ring reads x and fills a work array that needs no copy of x first
            const work = this.core.workspace(x, x.length);
            await alg.ringReduceScatter(env, x, work, this.core.combining(x, call, reduce));
            out.set(alg.block(work, this.rank, this.size) as never);
          }
          return meanIfAsked(out, options, this.size);
        })();
      }));
  }

  allGather<T extends CommArray>(x: T, options: CollectiveOptions = {}): Promise<T> {
    const algorithm = this.choose("allGather", x, options);
    const given = this.core.givenOutput(this.name, x, x.length * this.size, options, "allGather");
    return this.collective("allGather", x, options, { algorithm }, (env, _reduce, call) =>
      this.core.intoOutput(x, x.length * this.size, given, (out) => {
        if (algorithm === "direct") {
          this.core.direct!.allGather(call, x, out);
          return out;
        }
        return (async () => {
          out.set(x as never, x.length * this.rank);
          if (algorithm === "rhd") await recursiveDoublingAllGather(env, out, this.size);
          else await alg.ringAllGather(env, out);
          return out;
        })();
      }));
  }

  broadcast<T extends CommArray>(x: T, root: number, options: CollectiveOptions = {}): Promise<T> {
    this.checkPeer(root, "broadcast root");
    const algorithm = this.choose("broadcast", x, options);
    const given = this.core.givenOutput(this.name, x, x.length, options, "broadcast");
    return this.collective("broadcast", x, options, { root, algorithm }, (env, _reduce, call) =>
      this.core.intoOutput(x, x.length, given, (out) => {
        if (algorithm === "direct") {
          this.core.direct!.broadcast(call, x, out, root);
          return out;
        }
        return (async () => {
          if (this.rank === root && out !== x) out.set(x as never);
          if (algorithm === "ring") await alg.scatterAllGatherBroadcast(env, out, root);
          else await alg.treeBroadcast(env, out, root);
          return out;
        })();
      }));
  }

  gather<T extends CommArray>(x: T, root: number, options: CollectiveOptions = {}): Promise<T> {
    this.checkPeer(root, "gather root");
    return this.collective("gather", x, options, { root, algorithm: only(options, "ring", "gather") }, async (env) => {
      if (this.rank !== root) {
        await alg.exchange(env, [alg.send(env, root, x)], []);
        return allocate(x, 0);
      }
      const out = allocate(x, x.length * this.size);
      out.set(x as never, x.length * root);
      const recvs = [];
      for (let r = 0; r < this.size; r++) if (r !== root) recvs.push(alg.recvInto(env, r, out.subarray(r * x.length, (r + 1) * x.length)));
      await alg.exchange(env, [], recvs);
      return out;
    });
  }

  scatter<T extends CommArray>(x: T, root: number, options: CollectiveOptions = {}): Promise<T> {
    this.checkPeer(root, "scatter root");
    const count = this.rank === root ? x.length : -1;
    return this.collective("scatter", x, options, { root, count, algorithm: only(options, "ring", "scatter") }, async (env) => {
      if (this.rank === root) {
        const sends = [];
        for (let r = 0; r < this.size; r++) if (r !== root) sends.push(alg.send(env, r, alg.block(x, r, this.size)));
        await alg.exchange(env, sends, []);
        return alg.block(x, root, this.size).slice() as T;
      }
      let out = allocate(x, 0);
      let bytes: Uint8Array = new Uint8Array(0);
      const width = elementBytes(env.dtype);
      await alg.exchange(env, [], [{
        peer: env.world(root),
        onStart: (n) => { out = allocate(x, n / width); bytes = bytesOf(out); },
        onData: (c, o) => bytes.set(c, o),
      }]);
      return out;
    });
  }

  allToAll<T extends CommArray>(x: T, options: CollectiveOptions = {}): Promise<T> {
    return this.collective("allToAll", x, options, { algorithm: only(options, "ring", "allToAll") }, async (env) => {
      const n = this.size;
      // every rank's x has the same length, so every block this rank receives has this width
      const width = blockLength(x.length, this.rank, n);
      const out = allocate(x, width * n);
      out.set(alg.block(x, this.rank, n) as never, this.rank * width);
      const sends = [];
      const recvs = [];
      for (let r = 0; r < n; r++) {
        if (r === this.rank) continue;
        sends.push(alg.send(env, r, alg.block(x, r, n)));
        recvs.push(alg.recvInto(env, r, out.subarray(r * width, (r + 1) * width)));
      }
      await alg.exchange(env, sends, recvs);
      return out;
    });
  }

  async barrier(): Promise<void> {
    await this.settle();
    await this.collective("barrier", new Uint8Array(0), {}, { algorithm: "recursive-doubling" }, async (env) => {
      await alg.disseminationBarrier(env);
      return new Uint8Array(0);
    });
  }

  settle(): Promise<void> {
    return this.core.transport.settle();
  }

  // ---- groups ----
  newGroup(ranks: readonly number[], name?: string): Communicator {
    checkGroupRanks(ranks, this.size, "newGroup");
    const id = this.core.allocateGroupId();
    const world = ranks.map((r) => this.worldRanks[r]);
    return new GroupCommunicator(this.core, world, id, name ?? `group${id}`);
  }

  mesh(shape: readonly number[], names: readonly string[]): DeviceMesh {
    return buildMesh(this, shape, names);
  }

  // ---- internals ----
  /** `redop`: an allReduce's reduce op (code), which decides whether the transport's native ring takes it. */
  private choose(op: ChoosableOp, x: CommArray, options: CollectiveOptions, redop?: number): Algorithm {
    const world = this.groupId === 0 && !options.link && !this.core.link;
    const direct = this.core.direct !== undefined && world;
    // (a bad array is refused by name further on: here it only takes no native ring)
    const nativeRing = world && redop !== undefined && this.core.transport.takesNativeAllReduce?.(DTYPES.findIndex((d) => x instanceof d.ctor), redop) === true;
    return chooseAlgorithm(op, options.algorithm, { direct, n: this.size, bytes: x.byteLength, overNetwork: this.core.transport.overNetwork === true, nativeRing });
  }

  private checkPeer(peer: number, what: string): void {
    if (!Number.isInteger(peer) || peer < 0 || peer >= this.size) {
      throw new RangeError(`${this.name}.${what}: rank must be an integer in [0, ${this.size - 1}], got ${peer}`);
    }
    if (this.rank < 0) throw new Error(`${this.name}: rank ${this.core.transport.rank} is not a member of this group`);
  }

  private context(
    opcode: number, call: number, count: number, dtype: number, root: number, redop: number, algorithm: number, link: LinkModel | undefined,
    op: string = OPCODES[opcode], shape?: readonly number[],
  ): CallContext {
    const epoch = this.core.epochOf?.(op) ?? 0;
    const desc: Descriptor = { group: this.groupId, call, opcode, count, dtype, root, redop, algorithm, epoch, shape: shape ? shapeHash(shape) : 0 };
    return {
      desc, label: `${OPCODES[opcode]} #${call}`, link: link ?? this.core.link, timeoutMs: this.core.timeoutMs, op, traffic: zeroTraffic(),
      members: this.worldRanks,
    };
  }

  private collective<T extends CommArray>(
    op: OpName,
    x: T,
    options: CollectiveOptions,
    fields: { root?: number; redop?: number; count?: number; algorithm: Algorithm },
    run: (env: alg.AlgorithmEnv, reduce: Reducer, call: CallContext) => T | Promise<T>,
  ): Promise<T> {
    const dtype = dtypeCode(x, `${this.name}.${op}`);
    if (this.rank < 0) return Promise.reject(new Error(`${this.name}.${op}: rank ${this.core.transport.rank} is not a member of this group`));
    const link = options.link && checkLink(options.link, `${op} link`);
    const redop = fields.redop ?? 0;
    let call: CallContext;
    try {
      call = this.context(
        OPCODES.indexOf(op), this.calls + 1, fields.count ?? x.length, dtype, fields.root ?? -1, redop, ALGORITHMS.indexOf(fields.algorithm), link,
        op, options.shape,
      );
    } catch (refused) {
      return Promise.reject(refused); // a call of an ended cell: refused before it takes a call number
    }
    const callNo = ++this.calls;
    const env: alg.AlgorithmEnv = {
      transport: this.core.transport, call, me: this.rank, n: this.size, dtype, world: (g) => this.worldRanks[g],
    };
    // No async function and no `then` of its own where `run` finishes synchronously (a direct
    // collective): each promise costs a rank in a cell its cell-epoch hooks (rank-side/cell-epochs.ts).
    return this.core.serialize(() => {
      const start = this.spanStart();
      this.core.transport.enter(call);
      const finished = (result: T): T => {
        this.core.transport.wire.callFinished(op);
        if (start) this.emit(op, x.byteLength, fields.algorithm, start, callNo, call.traffic);
        return result;
      };
      const result = run(env, reducerFor(redop, dtype), call);
      return result instanceof Promise ? result.then(finished) : finished(result);
    });
  }

  /** The clock for a call's span, or 0 when no hook records it (nothing is built for the call then). */
  private spanStart(): number {
    const hook = this.core.onSpan;
    return hook !== undefined && hook.recording !== false ? nowMicros() : 0;
  }

  private emit(op: string, bytes: number, algorithm: Algorithm | "p2p", start: number, call: number, traffic: TrafficCounts, peer?: number): void {
    // fields listed rather than spread: this runs once a call
    this.core.onSpan!({
      op, bytes, algorithm, peer, group: this.name, call, start, end: nowMicros(),
      bytesSent: traffic.bytesSent, bytesReceived: traffic.bytesReceived, messagesSent: traffic.messagesSent, messagesReceived: traffic.messagesReceived,
    });
  }
}

let reducerFactory: (redop: number, dtype: number) => Reducer = jsReducer;
/** Lets a faster kernel set (WebAssembly SIMD) replace the plain loops. */
export function setReducerFactory(factory: (redop: number, dtype: number) => Reducer): void {
  reducerFactory = factory;
}
function reducerFor(redop: number, dtype: number): Reducer {
  return reducerFactory(redop, dtype);
}

/** `out`, divided by the group size in place when the call asked for the mean. */
function meanIfAsked<T extends CommArray>(out: T, options: AllReduceOptions, size: number): T {
  if (options.op === "mean") divideInPlace(out, size);
  return out;
}

function redopOf(options: AllReduceOptions): number {
  const op = options.op ?? "sum";
  const code = (REDUCE_OPS as readonly string[]).indexOf(op);
  if (code < 0) throw new RangeError(`op must be one of ${REDUCE_OPS.join(", ")}; got ${JSON.stringify(op)}`);
  return code;
}

function only(options: CollectiveOptions, algorithm: Algorithm, op: string): Algorithm {
  if (options.algorithm && options.algorithm !== algorithm) throw unsupported(op, options.algorithm, [algorithm]);
  return algorithm;
}

function blockLength(length: number, i: number, n: number): number {
  return Math.floor(((i + 1) * length) / n) - Math.floor((i * length) / n);
}
