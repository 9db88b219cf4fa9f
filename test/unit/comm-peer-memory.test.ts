// The thread world's large allReduce reading peers' plain arrays by address
// (peer-memory.ts, shm-direct-by-address.ts): exact results for float32 and
// float64 sums and means, in place and into fresh results, on 2 and 3 ranks;
// the same bits as the path through shared memory (the same summation order);
// and a rank never reads the array of a rank that has left the call.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { ThreadWorld } from "./comm-harness";
import { DTYPE_CTORS, expected, fill } from "./comm-reference";
import type { CommArray } from "../../kernel/src/comm";
import { PeerReads, blockPopulator, peerMemoryOps } from "../../kernel/src/comm/peer-memory";
import { addonSetting, loadAddon } from "../../kernel/src/native-addons";
import { ShmLayout, PEER_PRESENT, PEER_BUSY } from "../../kernel/src/comm/shm-layout";
import { CommCancelledError } from "../../kernel/src/comm/comm-errors";
import type { CallContext } from "../../kernel/src/comm/transport";

const worlds: ThreadWorld[] = [];
after(async () => {
  for (const w of worlds) await w.close();
});

/** Above ONE_SHOT_BYTES (32 KiB) for both dtypes, and no multiple of a 64-byte line. */
const LENGTH = 20_003;

for (const n of [2, 3]) {
  test(`${n} ranks: float32 and float64 sums and means of plain arrays, in place and fresh, exact and bit for bit the path through shared memory's`, async (t) => {
    if (!peerMemoryOps()) return t.skip("kernel/native/build/peer-memory.node is not built (no g++ at setup)");
    const byAddress = new ThreadWorld(n);
    const throughSlots = new ThreadWorld(n, { env: { ...process.env, DISTLAB_PEER_MEMORY: "off" } });
    worlds.push(byAddress, throughSlots);
    for (const ctor of [Float32Array, Float64Array]) {
      const dtype = DTYPE_CTORS.indexOf(ctor as never);
      for (const redop of ["sum", "mean"]) {
        for (const inPlace of [false, true]) {
          const what = `${n} ranks, ${ctor.name}[${LENGTH}], ${redop}, ${inPlace ? "in place" : "fresh result"}`;
          // small integers: exact in any order, so equal to the reference
          const small = Array.from({ length: n }, (_, r) => fill(DTYPE_CTORS[dtype]!, LENGTH, 11 + r, true));
          const got = (await byAddress.values("collective", small.map((x) => ({ op: "allReduce", x, inPlace, options: { op: redop } })))) as CommArray[];
          const reference = expected("allReduce", small, 0, 0, redop)!;
          got.forEach((g, rank) => assert.deepEqual(Array.from(g), Array.from(reference), `${what}, rank ${rank}`));
          // large values: rounding depends on the order of the sum, which both paths share
          const large = Array.from({ length: n }, (_, r) => fill(DTYPE_CTORS[dtype]!, LENGTH, 23 + r, false));
          const args = large.map((x) => ({ op: "allReduce", x, inPlace, options: { op: redop } }));
          const [a, b] = (await Promise.all([byAddress.values("collective", args), throughSlots.values("collective", args)])) as CommArray[][];
          a!.forEach((g, rank) => assert.deepEqual(new Uint8Array(g.buffer, g.byteOffset, g.byteLength), new Uint8Array(b![rank]!.buffer, b![rank]!.byteOffset, b![rank]!.byteLength), `${what}, rank ${rank}: bits differ from the path through shared memory`));
        }
      }
    }
  });
}

