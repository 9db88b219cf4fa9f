// `--backend processes` end to end: real child Node processes joined by a
// real TCP world (Unix sockets), driven through the same DistributedSession
// the kernel uses.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { CellCompiler } from "../../kernel/src/repl/cell-compiler";
import { DistributedSession } from "../../kernel/src/cluster/kernel-side/distributed-session";
import { TimelineObserver } from "../../kernel/src/cluster/kernel-side/timeline-observer";
import { parseDistributedFlags } from "../../kernel/src/magics/distributed-spec";
import type { ExecuteOutcome } from "../../kernel/src/protocol/backend";
import type { TimelinePayload } from "../../kernel/src/trace";
import { RecordingIO } from "./cluster-io";

let compiler: CellCompiler;
let observer: TimelineObserver;
let session: DistributedSession;

before(() => {
  compiler = new CellCompiler();
  observer = new TimelineObserver();
  session = new DistributedSession(compiler, observer);
});
after(async () => {
  await session.stop();
  compiler.close();
});

const FLAGS = "-n 3 --backend processes --timeout 20";
/**
 * A fault that is seen ends its cell before FLAGS' --timeout (20 s); one that is not is waited out
 * to it. The bound tells the two apart and leaves a loaded machine seconds of slack: these are not
 * speed checks (a benchmark measures how fast a fault ends a cell).
 */
const SEEN_BEFORE_TIMEOUT_MS = 20_000;
const endedBeforeTimeout = (started: number) =>
  assert.ok(Date.now() - started < SEEN_BEFORE_TIMEOUT_MS, `took ${Date.now() - started} ms: the fault was waited out to --timeout, not seen`);

async function run(body: string, io = new RecordingIO(), flags = FLAGS): Promise<{ outcome: ExecuteOutcome; io: RecordingIO }> {
  const outcome = await session.runCell(body, 1, parseDistributedFlags(flags.split(" ").filter(Boolean)), io);
  return { outcome, io };
}

function resultJson(outcome: ExecuteOutcome): unknown {
  assert.equal(outcome.status, "ok", JSON.stringify(outcome));
  return outcome.status === "ok" ? outcome.result?.data["application/json"] : undefined;
}

function errorOf(outcome: ExecuteOutcome): { ename: string; evalue: string; traceback: string[] } {
  assert.equal(outcome.status, "error", JSON.stringify(outcome));
  return outcome as { ename: string; evalue: string; traceback: string[] };
}

async function rankPids(): Promise<number[]> {
  return resultJson((await run("process.pid")).outcome) as number[];
}

test("three rank processes allReduce typed arrays and tensors; output is tagged by rank", async () => {
  const { outcome, io } = await run(
    "let x = dist.rank * 10;\nconsole.log(`x is ${x}`);\n" +
      "const a = await dist.allReduce(new Float32Array([dist.rank, 1]));\n" +
      "const t = await dist.allReduce(tf.ones([2, 2]), { op: 'sum' });\n" +
      "[a instanceof Float32Array, Array.from(a), t.arraySync()]",
  );
  const expected = [true, [3, 3], [[3, 3], [3, 3]]];
  assert.deepEqual(resultJson(outcome), [expected, expected, expected]);
  for (const rank of [0, 1, 2]) assert.match(io.text(), new RegExp(`^\\[rank ${rank}\\] x is ${rank * 10}$`, "m"));
  const pids = await rankPids();
  assert.equal(new Set([...pids, process.pid]).size, 4, `each rank is its own process: ${pids}`);
});

test("each rank process keeps its declarations between cells", async () => {
  const { outcome } = await run("x + dist.size");
  assert.deepEqual(resultJson(outcome), [3, 13, 23]);
});

test("the timeline has every rank's allReduce as a comm span", async () => {
  const { outcome } = await run("await dist.allReduce(new Float32Array(256).fill(dist.rank));\ndist.rank");
  assert.deepEqual(resultJson(outcome), [0, 1, 2]);
  const payload = observer.last as TimelinePayload;
  assert.deepEqual(payload.ranks.map((r) => r.rank), [0, 1, 2]);
  for (const rank of [0, 1, 2]) {
    assert.ok(payload.spans.some((s) => s.rank === rank && s.cat === "comm" && s.name === "allReduce"), `rank ${rank} has an allReduce span`);
  }
});

test("a throwing rank is named, and peers blocked in a collective are woken by the cancel, not the timeout", async () => {
  const started = Date.now();
  const { outcome } = await run(
    "if (dist.rank === 1) {\n  await new Promise((r) => setTimeout(r, 200));\n  throw new TypeError('boom');\n}\n" +
      "try { await dist.barrier(); } catch (e) { (globalThis as any).woken = (e as Error).name; }\n1",
  );
  const error = errorOf(outcome);
  assert.equal(error.ename, "TypeError");
  assert.match(error.evalue, /^rank 1: TypeError: boom/);
  assert.ok(error.traceback.some((line) => /cancelled because rank 1 failed: ranks 0 and 2/.test(line)), error.traceback.join("\n"));
  assert.ok(error.traceback.some((line) => /<cell 1>:4:\d+/.test(line)), error.traceback.join("\n"));
  endedBeforeTimeout(started);
  // The barrier itself was cancelled (tcp worlds are cancelled rank by rank), and no state was lost.
  const woken = await run("(globalThis as any).woken ?? 'none'");
  assert.deepEqual(resultJson(woken.outcome), ["CommCancelledError", "none", "CommCancelledError"]);
});

