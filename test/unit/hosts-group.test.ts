// `--backend hosts` end to end in one process: two real `distlab agent`
// processes on 127.0.0.1 (2 slots each), driven through the same
// DistributedSession the kernel uses; and the refusals that come before
// anything starts (hostfile lines, slot counts, unreachable hosts, token files).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { CellCompiler } from "../../kernel/src/repl/cell-compiler";
import { DistributedSession } from "../../kernel/src/cluster/distributed-session";
import { TimelineObserver } from "../../kernel/src/cluster/timeline-observer";
import { parseDistributedFlags } from "../../kernel/src/magics/distributed-spec";
import { planGroup } from "../../kernel/src/cluster/group-backends";
import { parseHostfile } from "../../kernel/src/hosts/host-spec";
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
  agents = await Promise.all([0, 1].map(() => startAgentProcess(["--listen", "127.0.0.1:0", "--token-file", tokenPath, "--slots", "2"])));
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
});
