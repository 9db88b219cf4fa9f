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
import type { SpanRecorder } from "../../trace";

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

/** The hook to pass as the communicator's `onSpan`: one comm span per finished call, kept in the recorder's columns. */
export function commSpanHook(recorder: SpanRecorder, worldRank: number, groups: GroupRegistry): SpanHook {
  // One array per group's other members (keyed by the registry's member list, which a new group of the
  // same name replaces) and per p2p peer, so the columns store each list once a batch.
  const othersOf = new WeakMap<readonly number[], readonly number[]>();
  const onePeer = new Map<number, readonly number[]>();
  const othersIn = (group: string): readonly number[] | undefined => {
    const members = groups.worldRanks(group);
    if (members === undefined) return undefined;
    let others = othersOf.get(members);
    if (others === undefined) othersOf.set(members, (others = members.filter((r) => r !== worldRank)));
    return others;
  };
  const hook = (span: CommSpan) => {
    if (!recorder.enabled) return;
    if (span.algorithm !== "p2p") {
      recorder.recordComm(span, span.group, span.call, othersIn(span.group));
      return;
    }
    // The hook's peer is the group rank passed to send/recv; links need world ranks.
    const peer = span.peer === undefined ? undefined : groups.worldRanks(span.group)?.[span.peer];
    if (peer === undefined) {
      // Unknown group: a key no other rank has, so the summary links nothing to it.
      recorder.recordComm(span, `p2p:${span.group}:${worldRank}:unlinked`, span.call, undefined);
      return;
    }
    const [from, to] = span.op === "send" ? [worldRank, peer] : [peer, worldRank];
    let peers = onePeer.get(peer);
    if (peers === undefined) onePeer.set(peer, (peers = [peer]));
    recorder.recordComm(span, `p2p:${span.group}:${from}->${to}`, span.call, peers);
  };
  // Read by the communicator before each call: with the timeline off it reads no clock and builds no span.
  return Object.defineProperty(hook, "recording", { get: () => recorder.enabled });
}
