// `distlab agent --stdio`, the agent the SSH launcher runs, driven here
// without ssh: a real agent process whose stdin/stdout are the kernel's
// stream. The token is stdin's first line, the handshake follows on the
// same stream, and the agent exits (its ranks with it) when stdin ends.
// Also the ssh client's argv: BatchMode on, host-key checking never off,
// no token in it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { resolve } from "node:path";
import { Duplex } from "node:stream";
import { AgentLink } from "../../kernel/src/hosts/agent-link";
import { sshArguments } from "../../kernel/src/hosts/ssh-launcher";
import { packageVersion } from "../../kernel/src/version";

const CLI = resolve(__dirname, "../../kernel/src/cli.ts");

function stdioAgent(args: string[] = [], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, ["--import", "tsx", CLI, "agent", "--stdio", ...args], { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, ...env } });
  let log = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (text: string) => (log += text));
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
  return { child, exited, log: () => log };
}

test("an agent on stdin/stdout authenticates with the token of its first line, says where its host is reached, and exits when stdin ends", async () => {
  const token = Buffer.from(randomBytes(32).toString("hex"));
  const agent = stdioAgent(["--slots", "1"], { SSH_CONNECTION: "10.9.8.1 50000 10.9.8.11 22" });
  // Token line and hello in one write: the agent must hand what follows the line to the handshake.
  const stream = Duplex.from({ readable: agent.child.stdout, writable: agent.child.stdin });
  agent.child.stdin.write(Buffer.concat([token, Buffer.from("\n")]));
  const link = await AgentLink.authenticate(stream, { address: "stdio", token, version: packageVersion(), kernelAddress: "127.0.0.1", timeoutMs: 30_000 });
  assert.equal(link.slots, 1);
  assert.equal(link.localAddress, "10.9.8.1", "the kernel's address as the host sees it, from SSH_CONNECTION");
  assert.match(agent.log(), /serving a kernel at 10\.9\.8\.1 over ssh stdin\/stdout .*ranks listen on 10\.9\.8\.11/);
  assert.ok(!agent.log().includes(token.toString()), "the token is never logged");
  link.close();
  assert.equal(await agent.exited, 0);
  assert.match(agent.log(), /the kernel's stream ended; exiting/);
});

test("a wrong token on stdin is refused by the handshake; a short or missing token line and --listen with --stdio are refused at start", async () => {
  const agent = stdioAgent();
  const stream = Duplex.from({ readable: agent.child.stdout, writable: agent.child.stdin });
  agent.child.stdin.write(`${randomBytes(32).toString("hex")}\n`);
  await assert.rejects(
    AgentLink.authenticate(stream, { address: "stdio", token: Buffer.from(randomBytes(32).toString("hex")), version: packageVersion(), kernelAddress: "127.0.0.1", timeoutMs: 30_000 }),
    /agent at stdio: the agent did not prove it holds the token/,
  );
  assert.equal(await agent.exited, 0, "stdin closed: the agent exits");
  const short = stdioAgent();
  short.child.stdin.end("abc\n");
  assert.equal(await short.exited, 2);
  assert.match(short.log(), /the token on stdin is 3 characters, fewer than 16/);
  const none = stdioAgent();
  none.child.stdin.end();
  assert.equal(await none.exited, 2);
  assert.match(none.log(), /stdin ended before the token line/);
  const clash = stdioAgent(["--listen", "127.0.0.1:0"]);
  clash.child.stdin.end();
  assert.equal(await clash.exited, 2);
  assert.match(clash.log(), /distlab agent --stdio: --listen do not apply/);
});

test("the ssh client runs with BatchMode and never with host-key checking off; the token is not in its argv", () => {
  const args = sshArguments({ destination: "alice@node1", port: 2222, sshConfig: "/tmp/cfg", agentCommand: "/opt/distlab", slots: 4, version: "x" });
  const options = args.flatMap((word, index) => (args[index - 1] === "-o" ? [word] : []));
  assert.ok(options.includes("BatchMode=yes"), args.join(" "));
  assert.ok(!options.some((option) => /^StrictHostKeyChecking/i.test(option)), args.join(" "));
  assert.deepEqual(args.slice(args.indexOf("--")), ["--", "alice@node1", "/opt/distlab agent --stdio --slots 4"]);
  assert.deepEqual([args[args.indexOf("-F") + 1], args[args.indexOf("-p") + 1]], ["/tmp/cfg", "2222"]);
  assert.ok(!args.some((word) => /[0-9a-f]{32}/.test(word)));
});
