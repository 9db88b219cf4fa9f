// What a user can throw at a rank, on both local backends, with the wasm
// backend loaded (its Emscripten glue adds process listeners that rethrow):
// late rejections and throws, hostile thrown values, huge results, a thread
// that ends between cells. Each must end in one readable error or report,
// and the rank must keep its state unless the message says otherwise.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { CellCompiler } from "../../kernel/src/repl/cell-compiler";
import { DistributedSession } from "../../kernel/src/cluster/kernel-side/distributed-session";
import { parseDistributedFlags } from "../../kernel/src/magics/distributed-spec";
import type { ExecuteOutcome } from "../../kernel/src/protocol/backend";
import { countRanks, describeRanks } from "../../kernel/src/errors";
import { CommTimeoutError } from "../../kernel/src/comm/comm-errors";
import { RecordingIO } from "./cluster-io";
import { existsSync, readFileSync } from "node:fs";
import { defaultRankMemoryBytes } from "../../kernel/src/magics/memory-size";
import { planGroup } from "../../kernel/src/cluster/backends/plan-group";

function resultJson(outcome: ExecuteOutcome): unknown {
  assert.equal(outcome.status, "ok", JSON.stringify(outcome).slice(0, 2000));
  return outcome.status === "ok" ? outcome.result?.data["application/json"] : undefined;
}

