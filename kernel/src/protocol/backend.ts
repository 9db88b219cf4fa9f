/**
 * The seam between the Jupyter protocol layer (kernel/src/protocol/) and what
 * runs cells (the TypeScript REPL, the %%distributed cluster, the magics).
 *
 * The protocol layer owns sockets, signing, execution counts, busy/idle status,
 * history and reply shapes. A backend only sees cells and an ExecutionIO bound
 * to the request that ran them, so output that arrives after the reply (a
 * display updated by a timer, a rank that prints late) still reaches the right
 * cell.
 */

/** A Jupyter mime bundle: mime type -> data (string, or JSON for +json types). */
export type MimeBundle = Record<string, unknown>;

export interface DisplayPayload {
  data: MimeBundle;
  metadata?: Record<string, unknown>;
  /** `display_id` lets later `update_display_data` messages replace this output. */
  transient?: { display_id?: string };
}

export interface CommMessageHandler {
  (data: unknown, metadata: Record<string, unknown>, buffers: Buffer[]): void;
}

/** One end of a Jupyter comm (comm_open / comm_msg / comm_close). */
export interface Comm {
  readonly commId: string;
  readonly targetName: string;
  send(data: unknown, metadata?: Record<string, unknown>, buffers?: Buffer[]): void;
  close(data?: unknown): void;
  onMessage(handler: CommMessageHandler): void;
  onClose(handler: (data: unknown) => void): void;
}

export interface CommManager {
  /** Called when the frontend opens a comm on `targetName`. */
  registerTarget(targetName: string, onOpen: (comm: Comm, openData: unknown) => void): void;
  /** Opens a comm from the kernel side; messages go out on IOPub. */
  open(targetName: string, data?: unknown, metadata?: Record<string, unknown>): Comm;
}

/** Where a running cell sends its output; bound to one execute_request. */
export interface ExecutionIO {
  readonly executionCount: number;
  /** Aborted when the user interrupts this execution (signal or interrupt_request). */
  readonly interruptSignal: AbortSignal;
  stream(name: "stdout" | "stderr", text: string): void;
  /** display_data, or update_display_data when `update` is true. */
  display(payload: DisplayPayload, update?: boolean): void;
  clearOutput(wait?: boolean): void;
  /** input_request on the stdin channel; rejects with a clear error when the frontend disallows stdin. */
  input(prompt: string, password?: boolean): Promise<string>;
  readonly comms: CommManager;
}

export type ExecuteOutcome =
  /** `result` becomes the cell's execute_result when present. */
  | { status: "ok"; result?: DisplayPayload }
  | { status: "error"; ename: string; evalue: string; traceback: string[] };

export interface CompleteOutcome {
  matches: string[];
  cursorStart: number;
  cursorEnd: number;
  metadata?: Record<string, unknown>;
}

export interface InspectOutcome {
  found: boolean;
  data: MimeBundle;
  metadata?: Record<string, unknown>;
}

export interface IsCompleteOutcome {
  status: "complete" | "incomplete" | "invalid" | "unknown";
  indent?: string;
}

export interface KernelBackend {
  execute(code: string, io: ExecutionIO): Promise<ExecuteOutcome>;
  /** `cursorPos` counts unicode code points, as protocol 5.2+ says. */
  complete(code: string, cursorPos: number): Promise<CompleteOutcome>;
  inspect(code: string, cursorPos: number, detailLevel: 0 | 1): Promise<InspectOutcome>;
  isComplete(code: string): Promise<IsCompleteOutcome>;
  /**
   * Called on SIGINT and on interrupt_request. The running cell's
   * `io.interruptSignal` is aborted by the protocol layer as well.
   */
  interrupt(): void;
  /** Releases rank threads, sockets and timers; `restart` is informational. */
  shutdown(restart: boolean): Promise<void>;
}
