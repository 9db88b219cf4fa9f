// One rank process of a tcp test world: joins through the rendezvous, then
// runs the scenarios it is sent over IPC (same scenarios as the thread worlds),
// settling after each as the kernel's ranks do after each cell.
import { connectTcpWorld } from "../../kernel/src/comm";
import { SCENARIOS } from "./comm-scenarios";

const [rank, size, rendezvous, timeoutMs, unix, commOptions] = process.argv.slice(2);
void (async () => {
  // the first message is the world's credentials (see comm-process-world.ts)
  const { world, secret } = await new Promise<{ world: string; secret: string }>((resolve) => process.once("message", resolve));
  const credentials = { world, secret: Buffer.from(secret, "hex") };
  const comm = await connectTcpWorld({ rank: Number(rank), size: Number(size), rendezvous, credentials, timeoutMs: Number(timeoutMs), unixSockets: unix === "unix", ...(commOptions ? JSON.parse(commOptions) : {}) });
  process.on("message", async (m: { id: number; name: string; arg: unknown }) => {
    try {
      const value = await SCENARIOS[m.name](comm, m.arg, []);
      // a scenario ends as a cell does: the checks left behind its calls pass or fail it
      await comm.settle();
      process.send!({ id: m.id, rank: Number(rank), ok: true, value });
    } catch (e) {
      const err = e as Error;
      process.send!({ id: m.id, rank: Number(rank), ok: false, error: { name: err.name, message: err.message } });
    }
  });
  process.send!({ ready: true });
})();

