// Agents that dial the kernel (`distlab agent --connect`, agent-dial.ts) and
// the kernel's rendezvous that takes them (rendezvous.ts), over real sockets
// on 127.0.0.1: the same mutual handshake with the socket roles swapped,
// placement by announced index, retries until the kernel listens, and every
// refusal (wrong token, an index taken, a world that disagrees, garbage, a
// 1 GiB length header) logged on the side that refused, told to the agent,
// and harmless to the agents that come next.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as net from "node:net";
import { join } from "node:path";
import { dialKernel, DialRefusal, type DialOptions } from "../../kernel/src/hosts/agent-dial";
import { Rendezvous, RendezvousError } from "../../kernel/src/hosts/rendezvous";
import { packageVersion } from "../../kernel/src/version";
import { tempDir } from "./hosts-agents";

const token = Buffer.from(randomBytes(32).toString("hex"));
const version = packageVersion();
const opened: Rendezvous[] = [];
after(() => opened.forEach((rendezvous) => rendezvous.close()));

async function openRendezvous(port = 0, tls?: { cert: Buffer; key: Buffer }) {
  const log: string[] = [];
  const rendezvous = await Rendezvous.listen({ host: "127.0.0.1", port, token, version, log: (line) => log.push(line), ...(tls ? { tls } : {}) });
  opened.push(rendezvous);
  return { rendezvous, log, port: Number(rendezvous.address.split(":").at(-1)) };
}

/** An in-process agent dialling `port` as agent `index` of `world`; its log lines land in `log`. */
function agent(port: number, index: number, world: number, extra: Partial<DialOptions> = {}) {
  const log: string[] = [];
  const done = dialKernel({ host: "127.0.0.1", port, token, slots: 2, version, log: (line) => log.push(line), connectTimeoutMs: 10_000, rendezvous: { index, world }, ...extra });
  done.catch(() => undefined);
  return { log, done };
}

