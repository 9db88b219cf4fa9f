// What a rank of a test world can be asked to do. Each scenario gets the
// rank's world communicator and its own argument.
import type { CommArray, CommSpan, Communicator } from "../../kernel/src/comm";
import { DTYPE_CTORS, expected, fill } from "./comm-reference";

type Scenario = (comm: Communicator, arg: any, spans: CommSpan[]) => Promise<unknown>;

export const SCENARIOS: Record<string, Scenario> = {
  /** arg: {op, x, root?, options?, inPlace?} runs one collective on the world; inPlace passes {out: x} */
  async collective(comm, arg: { op: string; x: CommArray; root?: number; options?: any; inPlace?: boolean; registered?: Registered }) {
    if (arg.registered) return registeredCollective(comm, arg, arg.registered);
    if (arg.inPlace) {
      const result = await SCENARIOS.collective(comm, { ...arg, inPlace: false, options: { ...arg.options, out: arg.x } }, []);
      if (result !== arg.x) throw new Error(`${arg.op} with {out: x} returned another array`);
      return result;
    }
    const { op, x, root, options } = arg;
    switch (op) {
      case "allReduce": return comm.allReduce(x, options);
      case "reduce": return comm.reduce(x, root!, options);
      case "reduceScatter": return comm.reduceScatter(x, options);
      case "allGather": return comm.allGather(x, options);
      case "broadcast": return comm.broadcast(x, root!, options);
      case "gather": return comm.gather(x, root!, options);
      case "scatter": return comm.scatter(x, root!, options);
      case "allToAll": return comm.allToAll(x, options);
      case "barrier": await comm.barrier(); return null;
      default: throw new Error(`unknown op ${op}`);
    }
  },
  /** alloc/free behaviour of the world's registered memory, as plain facts the test compares */
  async allocate(comm) {
    const a = comm.alloc(Float32Array, 1000);
    const zeroed = a.every((v) => v === 0);
    const shared = a.buffer instanceof SharedArrayBuffer;
    a.fill(7);
    const address = a.byteOffset;
    comm.free(a);
    const b = comm.alloc(Float32Array, 1000);
    const reusedAddress = b.byteOffset === address;
    const zeroedAfterReuse = b.every((v) => v === 0);
    const message = (f: () => unknown) => {
      try {
        f();
        return "no error";
      } catch (error) {
        return (error as Error).message;
      }
    };
    return {
      zeroed, shared, reusedAddress, zeroedAfterReuse,
      badDtype: message(() => comm.alloc(Array as never, 4)),
      badLength: message(() => comm.alloc(Float32Array, -1)),
      foreignFree: message(() => comm.free(new Float32Array(4))),
      tooLarge: /registered memory has .* MiB left/.test(message(() => comm.alloc(Float64Array, 2 ** 30))),
    };
  },
  /** arg: list of collective args run back to back */
  async sequence(comm, arg: { op: string; x: CommArray; root?: number; options?: any }[], spans) {
    const out = [];
    for (const a of arg) out.push(await SCENARIOS.collective(comm, a, spans));
    return out;
  },
  /** arg: {to?, from?, x} exchange with isend/irecv posted before either is awaited */
  async pointToPoint(comm, arg: { to: number; from: number; x: CommArray; into: CommArray }) {
    const sent = comm.isend(arg.x, arg.to);
    const got = comm.irecv(arg.into, arg.from);
    await sent;
    return got;
  },
  /** arg: {peer, xs, intos}: every isend to peer and every irecv from it posted before any is awaited */
  async manyInFlight(comm, arg: { peer: number; xs: CommArray[]; intos: CommArray[] }) {
    const sent = arg.xs.map((x) => comm.isend(x, arg.peer));
    const got = arg.intos.map((into) => comm.irecv(into, arg.peer));
    await Promise.all(sent);
    return Promise.all(got);
  },
  async spans(comm, arg: { x: Float32Array }, spans) {
    spans.length = 0;
    await comm.allReduce(arg.x);
    await comm.broadcast(arg.x, 0);
    return spans.slice();
  },
  /** arg: null on ranks that should stall (never join), or a collective arg */
  async maybe(comm, arg) {
    if (arg === null) return null;
    return SCENARIOS.collective(comm, arg, []);
  },
  /** arg: {x} an allReduce asking for the direct path on a sub-group (which has none) */
  async groupDirect(comm, arg: { x: Float32Array }) {
    return comm.newGroup([0, 1]).allReduce(arg.x, { algorithm: "direct" });
  },
  /**
   * arg: {delayMs} one 4-element allReduce, entered `delayMs` late; the reply says how long after
   * entering this rank first slept (`Atomics.wait`, which the shm transport sleeps in), ms, or null
   */
  async firstSleep(comm, arg: { delayMs: number }) {
    // Both ranks started (a worker that loads slowly would be late by more than delayMs), and the call's
    // path set up: a rank's first allReduce spends milliseconds on that before it could wait.
    await comm.allReduce(new Float32Array(4));
    await new Promise((resolve) => setTimeout(resolve, arg.delayMs));
    const wait = Atomics.wait;
    let sleptAt: number | null = null;
    (Atomics as { wait: unknown }).wait = (array: Int32Array, index: number, value: number, timeout?: number) => {
      sleptAt ??= performance.now();
      return wait(array, index, value, timeout);
    };
    try {
      const entered = performance.now();
      await comm.allReduce(new Float32Array(4));
      return sleptAt === null ? null : sleptAt - entered;
    } finally {
      (Atomics as { wait: unknown }).wait = wait;
    }
  },
  /** arg: {shape, names, x} allReduce along each mesh axis */
  async mesh(comm, arg: { shape: number[]; names: string[]; x: Float32Array }) {
    const m = comm.mesh(arg.shape, arg.names);
    const out: Record<string, unknown> = { coords: m.coords };
    for (const name of arg.names) out[name] = await m.axis(name).allReduce(arg.x);
    return out;
  },
};

