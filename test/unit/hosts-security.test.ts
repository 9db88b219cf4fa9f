// What a `distlab agent` refuses, against a real agent process on
// 127.0.0.1: every attempt below sends, after its handshake bytes, the
// frames that would start a rank and run a cell writing a marker file. The
// first test shows those frames do write it after an honest handshake; every
// attack must leave no marker, be logged as refused with a reason, and leave
// the agent serving the next honest kernel.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { deserialize, serialize } from "node:v8";
import fc from "fast-check";
import { CellCompiler } from "../../kernel/src/repl/cell-compiler";
import { DeclarationChain } from "../../kernel/src/repl/declaration-chain";
import { AgentLink } from "../../kernel/src/hosts/agent-link";
import { startAgent } from "../../kernel/src/hosts/agent";
import type { FromAgent, ToAgent } from "../../kernel/src/hosts/control";
import { encodeFrame, FrameReader } from "../../kernel/src/hosts/frames";
import { AGENT_PROTOCOL, HANDSHAKE_FRAME_BYTES, freshNonce, jsonFrame, proofOf } from "../../kernel/src/hosts/handshake";
import { HandshakeGate } from "../../kernel/src/hosts/handshake-gate";
import { packageVersion } from "../../kernel/src/version";
import { startTcpRendezvous, type Rendezvous } from "../../kernel/src/comm/tcp-world";
import { startAgentProcess, tempDir, writeToken, type AgentProcess } from "./hosts-agents";

let agent: AgentProcess;
let token: Buffer;
let dir = "";
let marker = "";
/** Control frames that start rank 0 and initialise it, join it to a world of one, and run a cell writing `marker`. */
let startFrames: Buffer;
let connectFrame: Buffer;
let cellFrame: Buffer;
let rendezvous: Rendezvous;
/** Both, as an attacker would pipeline them. */
let payload: Buffer;

before(async () => {
  dir = tempDir();
  const written = writeToken(dir);
  token = Buffer.from(written.token);
  marker = join(dir, "marker");
  agent = await startAgentProcess(["--listen", "127.0.0.1:0", "--token-file", written.path, "--slots", "1"]);
  const compiler = new CellCompiler();
  const cell = compiler.compile(`require("node:fs").writeFileSync(${JSON.stringify(marker)}, "ran")`, DeclarationChain.ranks());
  compiler.close();
  rendezvous = await startTcpRendezvous(1);
  const messages: ToAgent[] = [
    { type: "spawn", rank: 0, memoryCapBytes: 0 },
    { type: "to-rank", rank: 0, message: { type: "task", id: 1, task: { kind: "init", rank: 0, size: 1, localRank: 0, host: "attacker", tfBackend: "cpu" } } },
    { type: "to-rank", rank: 0, message: { type: "task", id: 2, task: { kind: "connect", commState: { kind: "tcp", rendezvous: rendezvous.address, world: rendezvous.credentials.world, secret: rendezvous.credentials.secret.toString("hex"), tls: false }, timeoutMs: 5000 } } },
    { type: "to-rank", rank: 0, message: { type: "task", id: 3, task: { kind: "cell", cellId: 1, cell: { ...cell, declarations: "" }, cellName: "cell 1", timeline: false } } },
  ];
  const frames = messages.map((message) => encodeFrame(serialize(message)));
  startFrames = Buffer.concat(frames.slice(0, 2));
  connectFrame = frames[2]!;
  cellFrame = frames[3]!;
  payload = Buffer.concat(frames);
});
after(async () => {
  rendezvous.close();
  await agent.stop();
});

/** Opens a raw connection, lets `script` talk, then closes our end; resolves once the agent has closed too. */
async function rawAttempt(script: (socket: net.Socket, nextFrame: () => Promise<Buffer | undefined>) => Promise<void>): Promise<void> {
  const socket = net.connect({ host: "127.0.0.1", port: agent.port });
  const reader = new FrameReader(1 << 20);
  const frames: Buffer[] = [];
  let wake = () => {};
  let closed = false;
  socket.on("data", (chunk: Buffer) => {
    frames.push(...reader.push(chunk));
    wake();
  });
  const gone = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  socket.once("close", () => {
    closed = true;
    wake();
  });
  socket.on("error", () => undefined);
  await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
  const nextFrame = async (): Promise<Buffer | undefined> => {
    while (frames.length === 0 && !closed) await new Promise<void>((resolve) => (wake = resolve));
    return frames.shift();
  };
  await script(socket, nextFrame);
  socket.end();
  await gone;
}

