/**
 * Entry point of a thread rank (a piscina pool of one thread): the shared
 * rank runtime, talking to the kernel over the MessagePort its init task
 * hands over.
 */
import { createRankRuntime } from "./rank-runtime";

export default createRankRuntime((task) => {
  if (!task.port) throw new Error("a thread rank's init task must carry its port");
  return task.port;
});
