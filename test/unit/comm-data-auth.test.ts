// Authentication of a TCP world's connections (comm/data-handshake.ts),
// against real sockets: attacker processes dial a rank's data port (TCP and
// Unix socket) while the world forms; each must be refused and logged with
// its address and reason, never welcomed (the attacker writes a marker file
// if it is), and the world's next allReduce must still be exact. Also: the
// rendezvous refuses registrations that do not authenticate, a recorded
// handshake replayed on a new connection fails, and with `tls` the bytes on
// the wire (seen by strace in the rank process) are not the payload.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { closeTcpWorld, connectTcpWorld, startTcpRendezvous, type Rendezvous } from "../../kernel/src/comm/tcp-world";
import { AcceptorSide, DiallerSide, type WorldCredentials } from "../../kernel/src/comm/data-handshake";
import { encodeFrame, FrameReader } from "../../kernel/src/hosts/frames";
import { FRAME_MAGIC } from "../../kernel/src/comm/transport";
import { freshNonce, jsonFrame } from "../../kernel/src/hosts/handshake";
import type { Communicator } from "../../kernel/src/comm/types";
import fc from "fast-check";

const ATTACKER = path.join(__dirname, "comm-data-attacker.ts");

/** TCP ports this process listens on, read from /proc (the sockets the kernel holds for our fds). */
function listeningPorts(): Set<number> {
  const inodes = new Set(readdirSync("/proc/self/fd").flatMap((fd) => {
    try {
      return [/^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`))?.[1]].filter((x): x is string => x !== undefined);
    } catch {
      return [];
    }
  }));
  const ports = new Set<number>();
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[3] === "0A" && inodes.has(f[9]!)) ports.add(parseInt(f[1]!.split(":")[1]!, 16));
  }
  return ports;
}

async function until<T>(find: () => T | undefined, what: string, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const found = find();
    if (found !== undefined) return found;
    if (Date.now() > end) throw new Error(`waited ${ms} ms for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function attack(target: string, mode: string, marker: string, extra: string[] = []): Promise<{ how: string; seen: string[] }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ["--import", "tsx", ATTACKER, target, mode, marker, ...extra], { timeout: 20_000 }, (error, stdout) => {
      if (error) reject(error);
      else resolve(JSON.parse(stdout.trim().split("\n").pop()!) as { how: string; seen: string[] });
    });
  });
}

async function allReduceSum(comms: Communicator[]): Promise<Float32Array[]> {
  return Promise.all(comms.map(async (comm, rank) => {
    return comm.allReduce(new Float32Array(4096).map((_, i) => rank + 1 + i));
  }));
}

test("attackers dialling a rank's data port (tcp and unix) are refused and logged, and the world's allReduce stays exact", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "distlab-data-auth-"));
  const marker = path.join(dir, "marker");
  const logs: string[] = [];
  const rendezvous = await startTcpRendezvous(2, { onRefused: (line) => logs.push(line) });
  const before = listeningPorts();
  const comms: Communicator[] = [];
  try {
    // no native ring port (the next test attacks that one): rank 0's one new TCP port is its data port
    const options = { size: 2, rendezvous: rendezvous.address, credentials: rendezvous.credentials, timeoutMs: 20_000, onRefused: (line: string) => logs.push(line), nativeRing: false };
    const zero = connectTcpWorld({ ...options, rank: 0 });
    zero.catch(() => undefined); // awaited below; a failure before then is reported by the assertion that failed
    // rank 0 now listens and waits at the rendezvous for rank 1: the attackers' window
    const port = await until(() => [...listeningPorts()].find((p) => !before.has(p) && `127.0.0.1:${p}` !== rendezvous.address), "rank 0 to listen");
    const unixPath = await until(() => readdirSync(os.tmpdir()).find((f) => f.startsWith(`distlab-${process.pid}-0-`)), "rank 0's unix socket");
    const replayFrames = recordHonestDialler(rendezvous.credentials);
    const results = {
      tcpRaw: await attack(`127.0.0.1:${port}`, "raw", marker),
      tcpWrongSecret: await attack(`127.0.0.1:${port}`, "wrong-secret", marker, [rendezvous.credentials.world]),
      tcpReplay: await attack(`127.0.0.1:${port}`, "replay", marker, ["", replayFrames.join(",")]),
      unixRaw: await attack(path.join(os.tmpdir(), unixPath), "raw", marker),
      unixWrongSecret: await attack(path.join(os.tmpdir(), unixPath), "wrong-secret", marker, [rendezvous.credentials.world]),
    };
    for (const [name, result] of Object.entries(results)) {
      assert.equal(result.how, "closed by the rank", `${name}: ${JSON.stringify(result)}`);
      assert.ok(!result.seen.includes("data-welcome"), `${name} was welcomed`);
    }
    assert.deepEqual(results.tcpWrongSecret.seen, ["data-challenge"], "the attacker got a challenge, then the door");
    assert.equal(existsSync(marker), false, "no attacker was welcomed");
    const refused = (pattern: RegExp) => logs.some((line) => pattern.test(line));
    // the old protocol's 4-byte rank number reads as a length: 01 00 00 00 is 16 MiB big-endian
    assert.ok(refused(/rank 0: refused a data connection from 127\.0\.0\.1:\d+: a frame of 16777216 bytes is over the limit of 4096 bytes/), logs.join("\n"));
    assert.ok(refused(/rank 0: refused a data connection from 127\.0\.0\.1:\d+: wrong secret: the proof of "rank 1" does not match/), logs.join("\n"));
    assert.equal(logs.filter((line) => /from 127\.0\.0\.1:\d+: wrong secret/.test(line)).length, 2, `the wrong secret and the replay: ${logs.join("\n")}`);
    assert.ok(refused(/rank 0: refused a data connection from a local socket: /), logs.join("\n"));
    comms.push(await connectTcpWorld({ ...options, rank: 1 }), await zero);
    comms.sort((a, b) => a.rank - b.rank);
    const [r0, r1] = await allReduceSum(comms);
    for (let i = 0; i < 4096; i++) assert.equal(r0![i], 3 + 2 * i, `element ${i}`);
    assert.deepEqual(r0, r1);
  } finally {
    await Promise.all(comms.map(closeTcpWorld));
    rendezvous.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("attackers dialling a rank's native ring port are refused and logged, and the ring's allReduce stays exact", { skip: existsSync(path.join(__dirname, "..", "..", "kernel", "native", "build", "tcp-ring.node")) ? false : "the tcp-ring addon is not built" }, async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "distlab-ring-auth-"));
  const marker = path.join(dir, "marker");
  const logs: string[] = [];
  const rendezvous = await startTcpRendezvous(2, { onRefused: (line) => logs.push(line) });
  const before = listeningPorts();
  const comms: Communicator[] = [];
  try {
    const options = { size: 2, rendezvous: rendezvous.address, credentials: rendezvous.credentials, timeoutMs: 20_000, onRefused: (line: string) => logs.push(line), nativeRing: true, unixSockets: false };
    const zero = connectTcpWorld({ ...options, rank: 0 });
    zero.catch(() => undefined);
    // rank 0 listens on its data port and its ring port: every port it opened is attacked
    const ports = await until(() => {
      const found = [...listeningPorts()].filter((p) => !before.has(p) && `127.0.0.1:${p}` !== rendezvous.address);
      return found.length === 2 ? found : undefined;
    }, "rank 0 to listen on two ports");
    for (const port of ports) {
      for (const mode of ["raw", "wrong-secret"]) {
        const result = await attack(`127.0.0.1:${port}`, mode, marker, [rendezvous.credentials.world]);
        assert.equal(result.how, "closed by the rank", `${mode} on port ${port}: ${JSON.stringify(result)}`);
      }
    }
    assert.equal(existsSync(marker), false, "no attacker was welcomed");
    assert.ok(logs.some((line) => /rank 0: refused a ring connection from 127\.0\.0\.1:\d+: wrong secret/.test(line)), logs.join("\n"));
    assert.ok(logs.some((line) => /rank 0: refused a ring connection from 127\.0\.0\.1:\d+: a frame of \d+ bytes is over the limit/.test(line)), logs.join("\n"));
    comms.push(await connectTcpWorld({ ...options, rank: 1 }), await zero);
    comms.sort((a, b) => a.rank - b.rank);
    const [r0, r1] = await Promise.all(comms.map((comm, rank) => comm.allReduce(new Float32Array(1 << 18).map((_, i) => rank + 1 + (i % 1000)), { algorithm: "ring" })));
    for (let i = 0; i < 1 << 18; i++) assert.equal(r0![i], 3 + 2 * (i % 1000), `element ${i}`);
    assert.deepEqual(r0, r1);
    // it ran on the native ring: its only framing is the 32-byte descriptor ahead of the data (a framed ring's 48-byte headers a step)
    assert.equal(comms[0]!.stats().framingBytesSent, 32);
  } finally {
    await Promise.all(comms.map(closeTcpWorld));
    rendezvous.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * What an eavesdropper records of an honest "rank 1 dials rank 0" in this world: the hello and
 * auth frames, made here by the real DiallerSide against an acceptor holding the same secret.
 */
function recordHonestDialler(credentials: WorldCredentials): string[] {
  const sent: Buffer[] = [];
  const dialler = new DiallerSide(credentials, 1, 0, (frame) => sent.push(frame));
  sent.unshift(...dialler.opening);
  const acceptor = new AcceptorSide(credentials, 0, () => undefined, (frame) => {
    const step = dialler.push(frame);
    assert.notEqual(step.kind, "refused");
  });
  assert.equal(acceptor.push(sent[0]!).kind, "wait");
  assert.equal(acceptor.push(sent[1]!).kind, "done", "the honest exchange authenticates");
  return [sent[0]!, sent[1]!].map((frame) => frame.toString("hex"));
}

test("a recorded data handshake replayed to a fresh acceptor fails on its fresh nonce", () => {
  const credentials = { world: "00112233aabbccdd", secret: Buffer.alloc(32, 9) };
  const [hello, auth] = recordHonestDialler(credentials).map((hex) => Buffer.from(hex, "hex"));
  const replies: Buffer[] = [];
  const fresh = new AcceptorSide(credentials, 0, () => undefined, (frame) => replies.push(frame));
  assert.equal(fresh.push(hello!).kind, "wait");
  const step = fresh.push(auth!);
  assert.equal(step.kind, "refused");
  assert.match((step as { reason: string }).reason, /wrong secret: the proof of "rank 1" does not match \(a stranger, or a replayed handshake\)/);
  // a proof made for one pair of ranks does not open another
  const other = new AcceptorSide(credentials, 2, () => undefined, () => undefined);
  assert.match((other.push(hello!) as { reason: string }).reason, /it dialled rank 0, this is rank 2/);
});

test("a data frame that arrives in the same read as the acceptor's welcome is handed on, not read as a handshake frame", () => {
  // The acceptor is done once it sends its welcome and may send data at once; the dialler can then
  // read both in one chunk. The data frame's first word (the magic "DST1") read as a handshake
  // length would be 827,609,924 bytes, over the handshake's limit: the world would fail to start.
  const credentials = { world: "00112233aabbccdd", secret: Buffer.alloc(32, 7) };
  const toAcceptor: Buffer[] = [];
  const toDialler: Buffer[] = [];
  const dialler = new DiallerSide(credentials, 1, 0, (frame) => toAcceptor.push(frame));
  const acceptor = new AcceptorSide(credentials, 0, () => undefined, (frame) => toDialler.push(frame));
  assert.equal(acceptor.push(dialler.opening[0]!).kind, "wait");
  assert.equal(dialler.push(toDialler.shift()!).kind, "wait", "the challenge");
  assert.equal(acceptor.push(toAcceptor.shift()!).kind, "done", "the auth frame");
  const dataFrame = Buffer.concat([Buffer.from(new Uint32Array([FRAME_MAGIC]).buffer), Buffer.alloc(60, 3)]);
  const step = dialler.push(Buffer.concat([toDialler.shift()!, dataFrame]));
  assert.deepEqual(step, { kind: "done", peer: 0, rest: dataFrame });
});

test("20,000 random and mutated inputs to a rank's acceptor, in random chunks: none authenticates, none throws, none gets more than a challenge", () => {
  const credentials = { world: "0123456789abcdef", secret: Buffer.alloc(32, 5) };
  const honest = recordHonestDialler(credentials).map((hex) => Buffer.from(hex, "hex"));
  const stream = Buffer.concat(honest);
  // an honest dialler's bytes with a few bytes overwritten (its proof no longer holds), JSON frames of the
  // right shape with wrong values, and noise
  const mutated = fc
    .tuple(fc.nat({ max: stream.length - 1 }), fc.uint8Array({ minLength: 1, maxLength: 8 }))
    .map(([at, bytes]) => {
      const copy = Buffer.from(stream);
      copy.set(bytes.subarray(0, copy.length - at), at);
      return copy;
    })
    .filter((copy) => !copy.equals(stream));
  const jsonish = fc
    .record({ type: fc.constantFrom("data-hello", "data-auth", "data-challenge", "data-welcome"), protocol: fc.anything(), world: fc.constantFrom(credentials.world, "x"), from: fc.anything(), to: fc.anything(), nonce: fc.string(), proof: fc.string() })
    .map((value) => encodeFrame(jsonFrame(value)));
  const noise = fc.uint8Array({ maxLength: 256 }).map((bytes) => Buffer.from(bytes));
  fc.assert(
    fc.property(fc.oneof(mutated, jsonish, noise), fc.array(fc.nat(), { maxLength: 4 }), (bytes, cuts) => {
      const replies: Buffer[] = [];
      const side = new AcceptorSide(credentials, 0, (from) => (from === 1 ? undefined : `rank ${from} is not a peer`), (frame) => replies.push(frame));
      const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
      let last = 0;
      for (const point of [...points, bytes.length]) {
        const step = side.push(bytes.subarray(last, point));
        last = point;
        assert.notEqual(step.kind, "done", "authenticated without the secret");
        if (step.kind === "refused") break;
      }
      assert.ok(replies.length <= 1, "nothing beyond the challenge is sent");
      for (const reply of replies) assert.equal(new FrameReader(4096).push(reply).length, 1);
    }),
    { numRuns: 20_000 },
  );
});

test("the rendezvous refuses registrations that do not authenticate, logs them, and keeps serving", async () => {
  const logs: string[] = [];
  const rendezvous: Rendezvous = await startTcpRendezvous(1, { onRefused: (line) => logs.push(line) });
  const [host, port] = [rendezvous.address.split(":")[0]!, Number(rendezvous.address.split(":")[1])];
  const exchange = (payload: Buffer) =>
    new Promise<Buffer>((resolve) => {
      const socket = net.connect(port, host, () => socket.write(payload));
      const got: Buffer[] = [];
      socket.on("data", (c: Buffer) => got.push(c));
      socket.on("close", () => resolve(Buffer.concat(got)));
      socket.on("error", () => resolve(Buffer.concat(got)));
    });
  try {
    // the old plain registration, a 1 GiB length header, and a hello of a foreign world
    assert.equal((await exchange(Buffer.from(JSON.stringify({ rank: 0, host: "127.0.0.1", port: 1 }) + "\n"))).length, 0);
    const huge = Buffer.alloc(4);
    huge.writeUInt32BE(1 << 30, 0);
    assert.equal((await exchange(huge)).length, 0);
    const foreign = await exchange(encodeFrame(jsonFrame({ type: "data-hello", protocol: 1, world: "ffffffffffffffff", from: 0, to: -1, nonce: freshNonce() })));
    assert.equal(foreign.length, 0, "no challenge for a stranger's world");
    await until(() => (logs.length >= 3 ? true : undefined), "three refusals logged");
    assert.match(logs[0]!, /^rendezvous: refused 127\.0\.0\.1:\d+: (a frame of \d+ bytes is over the limit|malformed data-hello frame)/);
    assert.match(logs[1]!, /^rendezvous: refused 127\.0\.0\.1:\d+: a frame of 1073741824 bytes is over the limit of 4096 bytes/);
    assert.match(logs[2]!, /^rendezvous: refused 127\.0\.0\.1:\d+: it names another world/);
    const comm = await connectTcpWorld({ rank: 0, size: 1, rendezvous: rendezvous.address, credentials: rendezvous.credentials, timeoutMs: 5000 });
    assert.equal(comm.size, 1, "an honest rank still joins");
    await closeTcpWorld(comm);
  } finally {
    rendezvous.close();
  }
});

const strace = spawnSync("strace", ["-V"]).status === 0;

test("with tls, the bytes a rank writes to its sockets are not the float32 payload (strace tap); without, they are", { skip: strace ? false : "strace is not installed" }, async () => {
  const found: Record<string, boolean> = {};
  for (const tls of [false, true]) {
    const dir = mkdtempSync(path.join(os.tmpdir(), "distlab-data-tls-"));
    const trace = path.join(dir, "trace");
    try {
      const run = spawnSync("strace", ["-f", "-qq", "-e", "trace=write,writev,sendmsg,sendto", "-xx", "-s", "1048576", "-o", trace,
        process.execPath, "--import", "tsx", path.join(__dirname, "comm-data-tls-world.ts"), String(tls)], { encoding: "utf8", timeout: 60_000 });
      assert.equal(run.status, 0, run.stderr);
      const report = JSON.parse(run.stdout.trim().split("\n").pop()!) as { exact: boolean; cipher: string[]; windows: string[] };
      assert.ok(report.exact, "the allReduce is exact");
      if (tls) assert.deepEqual(report.cipher, ["TLS_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256"], "each rank's receive socket is TLS");
      else assert.deepEqual(report.cipher, ["none", "none"]);
      const wire = readFileSync(trace, "utf8").replace(/\\x/g, "");
      found[String(tls)] = report.windows.some((hex) => wire.includes(hex));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  assert.equal(found.false, true, "the tap sees the plaintext payload of a world without tls");
  assert.equal(found.true, false, "the payload never appears on the wire of a world with tls");
});
