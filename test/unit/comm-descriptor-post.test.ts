// A rank's posted descriptor, read by other threads while the rank moves on
// to its next call: every read is one whole descriptor or none, even when two
// calls in a row share a call number (call numbers count per group: a tp
// group's allReduce #1, then the world's barrier #1).
import { test } from "node:test";
import assert from "node:assert/strict";
import { Worker } from "node:worker_threads";
import { DESCRIPTOR_WORDS, OPCODES, ALGORITHMS, readPostedDescriptor, type Descriptor } from "../../kernel/src/comm/descriptor";

const SEQ = 0;
const AT = 1;
const allReduceOfTp: Descriptor = { group: 7, call: 1, opcode: OPCODES.indexOf("allReduce"), count: 512, dtype: 0, root: 0, redop: 0, algorithm: ALGORITHMS.indexOf("ring"), epoch: 3, shape: 0 };
const barrierOfWorld: Descriptor = { group: 0, call: 1, opcode: OPCODES.indexOf("barrier"), count: 0, dtype: 0, root: 0, redop: 0, algorithm: ALGORITHMS.indexOf("recursive-doubling"), epoch: 3, shape: 0 };

test("a descriptor read while its rank re-posts it is whole or undefined, never a mix of two calls with one call number", async () => {
  const words = new Int32Array(new SharedArrayBuffer(4 * (1 + DESCRIPTOR_WORDS)));
  const stop = new Int32Array(new SharedArrayBuffer(4));
  const descriptorModule = require.resolve("../../kernel/src/comm/descriptor");
  // The writer thread alternates between the two calls as fast as it can until told to stop.
  const writer = new Worker(
    `require("tsx/cjs");
     const { postDescriptor } = require(${JSON.stringify(descriptorModule)});
     const { words, stop, calls } = require("node:worker_threads").workerData;
     let posts = 0;
     while (Atomics.load(stop, 0) === 0) { postDescriptor(words, ${SEQ}, ${AT}, calls[posts & 1]); posts++; }
     require("node:worker_threads").parentPort.postMessage(posts);`,
    { eval: true, workerData: { words, stop, calls: [allReduceOfTp, barrierOfWorld] } },
  );
  while (Atomics.load(words, SEQ) === 0) await new Promise((r) => setTimeout(r, 1));
  let whole = 0;
  const torn: Descriptor[] = [];
  for (let i = 0; i < 2_000_000 && torn.length < 3; i++) {
    const d = readPostedDescriptor(words, SEQ, AT);
    if (d === undefined) continue;
    try {
      assert.deepEqual(d, d.opcode === allReduceOfTp.opcode ? allReduceOfTp : barrierOfWorld);
      whole++;
    } catch {
      torn.push(d);
    }
  }
  Atomics.store(stop, 0, 1);
  const posts = await new Promise<number>((resolve, reject) => writer.once("message", resolve).once("error", reject));
  assert.deepEqual(torn, [], `torn reads while the writer posted ${posts} times`);
  assert.ok(whole > 1000 && posts > 1000, `${whole} whole reads, ${posts} posts: the two threads did run side by side`);
});
