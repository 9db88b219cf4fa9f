// A checkpoint writer for checkpoint-crash.test.ts, run as its own process so
// that the test can kill -9 it mid-save: saves { step, payload } to argv[2]
// again and again from step argv[3] on, and prints `saved STEP` once each save
// has returned. The payload (every element equal to the step) is large enough
// that a kill often lands inside a write or an fsync.
import { encodeCheckpoint, writeFileAtomically } from "../../kernel/src/checkpoint/checkpoint-file";
import { encodeState } from "../../kernel/src/checkpoint/checkpoint-state";

const PAYLOAD_ELEMENTS = 256 * 1024; // Float64: 2 MiB a save

const [path, first] = [process.argv[2]!, Number(process.argv[3])];
const payload = new Float64Array(PAYLOAD_ELEMENTS);
process.stdout.write("ready\n");
for (let step = first; ; step++) {
  payload.fill(step);
  const body = encodeState({ step, payload });
  writeFileAtomically(path, encodeCheckpoint({ shards: "rank0", rank: 0, size: 1, saveId: step, written: new Date().toISOString() }, body));
  process.stdout.write(`saved ${step}\n`);
}