async function until(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test("agents that dial in are placed by their announced index, whatever order they arrive in, and finish when the kernel closes", { timeout: 30_000 }, async () => {
  const { rendezvous, port } = await openRendezvous();
  const second = agent(port, 1, 2, { slots: 3 });
  await until("agent 1 to be admitted", () => rendezvous.missing()?.join() === "0");
  const first = agent(port, 0, 2);
  const progress: string[] = [];
  const links = await rendezvous.gather(10_000, undefined, (line) => progress.push(line));
  assert.deepEqual(links.map((link) => [link.announced?.index, link.slots]), [[0, 2], [1, 3]]);
  assert.match(progress.join("\n"), /waiting for agents at 127\.0\.0\.1:\d+: 1 of 2 agents connected/);
  assert.match(progress.at(-1)!, /2 of 2 agents connected at .*agent 0 .*\(2 slots\), agent 1 .*\(3 slots\)/);
  assert.match(first.log.join("\n"), /accepted kernel 127\.0\.0\.1:\d+: authenticated kernel/);
  rendezvous.close();
  await Promise.all([first.done, second.done]);
  assert.match(second.log.at(-1)!, /closed the connection; this agent is done/);
});

test("an agent started before the kernel listens dials again with backoff, logging each attempt, until it gets in", { timeout: 30_000 }, async () => {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const early = agent(port, 0, 1);
  await until("two refused attempts", () => early.log.filter((line) => /attempt \d+ to reach 127\.0\.0\.1:\d+: connect ECONNREFUSED.*dialling again in/.test(line)).length >= 2);
  const { rendezvous } = await openRendezvous(port);
  const [link] = await rendezvous.gather(10_000);
  assert.equal(link!.announced?.index, 0);
  rendezvous.close();
  await early.done;
});

test("a wrong token is refused on both sides, logged without the token, nothing is admitted, and the wait names what was refused", { timeout: 30_000 }, async () => {
  const { rendezvous, log, port } = await openRendezvous();
  const otherToken = Buffer.from(randomBytes(32).toString("hex"));
  const intruder = agent(port, 0, 1, { token: otherToken, connectTimeoutMs: 1500 });
  await assert.rejects(rendezvous.gather(2000), (error: unknown) => {
    assert.ok(error instanceof RendezvousError);
    assert.match(error.message, /no agent dialled in within 2 s .*refused meanwhile: refused 127\.0\.0\.1:\d+: the agent did not prove it holds the token/);
    return true;
  });
  assert.match(log.join("\n"), /refused 127\.0\.0\.1:\d+: the agent did not prove it holds the token of --token-file/);
  await assert.rejects(intruder.done, (error: unknown) => error instanceof DialRefusal && /no kernel at 127\.0\.0\.1:\d+ accepted this agent within 1\.5 s/.test(error.message));
  assert.match(intruder.log.join("\n"), /refused kernel 127\.0\.0\.1:\d+: the kernel refused this agent: wrong token/);
  for (const line of [...log, ...intruder.log]) {
    assert.ok(!line.includes(token.toString()) && !line.includes(otherToken.toString()), `a token in the log: ${line}`);
  }
  assert.equal(rendezvous.missing(), undefined, "nothing was admitted");
  // The rendezvous still takes the honest agent that comes next.
  const honest = agent(port, 0, 1);
  assert.equal((await rendezvous.gather(10_000)).length, 1);
  rendezvous.close();
  await honest.done;
});

test("an index that is taken, or a world that disagrees, is refused with the reason told to the agent", { timeout: 30_000 }, async () => {
  const { rendezvous, port } = await openRendezvous();
  const first = agent(port, 0, 2);
  await until("agent 0", () => rendezvous.missing()?.join() === "1");
  const twin = agent(port, 0, 2, { connectTimeoutMs: 800 });
  const odd = agent(port, 1, 3, { connectTimeoutMs: 800 });
  await assert.rejects(twin.done, DialRefusal);
  await assert.rejects(odd.done, DialRefusal);
  assert.match(twin.log.join("\n"), /the kernel refused this agent: agent index 0 is connected already \(from 127\.0\.0\.1:\d+, .*\); every agent needs its own index/);
  assert.match(odd.log.join("\n"), /the kernel refused this agent: it announces 3 agents, but the agents already here announced 2/);
  await assert.rejects(rendezvous.gather(300), (error: unknown) => error instanceof RendezvousError && /agent 1 of 2 did not dial in within 0\.3 s \(--rendezvous-timeout; connected: agent 0 /.test(error.message));
  rendezvous.close();
  await first.done;
});

test("an interrupt ends the wait at once, saying how many agents had come", { timeout: 30_000 }, async () => {
  const { rendezvous } = await openRendezvous();
  const interrupt = new AbortController();
  const started = Date.now();
  setTimeout(() => interrupt.abort(), 200);
  await assert.rejects(rendezvous.gather(60_000, interrupt.signal), /interrupted while waiting for agents at 127\.0\.0\.1:\d+ \(no agent connected yet\)/);
  assert.ok(Date.now() - started < 5000, `the interrupted wait took ${Date.now() - started} ms`);
});

test("garbage and a 1 GiB length header close only their own connection; the next agent gets in", { timeout: 30_000 }, async () => {
  const { rendezvous, log, port } = await openRendezvous();
  const send = (bytes: Buffer) =>
    new Promise<void>((resolve) => {
      const socket = net.connect(port, "127.0.0.1", () => socket.write(bytes));
      socket.on("error", () => undefined);
      socket.on("close", () => resolve());
      socket.resume();
    });
  const huge = Buffer.alloc(4);
  huge.writeUInt32BE(2 ** 30);
  await send(huge);
  await send(Buffer.concat([Buffer.from([0, 0, 0, 5]), Buffer.from("{{{{{")]));
  await until("two refusals", () => log.filter((line) => line.startsWith("refused ")).length >= 2);
  assert.match(log.join("\n"), /refused 127\.0\.0\.1:\d+: a frame of 1073741824 bytes is over the limit of 4096 bytes/);
  assert.match(log.join("\n"), /refused 127\.0\.0\.1:\d+: malformed challenge frame: not JSON/);
  const honest = agent(port, 0, 1);
  assert.equal((await rendezvous.gather(10_000)).length, 1);
  rendezvous.close();
  await honest.done;
});

test("an agent refuses to dial a non-loopback kernel without TLS before opening any socket", { timeout: 30_000 }, async () => {
  await assert.rejects(
    dialKernel({ host: "192.0.2.7", port: 29471, token, slots: 1, version, log: () => undefined, connectTimeoutMs: 1000 }),
    /refusing to dial 192\.0\.2\.7:29471, which is not a loopback address, without TLS.*--tls-ca FILE or --tls-fingerprint SHA256.*--insecure/,
  );
});

test("over TLS the agent checks the kernel's pinned fingerprint: the right one gets in, a wrong one is never sent a byte", { timeout: 30_000 }, async () => {
  const dir = tempDir();
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "kernel.key", "-out", "kernel.pem", "-days", "2", "-subj", "/CN=kernel", "-addext", "subjectAltName=IP:127.0.0.1"], { cwd: dir, stdio: "ignore" });
  const fingerprint = execFileSync("openssl", ["x509", "-in", "kernel.pem", "-noout", "-fingerprint", "-sha256"], { cwd: dir, encoding: "utf8" }).trim().split("=")[1]!;
  const { readFileSync } = await import("node:fs");
  const { rendezvous, port } = await openRendezvous(0, { cert: readFileSync(join(dir, "kernel.pem")), key: readFileSync(join(dir, "kernel.key")) });
  const wrong = agent(port, 0, 1, { tls: { fingerprint: fingerprint.replace(/^../, fingerprint.startsWith("00") ? "11" : "00") }, connectTimeoutMs: 600 });
  await assert.rejects(wrong.done, /the kernel's TLS certificate at 127\.0\.0\.1:\d+ has SHA-256 fingerprint .*, not the pinned/);
  const right = agent(port, 0, 1, { tls: { fingerprint } });
  const [link] = await rendezvous.gather(10_000);
  assert.equal(link!.announced?.index, 0);
  rendezvous.close();
  await right.done;
});