/** Sends hello, reads the challenge, answers with `proof(challenge)`, then the payload. */
function handshakeThenPayload(proof: (agentNonce: string, kernelNonce: string) => string) {
  return async (socket: net.Socket, nextFrame: () => Promise<Buffer | undefined>) => {
    const kernelNonce = freshNonce();
    socket.write(encodeFrame(jsonFrame({ type: "hello", protocol: AGENT_PROTOCOL, version: packageVersion(), nonce: kernelNonce })));
    const challenge = JSON.parse((await nextFrame())!.toString()) as { nonce: string };
    socket.write(Buffer.concat([encodeFrame(jsonFrame({ type: "auth", proof: proof(challenge.nonce, kernelNonce) })), payload]));
    await nextFrame();
  };
}

async function assertRefusedAndServing(from: number, reason: RegExp): Promise<void> {
  const line = await agent.waitForLog(/refused /, from);
  assert.match(line, reason);
  assert.match(line, /refused 127\.0\.0\.1:\d+: /, "the log names the peer's address");
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(existsSync(marker), false, "the attempt ran nothing");
  assert.equal(agent.log.slice(from).filter((entry) => /started rank/.test(entry)).length, 0, "no rank process was started");
  const beforeHonest = agent.log.length;
  const honest = await AgentLink.connect({ host: "127.0.0.1", port: agent.port, token, version: packageVersion() });
  honest.close();
  // The agent's log comes over a pipe and can trail the welcome frame; wait for both of this
  // connection's lines so that they do not land in the next test's slice of the log.
  await agent.waitForLog(/accepted /, beforeHonest);
  await agent.waitForLog(/disconnected/, beforeHonest);
}

test("after an honest handshake the same frames start a rank that writes the marker", async () => {
  const from = agent.log.length;
  let cellAnswer = "";
  await rawAttempt(async (socket, nextFrame) => {
    const kernelNonce = freshNonce();
    socket.write(encodeFrame(jsonFrame({ type: "hello", protocol: AGENT_PROTOCOL, version: packageVersion(), nonce: kernelNonce })));
    const challenge = JSON.parse((await nextFrame())!.toString()) as { nonce: string };
    socket.write(Buffer.concat([encodeFrame(jsonFrame({ type: "auth", proof: proofOf(token, "kernel", challenge.nonce, kernelNonce) })), startFrames]));
    assert.equal((await nextFrame())!.toString(), JSON.stringify({ type: "welcome" }));
    // The rank runs tasks as they come: each goes once the one before has answered.
    const answer = async (): Promise<string> => {
      for (;;) {
        const message = deserialize((await nextFrame())!) as FromAgent;
        if (message.type === "from-rank" && message.message.type !== "event") return JSON.stringify(message.message);
      }
    };
    await answer();
    socket.write(connectFrame);
    await answer();
    socket.write(cellFrame);
    cellAnswer = await answer();
  });
  assert.equal(existsSync(marker), true, `the marker was written (the cell answered ${cellAnswer})`);
  assert.match(await agent.waitForLog(/accepted /, from), /accepted 127\.0\.0\.1:\d+: authenticated kernel/);
  rmSync(marker);
});

