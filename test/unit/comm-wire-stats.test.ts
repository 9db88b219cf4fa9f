// Wire counters (comm.stats(), dist.stats()) against what each algorithm
// must move, byte for byte, on real shm (threads) and tcp (processes)
// worlds of 2..8 ranks.
//
// Blocks of an L-element array over n ranks are [floor(i L / n), floor((i+1) L / n)),
// b_i elements each; w = bytes per element; S = L w.
//   ring allReduce     rank r sends w (2L - b_r - b_{r+1}) to r+1 in 2(n-1) messages
//                      and receives w (2L - b_{r-1} - b_r) from r-1: 2(n-1)/n S when n | L
//   ring reduceScatter sends w (L - b_r), receives w (L - b_{r-1}), n-1 messages each
//   ring allGather     (x of m elements) sends and receives (n-1) m w, n-1 messages each
//   tree broadcast     every rank but the root receives S once; a rank sends S to each child
//                      (parent of v, relative to the root: v without its lowest set bit)
//   recursive doubling p = largest power of two <= n; rank r < p sends and receives
//   allReduce          S (log2 p + [r + p < n]); rank r >= p sends S and receives S
//   direct (shm)       see directExpectations below
import { after, test } from "node:test";
import * as assert from "node:assert/strict";
import { ThreadWorld } from "./comm-harness";
import { ProcessWorld } from "./comm-process-world";
import { SharedReadCounts, WireCounters } from "../../kernel/src/comm/wire-counters";
import { createDist } from "../../kernel/src/cluster/rank-side/dist-api";
import type { WireStats } from "../../kernel/src/comm/wire-stats";
import type { CommSpan } from "../../kernel/src/comm";
import { PAIRWISE_MAX_RANKS } from "../../kernel/src/comm/choose";
import { peerMemoryOps } from "../../kernel/src/comm/peer-memory";
import { BY_ADDRESS_CHUNK_BYTES } from "../../kernel/src/comm/shm-direct-by-address";

const mod = (a: number, n: number) => ((a % n) + n) % n;
const blockStart = (i: number, L: number, n: number) => Math.floor((i * L) / n);
const blockLen = (i: number, L: number, n: number) => blockStart(i + 1, L, n) - blockStart(i, L, n);

interface Expected {
  bytesSent: number;
  bytesReceived: number;
  messagesSent?: number;
  messagesReceived?: number;
  /** bytes sent to / received from each world rank (others: 0) */
  to: Record<number, number>;
  from: Record<number, number>;
}

interface Case {
  name: string;
  op: string;
  /** the scenario arg of each rank */
  args(n: number): unknown[];
  expected(rank: number, n: number): Expected;
}

function ringAllReduce(L: number): Case {
  return {
    name: `ring allReduce of ${L} x float32`,
    op: "allReduce",
    args: (n) => Array.from({ length: n }, () => ({ op: "allReduce", x: new Float32Array(L).fill(1), options: { algorithm: "ring" } })),
    expected(r, n) {
      const w = 4;
      // n | L: the textbook 2(n-1)/n S each way, written independently of the block formula so that the
      // counters are checked against it directly
      const textbook = L % n === 0 ? (2 * (n - 1) / n) * L * w : undefined;
      const sent = textbook ?? w * (2 * L - blockLen(r, L, n) - blockLen(mod(r + 1, n), L, n));
      const received = textbook ?? w * (2 * L - blockLen(mod(r - 1, n), L, n) - blockLen(r, L, n));
      return {
        bytesSent: sent, bytesReceived: received, messagesSent: 2 * (n - 1), messagesReceived: 2 * (n - 1),
        to: { [mod(r + 1, n)]: sent }, from: { [mod(r - 1, n)]: received },
      };
    },
  };
}

