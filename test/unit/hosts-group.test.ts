// `--backend hosts` end to end in one process: two real `distlab agent`
// processes on 127.0.0.1 (2 slots each), driven through the same
// DistributedSession the kernel uses; and the refusals that come before
// anything starts (hostfile lines, slot counts, unreachable hosts, token files).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CellCompiler } from "../../kernel/src/repl/cell-compiler";
import { DistributedSession } from "../../kernel/src/cluster/kernel-side/distributed-session";
import { TimelineObserver } from "../../kernel/src/cluster/kernel-side/timeline-observer";
import { parseDistributedFlags } from "../../kernel/src/magics/distributed-spec";
import { planGroup } from "../../kernel/src/cluster/backends/plan-group";
import { entryName, launcherOf, parseHostfile } from "../../kernel/src/hosts/host-spec";
import { describeHosts } from "../../kernel/src/hosts/host-report";
import type { ExecuteOutcome } from "../../kernel/src/protocol/backend";
import { RecordingIO } from "./cluster-io";
import { startAgentProcess, tempDir, writeToken, type AgentProcess } from "./hosts-agents";

let compiler: CellCompiler;
let session: DistributedSession;
let agents: AgentProcess[] = [];
let tokenPath = "";
let dir = "";

before(async () => {
  compiler = new CellCompiler();
  session = new DistributedSession(compiler, new TimelineObserver());
  dir = tempDir();
  tokenPath = writeToken(dir).path;
  // stand-in GPU device nodes (gpu-check.ts): this host has GPUs 3 and 5
  const devDir = join(dir, "dev");
  mkdirSync(devDir);
  for (const name of ["nvidia3", "nvidia5", "nvidiactl"]) writeFileSync(join(devDir, name), "");
  agents = await Promise.all([0, 1].map(() => startAgentProcess(["--listen", "127.0.0.1:0", "--token-file", tokenPath, "--slots", "2"], { DISTLAB_GPU_DEVICE_DIR: devDir })));
});
after(async () => {
  await session.stop();
  compiler.close();
  await Promise.all(agents.map((agent) => agent.stop()));
});

function flags(extra = ""): string {
  return `-n 4 --backend hosts --hosts 127.0.0.1:${agents[0]!.port},127.0.0.1:${agents[1]!.port} --token-file ${tokenPath} --timeout 20 ${extra}`;
}

async function run(body: string, io = new RecordingIO(), words = flags()): Promise<{ outcome: ExecuteOutcome; io: RecordingIO }> {
  const outcome = await session.runCell(body, 1, parseDistributedFlags(words.split(" ").filter(Boolean)), io);
  return { outcome, io };
}

function resultJson(outcome: ExecuteOutcome): unknown {
  assert.equal(outcome.status, "ok", JSON.stringify(outcome));
  return outcome.status === "ok" ? outcome.result?.data["application/json"] : undefined;
}

test("four ranks on two agents allReduce rank to rank, keep state, and print tagged output", async () => {
  const { outcome, io } = await run(
    "let kept = dist.rank * 10;\nconsole.log(`hello from ${dist.rank}`);\n" +
      "const sum = await dist.allReduce(new Float32Array(1024).fill(dist.rank + 1));\n" +
      "[sum[0], process.pid]",
  );
  const values = resultJson(outcome) as Array<[number, number]>;
  assert.deepEqual(values.map((value) => value[0]), [10, 10, 10, 10]);
  assert.equal(new Set(values.map((value) => value[1])).size, 4, "each rank is its own process");
  for (const rank of [0, 1, 2, 3]) assert.match(io.text(), new RegExp(`^\\[rank ${rank}\\] hello from ${rank}$`, "m"));
  assert.deepEqual(resultJson((await run("kept")).outcome), [0, 10, 20, 30]);
  const report = describeHosts(session.group);
  for (const [index, agent] of agents.entries()) {
    const ranks = index === 0 ? "ranks 0, 1" : "ranks 2, 3";
    assert.match(report, new RegExp(`^  127\\.0\\.0\\.1:${agent.port}: agent distlab \\S+ on \\S+ \\(running agent\\); ${ranks}; GPUs none given; round trip [0-9.]+ ms, link [0-9.]+ (MiB|GiB)/s$`, "m"), report);
  }
});

