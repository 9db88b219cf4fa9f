// Asking the other members of a socket world where they are. A rank whose
// wait timed out asks each member which call it is in and what it waits for
// (a probe frame; the member answers from its own event loop), so the error
// names the rank that did not arrive (timeout-blame.ts). A collective that
// stalls asks too: members that disagree on who sends first would otherwise
// wait for each other until the timeout. And a rank that found a mismatch
// asks the members it has not heard from, so its one error names every
// member's call. Also answers the other ranks' probes. The transport
// (tcp-transport.ts) moves the frames; this file keeps what a probe is
// answered with and what the answers say.
import { CommMismatchError } from "./comm-errors";
import { descriptorsAgree, mismatchOfMembers, sameCallNumber, type Descriptor } from "./descriptor";
import { CONTEXT_PROBE, CONTEXT_PROBE_REPLY } from "./tcp-frames";
import type { PeerWhereabouts } from "./timeout-blame";
import type { CallContext } from "./transport";

/** How long a timed-out rank waits for its peers to say where they are, milliseconds. */
export const PROBE_ANSWER_MS = 1000;
/**
 * How long a rank that found a mismatch keeps asking the members that have not made the call yet,
 * milliseconds, so its error can name their calls too (only on the error path).
 */
const MISMATCH_GATHER_MS = 500;
/** How long a stall probe waits for answers, milliseconds. */
const STALL_ANSWER_MS = 250;
/** Collective calls this rank remembers, so a probe about a call it has left is answered with that call. */
const CALL_HISTORY = 16;
/** The descriptor of no call (call 0): a probe's answer before this rank's first collective, and the header of control frames. */
export const NO_CALL: Descriptor = { group: 0, call: 0, opcode: 0, count: 0, dtype: 0, root: 0, redop: 0, algorithm: 0, epoch: 0, shape: 0 };

/** What the probes need of the transport. */
export interface ProbeLinks {
  readonly rank: number;
  /** the world ranks this rank has connections to */
  peers(): number[];
  /** Writes a control frame to `peer` behind any frame being written to it; nothing if its connection is gone. */
  sendControl(peer: number, desc: Descriptor, context: number, body?: Uint8Array): void;
  /** the error the world stopped with, if it has */
  stopped(): Error | undefined;
  /** Stops the world with `error`, telling the other ranks when `tell`. */
  stop(error: Error, tell: boolean): void;
}

export class MemberProbes {
  /** this rank's latest collective call (what a probe is answered with) */
  private entered?: Descriptor;
  /** this rank's latest collective calls, newest last (at most CALL_HISTORY) */
  private readonly history: Descriptor[] = [];
  /** the world ranks the collective this rank waits in waits for; may repeat a rank */
  waitingFor: number[] = [];
  /** labels of the point-to-point calls this rank waits in, oldest first (`send #1 to rank 0`) */
  readonly userCalls = new Set<string>();
  /** answers to this rank's probe, by world rank, while one is out */
  private answers?: Map<number, PeerWhereabouts>;
  /** a mismatch this rank found, while it asks the other members for their calls: resolves to the error that stopped the world */
  reporting?: Promise<Error>;

  constructor(private readonly links: ProbeLinks) {}

  /** This rank entered the collective `desc`. */
  enter(desc: Descriptor): void {
    this.entered = desc;
    this.history.push(desc);
    if (this.history.length > CALL_HISTORY) this.history.shift();
  }

  /** `peer` asked where this rank is; `desc` is the peer's call. */
  answer(peer: number, desc: Descriptor): void {
    const pointToPoint = this.userCalls.values().next().value as string | undefined;
    // the probe's header is the asker's call: this rank's call of that number, if it has made it (it may have left it)
    const asked = desc.call === 0 ? undefined : this.history.find((mine) => sameCallNumber(desc, mine));
    const answer = new TextEncoder().encode(JSON.stringify({ waitingFor: [...new Set(this.waitingFor)], pointToPoint, asked }));
    this.links.sendControl(peer, this.entered ?? NO_CALL, CONTEXT_PROBE_REPLY, answer);
  }

