// A crash during a save never loses the previous checkpoint: a real writer
// process (checkpoint-writer.ts) saves again and again and is killed with
// SIGKILL at a random moment, over and over, until 100 saves have completed.
// After every kill, the file at the path must read back, pass its checksum,
// and hold the last save the writer reported complete, or the one it was
// finishing (its rename can land before its "saved" line is printed).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readdirSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { buildSync } from "esbuild";
import { readCheckpointFile } from "../../kernel/src/checkpoint/checkpoint-file";
import { decodeState } from "../../kernel/src/checkpoint/checkpoint-state";
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
async function runAndKill(writer: string, path: string, first: number, killAfterMs: number): Promise<number> {
  const child = spawn(process.execPath, [writer, path, String(first)], { stdio: ["ignore", "pipe", "pipe"] });
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

test(`kill -9 of a writer at random points during ${SAVES} saves: every restore yields the last complete checkpoint`, { timeout: 120_000 }, async () => {
  const dir = tempDir();
  const writerDir = tempDir();
  const writer = bundleWriter(writerDir);
  const path = join(dir, "state.ckpt");
  let saved = -1;
  let kills = 0;
  try {
    while (saved + 1 < SAVES) {
      // Random moments: before the first save finishes, and a few saves in.
      const reported = await runAndKill(writer, path, saved + 1, Math.floor(Math.random() * 250));
      kills++;
      if (!existsSync(path)) {
        assert.equal(reported, -1, "a file exists once a save has been reported");
        continue;
      }
      const { body } = readCheckpointFile(path);
      const state = decodeState(body, tf) as { step: number; payload: Float64Array };
      assert.ok(state.step === reported || state.step === reported + 1, `after kill ${kills} the writer reported save ${reported} complete; the file holds save ${state.step}`);
      assert.ok(state.payload.every((value) => value === state.step), `save ${state.step}'s payload is whole`);
      saved = state.step;
    }
    // Temporary files of saves killed mid-write are left beside the checkpoint, never in its place.
    const leftovers = readdirSync(dir).filter((name) => name !== "state.ckpt");
    assert.ok(leftovers.every((name) => /^\.state\.ckpt\.tmp-\d+-[0-9a-f]{8}$/.test(name)), `only temporary files are left: ${leftovers.join(", ")}`);
    console.log(`${saved + 1} saves, ${kills} kills, ${leftovers.length} of them mid-write (a temporary file left)`);
    assert.ok(leftovers.length > 0, "some kill landed inside a write");
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(writerDir, { recursive: true, force: true });
  }
});
