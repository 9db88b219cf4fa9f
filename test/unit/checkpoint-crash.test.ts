// A crash during a save never loses the previous checkpoint: a real writer
// process (checkpoint-writer.ts) saves again and again and is killed with
// SIGKILL at a random moment, over and over, until 100 saves have completed.
// After every kill, the checkpoint at the path must restore, pass its
// checksums, and hold the last save the writer reported complete, or the one
// it was finishing (its last rename can land before its "saved" line is
// printed). Both layouts are tried: one atomic file, and per-rank shards
// behind a manifest (restored through dist.restore on a real 1-rank world).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readdirSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { buildSync } from "esbuild";
import * as tf from "@tensorflow/tfjs";
import { readCheckpointFile } from "../../kernel/src/checkpoint/checkpoint-file";
import { decodeState } from "../../kernel/src/checkpoint/checkpoint-state";
import { createCheckpointApi } from "../../kernel/src/checkpoint/dist-checkpoint";
import { attachShmCommunicator, createShmWorld } from "../../kernel/src/comm/shm-world";
import { tempDir } from "./hosts-agents";

const SAVES = 100;

/**
 * The writer bundled once to plain JavaScript (esbuild, the compiler tsx itself uses): each of the
 * dozens of writer processes then starts in plain node, in a fraction of tsx's start-up time.
 */
function bundleWriter(dir: string): string {
  const outfile = join(dir, "checkpoint-writer.cjs");
  buildSync({ entryPoints: [resolve(__dirname, "checkpoint-writer.ts")], bundle: true, platform: "node", format: "cjs", outfile, logLevel: "error" });
  return outfile;
}

/** Runs the writer from `first`, kills it with SIGKILL `killAfterMs` after it is ready; returns the last step it reported saved (or first - 1). */
async function runAndKill(writer: string, path: string, how: string, first: number, killAfterMs: number): Promise<number> {
  const child = spawn(process.execPath, [writer, path, String(first), how], { stdio: ["ignore", "pipe", "pipe"] });
  let last = first - 1;
  let stderr = "";
  let text = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  await new Promise<void>((ready, fail) => {
    child.stdout!.on("data", (chunk: Buffer) => {
      text += chunk.toString();
      for (const match of text.matchAll(/saved (\d+)\n/g)) last = Math.max(last, Number(match[1]));
      if (text.startsWith("ready\n")) {
        text = text.replace(/^ready\n/, "#");
        setTimeout(() => {
          child.kill("SIGKILL");
          ready();
        }, killAfterMs);
      }
    });
    child.once("exit", (code, signal) => signal === null && fail(new Error(`the writer exited by itself (code ${code}): ${stderr}`)));
  });
  await exited;
  return last;
}

const restorers: Record<string, (path: string) => Promise<{ step: number; payload: Float64Array }>> = {
  file: async (path) => decodeState(readCheckpointFile(path).body, tf) as { step: number; payload: Float64Array },
  "per-rank": (path) => {
    const comm = attachShmCommunicator(createShmWorld(1), 0);
    return createCheckpointApi(() => comm, () => tf).restore(path);
  },
};

/** A temporary file a killed save leaves beside the checkpoint. */
const TEMPORARY = /^\.state\.ckpt.*\.tmp-\d+-[0-9a-f]{8}$/;
const MIN_KILLS = 20;
const MAX_KILLS = 200;

for (const how of ["file", "per-rank"] as const) {
  test(`${how}: kill -9 of a writer at random points during ${SAVES} saves; every restore yields the last complete checkpoint`, { timeout: 180_000 }, async () => {
    const dir = tempDir();
    const writerDir = tempDir();
    const writer = bundleWriter(writerDir);
    const path = join(dir, "state.ckpt");
    let saved = -1;
    let kills = 0;
    try {
      // Saves are fast on a quiet machine, so 100 of them may take only a few kills: go on until
      // there have been MIN_KILLS kills and one of them left a write half done (at most MAX_KILLS).
      const midWriteSeen = () => readdirSync(dir).some((name) => TEMPORARY.test(name));
      while (saved + 1 < SAVES || kills < MIN_KILLS || (!midWriteSeen() && kills < MAX_KILLS)) {
        const reported = await runAndKill(writer, path, how, saved + 1, Math.floor(Math.random() * 600));
        kills++;
        if (!existsSync(path)) {
          assert.equal(reported, -1, "a checkpoint exists once a save has been reported");
          continue;
        }
        const state = await restorers[how]!(path);
        assert.ok(state.step === reported || state.step === reported + 1, `after kill ${kills} the writer reported save ${reported} complete; the checkpoint holds save ${state.step}`);
        assert.ok(state.payload.every((value) => value === state.step), `save ${state.step}'s payload is whole`);
        saved = state.step;
      }
      // What killed saves leave: temporary files beside the checkpoint (and, per rank, at most the
      // shards of the save that was being written when the writer died).
      const names = readdirSync(dir);
      const temporary = names.filter((name) => TEMPORARY.test(name));
      const shards = names.filter((name) => /^state\.ckpt\.[0-9a-f]+\.rank0-of-1$/.test(name));
      assert.deepEqual(names.filter((name) => name !== "state.ckpt" && !temporary.includes(name) && !shards.includes(name)), []);
      assert.ok(shards.length <= (how === "per-rank" ? 2 : 0), `older shards are deleted: ${shards.join(", ")}`);
      console.log(`${how}: ${saved + 1} saves, ${kills} kills, ${temporary.length} of them mid-write (a temporary file left)`);
      assert.ok(temporary.length > 0, "some kill landed inside a write");
    } finally {
      rmSync(dir, { recursive: true, force: true });
      rmSync(writerDir, { recursive: true, force: true });
    }
  });
}
