// `--launcher env` when an agent is lost: kill -9 of a dialled-in agent
// process ends the cell naming its rank and host; the next cell waits for
// that index to dial in again (as a scheduler restarts a failed task), says
// which ranks lost their state, and the other agent's ranks keep theirs. A
// cell's own --rendezvous-timeout bounds that wait, not the group's first one.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { resolve } from "node:path";
import * as net from "node:net";
import { CellCompiler } from "../../kernel/src/repl/cell-compiler";
import { DistributedSession } from "../../kernel/src/cluster/kernel-side/distributed-session";
import { parseDistributedFlags } from "../../kernel/src/magics/distributed-spec";
import type { ExecuteOutcome } from "../../kernel/src/protocol/backend";
import { RecordingIO } from "./cluster-io";
import { tempDir, writeToken } from "./hosts-agents";

const CLI = resolve(__dirname, "../../kernel/src/cli.ts");
const compiler = new CellCompiler();
const session = new DistributedSession(compiler);
const children: ChildProcess[] = [];
after(async () => {
  await session.stop();
  compiler.close();
  for (const child of children) child.kill("SIGKILL");
});

/** `distlab agent --connect env` as agent `index` of 2, from torchrun's variables. */
function dialingAgent(port: number, tokenPath: string, index: number): ChildProcess {
  const env = { ...process.env, MASTER_ADDR: "127.0.0.1", MASTER_PORT: String(port), RANK: String(index), WORLD_SIZE: "2" };
  const child = spawn(process.execPath, ["--import", "tsx", CLI, "agent", "--connect", "env", "--token-file", tokenPath, "--slots", "1", "--connect-timeout", "60"], { env, stdio: "ignore" });
  children.push(child);
  return child;
}

function values(outcome: ExecuteOutcome): unknown {
  assert.equal(outcome.status, "ok", JSON.stringify(outcome));
  return outcome.status === "ok" ? outcome.result?.data["application/json"] : undefined;
}

test("a lost agent fails the cell naming its rank; the next cell waits for it to dial in again and says whose state was lost", { timeout: 120_000 }, async () => {
  const tokenPath = writeToken(tempDir()).path;
  const probe = net.createServer();
  await new Promise<void>((done) => probe.listen(0, "127.0.0.1", done));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((done) => probe.close(() => done()));
  const options = parseDistributedFlags(`-n 2 --launcher env --rendezvous ${port} --token-file ${tokenPath} --timeout 20 --rendezvous-timeout 60`.split(" "));
  const agents = [dialingAgent(port, tokenPath, 0), dialingAgent(port, tokenPath, 1)];
  assert.deepEqual(values(await session.runCell("let kept = dist.rank + 1;\nprocess.ppid", 1, options, new RecordingIO())), agents.map((agent) => agent.pid));
  agents[1]!.kill("SIGKILL");
  const failed = await session.runCell("await dist.barrier();\nkept", 1, options, new RecordingIO());
  assert.equal(failed.status, "error");
  assert.match(failed.status === "error" ? failed.evalue : "", /rank 1 on \S+ \(agent 1\)/);
  // A later cell's --rendezvous-timeout is its own: 1 s here, where the group started with 60.
  const impatient = parseDistributedFlags(`-n 2 --launcher env --rendezvous ${port} --token-file ${tokenPath} --timeout 20 --rendezvous-timeout 1`.split(" "));
  const waitStarted = performance.now();
  await assert.rejects(session.runCell("kept", 1, impatient, new RecordingIO()), /agent 1 of 2 did not dial in within 1 s \(--rendezvous-timeout; connected: agent 0 [^,]*\)$/);
  const waitedMs = performance.now() - waitStarted;
  assert.ok(waitedMs < 15_000, `the cell with --rendezvous-timeout 1 waited ${Math.round(waitedMs)} ms for the lost agent`);
  // The scheduler starts the task again; the next cell waits for it.
  const restarted = dialingAgent(port, tokenPath, 1);
  const io = new RecordingIO();
  const after = values(await session.runCell("[typeof kept === 'number' ? kept : 'lost', process.ppid]", 1, options, io));
  assert.deepEqual(after, [[1, agents[0]!.pid], ["lost", restarted.pid]]);
  assert.match(io.text("stderr"), /\(agent 1\): the connection to its agent was lost \(.*\); agent 1 dialled in again, the state of rank 1 is lost/);
});
