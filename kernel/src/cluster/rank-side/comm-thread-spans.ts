/**
 * A rank's communication thread on the rank's timeline. Each job the comm
 * thread finishes (a DDP bucket's allReduce) becomes a `comm` span on the
 * rank's `comm` stream at the times the comm thread measured, so it runs
 * beside the rank's main stream (forward, backward) and the summary's
 * overlap figure counts the compute it hid behind. Inside it, each call the
 * job made is a `comm` span linked across ranks like any collective (group
 * `comm-thread`, the comm thread world's call number as `seq`, the other
 * ranks as `peers`), so the kernel carves the waits for a late peer out of
 * it as `idle`, on the same stream.
 */
import type { CommThreadSpan } from "../../comm/comm-thread";
import type { SpanRecorder } from "../../trace";

/** The stream (lane) the comm thread's spans are drawn and measured on. */
export const COMM_THREAD_STREAM = "comm";
/** The group name that links the comm threads' calls across ranks (apart from the rank threads' "world"). */
export const COMM_THREAD_GROUP = "comm-thread";

/** The hook to pass as joinCommWorld's `onCommThreadSpan`. */
export function commThreadSpanHook(recorder: SpanRecorder, worldRank: number, size: number): (span: CommThreadSpan) => void {
  const peers = Array.from({ length: size }, (_, r) => r).filter((r) => r !== worldRank);
  return (job) => {
    if (!recorder.enabled) return;
    const bytes = job.calls.reduce((sum, call) => sum + call.bytes, 0);
    recorder.record(job.name, "comm", job.start, job.end - job.start, { stream: COMM_THREAD_STREAM, bytes, ...(job.calls[0] ? { op: job.calls[0].op } : {}) });
    for (const call of job.calls) {
      recorder.record(call.op, "comm", call.start, call.end - call.start, {
        op: call.op,
        bytes: call.bytes,
        algorithm: call.algorithm,
        group: COMM_THREAD_GROUP,
        seq: call.call,
        peers,
        stream: COMM_THREAD_STREAM,
      });
    }
  };
}