/**
 * Emulated links slow enough (1 Mbit/s, 100+ ms) that the modelled time is
 * hundreds of milliseconds: a loaded machine's scheduling delays (a few ms)
 * stay far inside the 10% the emulation must meet.
 */
export const LINK_CASES = [
  { bytes: 64 * 1024, link: { bandwidth: 125e3, latency: 0 } }, // bandwidth-bound: 1 Mbit/s, 524 ms
  { bytes: 4096, link: { bandwidth: 125e6, latency: 0.2 } }, // latency-bound: 1 Gbit/s + 200 ms, 200.03 ms
  { bytes: 32 * 1024, link: { bandwidth: 125e3, latency: 0.1 } }, // both: 1 Mbit/s + 100 ms, 362 ms
];

/**
 * arg: {bytes, link}: rank 0 broadcasts `bytes` to rank 1 over an emulated link, then waits for a
 * 1-byte reply over the plain link; rank 0 reports the round in ms (timed on one clock, so the
 * ranks' different exits from the barrier do not count).
 */
SCENARIOS.timedTransfer = async (comm, arg: { bytes: number; link: { bandwidth: number; latency: number } }) => {
  await comm.barrier();
  const x = new Uint8Array(arg.bytes);
  const t0 = performance.now();
  await comm.broadcast(x, 0, { link: arg.link, algorithm: "recursive-doubling" });
  await comm.broadcast(new Uint8Array(1), 1, { algorithm: "recursive-doubling" });
  return performance.now() - t0;
};

/** Which arrays of a call come from comm.alloc (the shm world's registered memory). */
export interface Registered {
  input: boolean;
  /** allReduce, reduceScatter, allGather, broadcast: the result goes into an alloc'd array (the input itself when inPlace) */
  output: boolean;
}

/** The collective with its input and/or output in registered memory; returns a private copy of the result. */
async function registeredCollective(comm: Communicator, arg: { op: string; x: CommArray; root?: number; options?: any; inPlace?: boolean }, registered: Registered) {
  const ctor = arg.x.constructor as unknown as Parameters<Communicator["alloc"]>[0];
  const x = registered.input ? comm.alloc(ctor, arg.x.length) : arg.x.slice();
  if (registered.input) x.set(arg.x as never);
  const { rank, size } = comm;
  const L = arg.x.length;
  const outLength: Record<string, number> = {
    allReduce: L, broadcast: L, allGather: L * size, reduceScatter: Math.floor(((rank + 1) * L) / size) - Math.floor((rank * L) / size),
  };
  let out: CommArray | undefined;
  if (arg.inPlace && (arg.op === "allReduce" || arg.op === "broadcast")) out = x;
  else if (registered.output && arg.op in outLength) out = comm.alloc(ctor, outLength[arg.op]!);
  const result = (await SCENARIOS.collective(comm, { ...arg, x, registered: undefined, inPlace: false, options: { ...arg.options, ...(out ? { out } : {}) } }, [])) as CommArray | null;
  if (out && result !== out) throw new Error(`${arg.op} with {out} returned another array`);
  const copy = result === null ? null : result.slice();
  if (registered.input) comm.free(x);
  if (out && out !== x) comm.free(out);
  return copy;
}

/**
 * arg: a collective arg, or {p2p: {to, from, x, into}}. The rank's wire counters for that one call:
 * reset, barrier (every rank has reset before any reads), the call, barrier (every peer is done
 * reading this rank's memory on the direct path), snapshot. Also the call's own spans.
 */
