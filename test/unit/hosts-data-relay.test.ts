// `--data-via ssh` without ssh: the relay of hosts/data-relay.ts between real
// sockets (the kernel's relay, an agent's inbound socket, a TCP listener
// standing for a rank), its refusals, and the flag's refusals before
// anything starts. The ssh forwards themselves are tested in
// test/kernel/test_hosts_ssh_data.py.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import { join } from "node:path";
import { KernelDataRelay, dialThroughRelay, serveInbound } from "../../kernel/src/hosts/data-relay";
import { planGroup } from "../../kernel/src/cluster/backends/plan-group";
import { parseDistributedFlags } from "../../kernel/src/magics/distributed-spec";
import { tempDir, writeToken } from "./hosts-agents";

const dir = tempDir();
const closers: Array<() => void> = [];
after(() => closers.forEach((close) => close()));

/** Reads `bytes` bytes from `socket`. */
function readBytes(socket: net.Socket, bytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let held = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      held = Buffer.concat([held, chunk]);
      if (held.length >= bytes) resolve(held.subarray(0, bytes));
    });
    socket.once("close", () => reject(new Error(`closed after ${held.length} of ${bytes} bytes`)));
  });
}

test("a connection dialled through the kernel's relay reaches the port on the host it names, both ways, byte for byte", async () => {
  const log: string[] = [];
  const relay = await KernelDataRelay.start((line) => log.push(line));
  closers.push(() => relay.close());
  // the "rank" on the host: echoes what it gets, every byte inverted
  const rank = net.createServer((socket) => socket.on("data", (chunk: Buffer) => socket.write(chunk.map((byte) => 255 - byte))));
  await new Promise<void>((resolve) => rank.listen(0, "127.0.0.1", resolve));
  closers.push(() => rank.close());
  const port = (rank.address() as net.AddressInfo).port;
  // no ssh here: the agent's inbound socket is where the kernel's -L end would lead
  const inboundPath = join(dir, "inbound.sock");
  const inbound = await serveInbound(inboundPath, "127.0.0.1", (line) => log.push(line));
  closers.push(() => inbound.close());
  relay.addHost("127.0.0.1", inboundPath);
  const relayPath = relay.forwards().kernelRelay;

  const payload = Buffer.from(Array.from({ length: 200_000 }, (_, i) => i % 251));
  const socket = dialThroughRelay(relayPath, "127.0.0.1", port);
  socket.write(payload);
  const echoed = await readBytes(socket, payload.length);
  socket.destroy();
  assert.ok(echoed.equals(payload.map((byte) => 255 - byte)), "every byte came back, inverted by the rank, in order");

  // a host no agent of the group is reached at: refused and logged, naming it
  const stray = dialThroughRelay(relayPath, "10.9.9.9", port);
  await new Promise((resolve) => stray.once("close", resolve));
  assert.ok(log.some((line) => /refused a relayed connection to 10\.9\.9\.9:\d+: no host of this group is reached at 10\.9\.9\.9/.test(line)), log.join("\n"));
  // the agent dials only its own host's address
  const elsewhere = net.connect({ path: inboundPath });
  elsewhere.write("192.0.2.1:22\n");
  await new Promise((resolve) => elsewhere.once("close", resolve));
  assert.ok(log.some((line) => /refused a connection to 192\.0\.2\.1:22: not this host's address 127\.0\.0\.1/.test(line)), log.join("\n"));
});

test("--data-via ssh is refused before anything starts without --ssh-tunnel, with a running agent's entry, and with --data-tls on", () => {
  const plan = (words: string) => planGroup(parseDistributedFlags(words.split(" ").filter(Boolean)));
  assert.throws(() => plan("-n 2 --hosts h1,h2 --data-via ssh"), /--data-via ssh needs --ssh-tunnel/);
  assert.throws(() => plan(`-n 2 --hosts h1,h2:29470 --ssh-tunnel --data-via ssh --token-file ${writeToken(dir).path}`), /--data-via ssh: h2:29470 is not started through ssh/);
  assert.throws(() => plan("-n 2 --hosts h1,h2 --ssh-tunnel --data-via ssh --data-tls on"), /--data-via ssh and --data-tls on exclude each other/);
  assert.throws(() => parseDistributedFlags(["-n", "2", "--data-via", "ssh"]), /--data-via only applies with --hosts/);
  assert.throws(() => parseDistributedFlags(["--hosts", "h1", "--data-via", "carrier-pigeon"]), /--data-via/);
});