test("ranks fill the first agent's slots, then the next; an allReduce sends bytes to ranks on the other agent", async () => {
  const { outcome } = await run(
    "dist.stats.reset();\nawait dist.allReduce(new Float32Array(4096).fill(1));\nconst s = dist.stats();\n" +
      "[process.ppid, Object.fromEntries(Object.entries(s.byPeer).map(([peer, c]) => [peer, c.bytesSent]))]",
  );
  const values = resultJson(outcome) as Array<[number, Record<string, number>]>;
  const agentPids = agents.map((agent) => agent.child.pid);
  assert.deepEqual(values.map((value) => value[0]), [agentPids[0], agentPids[0], agentPids[1], agentPids[1]], "ranks 0,1 on the first agent, 2,3 on the second");
  for (const [rank, [, sentTo]] of values.entries()) {
    const otherAgent = rank < 2 ? ["2", "3"] : ["0", "1"];
    const across = otherAgent.reduce((sum, peer) => sum + (sentTo[peer] ?? 0), 0);
    assert.ok(across > 0, `rank ${rank} sent bytes to a rank on the other agent: ${JSON.stringify(sentTo)}`);
  }
});

test("a rank's error names its rank and its agent's host", async () => {
  const { outcome } = await run("if (dist.rank === 3) throw new Error('boom on three');\nawait dist.barrier();");
  assert.equal(outcome.status, "error");
  const evalue = (outcome as { evalue: string }).evalue;
  assert.match(evalue, new RegExp(`^rank 3 on 127\\.0\\.0\\.1:${agents[1]!.port}: Error: boom on three`));
});

test("kill -9 of a rank process on an agent ends the cell with an error naming it; the next cell runs on a fresh rank", async () => {
  const pids = resultJson((await run("process.pid")).outcome) as number[];
  const cell = run("await new Promise((r) => setTimeout(r, 4000));\nawait dist.barrier();\ndist.rank");
  await new Promise((r) => setTimeout(r, 1000));
  process.kill(pids[2]!, "SIGKILL");
  const { outcome } = await cell;
  assert.equal(outcome.status, "error", JSON.stringify(outcome));
  const evalue = (outcome as { evalue: string }).evalue;
  assert.match(evalue, new RegExp(`^rank 2 on 127\\.0\\.0\\.1:${agents[1]!.port}: RankProcessExit: its process ended \\(signal SIGKILL\\)`));
  const after = await run("[process.pid, await dist.allReduce(new Float32Array([1]))]");
  const values = resultJson(after.outcome) as Array<[number, Record<string, number>]>;
  assert.notEqual(values[2]![0], pids[2], "rank 2 runs in a new process");
  assert.deepEqual(values.map((value) => value[1]["0"]), [4, 4, 4, 4]);
});

test("an interrupt reaches ranks on the agents; a rank spinning in synchronous code is killed through its agent", async () => {
  const io = new RecordingIO();
  const cell = run("if (dist.rank === 0) { while (true) {} }\nawait dist.barrier();", io);
  await new Promise((r) => setTimeout(r, 1000));
  io.interrupt();
  const { outcome } = await cell;
  assert.equal(outcome.status, "error", JSON.stringify(outcome));
  const evalue = (outcome as { evalue: string }).evalue;
  assert.match(evalue, /^interrupted; 4 of 4 ranks were still running; state lost on rank 0/);
  assert.deepEqual(resultJson((await run("dist.rank")).outcome), [0, 1, 2, 3]);
});

async function prepareError(words: string): Promise<string> {
  const plan = planGroup(parseDistributedFlags(words.split(" ").filter(Boolean)));
  const group = plan.start(() => undefined);
  try {
    await group.prepare(5000);
  } catch (error) {
    return (error as Error).message;
  } finally {
    await group.close();
  }
  assert.fail(`${words} started`);
}

function planError(words: string): string {
  try {
    planGroup(parseDistributedFlags(words.split(" ").filter(Boolean)));
  } catch (error) {
    return (error as Error).message;
  }
  assert.fail(`${words} was planned`);
}