/** Rank r sends block q of its input to each q, then its reduced block r to each q: one message each, each way. */
const pairwiseAllReduce = (L: number): Case => ({
  name: `pairwise allReduce of ${L} x float32`,
  op: "allReduce",
  args: (n) => Array.from({ length: n }, () => ({ op: "allReduce", x: new Float32Array(L).fill(1), options: { algorithm: "pairwise" } })),
  expected(r, n) {
    const w = 4;
    const to: Record<number, number> = {};
    for (let q = 0; q < n; q++) if (q !== r) to[q] = w * (blockLen(q, L, n) + blockLen(r, L, n));
    // (n-1) b_r + (L - b_r) elements each way: the ring's 2(n-1)/n S when n divides L
    const bytes = w * ((n - 2) * blockLen(r, L, n) + L);
    if (L % n === 0) assert.equal(bytes, (2 * (n - 1) / n) * L * w);
    return { bytesSent: bytes, bytesReceived: bytes, messagesSent: 2 * (n - 1), messagesReceived: 2 * (n - 1), to, from: to };
  },
});

const ringReduceScatter = (L: number): Case => ({
  name: `ring reduceScatter of ${L} x float32`,
  op: "reduceScatter",
  args: (n) => Array.from({ length: n }, () => ({ op: "reduceScatter", x: new Float32Array(L).fill(1), options: { algorithm: "ring" } })),
  expected(r, n) {
    const sent = 4 * (L - blockLen(r, L, n));
    const received = 4 * (L - blockLen(mod(r - 1, n), L, n));
    return { bytesSent: sent, bytesReceived: received, messagesSent: n - 1, messagesReceived: n - 1, to: { [mod(r + 1, n)]: sent }, from: { [mod(r - 1, n)]: received } };
  },
});

const ringAllGather = (m: number): Case => ({
  name: `ring allGather of ${m} x float64`,
  op: "allGather",
  args: (n) => Array.from({ length: n }, (_, r) => ({ op: "allGather", x: new Float64Array(m).fill(r), options: { algorithm: "ring" } })),
  expected(r, n) {
    const bytes = (n - 1) * m * 8;
    return { bytesSent: bytes, bytesReceived: bytes, messagesSent: n - 1, messagesReceived: n - 1, to: { [mod(r + 1, n)]: bytes }, from: { [mod(r - 1, n)]: bytes } };
  },
});

const treeBroadcast = (L: number, root: number): Case => ({
  name: `tree broadcast of ${L} x int32 from rank ${root}`,
  op: "broadcast",
  args: (n) => Array.from({ length: n }, () => ({ op: "broadcast", x: new Int32Array(L), root: root % n, options: { algorithm: "recursive-doubling" } })),
  expected(r, n) {
    const S = 4 * L;
    const rootRank = root % n;
    const v = mod(r - rootRank, n);
    const parentOf = (u: number) => u - (u & -u);
    const to: Record<number, number> = {};
    for (let u = 1; u < n; u++) if (parentOf(u) === v) to[mod(u + rootRank, n)] = S;
    const children = Object.keys(to).length;
    const from: Record<number, number> = v === 0 ? {} : { [mod(parentOf(v) + rootRank, n)]: S };
    return { bytesSent: children * S, bytesReceived: v === 0 ? 0 : S, messagesSent: children, messagesReceived: v === 0 ? 0 : 1, to, from };
  },
});

const recursiveDoublingAllReduce = (L: number): Case => ({
  name: `recursive doubling allReduce of ${L} x float32`,
  op: "allReduce",
  args: (n) => Array.from({ length: n }, () => ({ op: "allReduce", x: new Float32Array(L).fill(1), options: { algorithm: "recursive-doubling" } })),
  expected(r, n) {
    const S = 4 * L;
    let p = 1;
    while (p * 2 <= n) p *= 2;
    const peers: number[] = [];
    if (r >= p) peers.push(r - p);
    else {
      for (let mask = 1; mask < p; mask <<= 1) peers.push(r ^ mask);
      if (r + p < n) peers.push(r + p);
    }
    const each: Record<number, number> = {};
    for (const q of peers) each[q] = S;
    return { bytesSent: peers.length * S, bytesReceived: peers.length * S, messagesSent: peers.length, messagesReceived: peers.length, to: each, from: each };
  },
});

