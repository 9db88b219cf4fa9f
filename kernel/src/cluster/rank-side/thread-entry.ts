/**
 * Entry point of a thread rank (a piscina pool of one thread): the shared
 * rank runtime, talking to the kernel over the MessagePort its init task
 * hands over.
 *
 * Every task resolves: a task that throws in the rank's code becomes a
 * `TaskFailed` result, and a pulled value is checked to copy before it is
 * returned. A rejected task, or a result piscina cannot post (it then throws
 * on the thread), would look to the kernel like a dead thread.
 */
import { toRemoteErrorData } from "../../errors";
import type { RankTask, RankTaskResult, TaskFailed } from "../rank-messages";
import { createRankRuntime } from "./rank-runtime";

const handleTask = createRankRuntime((task) => {
  if (!task.port) throw new Error("a thread rank's init task must carry its port");
  return task.port;
});

export default async function runTask(task: RankTask): Promise<RankTaskResult | TaskFailed> {
  try {
    const result = await handleTask(task);
    // e.g. `%dist pull` of a function: found here, not when piscina posts the result.
    if (result.kind === "variable" && result.ok && result.value !== undefined) structuredClone(result.value);
    return result;
  } catch (error) {
    return { kind: "failed", error: toRemoteErrorData(error) };
  }
}