test("a wrong token is refused", async () => {
  const from = agent.log.length;
  const wrong = Buffer.from("not-the-token-at-all-0123456789");
  await rawAttempt(handshakeThenPayload((agentNonce, kernelNonce) => proofOf(wrong, "kernel", agentNonce, kernelNonce)));
  await assertRefusedAndServing(from, /wrong token: the kernel's proof does not match/);
});

test("no token: control frames without an auth frame are refused", async () => {
  const from = agent.log.length;
  await rawAttempt(async (socket, nextFrame) => {
    socket.write(encodeFrame(jsonFrame({ type: "hello", protocol: AGENT_PROTOCOL, version: packageVersion(), nonce: freshNonce() })));
    await nextFrame();
    socket.write(payload);
    await nextFrame();
  });
  await assertRefusedAndServing(from, /malformed auth frame: not JSON/);
});

test("a replayed recording of an honest handshake is refused", async () => {
  // Record what an honest kernel sends (hello and auth), then play those bytes to the agent again.
  const recorded: Buffer[] = [];
  const proxy = net.createServer((client) => {
    const upstream = net.connect({ host: "127.0.0.1", port: agent.port });
    client.on("data", (chunk: Buffer) => {
      recorded.push(chunk);
      upstream.write(chunk);
    });
    upstream.pipe(client);
    client.on("error", () => undefined);
    upstream.on("error", () => undefined);
    client.on("close", () => upstream.destroy());
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  const link = await AgentLink.connect({ host: "127.0.0.1", port: (proxy.address() as net.AddressInfo).port, token, version: packageVersion() });
  link.close();
  proxy.close();
  const from = agent.log.length;
  await rawAttempt(async (socket, nextFrame) => {
    socket.write(Buffer.concat([...recorded, payload]));
    await nextFrame();
    await nextFrame();
  });
  await assertRefusedAndServing(from, /wrong token: the kernel's proof does not match \(a different token, or a replayed handshake\)/);
});

test("a 1 GiB length header closes that connection only", async () => {
  const from = agent.log.length;
  await rawAttempt(async (socket, nextFrame) => {
    const header = Buffer.alloc(4);
    header.writeUInt32BE(1 << 30, 0);
    socket.write(Buffer.concat([header, payload]));
    await nextFrame();
  });
  await assertRefusedAndServing(from, /a frame of 1073741824 bytes is over the limit of 4096 bytes/);
});

/**
 * Inputs an attacker can send before authenticating: an honest-looking hello and auth (with a
 * proof that answers no challenge) with bytes overwritten or cut short, JSON frames of the right
 * types with arbitrary fields, and random bytes.
 */
function attackFrames(): fc.Arbitrary<Buffer> {
  const hello = encodeFrame(jsonFrame({ type: "hello", protocol: AGENT_PROTOCOL, version: packageVersion(), nonce: freshNonce() }));
  const auth = encodeFrame(jsonFrame({ type: "auth", proof: "0".repeat(64) }));
  const honestStart = Buffer.concat([hello, auth]);
  const mutated = fc
    .tuple(fc.nat({ max: honestStart.length - 1 }), fc.uint8Array({ minLength: 1, maxLength: 8 }), fc.boolean())
    .map(([at, bytes, truncate]) => {
      const copy = Buffer.from(honestStart);
      copy.set(bytes.subarray(0, copy.length - at), at);
      return truncate ? copy.subarray(0, at + 1) : copy;
    });
  const jsonish = fc.record({ type: fc.constantFrom("hello", "auth", "challenge", "spawn"), protocol: fc.anything(), nonce: fc.string(), proof: fc.string(), version: fc.anything() })
    .map((value) => encodeFrame(jsonFrame(value)));
  const random = fc.uint8Array({ maxLength: 256 }).map((bytes) => Buffer.from(bytes));
  return fc.oneof(mutated, jsonish, random);
}

test("100,000 random and mutated inputs to the agent's handshake gate, in random chunks: none authenticates, none throws, none answers more than the challenge", () => {
  // The gate is the code the agent runs on every byte before authentication (agent.ts feeds it
  // the socket's data). Driven directly, 100,000 inputs take seconds; over sockets, each costs a
  // connection and the agent's log line (the next test runs 2,000 that way, end to end).
  const identity = { token, version: packageVersion(), slots: 1, hostname: "fuzz" };
  const outcomes = { wait: 0, refused: 0, authenticated: 0 };
  fc.assert(
    fc.property(attackFrames(), fc.array(fc.nat(), { maxLength: 4 }), (bytes, cuts) => {
      const sent: Buffer[] = [];
      const gate = new HandshakeGate(identity, (frame) => sent.push(frame));
      const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
      let step: ReturnType<HandshakeGate["push"]> = { kind: "wait" };
      let from = 0;
      for (const to of [...points, bytes.length]) {
        step = gate.push(Buffer.concat([bytes.subarray(from, to), to === bytes.length ? payload : Buffer.alloc(0)]));
        from = to;
        if (step.kind !== "wait") break;
      }
      outcomes[step.kind]++;
      assert.notEqual(step.kind, "authenticated", `authenticated by ${bytes.toString("hex")}`);
      assert.ok(sent.length <= 1, "at most the challenge is sent");
      for (const frame of sent) {
        assert.ok(frame.byteLength <= 4 + HANDSHAKE_FRAME_BYTES);
        assert.equal(JSON.parse(frame.subarray(4).toString()).type, "challenge");
        assert.ok(!frame.includes(token), "the token is never sent");
      }
    }),
    { numRuns: 100_000 },
  );
  assert.equal(outcomes.wait + outcomes.refused, 100_000);
  assert.ok(outcomes.refused > 90_000, `most inputs are refused at once (the rest wait for bytes that never come, then time out): ${JSON.stringify(outcomes)}`);
});

test("the gate does authenticate an honest kernel, pipelined control frames and all", () => {
  const sent: Buffer[] = [];
  const gate = new HandshakeGate({ token, version: packageVersion(), slots: 1, hostname: "fuzz" }, (frame) => sent.push(frame));
  const kernelNonce = freshNonce();
  assert.equal(gate.push(encodeFrame(jsonFrame({ type: "hello", protocol: AGENT_PROTOCOL, version: packageVersion(), nonce: kernelNonce }))).kind, "wait");
  const challenge = JSON.parse(sent[0]!.subarray(4).toString()) as { nonce: string };
  const step = gate.push(Buffer.concat([encodeFrame(jsonFrame({ type: "auth", proof: proofOf(token, "kernel", challenge.nonce, kernelNonce) })), payload]));
  assert.deepEqual(step, { kind: "authenticated", rest: payload });
});

test("a control frame larger than a handshake frame may follow the auth frame in the same read", () => {
  // After auth the kernel may send a task at once (cell code, pushed values): it is the control
  // connection's first frame, under the control limit, and must reach it unread by the gate.
  const sent: Buffer[] = [];
  const gate = new HandshakeGate({ token, version: packageVersion(), slots: 1, hostname: "fuzz" }, (frame) => sent.push(frame));
  const kernelNonce = freshNonce();
  gate.push(encodeFrame(jsonFrame({ type: "hello", protocol: AGENT_PROTOCOL, version: packageVersion(), nonce: kernelNonce })));
  const challenge = JSON.parse(sent[0]!.subarray(4).toString()) as { nonce: string };
  const task = encodeFrame(Buffer.alloc(HANDSHAKE_FRAME_BYTES * 16, 0x20));
  const step = gate.push(Buffer.concat([encodeFrame(jsonFrame({ type: "auth", proof: proofOf(token, "kernel", challenge.nonce, kernelNonce) })), task]));
  assert.deepEqual(step, { kind: "authenticated", rest: task });
});

test("the kernel's side of the handshake ends at the agent's welcome, whatever large frame follows it in the same read", async () => {
  // An agent that writes a control message right behind its welcome (here an 8 KiB line of output,
  // over the handshake's limit) must not fail the kernel's handshake: that frame is the served link's.
  const server = net.createServer((socket) => {
    const gate = new HandshakeGate({ token, version: packageVersion(), slots: 1, hostname: "eager" }, (frame) => socket.write(frame));
    socket.on("data", (chunk: Buffer) => {
      if (gate.push(chunk).kind !== "authenticated") return;
      const output: FromAgent = { type: "output", rank: 0, stream: "stdout", text: "x".repeat(2 * HANDSHAKE_FRAME_BYTES) };
      socket.write(Buffer.concat([encodeFrame(jsonFrame({ type: "welcome" })), encodeFrame(serialize(output))]));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  const socket = net.connect(port, "127.0.0.1");
  await new Promise((resolve) => socket.once("connect", resolve));
  try {
    const link = await AgentLink.authenticate(socket, { address: `127.0.0.1:${port}`, kernelAddress: "127.0.0.1", token, version: packageVersion() });
    assert.equal(link.closed, false);
    link.close();
  } finally {
    socket.destroy();
    server.close();
  }
});

test("FrameReader.next cuts one frame at a time and does not look past it; push still refuses an oversized frame", () => {
  const first = encodeFrame(Buffer.from("{}"));
  const oversized = Buffer.alloc(8);
  oversized.writeUInt32BE(1 << 30, 0);
  const reader = new FrameReader(16);
  reader.append(Buffer.concat([first, oversized]));
  assert.deepEqual(reader.next(), Buffer.from("{}"));
  assert.deepEqual(reader.drain(), oversized, "the bytes after the frame taken are handed on as they came");
  reader.append(oversized);
  assert.throws(() => reader.next(), /a frame of 1073741824 bytes is over the limit of 16 bytes/);
  assert.throws(() => new FrameReader(16).push(Buffer.concat([first, oversized])), /over the limit/);
});

test("2,000 random and mutated handshake frames over real connections are each refused, run nothing, and never log the token", async () => {
  const frames = attackFrames();
  const from = agent.log.length;
  let attempts = 0;
  await fc.assert(
    fc.asyncProperty(frames, async (bytes) => {
      attempts++;
      await rawAttempt(async (socket) => {
        socket.write(Buffer.concat([bytes, payload]));
      });
    }),
    { numRuns: 2000 },
  );
  // Every connection ends in exactly one refusal line.
  for (let waited = 0; agent.log.slice(from).filter((line) => / refused /.test(line)).length < attempts && waited < 10_000; waited += 100) {
    await new Promise((r) => setTimeout(r, 100));
  }
  const refusals = agent.log.slice(from).filter((line) => / refused /.test(line));
  assert.equal(refusals.length, attempts, "one refusal logged per attempt");
  assert.equal(agent.log.slice(from).filter((line) => / accepted /.test(line)).length, 0);
  assert.ok(!agent.log.join("\n").includes(token.toString()), "the token is never logged");
  await assertRefusedAndServing(from, /refused/);
});

test("the kernel names both versions when an agent runs another distlab", async () => {
  const other = await startAgent({ host: "127.0.0.1", port: 0, token, slots: 1, version: "9.9.9-other", log: () => undefined });
  const port = Number(other.address.split(":").pop());
  await assert.rejects(
    AgentLink.connect({ host: "127.0.0.1", port, token, version: packageVersion() }),
    new RegExp(`agent at 127\\.0\\.0\\.1:${port}: the agent runs distlab 9\\.9\\.9-other \\(protocol ${AGENT_PROTOCOL}\\), this kernel distlab ${packageVersion().replace(/\./g, "\\.")}`),
  );
  await other.close();
});

test("an agent refuses a token file others can read and a non-loopback address without --insecure", async () => {
  const loose = writeToken(dir, 0o644, "loose").path;
  await assert.rejects(startAgentProcess(["--listen", "127.0.0.1:0", "--token-file", loose]), new RegExp(`--token-file ${loose}: the token file has mode 0644, readable by group or others`));
  const tokenPath = join(dir, "token");
  await assert.rejects(startAgentProcess(["--listen", "0.0.0.0:0", "--token-file", tokenPath]), /refusing to listen on 0\.0\.0\.0, which is not a loopback address, without TLS: .*give --tls-cert FILE --tls-key FILE/);
  const insecure = await startAgentProcess(["--listen", "0.0.0.0:0", "--token-file", tokenPath, "--insecure"]);
  try {
    const link = await AgentLink.connect({ host: "127.0.0.1", port: insecure.port, token, version: packageVersion() });
    link.close();
    assert.match(await insecure.waitForLog(/WARNING/), /WARNING: connection from 127\.0\.0\.1:\d+ on an insecure listener/);
  } finally {
    await insecure.stop();
  }
});
