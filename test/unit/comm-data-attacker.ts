// An attacker process against one rank's data port (comm-data-auth.test.ts):
// it dials `target` (host:port or a Unix socket path) and tries one attack.
// Were the rank ever to welcome it, it writes `marker` and injects a frame of
// 1e6s into the rank's world; it prints what it saw as one JSON line.
//
//   raw           the old plain protocol: a 4-byte rank number, then a data frame
//   wrong-secret  the handshake in full, proving with a secret of its own
//   replay        frames an eavesdropper recorded from an honest dialler (argv: hex, comma-separated)
import * as net from "node:net";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { encodeFrame, FrameReader } from "../../kernel/src/hosts/frames";
import { freshNonce, jsonFrame, proofOf } from "../../kernel/src/hosts/handshake";
import { encodeHeader } from "../../kernel/src/comm/tcp-frames";

const [target, mode, marker, world = "", recorded = ""] = process.argv.slice(2);
const colon = target!.lastIndexOf(":");
const socket = target!.startsWith("/") ? net.connect({ path: target! }) : net.connect({ host: target!.slice(0, colon), port: Number(target!.slice(colon + 1)) });
const seen: string[] = [];
const reader = new FrameReader(1 << 20);
const injected = () => {
  const payload = new Uint8Array(new Float32Array(1024).fill(1e6).buffer);
  socket.write(encodeHeader({ group: 0, call: 1, opcode: 1, count: 1024, dtype: 0, root: 0, redop: 0, algorithm: 0, epoch: 0, shape: 0 }, payload.byteLength, 0));
  socket.write(payload);
};
const replayed = recorded.split(",").filter(Boolean).map((hex) => Buffer.from(hex, "hex"));
socket.on("connect", () => {
  if (mode === "raw") {
    const hello = Buffer.alloc(4);
    hello.writeInt32LE(1, 0);
    socket.write(hello);
    injected();
  } else if (mode === "wrong-secret") {
    socket.write(encodeFrame(jsonFrame({ type: "data-hello", protocol: 1, world, from: 1, to: 0, nonce: freshNonce() })));
  } else if (mode === "replay") {
    socket.write(replayed.shift()!);
  }
});
socket.on("data", (chunk: Buffer) => {
  let frames: Buffer[] = [];
  try {
    frames = reader.push(chunk);
  } catch {
    seen.push("unframed bytes");
  }
  for (const frame of frames) {
    const type = String((JSON.parse(frame.toString()) as { type?: string }).type);
    seen.push(type);
    if (type === "data-challenge") {
      const { nonce } = JSON.parse(frame.toString()) as { nonce: string };
      if (mode === "wrong-secret") socket.write(encodeFrame(jsonFrame({ type: "data-auth", proof: proofOf(randomBytes(32), "rank-dialler", nonce, freshNonce(), `${world}\0${1}\0${0}`) })));
      if (mode === "replay") socket.write(replayed.shift()!);
    }
    if (type === "data-welcome") {
      writeFileSync(marker!, "welcomed");
      injected();
    }
  }
});
const done = (how: string) => {
  process.stdout.write(JSON.stringify({ how, seen }) + "\n");
  process.exit(0);
};
socket.on("close", () => done("closed by the rank"));
// a write racing the rank's close fails with EPIPE or ECONNRESET: closed all the same
socket.on("error", (e: NodeJS.ErrnoException) => done(e.code === "EPIPE" || e.code === "ECONNRESET" ? "closed by the rank" : `error: ${e.message}`));
setTimeout(() => done("still open after 5 s"), 5000);
