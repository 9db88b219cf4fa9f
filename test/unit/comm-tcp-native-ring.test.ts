// The native ring between rank processes (tcp-native-ring.ts, kernel/native/tcp-ring.cc), opened
// on one machine with `nativeRing: true` as it is between hosts by default: results against the
// reference, the bytes it moved against the ring's formula, a neighbour in another call, a killed
// process and a rank that never arrives.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { existsSync } from "node:fs";
import * as path from "node:path";
import { ProcessWorld } from "./comm-process-world";
import { expected, fill } from "./comm-reference";
import type { WireStats } from "../../kernel/src/comm/wire-stats";

const built = existsSync(path.join(__dirname, "..", "..", "kernel", "native", "build", "tcp-ring.node"));
const skip = built ? false : "the tcp-ring addon is not built (npm run setup builds it with g++)";
const NATIVE = { comm: { nativeRing: true } };
/** The ring, which the native path runs (below 4 MiB on 3 ranks over TCP the pairwise exchange is picked) */
const RING = { algorithm: "ring" } as const;

for (const n of [2, 3, 4]) {
  test(`native ring, ${n} processes: allReduce equals the reference for each dtype and op, and each rank sends 2(n-1)/n of the array to its right neighbour only`, { skip }, async () => {
    const world = await ProcessWorld.start(n, NATIVE);
    try {
      const cases = [
        { ctor: Float32Array, length: 1_000_003, redop: "sum", inPlace: true },
        { ctor: Float64Array, length: 300_001, redop: "max", inPlace: false },
        { ctor: Int32Array, length: 65_537, redop: "product", inPlace: false },
        { ctor: Float32Array, length: 200_000, redop: "min", inPlace: true },
        { ctor: Float32Array, length: 100_003, redop: "mean", inPlace: false },
      ] as const;
      // framing bytes of the scenario's own barriers: a run of three (reset, barrier, barrier, barrier)
      const barriers = await world.values("wireCounts", Array.from({ length: n }, () => ({ op: "barrier" })));
      const barrierFraming = barriers.map((b) => (b as { stats: WireStats }).stats.framingBytesSent);
      for (const c of cases) {
        const xs = Array.from({ length: n }, (_, r) => fill(c.ctor, c.length, 77 + r, true));
        const replies = await world.values("wireCounts", xs.map((x) => ({ op: "allReduce", x, inPlace: c.inPlace, options: { ...RING, op: c.redop } })));
        const want = expected("allReduce", xs, 0, 0, c.redop)!;
        for (let r = 0; r < n; r++) {
          const { stats } = replies[r] as { stats: WireStats };
          const op = stats.byOp.allReduce!;
          const width = c.ctor.BYTES_PER_ELEMENT;
          // the ring's formula: every block but the one it receives last, twice (reduce-scatter, all-gather)
          const block = (b: number) => Math.floor(((b + 1) * c.length) / n) - Math.floor((b * c.length) / n);
          let sends = 0;
          for (let s = 0; s < n - 1; s++) sends += block((r - s + 2 * n) % n) + block((r + 1 - s + 2 * n) % n);
          const right = (r + 1) % n;
          const left = (r - 1 + n) % n;
          assert.equal(op.bytesSent, sends * width, `rank ${r} ${c.ctor.name}[${c.length}]: bytes sent`);
          assert.equal(stats.byPeer[right]?.bytesSent, sends * width, `rank ${r}: all of it to rank ${right}`);
          assert.equal(op.messagesSent, 2 * (n - 1), `rank ${r}: one message a step`);
          // the descriptor ahead of the data is the only framing: 32 bytes (a framed ring sends 48 a
          // chunk); the scenario's two barriers send what they send alone
          assert.equal(stats.framingBytesSent, (2 / 3) * barrierFraming[r]! + 32, `rank ${r}: framing bytes`);
          assert.ok((stats.byPeer[left]?.bytesReceived ?? 0) > 0, `rank ${r}: received from rank ${left}`);
        }
        const results = await world.values("collective", xs.map((x) => ({ op: "allReduce", x: x.slice(), options: { ...RING, op: c.redop } })));
        for (let r = 0; r < n; r++) {
          const got = results[r] as typeof want;
          const first = want.findIndex((v, i) => v !== got[i]);
          assert.equal(first, -1, `rank ${r}: ${c.ctor.name}[${c.length}] ${c.redop}: element ${first} is ${got[first]}, want ${want[first]}`);
        }
      }
    } finally {
      world.close();
    }
  });
}

test("native ring: a NaN wins max and min on every rank, and int32 sums and products wrap, as the framed ring's do", { skip }, async () => {
  const world = await ProcessWorld.start(3, NATIVE);
  try {
    const length = 300_000;
    for (const op of ["max", "min"]) {
      const xs = [0, 1, 2].map((r) => Float32Array.from({ length }, (_, i) => (i === 1000 * (r + 1) ? NaN : (i * (r + 1)) % 97)));
      const results = (await world.values("collective", xs.map((x) => ({ op: "allReduce", x, options: { ...RING, op } })))) as Float32Array[];
      for (const [r, got] of results.entries()) {
        for (const i of [1000, 2000, 3000]) assert.ok(Number.isNaN(got[i]), `${op}, rank ${r}: element ${i} is ${got[i]}, want NaN`);
        assert.equal(got[5], op === "max" ? 15 : 5, `${op}, rank ${r}: element 5`);
      }
    }
    for (const op of ["sum", "product"]) {
      const xs = [0, 1, 2].map(() => new Int32Array(length).fill(2 ** 30 + 3));
      const want = op === "sum" ? (3 * (2 ** 30 + 3)) | 0 : Math.imul(Math.imul(2 ** 30 + 3, 2 ** 30 + 3), 2 ** 30 + 3);
      const results = (await world.values("collective", xs.map((x) => ({ op: "allReduce", x, options: { ...RING, op } })))) as Int32Array[];
      for (const [r, got] of results.entries()) assert.equal(got[length - 1], want, `int32 ${op}, rank ${r}`);
    }
  } finally {
    world.close();
  }
});