function errorOf(outcome: ExecuteOutcome): { ename: string; evalue: string; traceback: string[] } {
  assert.equal(outcome.status, "error", JSON.stringify(outcome).slice(0, 2000));
  return outcome as { ename: string; evalue: string; traceback: string[] };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

for (const backend of ["threads", "processes"] as const) {
  describe(`--backend ${backend}`, () => {
    let compiler: CellCompiler;
    let session: DistributedSession;
    const flags = `-n 2 --backend ${backend} --tf-backend wasm --timeout 10`;

    before(() => {
      compiler = new CellCompiler();
      session = new DistributedSession(compiler);
    });
    after(async () => {
      await session.stop();
      compiler.close();
    });

    async function run(body: string, io = new RecordingIO()): Promise<{ outcome: ExecuteOutcome; io: RecordingIO }> {
      const outcome = await session.runCell(body, 1, parseDistributedFlags(flags.split(" ")), io);
      return { outcome, io };
    }

    /** Each rank's declared `kept` and thread or process id: unchanged while the rank keeps its state. */
    async function identities(): Promise<unknown> {
      return resultJson((await run("[kept, require('node:worker_threads').threadId, process.pid]")).outcome);
    }

    test("the wasm backend is loaded and each rank declares `kept`", async () => {
      const { outcome } = await run("let kept = dist.rank + 10;\ntf.getBackend()");
      assert.deepEqual(resultJson(outcome), ["wasm", "wasm"]);
    });

    test("a rejection nobody handles, after its cell ended, is reported tagged with the rank; the rank keeps its state", async () => {
      const before = await identities();
      const armed = await run("if (dist.rank === 1) setTimeout(() => Promise.reject(new Error('late')), 100);\n'armed'");
      assert.deepEqual(resultJson(armed.outcome), ["armed", "armed"]);
      await sleep(400);
      const next = await run("kept");
      const told = armed.io.text("stderr") + next.io.text("stderr");
      assert.match(told, /^\[rank 1\] unhandled rejection on rank 1, outside any await of its cell \(the rank keeps running; its state is kept\):$/m);
      assert.match(told, /^\[rank 1\] Error: late$/m);
      assert.deepEqual(resultJson(next.outcome), [10, 11]);
      assert.deepEqual(await identities(), before);
    });

    test("a throw in a timer after its cell ended is reported; a rejection during a cell is told under that cell", async () => {
      const before = await identities();
      const armed = await run("if (dist.rank === 0) setTimeout(() => { throw new TypeError('late throw'); }, 50);\n1");
      resultJson(armed.outcome);
      await sleep(300);
      const during = await run("if (dist.rank === 1) Promise.reject(new RangeError('during'));\nawait new Promise((r) => setTimeout(r, 200));\nkept");
      assert.deepEqual(resultJson(during.outcome), [10, 11]);
      assert.match(armed.io.text("stderr") + during.io.text("stderr"), /^\[rank 0\] TypeError: late throw$/m);
      assert.match(during.io.text("stderr"), /^\[rank 1\] unhandled rejection on rank 1, outside any await of its cell/m);
      assert.match(during.io.text("stderr"), /^\[rank 1\] RangeError: during$/m);
      assert.deepEqual(await identities(), before);
    });

    test("any thrown value, however hostile, becomes a readable error naming the rank, and the rank keeps its state", async () => {
      const before = await identities();
      const hostile: Array<[string, RegExp]> = [
        ["Object.defineProperty(new Error('x'), 'message', { get() { throw new Error('getter'); } })", /^rank 1: Error: <its message could not be read/],
        ["(() => { const o: any = { name: 'cyclic' }; o.self = o; return o; })()", /^rank 1: Error: non-Error value thrown: <ref \*1> \{ name: 'cyclic', self: \[Circular \*1\] \}/],
        ["new Error('x'.repeat(10_000_000))", /^rank 1: Error: x{100}.*\(9990000 more characters cut\)$/s],
        ["null", /^rank 1: Error: non-Error value thrown: null$/],
        ["undefined", /^rank 1: Error: non-Error value thrown: undefined$/],
        ["Symbol('odd')", /^rank 1: Error: non-Error value thrown: Symbol\(odd\)$/],
        ["new Proxy({}, new Proxy({}, { get: () => () => { throw new Error('trap'); } }))", /^rank 1: Error: non-Error value thrown: /],
      ];
      for (const [value, expected] of hostile) {
        const { outcome } = await run(`if (dist.rank === 1) throw ${value};\nawait dist.barrier();`);
        const error = errorOf(outcome);
        assert.match(error.evalue, expected, value);
        assert.ok(error.evalue.length < 20_100, `${value}: ${error.evalue.length} characters`);
        assert.ok(!error.traceback.some((line) => /state lost/.test(line)), `${value}: ${error.traceback.join("\n").slice(0, 500)}`);
      }
      assert.deepEqual(await identities(), before);
    });

    test("mismatched collectives fail the cell naming a rank, and every rank keeps its state", async () => {
      const before = await identities();
      // --timeout 1: a collective against a point-to-point call is no mismatch the layer can see (the
      // send's peer may yet post its recv), so it ends by the timeout; the group is kept.
      const quick = flags.replace("--timeout 10", "--timeout 1");
      const cases: [code: string, ename: string][] = [
        ["if (dist.rank === 0) await dist.allReduce(new Float32Array(1024).fill(1));\nelse await dist.broadcast(new Float32Array(8), 1);\n'matched'", "CommMismatchError"],
        ["await dist.allReduce(new Float32Array(dist.rank === 0 ? 4 : 4096));\n'matched'", "CommMismatchError"],
        ["const pending = dist.rank === 0 ? [dist.allReduce(new Float32Array(4)), dist.barrier()] : [dist.broadcast(new Float32Array(4), 0), dist.allReduce(new Float32Array(9))];\nfor (const p of pending) await p;\n'matched'", "CommMismatchError"],
        ["if (dist.rank === 1) await dist.send(new Float32Array(4), 0);\nelse await dist.allGather(new Float32Array(2));\n'matched'", "CommTimeoutError"],
      ];
      for (const [code, ename] of cases) {
        const outcome = await session.runCell(code, 1, parseDistributedFlags(quick.split(" ")), new RecordingIO());
        const error = errorOf(outcome);
        assert.equal(error.ename, ename, `${code}\n${error.evalue}`);
        assert.match(error.evalue, /^rank [01]: /);
        if (ename === "CommMismatchError") assert.match(error.evalue, /mismatched collectives: rank 0 called \w+ #\d+ of cell \d+ \(.*; rank 1 called \w+ #\d+ of cell \d+ \(/);
        assert.ok(!error.traceback.some((line) => /state lost/.test(line)), error.traceback.join("\n"));
        await sleep(100);
      }
      assert.deepEqual(await identities(), before);
    });

    test("a hostile last value (a Proxy that throws on every trap) is a readable error, not a dead rank", async () => {
      const { outcome } = await run("new Proxy({}, new Proxy({}, { get: () => () => { throw new Error('trap'); } }))");
      assert.match(errorOf(outcome).evalue, /^rank [01]: Error: trap\b/);
      assert.deepEqual(resultJson((await run("kept")).outcome), [10, 11]);
    });

    test("a 10 MB result is capped at 1 MiB of JSON per rank, with a note naming %dist pull", async () => {
      const { outcome } = await run("'x'.repeat(10_000_000)");
      assert.equal(outcome.status, "ok");
      if (outcome.status !== "ok") return;
      const json = outcome.result!.data["application/json"] as unknown[];
      const plain = outcome.result!.data["text/plain"] as string;
      assert.ok(JSON.stringify(json).length < 2 * 2 ** 20, `application/json is ${JSON.stringify(json).length} characters`);
      for (const value of json) assert.match(String(value), /over the 1\.0 MiB cap per rank.*%dist pull NAME/);
      assert.match(plain, /%dist pull NAME/);
      assert.ok(plain.length < 100_000, `text/plain is ${plain.length} characters`);
    });

    test("a rank whose thread or process ends between cells is started afresh and the user told, naming it", async () => {
      await run("if (dist.rank === 1) setTimeout(() => process.exit(3), 50);");
      await sleep(400);
      const { outcome, io } = await run("typeof kept === 'undefined' ? 'lost' : kept");
      assert.deepEqual(resultJson(outcome), [10, "lost"]);
      assert.match(io.text("stderr"), /^distlab: rank 1 had ended while idle \(its (thread|process) ended.*\); started it afresh, its declarations are lost$/m);
    });

    test("a rank that allocates typed arrays past --memory fails with an error naming the rank and the cap", async () => {
      const capped = `-n 2 --backend ${backend} --tf-backend wasm --timeout 10 --memory 400MiB`;
      // Up to 3 GiB per rank in 64 MiB steps, touched so that they are resident; no await on the way.
      const body = "const hog: Float64Array[] = [];\nfor (let i = 0; i < 48; i++) hog.push(new Float64Array(1 << 23).fill(i));\nhog.length";
      const outcome = await session.runCell(body, 1, parseDistributedFlags(capped.split(" ")), new RecordingIO());
      const error = errorOf(outcome);
      assert.equal(error.ename, "RankMemoryError");
      assert.match(error.evalue, /^rank [01]: RankMemoryError: .*(over --memory 400 MiB per rank|over its --memory cap of 400 MiB)/);
      assert.match(error.evalue, /state lost/);
      const after = await session.runCell("dist.rank", 1, parseDistributedFlags(capped.split(" ")), new RecordingIO());
      assert.deepEqual(resultJson(after), [0, 1]);
    });
  });
}

test("bad values of --memory are usage errors naming the flag", () => {
  for (const value of ["lots", "4XB", "-1GiB", "10MiB", "100TiB", ""]) {
    assert.throws(
      () => parseDistributedFlags(["--memory", value]),
      (error: Error & { culprit?: string }) => error.name === "UsageError" && error.culprit === "--memory" && /^%%distributed: --memory /.test(error.message),
      value,
    );
  }
  assert.equal(parseDistributedFlags(["--memory", "1.5GiB"]).memoryBytes, 1.5 * 2 ** 30);
  assert.equal(parseDistributedFlags(["--memory=512M"]).memoryBytes, 512 * 2 ** 20);
});

/** The machine's memory as the system reports it: /proc/meminfo's MemTotal, or a lower cgroup v2 limit (bytes). */
function machineMemoryFromTheSystem(): number {
  const total = Number(/^MemTotal:\s+(\d+) kB$/m.exec(readFileSync("/proc/meminfo", "utf8"))![1]) * 1024;
  const limit = existsSync("/sys/fs/cgroup/memory.max") ? readFileSync("/sys/fs/cgroup/memory.max", "utf8").trim() : "max";
  return limit !== "max" && Number(limit) < total ? Number(limit) : total;
}

test("the default --memory is three quarters of the machine's memory split between the ranks, never below the minimum", { skip: process.platform !== "linux" && "reads /proc/meminfo" }, () => {
  const machine = machineMemoryFromTheSystem();
  for (const ranks of [1, 2, 4, 8]) {
    const share = defaultRankMemoryBytes(ranks);
    const expected = Math.max(384 * 2 ** 20, Math.floor((machine * 0.75) / ranks));
    // totalmem() and /proc/meminfo read the same counter; a page of rounding is allowed
    assert.ok(Math.abs(share - expected) <= 4096 * ranks, `${ranks} ranks: ${share} bytes, expected ${expected} of ${machine}`);
  }
  // a group too large for the machine gets the floor, not a share it could not load TensorFlow.js in
  assert.equal(defaultRankMemoryBytes(Math.ceil(machine / 2 ** 20)), 384 * 2 ** 20);
  // a group without --memory is planned with the default
  const flags = parseDistributedFlags(["-n", "4"]);
  assert.equal(flags.memoryBytes, undefined);
  assert.equal(planGroup(flags).shape.memoryCapBytes, defaultRankMemoryBytes(4));
});

test("rank lists name each rank once, in order, with singular and plural right", () => {
  assert.equal(describeRanks([2]), "rank 2");
  assert.equal(describeRanks([1, 1]), "rank 1");
  assert.equal(describeRanks([3, 1]), "ranks 1 and 3");
  assert.equal(describeRanks([3, 0, 1, 3]), "ranks 0, 1 and 3");
  assert.equal(countRanks(1), "1 rank");
  assert.equal(countRanks(4), "4 ranks");
  // A wait on the same peer twice (a send and a recv) names it once.
  assert.equal(new CommTimeoutError(0, "recv", [1, 1], 2000).message, "rank 0 waited 2.0 s in recv for rank 1");
});
