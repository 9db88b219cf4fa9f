/**
 * Runs in its own worker thread: the control channel's ROUTER and the
 * heartbeat's REP, so that both answer while the main thread is busy in a
 * cell (a tight synchronous loop included), as ipykernel's control and
 * heartbeat threads do.
 *
 * interrupt_request is acted on here at once: an "interrupt" post reaches the
 * main thread as soon as its event loop is free (an awaiting cell). Only when
 * the main thread does not acknowledge it within MAIN_THREAD_GRACE_MS (a
 * synchronous cell holds it) is SIGINT raised, which breaks that cell (vm
 * breakOnSigint). Raising SIGINT unconditionally would let a signal delivered
 * late interrupt the next cell instead. Every control message is then passed
 * to the main thread, which replies through this thread.
 */
import { parentPort, workerData } from "node:worker_threads";
import * as zmq from "zeromq";
import { endpoint } from "./connection";
import { INTERRUPT_PENDING, type ControlFromMain, type ControlToMain, type ControlWorkerData } from "./control-thread";
import { SerialSender } from "./serial-sender";
import { decodeMessage, MessageSigner, WireError } from "./wire";

const port = parentPort;
if (!port) throw new Error("control-worker must run in a worker thread");
const { connection, interruptAck } = workerData as ControlWorkerData;
/** How long (ms) a free main thread may take to take an interrupt post before SIGINT is raised. */
const MAIN_THREAD_GRACE_MS = 150;
type WaitAsync = (
  array: Int32Array,
  index: number,
  value: number,
  timeoutMs: number,
) => { async: false; value: "not-equal" | "timed-out" } | { async: true; value: Promise<"ok" | "timed-out"> };
const signer = new MessageSigner(connection.signature_scheme, connection.key);
const control = new zmq.Router({ linger: 1000 });
const heartbeat = new zmq.Reply({ linger: 0 });
const sender = new SerialSender(control, "control");

function post(message: ControlToMain): void {
  port!.postMessage(message);
}

async function echoHeartbeats(): Promise<void> {
  try {
    for await (const frames of heartbeat) await heartbeat.send(frames);
  } catch (error) {
    if (!heartbeat.closed) process.stderr.write(`distlab: heartbeat stopped: ${String(error)}\n`);
  }
}

/** Posts the interrupt; raises SIGINT only if the main thread is too busy to take the post. */
async function interruptMainThread(): Promise<void> {
  Atomics.store(interruptAck, 0, INTERRUPT_PENDING);
  post({ type: "interrupt", requestedAt: Date.now() });
  // Atomics.waitAsync is in Node 20 but not in TypeScript's ES2022 lib.
  const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;
  const waited = waitAsync(interruptAck, 0, INTERRUPT_PENDING, MAIN_THREAD_GRACE_MS);
  const outcome = waited.async ? await waited.value : waited.value;
  if (outcome === "timed-out") process.kill(process.pid, "SIGINT");
}

async function receiveControl(): Promise<void> {
  try {
    for await (const frames of control) {
      try {
        const message = decodeMessage(frames, signer);
        if (message.header.msg_type === "interrupt_request") await interruptMainThread();
      } catch (error) {
        if (!(error instanceof WireError)) throw error;
        process.stderr.write(`distlab: dropped a message on control: ${error.message}\n`);
        continue;
      }
      post({ type: "message", frames });
    }
  } catch (error) {
    if (!control.closed) throw error;
  }
}

port.on("message", (message: ControlFromMain) => {
  if (message.type === "send") {
    void sender.send(message.frames.map((frame) => Buffer.from(frame)));
  } else if (message.type === "close") {
    // The shutdown_reply may still be queued: hand it to zeromq first (linger then flushes it).
    void sender.drained().then(() => {
      control.close();
      heartbeat.close();
      // zeromq sends a closed socket's last messages from its own I/O thread and then releases
      // their buffers through this thread's event loop; a thread that ended at once left that
      // release to freed memory (heap corruption, SIGABRT at exit, about one shutdown in ten).
      // The reply is a few hundred bytes on a local socket: 100 ms is ample.
      setTimeout(() => port.close(), 100);
    });
  }
});

async function start(): Promise<void> {
  for (const [channel, socket] of [["control", control], ["hb", heartbeat]] as const) {
    const address = endpoint(connection, channel);
    try {
      await socket.bind(address);
    } catch (error) {
      post({ type: "bind-error", message: `cannot bind the ${channel} channel to ${address}: ${(error as Error).message}` });
      return;
    }
  }
  post({ type: "ready" });
  void echoHeartbeats();
  void receiveControl();
}

void start();
