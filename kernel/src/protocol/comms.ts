/**
 * Jupyter comms: long-lived, bidirectional channels between kernel-side
 * objects and frontend widgets (the live timeline, ipywidgets-style models).
 * Frontend -> kernel traffic arrives on shell; kernel -> frontend goes on IOPub.
 */
import { randomUUID } from "node:crypto";
import type { Comm, CommManager, CommMessageHandler } from "./backend";
import type { ParentHeader } from "./messages";
import type { IopubPublisher } from "./publisher";

type OpenHandler = (comm: Comm, openData: unknown) => void;

function reportHandlerError(what: string, error: unknown): void {
  // A failing handler belongs to user or extension code; it must not take down the kernel.
  const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
  process.stderr.write(`distlab: ${what} failed: ${detail}\n`);
}

class KernelComm implements Comm {
  private readonly messageHandlers: CommMessageHandler[] = [];
  private readonly closeHandlers: Array<(data: unknown) => void> = [];
  closed = false;

  constructor(
    readonly commId: string,
    readonly targetName: string,
    private readonly registry: CommRegistry,
  ) {}

  send(data: unknown, metadata: Record<string, unknown> = {}, buffers: Buffer[] = []): void {
    if (this.closed) throw new Error(`comm ${this.commId} (target ${this.targetName}) is closed; cannot send`);
    this.registry.publish("comm_msg", { comm_id: this.commId, data: data ?? {} }, metadata, buffers);
  }

  close(data: unknown = {}): void {
    if (this.closed) return;
    this.registry.publish("comm_close", { comm_id: this.commId, data });
    this.registry.forget(this.commId);
    this.closed = true;
  }

  onMessage(handler: CommMessageHandler): void {
    this.messageHandlers.push(handler);
  }

  onClose(handler: (data: unknown) => void): void {
    this.closeHandlers.push(handler);
  }

  deliverMessage(data: unknown, metadata: Record<string, unknown>, buffers: Buffer[]): void {
    for (const handler of this.messageHandlers) {
      try {
        handler(data, metadata, buffers);
      } catch (error) {
        reportHandlerError(`comm_msg handler of ${this.targetName}`, error);
      }
    }
  }

  deliverClose(data: unknown): void {
    this.closed = true;
    for (const handler of this.closeHandlers) {
      try {
        handler(data);
      } catch (error) {
        reportHandlerError(`comm_close handler of ${this.targetName}`, error);
      }
    }
  }
}

export class CommRegistry implements CommManager {
  private readonly targets = new Map<string, OpenHandler>();
  private readonly comms = new Map<string, KernelComm>();

  /** `currentParent` gives the request that kernel-side comm traffic answers. */
  constructor(
    private readonly publisher: IopubPublisher,
    private readonly currentParent: () => ParentHeader,
  ) {}

  registerTarget(targetName: string, onOpen: OpenHandler): void {
    this.targets.set(targetName, onOpen);
  }

  open(targetName: string, data: unknown = {}, metadata: Record<string, unknown> = {}): Comm {
    const comm = new KernelComm(randomUUID().replace(/-/g, ""), targetName, this);
    this.comms.set(comm.commId, comm);
    this.publish("comm_open", { comm_id: comm.commId, target_name: targetName, data }, metadata);
    return comm;
  }

  /** comm_open from the frontend. An unknown target is answered with comm_close, as ipykernel does. */
  handleOpen(content: Record<string, unknown>): void {
    const commId = String(content.comm_id ?? "");
    const targetName = String(content.target_name ?? "");
    const onOpen = this.targets.get(targetName);
    if (!commId || !onOpen) {
      process.stderr.write(`distlab: no comm target named ${JSON.stringify(targetName)}; closing comm ${commId}\n`);
      this.publish("comm_close", { comm_id: commId, data: {} });
      return;
    }
    const comm = new KernelComm(commId, targetName, this);
    this.comms.set(commId, comm);
    try {
      onOpen(comm, content.data ?? {});
    } catch (error) {
      reportHandlerError(`comm target ${targetName}`, error);
    }
  }

  handleMessage(content: Record<string, unknown>, metadata: Record<string, unknown>, buffers: Buffer[]): void {
    const comm = this.comms.get(String(content.comm_id ?? ""));
    if (!comm) {
      process.stderr.write(`distlab: comm_msg for unknown comm ${JSON.stringify(content.comm_id)} dropped\n`);
      return;
    }
    comm.deliverMessage(content.data ?? {}, metadata, buffers);
  }

  handleClose(content: Record<string, unknown>): void {
    const commId = String(content.comm_id ?? "");
    const comm = this.comms.get(commId);
    if (!comm) return;
    this.comms.delete(commId);
    comm.deliverClose(content.data ?? {});
  }

  /** comm_info_reply content: `{comm_id: {target_name}}`, filtered by target when one is given. */
  info(targetName?: string): Record<string, { target_name: string }> {
    const result: Record<string, { target_name: string }> = {};
    for (const [id, comm] of this.comms) {
      if (targetName === undefined || comm.targetName === targetName) result[id] = { target_name: comm.targetName };
    }
    return result;
  }

  publish(msgType: string, content: Record<string, unknown>, metadata: Record<string, unknown> = {}, buffers: Buffer[] = []): void {
    void this.publisher.publish(msgType, content, this.currentParent(), metadata, buffers);
  }

  forget(commId: string): void {
    this.comms.delete(commId);
  }
}
