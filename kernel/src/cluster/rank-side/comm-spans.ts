/**
 * A rank's collectives on its timeline. The communicator reports every call
 * it finishes through its `onSpan` hook (op, bytes, algorithm, group, the
 * group's call number, start and end in epoch microseconds); this turns each
 * report into a `comm` span whose args link the call across ranks:
 *
 * - collectives: `group` is the group's name and `seq` its call number, the
 *   same on every member; `peers` are the other members' world ranks;
 * - send/recv: `group` names the ordered pair (`p2p:world:0->1`) and `seq`
 *   counts the pair's messages, so a send links with its matching recv.
 *
 * The kernel derives `idle` (blocked waiting for peers) from the arrival
 * times of the linked calls (kernel/src/trace/arrival-waits.ts).
 */
import type { CommSpan, Communicator, SpanHook } from "../../comm/types";
import type { SpanArgs, SpanRecorder } from "../../trace";

/** World ranks of each group this rank created, by group name. */
export class GroupRegistry {
  private readonly ranksByName = new Map<string, readonly number[]>();

  /**
   * Remembers `comm` and every group later created from it (also the groups a
   * mesh creates, which go through the parent's `newGroup`).
   */
  track(comm: Communicator): Communicator {
    this.ranksByName.set(comm.name, comm.worldRanks);
    const original = comm.newGroup.bind(comm);
    // Instance property over the class method: buildMesh calls parent.newGroup on this instance too.
    (comm as { newGroup: Communicator["newGroup"] }).newGroup = (ranks, name) => this.track(original(ranks, name));
    return comm;
  }

  worldRanks(group: string): readonly number[] | undefined {
    return this.ranksByName.get(group);
  }
}

/** The hook to pass as the communicator's `onSpan`: one comm span per finished call. */
export function commSpanHook(recorder: SpanRecorder, worldRank: number, groups: GroupRegistry): SpanHook {
  const hook = (span: CommSpan) => {
    if (!recorder.enabled) return;
    const members = groups.worldRanks(span.group);
    const args: SpanArgs = {
      op: span.op, bytes: span.bytes, algorithm: span.algorithm,
      // what the transport moved for this call (the wire counters), beside the input size above
      bytesSent: span.bytesSent, bytesReceived: span.bytesReceived, messagesSent: span.messagesSent, messagesReceived: span.messagesReceived,
    };
    if (span.algorithm === "p2p") {
      // The hook's peer is the group rank passed to send/recv; links need world ranks.
      const peer = span.peer === undefined ? undefined : members?.[span.peer];
      if (peer === undefined) {
        // Unknown group: a key no other rank has, so the summary links nothing to it.
        args.group = `p2p:${span.group}:${worldRank}:unlinked`;
      } else {
        const [from, to] = span.op === "send" ? [worldRank, peer] : [peer, worldRank];
        args.peers = [peer];
        args.group = `p2p:${span.group}:${from}->${to}`;
      }
      args.seq = span.call;
    } else {
      args.group = span.group;
      args.seq = span.call;
      if (members !== undefined) args.peers = members.filter((r) => r !== worldRank);
    }
    recorder.record(span.op, "comm", span.start, span.end - span.start, args);
  };
  // Read by the communicator before each call: with the timeline off it reads no clock and builds no span.
  return Object.defineProperty(hook, "recording", { get: () => recorder.enabled });
}