SCENARIOS.wireCounts = async (comm, arg: { p2p?: { to: number; from: number; x: CommArray; into: CommArray } } & Record<string, any>, spans) => {
  comm.resetStats();
  await comm.barrier();
  spans.length = 0;
  if (arg.p2p) await SCENARIOS.pointToPoint(comm, arg.p2p, spans);
  else await SCENARIOS.collective(comm, arg, spans);
  const callSpans = spans.slice();
  await comm.barrier();
  return { stats: comm.stats(), spans: callSpans };
};

/** arg: {delayMs, call}: the collective `call` (as for `collective`), entered `delayMs` late. */
SCENARIOS.late = async (comm, arg: { delayMs: number; call: Record<string, any> }, spans) => {
  await new Promise((resolve) => setTimeout(resolve, arg.delayMs));
  return SCENARIOS.collective(comm, arg.call as never, spans);
};

/** The rank process's socket descriptors that a process it spawns would inherit (no close-on-exec flag in /proc/self/fdinfo). */
SCENARIOS.inheritedSockets = async () => {
  const fs = await import("node:fs");
  return fs.readdirSync("/proc/self/fd").filter((fd) => {
    try {
      if (!fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith("socket:")) return false;
      const flags = /flags:\s+(\d+)/.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"))?.[1] ?? "0";
      return (parseInt(flags, 8) & 0o2000000) === 0; // O_CLOEXEC
    } catch {
      return false;
    }
  });
};

/** The rank's counters before it has communicated at all. */
SCENARIOS.wireStatsFresh = async (comm) => comm.stats();

/**
 * arg as for `collective`: the counters zeroed, the one collective run, then what this rank received:
 * frames by peer (world rank, data and agreement frames alike) and its agreement frames each way,
 * once the rank has settled (a socket rank may leave the call before its agreement frame arrives).
 */
SCENARIOS.collectiveTraffic = async (comm, arg, spans) => {
  comm.resetStats();
  await SCENARIOS.collective(comm, arg, spans);
  await comm.settle();
  const s = comm.stats();
  const framesFrom = Object.fromEntries(Object.entries(s.byPeer).map(([peer, t]) => [peer, t.messagesReceived]));
  return { framesFrom, agreementSent: s.byOp.agreement?.messagesSent ?? 0, agreementReceived: s.byOp.agreement?.messagesReceived ?? 0 };
};

/**
 * arg: {checker}: rank 0 broadcasts (tree), then tells `checker` (the member whose agreement frame
 * is rank 0's only check) by a send that its call returned; `checker` enters the broadcast only
 * after that message. Rank 0 then settles. Returns each rank's broadcast result, and on rank 0
 * "settled". Only a root that awaits its agreement frame late gets through: one that waits inside
 * the call never sends the message.
 */
SCENARIOS.rootLeavesBeforeItsChecker = async (comm, arg: { checker: number }) => {
  const x = new Float32Array(4).fill(comm.rank + 1);
  const options = { algorithm: "recursive-doubling" as const };
  if (comm.rank === 0) {
    const y = await comm.broadcast(x, 0, options);
    await comm.send(new Uint8Array([1]), arg.checker);
    await comm.settle();
    return [Array.from(y), "settled"];
  }
  if (comm.rank === arg.checker) await comm.recv(new Uint8Array(1), 0);
  return [Array.from(await comm.broadcast(x, 0, options))];
};

/** Fan-out over an emulated link: one sender, `peers` receivers, `bytes` each, at once (scatter). */
export const FAN_OUT_LINK = { bandwidth: 500e3, latency: 0.02 }; // 4 Mbit/s, 20 ms
export const FAN_OUT_BYTES = 100_000;

/**
 * arg: {peers, bytes, link}: ranks 0..peers form a group; rank 0 scatters `bytes` to each other
 * member over the emulated link (one exchange: the sends run at once), then gathers 1 byte back
 * over the plain link; rank 0 reports the round in ms, other ranks null. Every world rank takes part
 * in newGroup and the barrier.
 */
SCENARIOS.timedFanOut = async (comm, arg: { peers: number; bytes: number; link: { bandwidth: number; latency: number } }) => {
  const group = comm.newGroup(Array.from({ length: arg.peers + 1 }, (_, i) => i), `fanout${arg.peers}`);
  await comm.barrier();
  if (group.rank < 0) return null;
  const x = new Uint8Array(arg.bytes * (arg.peers + 1));
  const t0 = performance.now();
  await group.scatter(x, 0, { link: arg.link });
  await group.gather(new Uint8Array(1), 0);
  return group.rank === 0 ? performance.now() - t0 : null;
};

/**
 * arg: {peers, bytes, link}: ranks 0..peers form a group; every member but rank 0 sends `bytes` to
 * rank 0 over the emulated link at once (gather); rank 0 reports how long its gather took, in ms.
 */
