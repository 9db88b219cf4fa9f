/**
 * Entry point of a process rank (`--backend processes|gpus`): a child Node
 * process started by the kernel with an IPC channel ("advanced"
 * serialization, so typed arrays arrive as typed arrays). Tasks, their
 * results, events and commands all travel on that channel in the envelopes
 * of ../rank-messages.ts; the work is the shared rank runtime's.
 */
import { toRemoteErrorData } from "../../errors";
import type { ToRankProcess } from "../rank-messages";
import { ipcRankPort, sendToKernel } from "./rank-port";
import { watchLifeline } from "./rank-lifeline";
import { createRankRuntime } from "./rank-runtime";

// First: from here on, the rank dies with the kernel even if its main thread never yields.
watchLifeline();
const port = ipcRankPort();
const handleTask = createRankRuntime(() => port);

// Jupyter interrupts by signalling the kernel's whole process group, ranks included; the kernel
// cancels its ranks itself (and kills the ones that do not stop), so a rank ignores SIGINT.
process.on("SIGINT", () => undefined);
// The kernel is gone (exited, killed): nobody will send work or read results.
process.on("disconnect", () => process.exit(0));

process.on("message", (message: ToRankProcess) => {
  if (message.type !== "task") return;
  handleTask(message.task).then(
    (result) => {
      try {
        sendToKernel({ type: "result", id: message.id, result });
      } catch (error) {
        // e.g. `%dist pull` of a function: the value cannot be serialized for the kernel.
        sendToKernel({ type: "failed", id: message.id, error: toRemoteErrorData(error) });
      }
    },
    (error: unknown) => sendToKernel({ type: "failed", id: message.id, error: toRemoteErrorData(error) }),
  );
});