test("bad --hosts input is refused before any rank starts, naming the line, the counts or the host", async () => {
  const hostfile = join(dir, "hostfile");
  writeFileSync(hostfile, `# two agents\n\n127.0.0.1:${agents[0]!.port} slots=2\n127.0.0.1:${agents[1]!.port} slots=two\n`);
  assert.throws(() => parseHostfile(hostfile, `127.0.0.1 slots=2\nnode2 slots=1 gpus\n`), /line 2 \("node2 slots=1 gpus"\): "gpus" is not slots=N/);
  assert.match(planError(`-n 2 --backend hosts --hosts ${hostfile} --token-file ${tokenPath}`), /line 4 .*"slots=two" is not slots=N/);
  const both = `127.0.0.1:${agents[0]!.port},127.0.0.1:${agents[1]!.port}`;
  assert.match(await prepareError(`-n 5 --backend hosts --hosts ${both} --token-file ${tokenPath}`), /-n 5 is more ranks than the 4 slots of --hosts/);
  writeFileSync(hostfile, `127.0.0.1:${agents[0]!.port} slots=1 # only one\n`);
  assert.match(planError(`-n 2 --backend hosts --hosts ${hostfile} --token-file ${tokenPath}`), /-n 2 is more ranks than the 1 slots/);
  assert.match(await prepareError(`-n 1 --backend hosts --hosts 127.0.0.1:1 --token-file ${tokenPath}`), /cannot reach the agent at 127\.0\.0\.1:1: .*ECONNREFUSED/);
  const missing = join(dir, "no-such-token");
  assert.match(planError(`-n 1 --backend hosts --hosts ${both} --token-file ${missing}`), new RegExp(`--token-file ${missing}: no such file`));
  const loose = writeToken(dir, 0o644, "loose").path;
  assert.match(planError(`-n 1 --backend hosts --hosts ${both} --token-file ${loose}`), /the token file has mode 0644, readable by group or others/);
  const other = writeToken(dir, 0o600, "other").path;
  assert.match(await prepareError(`-n 1 --backend hosts --hosts ${both} --token-file ${other}`), /did not prove it holds the token of --token-file/);
  assert.match(planError(`-n 1 --backend hosts --token-file ${tokenPath}`), /--backend hosts needs --hosts SPEC/);
  process.env.DISTLAB_TOKEN_FILE = join(dir, "no-default-token");
  assert.match(planError(`-n 1 --backend hosts --hosts ${both}`), new RegExp(`127\\.0\\.0\\.1:${agents[0]!.port} names a running agent \\(a port\\), which needs its token: pass --token-file FILE or create ${dir}/no-default-token`));
  delete process.env.DISTLAB_TOKEN_FILE;
});

test("hostfile lines: user@, ports, slots= and gpus=; an entry with a port is a running agent, one without is reached through ssh", () => {
  const entries = parseHostfile("hf", "alice@node1 slots=2\n[::1]:29471 gpus=0,2\nnode3:2222 slots=1 gpus=4,5 # spare GPU\n");
  assert.deepEqual(entries.map((entry) => [entryName(entry), entry.slots, entry.gpus, launcherOf(entry, "auto"), launcherOf(entry, "ssh")]), [
    ["alice@node1", 2, undefined, "ssh", "ssh"],
    ["[::1]:29471", 2, [0, 2], "agent", "ssh"],
    ["node3:2222", 1, [4, 5], "agent", "ssh"],
  ]);
  assert.throws(() => parseHostfile("hf", "node1 slots=3 gpus=0,1\n"), /line 1 \("node1 slots=3 gpus=0,1"\): slots=3 but only 2 gpus=/);
  assert.throws(() => parseHostfile("hf", "node1\nnode2 gpus=1,1\n"), /line 2 .*gpus= names a GPU twice/);
  assert.throws(() => parseHostfile("hf", "bad host name\n"), /line 1 .*"host" is not slots=N or gpus=/);
  assert.throws(() => parseHostfile("hf", "@node1\n"), /line 1 .*not \[user@\]host\[:port\]/);
});

test("gpus= gives each rank of the host one GPU in order, the only one CUDA shows it", async () => {
  const hostfile = join(dir, "gpu-hostfile");
  writeFileSync(hostfile, `127.0.0.1:${agents[0]!.port} gpus=3,5\n`);
  const { outcome } = await run("process.env.CUDA_VISIBLE_DEVICES", new RecordingIO(), `-n 2 --hosts ${hostfile} --token-file ${tokenPath} --timeout 20`);
  assert.deepEqual(resultJson(outcome), ["3", "5"]);
  assert.match(describeHosts(session.group), /: agent distlab \S+ on \S+ \(running agent\); ranks 0, 1; GPUs 3,5; round trip/);
});

