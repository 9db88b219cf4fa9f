// A checkpoint writer for checkpoint-crash.test.ts, run as its own process so
// that the test can kill -9 it mid-save: saves { step, payload } to argv[2]
// again and again from step argv[3] on, and prints `saved STEP` once each save
// has returned. argv[4] says how:
//   file      one atomic file (what `{ shards: "rank0" }` writes on rank 0);
//   per-rank  dist.checkpoint's per-rank shards behind a manifest, as the one
//             rank of a real 1-rank shared-memory world.
// The payload (every element equal to the step) is large enough that a kill
// often lands inside a write or an fsync.
import { encodeCheckpoint, writeFileAtomically } from "../../kernel/src/checkpoint/checkpoint-file";
import { encodeState } from "../../kernel/src/checkpoint/checkpoint-state";
import { createCheckpointApi } from "../../kernel/src/checkpoint/dist-checkpoint";
import { attachShmCommunicator, createShmWorld } from "../../kernel/src/comm/shm-world";

const PAYLOAD_ELEMENTS = 256 * 1024; // Float64: 2 MiB a save

const [path, first, how] = [process.argv[2]!, Number(process.argv[3]), process.argv[4] ?? "file"];
const payload = new Float64Array(PAYLOAD_ELEMENTS);
const comm = attachShmCommunicator(createShmWorld(1), 0);
const api = createCheckpointApi(() => comm, () => {
  throw new Error("the writer only saves");
});

async function main(): Promise<void> {
  process.stdout.write("ready\n");
  for (let step = first; ; step++) {
    payload.fill(step);
    if (how === "per-rank") await api.checkpoint(path, { step, payload }, { shards: "per-rank" });
    else writeFileAtomically(path, encodeCheckpoint({ shards: "rank0", rank: 0, size: 1, saveId: step, written: new Date().toISOString() }, await encodeState({ step, payload })));
    process.stdout.write(`saved ${step}\n`);
  }
}
void main();