SCENARIOS.timedFanIn = async (comm, arg: { peers: number; bytes: number; link: { bandwidth: number; latency: number } }) => {
  const group = comm.newGroup(Array.from({ length: arg.peers + 1 }, (_, i) => i), `fanin${arg.peers}`);
  await comm.barrier();
  if (group.rank < 0) return null;
  const t0 = performance.now();
  await group.gather(new Uint8Array(arg.bytes), 0, { link: arg.link });
  return group.rank === 0 ? performance.now() - t0 : null;
};

/** The rank's result pool (result-pool.ts): internal, read only by the pooled-result tests. */
const resultPoolOf = (comm: Communicator) => (comm as unknown as { core: { results?: { stats(): { blocks: number; idle: number; out: number; bytes: number } } } }).core.results!;
const isPooled = (a: CommArray) => a.buffer instanceof SharedArrayBuffer;
const firstDifference = (got: CommArray, want: CommArray): string | null => {
  if (got.constructor !== want.constructor || got.length !== want.length) return `${got.constructor.name}[${got.length}] instead of ${want.constructor.name}[${want.length}]`;
  for (let i = 0; i < want.length; i++) if (!Object.is(got[i], want[i])) return `element ${i}: ${got[i]} instead of ${want[i]}`;
  return null;
};

/**
 * arg: {op, dtype, length, seed, root, redop, algorithm ("direct" unless given)}: a collective without `out`, every rank's input
 * made here from the seed (so the result is checked on the rank, while its pooled block is the
 * rank's); returns whether the result came from the pool and its first difference from the reference.
 */
SCENARIOS.pooledCollective = async (comm, arg: { op: string; dtype: number; length: number; seed: number; root: number; redop: string; algorithm?: string }) => {
  const ctor = DTYPE_CTORS[arg.dtype];
  const xs = Array.from({ length: comm.size }, (_, r) => fill(ctor, arg.length, arg.seed + r * 7919, true));
  const x = xs[comm.rank];
  const before = x.slice();
  const options = { op: arg.redop as never, algorithm: (arg.algorithm ?? "direct") as never };
  const run = (): Promise<CommArray> => {
    switch (arg.op) {
      case "allReduce": return comm.allReduce(x, options);
      case "reduceScatter": return comm.reduceScatter(x, options);
      case "allGather": return comm.allGather(x, options);
      case "broadcast": return comm.broadcast(x, arg.root, options);
      default: throw new Error(`pooledCollective: no pooled ${arg.op}`);
    }
  };
  const result = await run();
  return { pooled: isPooled(result), mismatch: firstDifference(result, expected(arg.op, xs, comm.rank, arg.root, arg.redop)!), inputKept: firstDifference(x, before) === null };
};

/**
 * arg: {length, calls}: what a caller can rely on with pooled allReduce results (Float32, sum of
 * every rank's input 1, so each element is n): a result kept across later calls, and a subarray
 * kept after its parent was dropped, keep their values while later results are written and then
 * overwritten by the caller; changing a kept result changes no later one; `calls` calls whose
 * results are dropped stay within the pool's budget and mostly reuse blocks.
 */
SCENARIOS.pooledLifetime = async (comm, arg: { length: number; calls: number }) => {
  const n = comm.size;
  const x = new Float32Array(arg.length).fill(1);
  const kept = await comm.allReduce(x);
  const keptSub = (await comm.allReduce(x)).subarray(0, 64);
  let pooledCalls = 0;
  let wrongResults = 0;
  for (let i = 0; i < arg.calls; i++) {
    const r = await comm.allReduce(x);
    if (isPooled(r)) pooledCalls++;
    if (r[0] !== n || r[r.length - 1] !== n) wrongResults++;
    r.fill(-1); // a later result in the same block must not show this
    if (i === arg.calls >> 1) kept.fill(42); // nor this
  }
  const last = await comm.allReduce(x);
  return {
    keptPooled: isPooled(kept),
    keptIntact: kept.every((v) => v === 42),
    subIntact: keptSub.every((v) => v === n),
    lastCorrect: last.every((v) => v === n),
    wrongResults,
    pooledCalls,
    pool: resultPoolOf(comm).stats(),
  };
};

/**
 * arg: {length, detacher}: rank `detacher` transfers its input's buffer away right after calling
 * allReduce, before the call's turn to run (a microtask later); returns each rank's error message.
 */
SCENARIOS.detachedBeforeRun = async (comm, arg: { length: number; detacher: number }) => {
  const x = new Float32Array(arg.length).fill(1);
  const call = comm.allReduce(x, { out: x });
  if (comm.rank === arg.detacher) structuredClone(x.buffer, { transfer: [x.buffer] });
  try {
    await call;
    return "no error";
  } catch (e) {
    return `${(e as Error).name}: ${(e as Error).message}`;
  }
};