test("a rank that calls process.exit mid-collective ends the cell at once, named, and is respawned", async () => {
  const before = await rankPids();
  const started = Date.now();
  const { outcome } = await run("if (dist.rank === 2) process.exit(7);\nawait dist.allReduce(new Float32Array(16));\n1");
  const error = errorOf(outcome);
  endedBeforeTimeout(started);
  assert.equal(error.ename, "RankProcessExit");
  assert.match(error.evalue, /^rank 2: RankProcessExit: its process ended \(exit code 7\)/);
  assert.ok(error.traceback.some((line) => /cancelled because rank 2 failed: ranks 0 and 1/.test(line)), error.traceback.join("\n"));
  assert.ok(error.traceback.some((line) => /^state lost on rank 2: ended and restarted/.test(line)), error.traceback.join("\n"));
  const after = await rankPids();
  assert.equal(after[0], before[0]);
  assert.notEqual(after[2], before[2]);
  const sum = await run("(await dist.allReduce([1]))[0]");
  assert.deepEqual(resultJson(sum.outcome), [3, 3, 3]);
});

test("a rank SIGKILLed from outside while its peers wait in a collective ends the cell within the timeout, named", async () => {
  const pids = await rankPids();
  setTimeout(() => process.kill(pids[1]!, "SIGKILL"), 500);
  const started = Date.now();
  const { outcome } = await run("if (dist.rank === 1) await new Promise((r) => setTimeout(r, 60_000));\nawait dist.barrier();\n1");
  const error = errorOf(outcome);
  endedBeforeTimeout(started);
  assert.match(error.evalue, /^rank 1: RankProcessExit: its process ended \(signal SIGKILL\)/);
  const again = await run("dist.rank");
  assert.deepEqual(resultJson(again.outcome), [0, 1, 2]);
});

test("a rank process killed while idle is started afresh for the next cell, and the user told", async () => {
  const pids = await rankPids();
  process.kill(pids[2]!, "SIGKILL");
  // Until the process is gone, then a moment for the kernel's exit handler (a loaded machine can lag).
  while (isAlive(pids[2]!)) await new Promise((resolve) => setTimeout(resolve, 20));
  await new Promise((resolve) => setTimeout(resolve, 300));
  const { outcome, io } = await run("dist.rank");
  assert.deepEqual(resultJson(outcome), [0, 1, 2]);
  assert.match(io.text("stderr"), /^distlab: rank 2 had ended while idle \(its process ended \(signal SIGKILL\)\); started it afresh, its declarations are lost$/m);
});

test("interrupting a rank stuck in a synchronous loop kills and respawns only that rank", async () => {
  await run("let kept = dist.rank + 100;");
  const before = await rankPids();
  const io = new RecordingIO();
  setTimeout(() => io.interrupt(), 300);
  const started = Date.now();
  const { outcome } = await run("if (dist.rank === 0) { while (true) {} }\nawait dist.barrier();", io);
  const error = errorOf(outcome);
  assert.equal(error.ename, "InterruptedError");
  assert.match(error.evalue, /state lost on rank 0$/);
  endedBeforeTimeout(started);
  const after = await rankPids();
  assert.notEqual(after[0], before[0]);
  assert.deepEqual(after.slice(1), before.slice(1));
  const kept = await run("typeof kept === 'number' ? kept : 'lost'");
  assert.deepEqual(resultJson(kept.outcome), ["lost", 101, 102]);
});

test("a rank that never joins a collective fails the cell after --timeout, naming it", async () => {
  const started = Date.now();
  const { outcome } = await run("if (dist.rank !== 2) await dist.barrier();\ndist.rank", new RecordingIO(), "-n 3 --backend processes --timeout 1");
  const error = errorOf(outcome);
  // The tcp barrier's first step waits on two peers, so a rank may name rank 2 among others.
  assert.match(error.evalue, /waited .* in barrier #\d+ for (rank 2|ranks [\d, ]*(and )?2)/);
  // --timeout 1 here: a wait that outlived it many times over was not ended by it.
  assert.ok(Date.now() - started < 15_000, `took ${Date.now() - started} ms with --timeout 1`);
});

test("--link paces the tcp world (an allReduce takes at least the 30 ms latency); a changed shape restarts the processes", async () => {
  const io = new RecordingIO();
  const { outcome } = await run(
    "const started = performance.now();\nawait dist.allReduce(new Float32Array(4));\nperformance.now() - started >= 27",
    io,
    "-n 2 --backend processes --link bandwidth=1Gbit,latency=30ms",
  );
  assert.deepEqual(resultJson(outcome), [true, true]);
  assert.match(io.text("stderr"), /group shape changed \(-n 3 --backend processes -> -n 2 --backend processes --link/);
});

/** Whether a process of this pid still exists (signal 0 checks without sending). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
