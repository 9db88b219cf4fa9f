// The receive side of an emulated link over tcp (link.ts models the send
// side): one ingress per rank, shared by all its peers, as a NIC's. Senders
// pace their own egress, so k peers sending S each to one rank at once would
// all finish after L + S/B; the receiving rank holds each finished frame
// until its ingress has had time for it, so the last of the k is delivered
// after L + k S / B, as through one NIC. (In a shm world the senders claim
// the receiver's ingress themselves: SharedIngress, which needs a clock the
// ranks share; over tcp only the receiver's own clock is trusted.)
//
// A frame's bytes are taken to have started arriving S / B before its last
// byte did (the sender paced them at B), and reserve that span on the
// ingress, first come, first served. A lone sender's frame so fits its
// window exactly and is not held; frames that overlap in time queue.
import { Nic } from "./link";
import type { LinkModel } from "./types";

export class TcpIngress {
  /** the ingress's clock: Nic's first-come, first-served reservation, applied to arriving bytes */
  private readonly clock = new Nic();

  /**
   * Milliseconds to hold a frame of `bytes` payload bytes over `link` whose
   * last byte arrived at `nowMs` (performance.now()) before delivering it;
   * 0 for links without a bandwidth.
   */
  holdMs(bytes: number, link: LinkModel | undefined, nowMs: number): number {
    if (!link || !Number.isFinite(link.bandwidth) || bytes <= 0) return 0;
    const durationMs = (bytes / link.bandwidth) * 1000;
    const { endMs } = this.clock.reserve(bytes, link.bandwidth, nowMs - durationMs, -1);
    return Math.max(0, endMs - nowMs);
  }
}
