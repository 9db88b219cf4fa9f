// What authenticating a TCP world's connections costs when a group starts:
// (1) one connection on loopback, dialled and handshaken (comm/data-handshake.ts)
//     next to the same connection dialled bare, --reps blocks of 50 sequential
//     connections each (a block's figure: mean per connection);
// (2) a whole world of --ranks ranks in this process formed from its rendezvous
//     (every registration and every rank-to-rank connection authenticated), over
//     Unix sockets (same host: --backend processes), TCP, and TCP with TLS
//     (--data-tls on), --reps times each.
// Run: node --import tsx bench/world-start.mjs [--reps N] [--ranks N]
import * as net from "node:net";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
require("tsx/cjs");
const { summarize, formatSummary, repsOption, machineLine, formatTable } = require("./stats.ts");
const { AcceptorSide, DiallerSide, authenticate, socketBytes } = require("../kernel/src/comm/data-handshake.ts");
const { closeTcpWorld, connectTcpWorld, freshWorldCredentials, startTcpRendezvous } = require("../kernel/src/comm/tcp-world.ts");

const argv = process.argv.slice(2);
const REPS = repsOption(argv);
const at = argv.indexOf("--ranks");
const RANKS = at < 0 ? 4 : Number(argv[at + 1]);
const PER_BLOCK = 50;

/** Mean milliseconds per connection over PER_BLOCK sequential dials to `port`, each closed once ready. */
async function connections(port, handshake, credentials) {
  const t0 = performance.now();
  for (let i = 0; i < PER_BLOCK; i++) {
    const socket = net.connect(port, "127.0.0.1");
    await new Promise((resolve, reject) => { socket.once("connect", resolve); socket.once("error", reject); });
    if (handshake) await authenticate(socket, socketBytes(socket), (send) => new DiallerSide(credentials, 1, 0, send), 10_000);
    socket.destroy();
  }
  return (performance.now() - t0) / PER_BLOCK;
}

async function main() {
  console.log(`# ${machineLine()}`);
  const credentials = freshWorldCredentials();
  const server = net.createServer((socket) => {
    socket.on("error", () => undefined);
    authenticate(socket, socketBytes(socket), (send) => new AcceptorSide(credentials, 0, () => undefined, send), 10_000).catch(() => socket.destroy());
  });
  const bare = net.createServer((socket) => socket.on("error", () => undefined));
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  await new Promise((r) => bare.listen(0, "127.0.0.1", r));
  const authPort = server.address().port;
  const rows = [["what", "ms: median [min, max]"]];
  const plain = [], authed = [];
  await connections(bare.address().port, false); // warm-up
  await connections(authPort, true, credentials);
  for (let r = 0; r < REPS; r++) {
    plain.push(await connections(bare.address().port, false));
    authed.push(await connections(authPort, true, credentials));
  }
  rows.push(["one loopback connection, bare", formatSummary(summarize(plain, "bare"), 3)]);
  rows.push(["one loopback connection, authenticated", formatSummary(summarize(authed, "authenticated"), 3)]);
  server.close();
  bare.close();
  for (const [what, options] of [["unix sockets", {}], ["tcp", { unixSockets: false }], ["tcp + tls", { unixSockets: false, tls: true }]]) {
    const times = [];
    for (let r = 0; r < REPS + 1; r++) {
      const t0 = performance.now();
      const rendezvous = await startTcpRendezvous(RANKS, { tls: options.tls === true });
      const comms = await Promise.all(Array.from({ length: RANKS }, (_, rank) =>
        connectTcpWorld({ rank, size: RANKS, rendezvous: rendezvous.address, credentials: rendezvous.credentials, timeoutMs: 20_000, ...options })));
      if (r > 0) times.push(performance.now() - t0); // the first is warm-up
      rendezvous.close();
      await Promise.all(comms.map(closeTcpWorld));
    }
    rows.push([`world of ${RANKS} ranks formed, ${what} (${RANKS * (RANKS - 1)} connections + ${RANKS} registrations)`, formatSummary(summarize(times, what), 1)]);
  }
  console.log(formatTable(rows));
}
void main();
