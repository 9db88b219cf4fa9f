/**
 * Runs in its own worker thread: the control channel's ROUTER and the
 * heartbeat's REP, so that both answer while the main thread is busy in a
 * cell (a tight synchronous loop included), as ipykernel's control and
 * heartbeat threads do.
 *
 * interrupt_request is acted on here at once: SIGINT on the kernel process
 * breaks a running synchronous cell (vm breakOnSigint), and an "interrupt"
 * post reaches the main thread as soon as its event loop is free. Every
 * control message is then passed to the main thread, which replies through
 * this thread.
 */
import { parentPort, workerData } from "node:worker_threads";
import * as zmq from "zeromq";
import { endpoint, type ConnectionInfo } from "./connection";
import type { ControlFromMain, ControlToMain } from "./control-thread";
import { SerialSender } from "./serial-sender";
import { decodeMessage, MessageSigner, WireError } from "./wire";

const port = parentPort;
if (!port) throw new Error("control-worker must run in a worker thread");
const connection = (workerData as { connection: ConnectionInfo }).connection;
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

async function receiveControl(): Promise<void> {
  try {
    for await (const frames of control) {
      try {
        const message = decodeMessage(frames, signer);
        if (message.header.msg_type === "interrupt_request") {
          // SIGINT breaks a synchronous cell (vm breakOnSigint); the post reaches the kernel once its
          // event loop is free (an awaiting cell), since a signal raised here may not reach its handler.
          process.kill(process.pid, "SIGINT");
          post({ type: "interrupt", requestedAt: Date.now() });
        }
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
    control.close();
    heartbeat.close();
    port.close();
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
