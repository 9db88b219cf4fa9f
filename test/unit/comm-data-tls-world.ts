// A 2-rank TCP world in one process, with or without TLS (argv: true/false),
// run under strace by comm-data-auth.test.ts: it allReduces a recognisable
// float32 payload and prints whether the result is exact, each rank's
// cipher, and hex windows of the bytes that cross the wire in plaintext.
import { closeTcpWorld, connectTcpWorld, startTcpRendezvous, worldCiphers } from "../../kernel/src/comm/tcp-world";

const tls = process.argv[2] === "true";
const COUNT = 8192;
void (async () => {
  const rendezvous = await startTcpRendezvous(2, { tls });
  const comms = await Promise.all([0, 1].map((rank) =>
    connectTcpWorld({ rank, size: 2, rendezvous: rendezvous.address, credentials: rendezvous.credentials, tls, unixSockets: false, timeoutMs: 20_000 })));
  rendezvous.close();
  const inputs = comms.map((_, rank) => new Float32Array(COUNT).map((__, i) => 1000.125 * (rank + 1) + i * 0.5));
  const results = await Promise.all(comms.map((comm, rank) => comm.allReduce(inputs[rank]!)));
  const exact = results.every((r) => r.every((v, i) => v === Math.fround(inputs[0]![i]! + inputs[1]![i]!)));
  // every chunk of the sum crosses the wire in the ring's all-gather: 8 floats from the start and the middle of each half
  const hex = (a: Float32Array, at: number) => Buffer.from(a.buffer, a.byteOffset + at * 4, 32).toString("hex");
  const windows = [0, COUNT / 4, COUNT / 2, (3 * COUNT) / 4].flatMap((at) => [hex(results[0]!, at), hex(inputs[0]!, at), hex(inputs[1]!, at)]);
  // which sockets the transports read from: a TLS socket reports its cipher suite
  const cipher = comms.map((comm) => [...worldCiphers(comm).values()].join(","));
  process.stdout.write(JSON.stringify({ exact, cipher, windows }) + "\n");
  await Promise.all(comms.map(closeTcpWorld));
})();