test("a rank reads a peer's array only while that peer is in the call: a peer that left is named, and nothing is read", (t) => {
  const ops = peerMemoryOps();
  if (!ops) return t.skip("kernel/native/build/peer-memory.node is not built (no g++ at setup)");
  const layout = new ShmLayout(2, 4096, 4096, 4096);
  const ctl = new Int32Array(new SharedArrayBuffer(4 * layout.controlWords));
  const [me, peer] = [new PeerReads(ops, ctl, layout, 0, 2), new PeerReads(ops, ctl, layout, 1, 2)];
  const call = { desc: { call: 7, opcode: 1, group: 0, count: 4, dtype: 0, root: 0, redop: 0, algorithm: 2, epoch: 0, shape: 0 } } as unknown as CallContext;
  const x = new Float32Array(4);
  me.post(call, x, x);
  let reads = 0;
  // rank 1 never posted call 7
  assert.throws(() => me.guarded(call, [0, 1], () => reads++), (e: unknown) => e instanceof CommCancelledError && /rank 1 left the call before this rank read its array/.test(e.message));
  assert.equal(reads, 0);
  assert.equal(Atomics.load(ctl, layout.rankWord(0, PEER_BUSY)), 0, "the busy mark is cleared after a refused read");
  peer.post(call, x, x);
  me.guarded(call, [0, 1], () => {
    reads++;
    assert.equal(Atomics.load(ctl, layout.rankWord(0, PEER_BUSY)), 1, "busy while reading");
  });
  assert.equal(reads, 1);
  assert.deepEqual(me.postedByAll(call, x.byteLength)?.inputs, [ops.address(x), ops.address(x)]);
  assert.throws(() => me.postedByAll(call, 8), /rank 0 posted 16 bytes, this rank 8/);
  peer.leave();
  assert.equal(Atomics.load(ctl, layout.rankWord(1, PEER_PRESENT)), 0, "leaving withdraws the addresses");
  assert.equal(me.postedByAll(call, x.byteLength), undefined, "after a rank left, nobody reads by address");
  assert.throws(() => me.guarded(call, [1], () => reads++), /rank 1 left the call/);
  assert.equal(reads, 1);
});

test("an input detached between the call and its turn to run stops the world naming its rank: no peer waits or reads its memory", async () => {
  const world = new ThreadWorld(3, { comm: { timeoutMs: 30_000 } });
  worlds.push(world);
  const started = performance.now();
  const messages = (await world.values("detachedBeforeRun", [0, 1, 2].map(() => ({ length: 100_000, detacher: 1 })))) as string[];
  messages.forEach((m, rank) => assert.match(m, /CommCancelledError: .*rank 1: the array given to allReduce #1 was detached before the call ran/, `rank ${rank}`));
  assert.ok(performance.now() - started < 10_000, "ended well inside the 30 s collective timeout");
});

test("a bad DISTLAB_PEER_MEMORY or DISTLAB_DROPPED_RESULTS is refused naming the variable and the accepted values", () => {
  assert.throws(() => addonSetting({ DISTLAB_PEER_MEMORY: "yes" }, "DISTLAB_PEER_MEMORY", ["on", "off"]), /DISTLAB_PEER_MEMORY must be "on" or "off", got "yes"/);
  assert.throws(() => addonSetting({ DISTLAB_DROPPED_RESULTS: "" }, "DISTLAB_DROPPED_RESULTS", ["scavenge", "registry"]), /DISTLAB_DROPPED_RESULTS must be "scavenge" or "registry", got ""/);
  assert.equal(addonSetting({}, "DISTLAB_PEER_MEMORY", ["on", "off"]), undefined);
  assert.equal(addonSetting({ DISTLAB_PEER_MEMORY: "off" }, "DISTLAB_PEER_MEMORY", ["on", "off"]), "off");
  assert.equal(loadAddon("/nonexistent/addon.node"), undefined, "a missing addon is left out, not an error");
});

/** Resident pages of this process, bytes (what the OS holds, not what V8 counts). */
function residentBytes(): number {
  const status = require("node:fs").readFileSync("/proc/self/status", "utf8") as string;
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)![1]) * 1024;
}

test("populate faults a fresh block's pages in at once (the process's resident memory grows by the block) and changes no byte", (t) => {
  const ops = peerMemoryOps();
  if (!ops) return t.skip("kernel/native/build/peer-memory.node is not built (no g++ at setup)");
  if (process.platform !== "linux") return t.skip("MADV_POPULATE_WRITE is Linux's");
  const bytes = 64 * 1024 * 1024;
  const block = new SharedArrayBuffer(bytes);
  const view = new Uint8Array(block);
  const before = residentBytes();
  const populated = blockPopulator(ops)!(block);
  const grown = residentBytes() - before;
  if (!populated) return t.skip("this kernel has no MADV_POPULATE_WRITE (Linux 5.14)");
  assert.ok(grown >= 0.95 * bytes, `resident memory grew by ${grown} bytes for a ${bytes}-byte block`);
  // contents unchanged: a written byte stays, and the rest still reads zero
  view[12345] = 7;
  assert.equal(blockPopulator(ops)!(block), true);
  assert.equal(view[12345], 7);
  assert.equal(view.reduce((sum, x) => sum + x, 0), 7);
  // an empty range populates nothing and succeeds; a bad address is refused naming the call
  assert.equal(ops.populate(ops.address(view), 0), true);
  assert.throws(() => ops.populate(-1, 10), /populate: expected \(address, bytes\)/);
});