/** The cell's error text, whether the session reports it or throws it (ranks that never started). */
async function errorOf(body: string, words: string): Promise<string> {
  const outcome = await run(body, new RecordingIO(), words).then(({ outcome }) => outcome, (error: Error) => ({ status: "error", evalue: error.message }) as const);
  assert.equal(outcome.status, "error", JSON.stringify(outcome));
  return (outcome as { evalue: string }).evalue;
}

test("gpus= naming a GPU the host lacks is refused by its agent, naming the host and the GPU; the next cell runs", async () => {
  const hostfile = join(dir, "gpu-missing-hostfile");
  writeFileSync(hostfile, `127.0.0.1:${agents[0]!.port} gpus=3,4\n`);
  const evalue = await errorOf("dist.rank", `-n 2 --hosts ${hostfile} --token-file ${tokenPath} --timeout 20`);
  assert.match(evalue, /rank 1: .*host \S+: GPU 4 \(hostfile gpus=\) is not on this host: no \S+\/nvidia4; its GPUs are 3, 5/, evalue);
  assert.doesNotMatch(evalue, /GPU 3 /, evalue);
  assert.deepEqual(resultJson((await run("dist.rank")).outcome), [0, 1, 2, 3]);
});

test("gpus=0 on an agent that reads the real /dev: refused naming the host on a machine without /dev/nvidia0, given to the rank on one with it", async () => {
  const plain = await startAgentProcess(["--listen", "127.0.0.1:0", "--token-file", tokenPath, "--slots", "1"], { DISTLAB_GPU_DEVICE_DIR: "" });
  const own = new DistributedSession(compiler, new TimelineObserver());
  try {
    const hostfile = join(dir, "gpu0-hostfile");
    writeFileSync(hostfile, `127.0.0.1:${plain.port} gpus=0\n`);
    const words = `-n 1 --hosts ${hostfile} --token-file ${tokenPath} --timeout 20`;
    const cell = own.runCell("process.env.CUDA_VISIBLE_DEVICES", 1, parseDistributedFlags(words.split(" ")), new RecordingIO())
      .catch((error: Error) => ({ status: "error", evalue: error.message }) as const);
    const outcome = await cell;
    if (existsSync("/dev/nvidia0")) {
      assert.deepEqual(resultJson(outcome as ExecuteOutcome), ["0"]);
    } else {
      assert.equal(outcome.status, "error", JSON.stringify(outcome));
      assert.match((outcome as { evalue: string }).evalue, /rank 0: .*host \S+: GPU 0 \(hostfile gpus=\) is not on this host: no \/dev\/nvidia0; it has no GPU device nodes/);
      await plain.waitForLog(/refused rank 0: GPU 0 \(hostfile gpus=\) is not on this host/);
    }
  } finally {
    await own.stop();
    await plain.stop();
  }
});

test("the heartbeat gives a silent agent up after max(3 s, min(--timeout, 10 s)), not a fixed 10 s; the next cell starts it afresh", async () => {
  assert.equal(resultJson((await run("dist.rank")).outcome) !== undefined, true);
  const agentPid = agents[1]!.child.pid!;
  // the agent stops relaying; the cell with --timeout 2 must give it up after 3 s of silence (the floor)
  process.kill(agentPid, "SIGSTOP");
  let evalue = "";
  try {
    // the new --timeout rebuilds the world, whose connect task cannot reach the stopped agent's ranks:
    // the cell fails while joining (a thrown error, as the kernel shows it) once the agent is given up
    const { outcome } = await run("dist.rank", new RecordingIO(), flags().replace("--timeout 20", "--timeout 2")).catch((error: Error) => ({ outcome: { status: "error", evalue: error.message } }));
    assert.equal(outcome.status, "error", JSON.stringify(outcome));
    evalue = (outcome as { evalue: string }).evalue;
  } finally {
    process.kill(agentPid, "SIGCONT");
  }
  assert.match(evalue, new RegExp(`rank 2: its process was lost; its last stderr: lost the connection to the agent at 127\\.0\\.0\\.1:${agents[1]!.port}: the agent did not answer for 3 s`), evalue);
  const after = resultJson((await run("(await dist.allReduce(new Float32Array([1])))[0]")).outcome);
  assert.deepEqual(after, [4, 4, 4, 4]);
});
