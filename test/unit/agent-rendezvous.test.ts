/**
 * The agent's side of `--ssh-tunnel` (hosts/agent-rendezvous.ts) with real
 * sockets: the rendezvous an agent opens for its kernel forms a real TCP
 * world with the kernel's credentials, refuses a rank with another secret,
 * and answers bad requests with an error naming what is wrong.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import * as net from "node:net";
import test from "node:test";
import { closeTcpWorld, connectTcpWorld, freshWorldCredentials } from "../../kernel/src/comm/tcp-world";
import type { Communicator } from "../../kernel/src/comm/types";
import { AgentRendezvous, RENDEZVOUS_RANK } from "../../kernel/src/hosts/agent-rendezvous";
import type { FromAgent } from "../../kernel/src/hosts/control";

type Opened = Extract<FromAgent, { type: "rendezvous-opened" }>;

/** An AgentRendezvous on `host` and a way to await its next reply. */
function agentOn(host: string, logs: string[]) {
  const replies: Opened[] = [];
  const waiters: ((reply: Opened) => void)[] = [];
  const rendezvous = new AgentRendezvous(host, (message) => {
    const reply = message as Opened;
    const waiter = waiters.shift();
    if (waiter) waiter(reply);
    else replies.push(reply);
  }, (line) => logs.push(line));
  const next = () => (replies.length > 0 ? Promise.resolve(replies.shift()!) : new Promise<Opened>((resolve) => waiters.push(resolve)));
  return { rendezvous, next };
}

test("the agent's rendezvous forms a world with the kernel's credentials and refuses a stranger's secret", async () => {
  const logs: string[] = [];
  const { rendezvous, next } = agentOn("127.0.0.1", logs);
  const credentials = freshWorldCredentials();
  rendezvous.handle({ type: "rendezvous-open", rank: RENDEZVOUS_RANK, id: 7, size: 2, world: credentials.world, secret: new Uint8Array(credentials.secret), tls: false });
  const opened = await next();
  assert.equal(opened.id, 7);
  assert.match(opened.address ?? "", /^127\.0\.0\.1:\d+$/, JSON.stringify(opened));
  const comms: Communicator[] = [];
  try {
    // A stranger with the world's id but another secret: the agent's rendezvous closes it and says why.
    const stranger = connectTcpWorld({ rank: 1, size: 2, rendezvous: opened.address!, credentials: { world: credentials.world, secret: randomBytes(32) }, timeoutMs: 3000, onRefused: () => undefined });
    await assert.rejects(stranger);
    // The stranger finds the rendezvous' proof wrong and hangs up first: the rendezvous logs it unauthenticated.
    const refusal = /^rendezvous: refused .*: (it closed the connection before authenticating|wrong secret)/;
    for (let waited = 0; waited < 5000 && !logs.some((line) => refusal.test(line)); waited += 50) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(logs.some((line) => refusal.test(line)), logs.join("\n"));
    const options = { size: 2, rendezvous: opened.address!, credentials, timeoutMs: 20_000 };
    comms.push(...(await Promise.all([connectTcpWorld({ ...options, rank: 0 }), connectTcpWorld({ ...options, rank: 1 })])));
    const [r0, r1] = await Promise.all(comms.map((comm, rank) => comm.allReduce(new Float32Array(1024).fill(rank + 1))));
    assert.ok(r0!.every((value) => value === 3) && r1!.every((value) => value === 3), "allReduce of 1 and 2 is 3 everywhere");
  } catch (error) {
    rendezvous.closeAll();
    throw error;
  } finally {
    await Promise.all(comms.map(closeTcpWorld));
  }
  // Closed on the kernel's word: the port no longer answers.
  rendezvous.handle({ type: "rendezvous-close", rank: RENDEZVOUS_RANK, id: 7 });
  const [host, port] = opened.address!.split(":");
  const refused = await new Promise<string>((resolve) => {
    const socket = net.connect(Number(port), host!);
    socket.once("connect", () => { socket.destroy(); resolve("connected"); });
    socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
  assert.equal(refused, "ECONNREFUSED");
});

test("a malformed request and an address the host does not have are answered with errors naming them", async () => {
  const { rendezvous, next } = agentOn("127.0.0.1", []);
  rendezvous.handle({ type: "rendezvous-open", rank: RENDEZVOUS_RANK, id: 1, size: 0, world: "w", secret: new Uint8Array(32), tls: false });
  assert.deepEqual(await next(), { type: "rendezvous-opened", rank: RENDEZVOUS_RANK, id: 1, error: "a malformed rendezvous-open message" });
  const elsewhere = agentOn("192.0.2.1", []);
  elsewhere.rendezvous.handle({ type: "rendezvous-open", rank: RENDEZVOUS_RANK, id: 2, size: 2, world: "w", secret: new Uint8Array(32), tls: false });
  const reply = await elsewhere.next();
  assert.equal(reply.address, undefined);
  assert.match(reply.error ?? "", /^cannot listen on 192\.0\.2\.1: .*EADDRNOTAVAIL/, JSON.stringify(reply));
  rendezvous.closeAll();
});

test("with --data-tls the agent's rendezvous serves TLS: a plain registration does not get in, a world with tls forms", async () => {
  const { rendezvous, next } = agentOn("127.0.0.1", []);
  const credentials = freshWorldCredentials();
  rendezvous.handle({ type: "rendezvous-open", rank: RENDEZVOUS_RANK, id: 3, size: 2, world: credentials.world, secret: new Uint8Array(credentials.secret), tls: true });
  const opened = await next();
  const comms: Communicator[] = [];
  try {
    // Plain registrations at a TLS rendezvous do not get in (the world would not form within the timeout).
    const plain = await connectTcpWorld({ rank: 0, size: 1, rendezvous: opened.address!, credentials, timeoutMs: 2000, signal: AbortSignal.timeout(5000), onRefused: () => undefined }).then(
      async (comm) => {
        await closeTcpWorld(comm);
        return "joined";
      },
      (error: Error) => `refused: ${error.message}`,
    );
    assert.match(plain, /^refused: rank 0: the rendezvous at .* failed the handshake/);
    const options = { size: 2, rendezvous: opened.address!, credentials, timeoutMs: 5000, tls: true };
    comms.push(...(await Promise.all([connectTcpWorld({ ...options, rank: 0 }), connectTcpWorld({ ...options, rank: 1 })])));
    const [r0] = await Promise.all(comms.map((comm, rank) => comm.allReduce(new Float32Array(16).fill(rank + 1))));
    assert.ok(r0!.every((value) => value === 3));
  } finally {
    await Promise.all(comms.map(closeTcpWorld));
    rendezvous.closeAll();
  }
});