  /** `peer` answered a probe: `desc` is its latest call, `body` the JSON of answer(). */
  answered(peer: number, desc: Descriptor, body: string): void {
    if (!this.answers) return; // too late: the probe is over
    const { waitingFor, pointToPoint, asked } = JSON.parse(body) as { waitingFor: number[]; pointToPoint?: string; asked?: Descriptor };
    this.answers.set(peer, { rank: peer, answered: true, desc: desc.call === 0 ? undefined : desc, asked, waitingFor, pointToPoint });
  }

  /**
   * Where each member of the call's group is: asks them (a probe frame) and
   * waits `answerMs` for the answers; a member that does not answer is
   * stopped or busy in code outside communication.
   */
  async whereabouts(call: CallContext, asking: readonly number[] = call.members ?? this.links.peers(), answerMs = PROBE_ANSWER_MS): Promise<PeerWhereabouts[]> {
    const peers = asking.filter((p) => p !== this.links.rank);
    const answers = new Map<number, PeerWhereabouts>();
    this.answers = answers;
    // a peer that is not reading never gets its probe, and does not answer
    for (const peer of peers) this.links.sendControl(peer, call.desc, CONTEXT_PROBE);
    const until = performance.now() + answerMs;
    while (answers.size < peers.length && performance.now() < until && !this.links.stopped()) await new Promise((r) => setTimeout(r, 20));
    // a later probe (a timeout's, while a stall probe was out) took over the answers: it clears them
    if (this.answers === answers) this.answers = undefined;
    return peers.map((rank) => answers.get(rank) ?? { rank, answered: false, waitingFor: [] });
  }

  /**
   * One probe of a stalled collective `call`: a member in the same call with other arguments is a
   * mismatch, reported as if a frame had shown it. `ended` says whether the wait is over meanwhile.
   */
  async stalled(call: CallContext, ended: () => boolean): Promise<void> {
    // one probe at a time: a timeout's or a mismatch report's probe may be out
    if (this.answers || this.links.stopped() || this.reporting) return;
    for (const answer of await this.whereabouts(call, undefined, STALL_ANSWER_MS)) {
      const theirs = answer.asked ?? answer.desc;
      if (ended() || this.reporting || !sameCallNumber(call.desc, theirs) || descriptorsAgree(call.desc, theirs)) continue;
      this.reporting = this.report(call, answer.rank, theirs);
    }
  }

  /** This rank's `call` disagrees with `theirs`, `peer`'s call: reports it (once, whichever mismatch came first). */
  mismatch(call: CallContext, peer: number, theirs: Descriptor): void {
    this.reporting ??= this.report(call, peer, theirs);
  }

  /**
   * Asks every member of the call's group where it is (probes, as for a timeout) until each has
   * made the call or MISMATCH_GATHER_MS passed, then stops the world with one error naming every
   * member's call. Resolves to the error the world stopped with (another rank's, if it was first).
   */
  private async report(call: CallContext, peer: number, theirs: Descriptor): Promise<Error> {
    const mine = call.desc;
    const found = new Map<number, Descriptor | undefined>([[this.links.rank, mine], [peer, theirs]]);
    const until = performance.now() + MISMATCH_GATHER_MS;
    const members = call.members ?? [this.links.rank, ...this.links.peers()];
    while (!this.links.stopped()) {
      const asking = members.filter((r) => !sameCallNumber(mine, found.get(r)));
      if (asking.length === 0 || performance.now() > until) break;
      for (const answer of await this.whereabouts(call, asking, until - performance.now())) if (answer.answered) found.set(answer.rank, answer.asked ?? answer.desc);
      if (members.some((r) => !sameCallNumber(mine, found.get(r)))) await new Promise((r) => setTimeout(r, 10));
    }
    this.links.stop(new CommMismatchError(mismatchOfMembers(mine, members.map((rank) => ({ rank, desc: found.get(rank) })))), true);
    return this.links.stopped()!;
  }
}