test("native ring: its connections are closed on exec, as Node's are (a process a rank spawns keeps no neighbour's connection open)", { skip: skip || (process.platform === "linux" ? false : "reads /proc") }, async () => {
  const world = await ProcessWorld.start(3, NATIVE);
  try {
    // the native ring in use first, so its connections exist
    await world.values("collective", [0, 1, 2].map(() => ({ op: "allReduce", x: new Float32Array(100_000), options: RING })));
    const inherited = await world.values("inheritedSockets", [undefined, undefined, undefined]);
    // the IPC channel to the test (fd 3, which Node's fork passes on purpose) is the one exception
    for (const [rank, fds] of inherited.entries()) assert.deepEqual((fds as string[]).filter((fd) => fd !== "3"), [], `rank ${rank}'s inheritable sockets`);
  } finally {
    world.close();
  }
});

test("native ring: a rank that enters late gets no block forwarded before its part is combined in (each step waits for the last)", { skip }, async () => {
  const world = await ProcessWorld.start(3, NATIVE);
  try {
    for (const late of [0, 1, 2]) {
      const xs = [0, 1, 2].map((r) => fill(Float32Array, 600_000, 5 + r + late, true));
      // the late rank's right neighbour could send its second step at once, before the late rank's data arrived
      const results = await world.values("late", xs.map((x, r) => ({ delayMs: r === late ? 300 : 0, call: { op: "allReduce", x, options: RING } })));
      const want = expected("allReduce", xs, 0, 0, "sum")!;
      for (let r = 0; r < 3; r++) {
        const got = results[r] as typeof want;
        const first = want.findIndex((v, i) => v !== got[i]);
        assert.equal(first, -1, `rank ${late} late, rank ${r}: element ${first} is ${got[first]}, want ${want[first]}`);
      }
    }
  } finally {
    world.close();
  }
});

test("native ring: a rank whose allReduce has another length or op fails every rank with a mismatch naming both calls", { skip }, async () => {
  // another op moves the same bytes: only the descriptor sent ahead of the data tells the calls apart
  const variants = [
    { name: "length", call: (r: number) => ({ op: "allReduce", x: new Float32Array(r === 2 ? 200_001 : 200_000), options: RING }), words: [/200000/, /200001/] },
    { name: "op", call: (r: number) => ({ op: "allReduce", x: new Float32Array(200_000), options: { ...RING, op: r === 2 ? "max" : "sum" } }), words: [/op sum/, /op max/] },
  ];
  for (const variant of variants) {
    const world = await ProcessWorld.start(3, NATIVE);
    try {
      const replies = await world.run("collective", [0, 1, 2].map(variant.call));
      for (const reply of replies) {
        assert.equal(reply.ok, false, `another ${variant.name}: rank ${reply.rank} finished`);
        assert.equal(reply.error?.name, "CommMismatchError", JSON.stringify(reply));
        for (const word of variant.words) assert.match(reply.error!.message, word);
      }
    } finally {
      world.close();
    }
  }
});

test("native ring: a process killed mid-allReduce ends every other rank's call with an error naming it", { skip }, async () => {
  const world = await ProcessWorld.start(3, { ...NATIVE, timeoutMs: 10_000 });
  try {
    // 60 calls of 32 MiB: seconds of ring traffic, so the kill lands mid-call
    const x = new Float32Array(8 * 1024 * 1024);
    const calls = Array.from({ length: 60 }, () => ({ op: "allReduce", x, options: { ...RING, out: x } }));
    const pending = world.run("sequence", [0, 1, 2].map(() => calls));
    await new Promise((r) => setTimeout(r, 500));
    const killedAt = Date.now();
    world.children[2].kill("SIGKILL");
    const replies = await pending;
    const elapsed = Date.now() - killedAt;
    for (const r of replies.slice(0, 2)) {
      assert.equal(r.ok, false, `rank ${r.rank} finished its 60 calls before the kill`);
      assert.equal(r.error?.name, "PeerLostError", JSON.stringify(r));
      assert.match(r.error!.message, /rank 2/);
    }
    assert.ok(elapsed < 5_000, `ranks took ${elapsed} ms to notice`);
  } finally {
    world.close();
  }
});

test("native ring: a rank that never makes the call ends the others' calls at the timeout, naming it", { skip }, async () => {
  const world = await ProcessWorld.start(3, { ...NATIVE, timeoutMs: 1_500 });
  try {
    const x = new Float32Array(1_000_000);
    const started = Date.now();
    const replies = await world.run("maybe", [0, 1, 2].map((r) => (r === 1 ? null : { op: "allReduce", x, options: RING })));
    const elapsed = Date.now() - started;
    for (const r of [replies[0]!, replies[2]!]) {
      assert.equal(r.ok, false, `rank ${r.rank} finished`);
      assert.equal(r.error?.name, "CommTimeoutError", JSON.stringify(r));
      assert.match(r.error!.message, /rank 1/);
    }
    assert.ok(elapsed < 6_000, `the calls took ${elapsed} ms to time out`);
  } finally {
    world.close();
  }
});
