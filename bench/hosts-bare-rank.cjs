// One bare rank for bench/hosts.mjs --bare on: a process in a host's network namespace
// (`ip netns exec NS node hosts-bare-rank.cjs SPEC`) that joins the TCP world and follows the plan,
// with no kernel, agent, ssh channel or timeline: what the transport alone costs between hosts
// (over TCP through the namespaces' veth pairs, as the ssh-launched ranks').
//   SPEC = {"rank": 0, "size": 3, "rendezvous": "10.x.y.1:PORT", "host": "10.x.y.11", "plan": [...]}
// The world's credentials come on stdin (never in argv). Prints one JSON line,
// {"rank", "ms": [[ms a call of each block] a plan entry], "cpu": [[user ms, system ms] a timed
// call, a plan entry]} (process.cpuUsage(): every thread of the process), then waits to be killed: a rank that
// closed its connections while a peer still finished its last call would fail that peer.
const { connectTcpWorld } = require("../kernel/dist/comm/tcp-world.js");

async function main() {
  const spec = JSON.parse(process.argv[2]);
  const credentials = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
  const comm = await connectTcpWorld({
    // TCP between the namespaces, as the ssh-launched ranks': the namespaces share this machine's
    // hostname and /tmp, so the world would otherwise join its ranks over Unix sockets
    unixSockets: false,
    // and the native ring the ssh-launched ranks get between machines (tcp-native-ring.ts); the
    // namespaces share one machine id, so it is asked for (DISTLAB_TCP_RING=js keeps the framed ring)
    nativeRing: process.env.DISTLAB_TCP_RING !== "js",
    rank: spec.rank, size: spec.size, rendezvous: spec.rendezvous, host: spec.host, timeoutMs: 120_000,
    credentials: { world: credentials.world, secret: Buffer.from(credentials.secret, "hex") },
  });
  const ms = [];
  const cpu = [];
  for (const entry of spec.plan) {
    // the same calls as the ssh-launched ranks' cell: in place on a plain Float32Array
    const x = new Float32Array(entry.bytes / 4).fill(spec.rank + 1);
    for (let i = 0; i < entry.warmup; i++) await comm.allReduce(x, { out: x });
    const blocks = [];
    const before = process.cpuUsage();
    for (let r = 0; r < entry.reps; r++) {
      await comm.barrier();
      const t0 = performance.now();
      for (let i = 0; i < entry.calls; i++) await comm.allReduce(x, { out: x });
      blocks.push((performance.now() - t0) / entry.calls);
    }
    ms.push(blocks);
    const used = process.cpuUsage(before);
    const timed = entry.reps * entry.calls;
    cpu.push([used.user / 1000 / timed, used.system / 1000 / timed]);
  }
  process.stdout.write(`${JSON.stringify({ rank: spec.rank, ms, cpu })}\n`);
  setInterval(() => undefined, 60_000); // the driver kills every rank once all have printed
}

main().catch((error) => {
  process.stderr.write(`bare rank: ${error.stack ?? error}\n`);
  process.exit(1);
});
