// The TCP receive path without sockets: frames cut into reads of random
// sizes, read into the memory the receiver chooses (staging, the receive's
// destination, or a landing area other connections also scribble on), with
// receives posted before their frame, while it streams in, or after it
// arrived; every receive must get exactly its frame's bytes.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import fc from "fast-check";
import type { Descriptor } from "../../kernel/src/comm/descriptor";
import { CONTEXT_COLLECTIVE, CONTEXT_USER, encodeHeader, FrameReceiver } from "../../kernel/src/comm/tcp-frames";
import { Inbox } from "../../kernel/src/comm/tcp-inbox";
import type { RecvSpec } from "../../kernel/src/comm/transport";

const desc = (call: number, count: number): Descriptor => ({ group: 0, call, opcode: 0, count, dtype: 7, root: -1, redop: 0, algorithm: 0, epoch: 0, shape: 0 });

type Mode = "copy" | "into" | "landing";

test("every receive gets its frame's bytes, whatever the read sizes, the memory read into and when it is posted", () => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ bytes: fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 16_000, max: 300_000 })), context: fc.constantFrom(CONTEXT_COLLECTIVE, CONTEXT_USER), mode: fc.constantFrom<Mode>("copy", "into", "landing"), postAfterRead: fc.integer({ min: 0, max: 40 }) }), { minLength: 1, maxLength: 6 }),
      fc.array(fc.oneof(fc.integer({ min: 1, max: 100 }), fc.integer({ min: 1000, max: 200_000 })), { minLength: 1, maxLength: 20 }),
      fc.integer({ min: 1, max: 1e9 }),
      (frames, readSizes, seed) => {
        let s = seed;
        const payloads = frames.map((f) => Uint8Array.from({ length: f.bytes }, () => ((s = (s * 1103515245 + 12345) >>> 0) >>> 24)));
        const parts = frames.flatMap((f, i) => [encodeHeader(desc(i, f.bytes), f.bytes, f.context), payloads[i]]);
        const wire = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
        parts.reduce((offset, p) => (wire.set(p, offset), offset + p.length), 0);
        const inbox = new Inbox({
          control: (_, __, body) => assert.fail(`unexpected control frame ${body}`),
          ended: (call) => assert.fail(`unexpected end of ${call.label}`),
        });
        const receiver = new FrameReceiver(inbox, 1);
        const landing = new Uint8Array(64 * 1024); // shared by "connections": the test scribbles on it between reads
        const got = payloads.map((p) => new Uint8Array(p.length).fill(0xee));
        const done = payloads.map(() => false);
        const spec = (i: number): RecvSpec => {
          const target = got[i];
          const mode = frames[i].mode;
          return {
            peer: 1,
            bytes: target.length,
            into: mode === "copy" ? undefined : mode === "into" ? (o, max) => target.subarray(o, o + max) : (_o, max) => landing.subarray(0, Math.min(max, landing.length)),
            onData: (chunk, offset) => {
              assert.equal(offset % 16, 0, "pieces start at multiples of 16 bytes");
              if (chunk.buffer !== target.buffer || chunk.byteOffset !== target.byteOffset + offset) target.set(chunk, offset);
            },
          };
        };
        // receives are posted per context in frame order, each after a given number of reads
        const toPost = frames.map((f, i) => ({ i, context: f.context, after: f.postAfterRead }));
        const posted = new Set<number>();
        const postDue = (reads: number) => {
          for (const context of [CONTEXT_COLLECTIVE, CONTEXT_USER]) {
            for (const p of toPost.filter((q) => q.context === context)) {
              if (posted.has(p.i)) continue;
              if (p.after > reads) break; // keep per-context order
              posted.add(p.i);
              inbox.post(context, { spec: spec(p.i), call: { desc: desc(p.i, 0) } as never, check: () => {}, resolve: () => (done[p.i] = true), reject: (e) => assert.fail(String(e)) });
            }
          }
        };
        let at = 0;
        let reads = 0;
        postDue(0);
        while (at < wire.length) {
          const buf = receiver.buffer();
          const n = Math.min(buf.length, wire.length - at, readSizes[reads % readSizes.length]);
          buf.set(wire.subarray(at, at + n));
          at += n;
          receiver.received(n);
          landing.fill(0x5a); // another connection's read lands here
          postDue(++reads);
        }
        postDue(Infinity);
        frames.forEach((_, i) => {
          assert.ok(done[i], `frame ${i} was not completed`);
          assert.deepEqual(got[i], payloads[i], `frame ${i} (${frames[i].mode}, ${frames[i].bytes} B)`);
        });
      },
    ),
    { numRuns: 150 },
  );
});