/** Each rank sends x of L float32 to rank + 1 and receives from rank - 1 (isend and irecv at once). */
const ringP2p = (L: number): Case => ({
  name: `send/recv of ${L} x float32 around the ring`,
  op: "send",
  args: (n) => Array.from({ length: n }, (_, r) => ({ p2p: { to: mod(r + 1, n), from: mod(r - 1, n), x: new Float32Array(L).fill(r), into: new Float32Array(L) } })),
  expected(r, n) {
    const S = 4 * L;
    // checked under "send" here and under "recv" in checkP2p
    return { bytesSent: S, bytesReceived: 0, messagesSent: 1, messagesReceived: 0, to: { [mod(r + 1, n)]: S }, from: { [mod(r - 1, n)]: S } };
  },
});

/** direct-path slot for the shm worlds here: 1024 float32 a chunk, so small arrays take several */
const SLOT_BYTES = 4096;

/**
 * The direct path (shm): ranks read each other's memory in place; what rank r reads of rank q's
 * memory is received by r from q and sent by q to r, one message a read.
 *   allReduce, S <= min(32 KiB, slot): every rank reads all S of every peer's slot (1 read each)
 *   allReduce, larger: chunks of P = slot / w elements (BY_ADDRESS_CHUNK_BYTES / w when peers read the
 *     arrays by address: peer-memory.ts); chunk of len elements is sliced on 64-byte
 *     lines, slice r = [c(r), c(r+1)), c(r) = min(len, floor(r ceil(len/u) / n) u), u = 64 / w;
 *     rank r reads slice r of each peer's input (reduce), then each peer's slice of the result
 *   allGather: every peer's m elements, one read a chunk
 */
function directAllReduce(L: number, chunkBytes: number): Case {
  return {
    name: `direct allReduce of ${L} x float32 (${chunkBytes === SLOT_BYTES ? "through staging slots" : "peers' arrays read by address"})`,
    op: "allReduce",
    args: (n) => Array.from({ length: n }, () => ({ op: "allReduce", x: new Float32Array(L).fill(1), options: { algorithm: "direct" } })),
    expected(r, n) {
      const w = 4;
      const S = L * w;
      const each: Record<number, number> = {};
      let messages = 0;
      if (S <= Math.min(32 * 1024, SLOT_BYTES)) {
        for (let q = 0; q < n; q++) if (q !== r) each[q] = S;
        messages = n - 1;
      } else {
        const P = chunkBytes / w;
        const u = 64 / w;
        for (let at = 0; at < L; at += P) {
          const len = Math.min(P, L - at);
          const c = (k: number) => Math.min(len, Math.floor((k * Math.ceil(len / u)) / n) * u);
          const mine = c(r + 1) - c(r);
          for (let q = 0; q < n; q++) {
            if (q === r) continue;
            const theirs = c(q + 1) - c(q);
            each[q] = (each[q] ?? 0) + (mine + theirs) * w;
            messages += (mine > 0 ? 1 : 0) + (theirs > 0 ? 1 : 0);
          }
        }
      }
      const total = Object.values(each).reduce((a, b) => a + b, 0);
      // symmetric: q reads of r exactly what r reads of q
      return { bytesSent: total, bytesReceived: total, messagesSent: messages, messagesReceived: messages, to: each, from: each };
    },
  };
}

const directAllGather = (m: number): Case => ({
  name: `direct allGather of ${m} x float32`,
  op: "allGather",
  args: (n) => Array.from({ length: n }, (_, r) => ({ op: "allGather", x: new Float32Array(m).fill(r), options: { algorithm: "direct" } })),
  expected(r, n) {
    const chunks = Math.ceil((m * 4) / SLOT_BYTES);
    const each: Record<number, number> = {};
    for (let q = 0; q < n; q++) if (q !== r) each[q] = m * 4;
    return { bytesSent: (n - 1) * m * 4, bytesReceived: (n - 1) * m * 4, messagesSent: (n - 1) * chunks, messagesReceived: (n - 1) * chunks, to: each, from: each };
  },
});

