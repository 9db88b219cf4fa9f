// TLS between the kernel and a running `distlab agent`: certificates made
// with openssl for the run (a CA, an agent certificate it signed for
// 127.0.0.1, and a stranger's self-signed one); the kernel verifies the
// agent against --tls-ca or a pinned --tls-fingerprint, and every mismatch
// is refused before any rank starts, naming the agent and what differed.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as net from "node:net";
import { join } from "node:path";
import { CellCompiler } from "../../kernel/src/repl/cell-compiler";
import { DistributedSession } from "../../kernel/src/cluster/kernel-side/distributed-session";
import { TimelineObserver } from "../../kernel/src/cluster/kernel-side/timeline-observer";
import { parseDistributedFlags } from "../../kernel/src/magics/distributed-spec";
import { planGroup } from "../../kernel/src/cluster/backends/plan-group";
import { RecordingIO } from "./cluster-io";
import { startAgentProcess, tempDir, writeToken, type AgentProcess } from "./hosts-agents";

let dir = "";
let tokenPath = "";
let agent: AgentProcess;
let fingerprint = "";
let strangerFingerprint = "";

function openssl(...args: string[]): string {
  return execFileSync("openssl", args, { cwd: dir, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

before(async () => {
  dir = tempDir();
  tokenPath = writeToken(dir).path;
  openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=distlab test CA");
  openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "agent.key", "-out", "agent.csr", "-subj", "/CN=agent");
  execFileSync("sh", ["-c", "printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext"], { cwd: dir });
  openssl("x509", "-req", "-in", "agent.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "agent.pem", "-days", "2", "-extfile", "san.ext");
  openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "stranger.key", "-out", "stranger.pem", "-days", "2", "-subj", "/CN=stranger", "-addext", "subjectAltName=IP:127.0.0.1");
  fingerprint = openssl("x509", "-in", "agent.pem", "-noout", "-fingerprint", "-sha256").trim().split("=")[1]!;
  strangerFingerprint = openssl("x509", "-in", "stranger.pem", "-noout", "-fingerprint", "-sha256").trim().split("=")[1]!;
  // Non-loopback (every interface): allowed because it serves TLS.
  agent = await startAgentProcess(["--listen", "0.0.0.0:0", "--token-file", tokenPath, "--slots", "2", "--tls-cert", join(dir, "agent.pem"), "--tls-key", join(dir, "agent.key")]);
});
after(async () => {
  await agent?.stop();
});

function flags(extra: string): string[] {
  return `-n 2 --hosts 127.0.0.1:${agent.port} --token-file ${tokenPath} --timeout 20 ${extra}`.split(" ").filter(Boolean);
}

async function prepareError(extra: string): Promise<string> {
  const group = planGroup(parseDistributedFlags(flags(extra))).start(() => undefined);
  try {
    await group.prepare(5000);
  } catch (error) {
    return (error as Error).message;
  } finally {
    await group.close();
  }
  assert.fail(`${extra} started`);
}

test("the agent serves TLS on a non-loopback address; the kernel runs cells through it with --tls-ca or a pinned --tls-fingerprint", async () => {
  assert.match(agent.log.join("\n"), /listening on 0\.0\.0\.0:\d+ \(protocol \d+, distlab \S+, 2 slots, TLS\)/);
  const compiler = new CellCompiler();
  const session = new DistributedSession(compiler, new TimelineObserver());
  try {
    for (const extra of [`--tls-ca ${join(dir, "ca.pem")}`, `--tls-fingerprint ${fingerprint}`, `--tls-fingerprint ${fingerprint.replace(/:/g, "").toLowerCase()}`]) {
      const outcome = await session.runCell("(await dist.allReduce(new Float32Array([dist.rank + 1])))[0]", 1, parseDistributedFlags(flags(extra)), new RecordingIO());
      assert.equal(outcome.status, "ok", `${extra}: ${JSON.stringify(outcome)}`);
      assert.deepEqual(outcome.status === "ok" ? outcome.result?.data["application/json"] : undefined, [3, 3]);
    }
  } finally {
    await session.stop();
    compiler.close();
  }
});

test("an agent that is not the one the kernel trusts is refused before any rank starts, naming the agent and what differed", async () => {
  const address = `127\\.0\\.0\\.1:${agent.port}`;
  const wrongCa = await prepareError(`--tls-ca ${join(dir, "stranger.pem")}`);
  assert.match(wrongCa, new RegExp(`^--hosts: the agent at ${address}: TLS: .*(unable to verify|self.signed|certificate)`, "i"));
  const wrongPin = await prepareError(`--tls-fingerprint ${strangerFingerprint}`);
  assert.match(wrongPin, new RegExp(`the agent at ${address}: TLS: its TLS certificate has SHA-256 fingerprint ${fingerprint}, not the pinned ${strangerFingerprint} \\(--tls-fingerprint\\)`));
  const plain = await prepareError("");
  assert.match(plain, new RegExp(`agent at ${address}: .*\\(if the agent runs with --tls-cert, pass --tls-ca FILE or --tls-fingerprint SHA256\\)`));
  await agent.waitForLog(/refused 127\.0\.0\.1:\d+: TLS handshake failed/);
});

test("a plain client gets no further than the TLS handshake; bad TLS flags are refused naming the flag", async () => {
  const from = agent.log.length;
  const socket = net.connect({ host: "127.0.0.1", port: agent.port });
  await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
  socket.write(Buffer.from('\u0000\u0000\u0000\u0010{"type":"hello"}'));
  await new Promise<void>((resolve) => socket.once("close", () => resolve()));
  assert.match(await agent.waitForLog(/refused/, from), /refused 127\.0\.0\.1:\d+: TLS handshake failed/);
  assert.throws(() => planGroup(parseDistributedFlags(flags("--tls-fingerprint 12:34"))), /--tls-fingerprint 12:34: not a SHA-256 fingerprint/);
  assert.throws(() => planGroup(parseDistributedFlags(flags(`--tls-ca ${join(dir, "none.pem")}`))), /--tls-ca .*none\.pem: no such file/);
  assert.throws(() => planGroup(parseDistributedFlags(flags(`--tls-ca ${join(dir, "agent.key")}`))), /--tls-ca .*agent\.key: holds no PEM certificate/);
  await assert.rejects(startAgentProcess(["--listen", "127.0.0.1:0", "--token-file", tokenPath, "--tls-cert", join(dir, "agent.pem")]), /--tls-cert FILE and --tls-key FILE go together \(got only --tls-cert\)/);
});