/** reduceScatter: rank r reduces piece i of its block (q = floor(slot / w / n) elements) in chunk i, reading it in each peer's slot */
const directReduceScatter = (L: number): Case => ({
  name: `direct reduceScatter of ${L} x float32`,
  op: "reduceScatter",
  args: (n) => Array.from({ length: n }, () => ({ op: "reduceScatter", x: new Float32Array(L).fill(1), options: { algorithm: "direct" } })),
  expected(r, n) {
    const q = Math.floor(SLOT_BYTES / 4 / n);
    const to: Record<number, number> = {};
    const from: Record<number, number> = {};
    let messagesSent = 0;
    for (let p = 0; p < n; p++) {
      if (p === r) continue;
      to[p] = blockLen(p, L, n) * 4;
      from[p] = blockLen(r, L, n) * 4;
      messagesSent += Math.ceil(blockLen(p, L, n) / q);
    }
    return {
      bytesSent: 4 * (L - blockLen(r, L, n)), bytesReceived: 4 * (n - 1) * blockLen(r, L, n),
      messagesSent, messagesReceived: (n - 1) * Math.ceil(blockLen(r, L, n) / q), to, from,
    };
  },
});

/** broadcast: every rank but the root copies each chunk out of the root's slot */
const directBroadcast = (L: number, root: number): Case => ({
  name: `direct broadcast of ${L} x float32 from rank ${root}`,
  op: "broadcast",
  args: (n) => Array.from({ length: n }, () => ({ op: "broadcast", x: new Float32Array(L), root: root % n, options: { algorithm: "direct" } })),
  expected(r, n) {
    const chunks = Math.ceil((L * 4) / SLOT_BYTES);
    if (r === root % n) {
      const to: Record<number, number> = {};
      for (let p = 0; p < n; p++) if (p !== r) to[p] = L * 4;
      return { bytesSent: (n - 1) * L * 4, bytesReceived: 0, messagesSent: (n - 1) * chunks, messagesReceived: 0, to, from: {} };
    }
    return { bytesSent: 0, bytesReceived: L * 4, messagesSent: 0, messagesReceived: chunks, to: {}, from: { [root % n]: L * 4 } };
  },
});

function check(stats: WireStats, c: Case, rank: number, n: number, where: string): void {
  const e = c.expected(rank, n);
  const op = stats.byOp[c.op];
  const label = `${where} n=${n} ${c.name}, rank ${rank}`;
  assert.ok(op, `${label}: no counts under "${c.op}" in ${JSON.stringify(stats.byOp)}`);
  assert.equal(op.bytesSent, e.bytesSent, `${label}: bytesSent`);
  assert.equal(op.bytesReceived, e.bytesReceived, `${label}: bytesReceived`);
  if (e.messagesSent !== undefined) assert.equal(op.messagesSent, e.messagesSent, `${label}: messagesSent`);
  if (e.messagesReceived !== undefined) assert.equal(op.messagesReceived, e.messagesReceived, `${label}: messagesReceived`);
  assert.equal(op.calls, 1, `${label}: calls`);
  // only this call moved bytes (the barriers around it move none): per-peer bytes are the call's
  for (let q = 0; q < n; q++) {
    assert.equal(stats.byPeer[q]?.bytesSent ?? 0, e.to[q] ?? 0, `${label}: bytes sent to rank ${q}`);
    assert.equal(stats.byPeer[q]?.bytesReceived ?? 0, e.from[q] ?? 0, `${label}: bytes received from rank ${q}`);
  }
  assert.equal(stats.bytesSent, e.bytesSent, `${label}: total bytesSent`);
}

function checkP2p(stats: WireStats, rank: number, n: number, L: number, where: string): void {
  const recv = stats.byOp.recv;
  const label = `${where} n=${n} p2p, rank ${rank}`;
  assert.ok(recv, `${label}: no "recv" counts`);
  assert.deepEqual([recv.bytesReceived, recv.messagesReceived, recv.bytesSent, recv.calls], [4 * L, 1, 0, 1], `${label}: recv`);
  assert.equal(stats.byPeer[mod(rank - 1, n)]!.bytesReceived, 4 * L, `${label}: received from the left`);
}

const CHANNEL_CASES = (n: number): Case[] => [
  ringAllReduce(1001),
  ringAllReduce(250 * n),
  pairwiseAllReduce(1001),
  pairwiseAllReduce(250 * n),
  ringReduceScatter(1001),
  ringAllGather(37),
  treeBroadcast(333, 0),
  treeBroadcast(333, n - 1),
  recursiveDoublingAllReduce(129),
];

const worlds: { close(): unknown }[] = [];
after(async () => {
  for (const w of worlds) await w.close();
});

async function runCase(world: ThreadWorld | ProcessWorld, c: Case, n: number, where: string): Promise<Array<{ stats: WireStats; spans: CommSpan[] }>> {
  const replies = (await world.values("wireCounts", c.args(n))) as Array<{ stats: WireStats; spans: CommSpan[] }>;
  replies.forEach((reply, rank) => {
    if (c.op === "send") checkP2p(reply.stats, rank, n, (c.args(n)[rank] as any).p2p.x.length, where);
    check(reply.stats, c, rank, n, where);
  });
  return replies;
}

for (let n = 2; n <= 8; n++) {
  test(`shm, ${n} ranks: channel algorithms and p2p move exactly their formula's bytes and messages; spans carry the call's counts`, async () => {
    const world = new ThreadWorld(n, { slotBytes: SLOT_BYTES, comm: { timeoutMs: 20_000, spans: true } });
    worlds.push(world);
    const fresh = (await world.values("wireStatsFresh", [])) as WireStats[];
    fresh.forEach((s, rank) => assert.deepEqual(s, { rank, bytesSent: 0, bytesReceived: 0, messagesSent: 0, messagesReceived: 0, framingBytesSent: 0, byOp: {}, byPeer: {} }));
    for (const c of [...CHANNEL_CASES(n), ringP2p(100)]) {
      const replies = await runCase(world, c, n, "shm");
      // the call's span has the call's own counts (channel paths count exactly per call)
      replies.forEach((reply, rank) => {
        const e = c.expected(rank, n);
        const span = reply.spans.find((s) => s.op === c.op)!;
        assert.deepEqual([span.bytesSent, span.bytesReceived, span.messagesSent], [e.bytesSent, e.bytesReceived, e.messagesSent], `shm n=${n} ${c.name} rank ${rank}: span`);
        // frames in the ring: a 48-byte header and padding to 16 bytes each
        const frames = reply.stats.messagesSent;
        assert.ok(reply.stats.framingBytesSent >= 48 * frames && reply.stats.framingBytesSent < 64 * frames, `framing ${reply.stats.framingBytesSent} for ${frames} frames`);
      });
    }
    // the large allReduce reads peers' arrays by address where the addon is built; without it (and in
    // a world told DISTLAB_PEER_MEMORY=off) through the staging slots
    const bySlots = new ThreadWorld(n, { slotBytes: SLOT_BYTES, comm: { timeoutMs: 20_000, spans: true }, env: { ...process.env, DISTLAB_PEER_MEMORY: "off" } });
    worlds.push(bySlots);
    const largeChunk = peerMemoryOps() ? BY_ADDRESS_CHUNK_BYTES : SLOT_BYTES;
    const direct: [ThreadWorld, Case][] = [
      [world, directAllReduce(1000, largeChunk)], [world, directAllReduce(2500, largeChunk)], [bySlots, directAllReduce(2500, SLOT_BYTES)],
      [world, directAllGather(1500)], [world, directReduceScatter(3001)], [world, directBroadcast(2100, 1)],
    ];
    for (const [w, c] of direct) {
      const replies = await runCase(w, c, n, "shm");
      // the reader's side of a direct call is on its span at once
      replies.forEach((reply, rank) => {
        const span = reply.spans.find((s) => s.op === c.op)!;
        assert.equal(span.bytesReceived, c.expected(rank, n).bytesReceived, `shm n=${n} ${c.name} rank ${rank}: span bytesReceived`);
      });
    }
    await world.close();
    await bySlots.close();
  });

  test(`tcp, ${n} ranks: channel algorithms and p2p move exactly their formula's bytes and messages; 48 framing bytes a frame`, async () => {
    const world = await ProcessWorld.start(n);
    worlds.push(world);
    const fresh = (await world.values("wireStatsFresh", [])) as WireStats[];
    fresh.forEach((s) => assert.equal(s.bytesSent + s.messagesSent + s.bytesReceived + s.messagesReceived, 0));
    for (const c of [...CHANNEL_CASES(n), ringP2p(100)]) {
      const replies = await runCase(world, c, n, "tcp");
      for (const { stats } of replies) assert.equal(stats.framingBytesSent, 48 * stats.messagesSent);
    }
    // left to choose, a 3- or 4-rank world over TCP/IP exchanges pairwise above 64 KiB (every
    // peer gets bytes), others run the ring (only the right neighbour does)
    const chosen = n >= 3 && n <= PAIRWISE_MAX_RANKS ? pairwiseAllReduce(65536) : ringAllReduce(65536);
    await runCase(world, { ...chosen, name: `${chosen.name}, algorithm left to choose`, args: (k) => chosen.args(k).map((a) => ({ ...(a as object), options: {} })) }, n, "tcp");
    world.close();
  });
}

test("dist.stats(): zeros before the rank communicates, even with no world to ask; reset zeroes a rank's counts", () => {
  const wire = new WireCounters(3);
  const noWorld = () => {
    throw new Error("no world yet");
  };
  const dist = createDist({ rank: 3, size: 4, localRank: 3, host: "h", device: "cpu" }, noWorld, {} as never, undefined, wire);
  assert.deepEqual(dist.stats(), { rank: 3, bytesSent: 0, bytesReceived: 0, messagesSent: 0, messagesReceived: 0, framingBytesSent: 0, byOp: {}, byPeer: {} });
  const call = { op: "allReduce", traffic: { bytesSent: 0, bytesReceived: 0, messagesSent: 0, messagesReceived: 0 } } as never;
  wire.sent(call, 0, 100, 1, 48);
  const snap = dist.stats();
  wire.sent(call, 0, 100, 1, 48);
  assert.equal(snap.bytesSent, 100, "a snapshot does not follow later traffic");
  assert.equal(dist.stats().byOp.allReduce!.bytesSent, 200);
  dist.stats.reset();
  assert.equal(dist.stats().bytesSent, 0);
});

test("a rank's counters outlive its world: direct-path reads of the old world's matrix are kept when the next world attaches", () => {
  const wire = new WireCounters(0);
  const first = new SharedReadCounts(SharedReadCounts.createBuffer(2), 2);
  wire.attachSharedReads(first);
  first.add(0, 1, 1, 4096, 2); // rank 1 read 4096 bytes of rank 0's memory in an allReduce (opcode 1), 2 reads
  assert.deepEqual(wire.snapshot().byPeer[1], { bytesSent: 4096, bytesReceived: 0, messagesSent: 2, messagesReceived: 0 });
  const second = new SharedReadCounts(SharedReadCounts.createBuffer(3), 3);
  wire.attachSharedReads(second);
  first.add(0, 1, 1, 999, 1); // a late write to the old world's matrix no longer counts
  second.add(0, 2, 4, 100, 1); // rank 2 read 100 bytes in an allGather (opcode 4)
  const stats = wire.snapshot();
  assert.equal(stats.bytesSent, 4196);
  assert.deepEqual([stats.byOp.allReduce!.bytesSent, stats.byOp.allGather!.bytesSent, stats.byPeer[2]!.messagesSent], [4096, 100, 1]);
  wire.reset();
  second.add(0, 1, 4, 10, 1);
  assert.equal(wire.snapshot().bytesSent, 10, "reset: only reads after it count");
});
