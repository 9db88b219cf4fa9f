/**
 * One transformer block of the tensor-parallel tiny GPT (tensor-parallel.ts),
 * forward and backward, on activations laid out [seq, batch, C]: the pieces
 * between two communication points (tensor-parallel-layers.ts), the f and g
 * regions between them (tensor-parallel-regions.ts), the dropout masks, and
 * the tape a block keeps for its backward. The model around it owns the
 * tapes (one per block, per micro-batch in a pipeline stage).
 */
import * as tf from "@tensorflow/tfjs";
import { gelu } from "../compute/fused";
import { seededRandom } from "../data/random";
import { sequenceSlice } from "./sequence-parallel";
import { attentionCore, BLOCK, linear3d, norm, vjp } from "./tensor-parallel-layers";
import type { TensorParallelOptions } from "./tensor-parallel-options";
import type { Region } from "./tensor-parallel-regions";

/** What one layer keeps for its backward pass; shapes for sequence length s, batch b, C channels, degree t, sl = s/t with sequence parallelism, else s. */
export interface LayerTape {
  x: tf.Tensor; // layer input, the first norm's input [sl, b, C]
  u: tf.Tensor; // first norm's output, the qkv layer's input [sl, b, C]
  uGathered?: tf.Tensor; // the same gathered [s, b, C] (sequence parallelism without regatherInputs)
  qkv: tf.Tensor; // [s, b, 3C/t]: q, k, v of this rank's heads
  context: tf.Tensor; // attention output, the projection's input [s, b, C/t]
  mask1?: tf.Tensor; // dropout mask after attention, bool [sl, b, C]
  a: tf.Tensor; // after the attention's residual add, the second norm's input [sl, b, C]
  v: tf.Tensor; // second norm's output, the MLP's input [sl, b, C]
  vGathered?: tf.Tensor; // [s, b, C], as uGathered
  up: tf.Tensor; // MLP up projection, GELU's input [s, b, 4C/t]
  activated: tf.Tensor; // GELU's output, the down projection's input [s, b, 4C/t]
  mask2?: tf.Tensor; // dropout mask after the MLP, bool [sl, b, C]
}

export class TensorParallelBlock {
  constructor(
    private readonly regions: { f: Region; g: Region },
    private readonly options: TensorParallelOptions,
    /** this rank and the tensor-parallel degree t */
    private readonly rank: number,
    private readonly degree: number,
    /** heads of the full model (nHead / t per rank) */
    private readonly nHead: number,
  ) {}

  /** Block `layer` forward from x [sl, b, C] at forward step `step` (the dropout masks' seed): its output [sl, b, C] and what its backward needs. */
  async forward(params: readonly tf.Tensor[], layer: number, x: tf.Tensor, step: number): Promise<{ out: tf.Tensor; tape: LayerTape }> {
    const [g1, b1, wQkv, bQkv, wProj, bProj, g2, b2, wUp, bUp, wDown, bDown] = params;
    const { f, g } = this.regions;
    const sp = this.options.sequenceParallel;
    const keepGathered = sp && !this.options.regatherInputs;
    const heads = this.nHead / this.degree;
    const shape = x.shape as [number, number, number];

    const u = tf.tidy(() => norm(x, g1!, b1!));
    const uGathered = await f.forward(u); // [s, b, C]
    const qkv = tf.tidy(() => linear3d(uGathered, wQkv!, bQkv!));
    const context = tf.tidy(() => attentionCore(qkv, heads));
    const partial1 = tf.tidy(() => linear3d(context, wProj!));
    const z1 = await g.forward(partial1); // [sl, b, C]
    partial1.dispose();
    const mask1 = this.dropoutMask(step, layer, 0, shape);
    const a = tf.tidy(() => tf.add(x, this.dropout(tf.add(z1, bProj!), mask1)));
    z1.dispose();

    const v = tf.tidy(() => norm(a, g2!, b2!));
    const vGathered = await f.forward(v);
    const up = tf.tidy(() => linear3d(vGathered, wUp!, bUp!));
    const activated = tf.tidy(() => gelu(tf, up));
    const partial2 = tf.tidy(() => linear3d(activated, wDown!));
    const z2 = await g.forward(partial2);
    partial2.dispose();
    const mask2 = this.dropoutMask(step, layer, 1, shape);
    const out = tf.tidy(() => tf.add(a, this.dropout(tf.add(z2, bDown!), mask2)));
    z2.dispose();

    if (!keepGathered) tf.dispose([uGathered, vGathered]); // TP: f's forward was a copy of u, v
    const tape: LayerTape = { x, u, ...(keepGathered ? { uGathered } : {}), qkv, context, mask1, a, v, ...(keepGathered ? { vGathered } : {}), up, activated, mask2 };
    return { out, tape };
  }

  /** The block's backward from dOut [sl, b, C] with its forward's tape: adds its parameters' gradients (by BLOCK offset), returns d input [sl, b, C]. */
  async backward(params: readonly tf.Tensor[], t: LayerTape, dOut: tf.Tensor, add: (inBlock: number, g: tf.Tensor) => void): Promise<tf.Tensor> {
    const [g1, b1, wQkv, bQkv, wProj, , g2, b2, wUp, bUp, wDown] = params;
    const { f, g } = this.regions;
    const heads = this.nHead / this.degree;
    const gathered = async (local: tf.Tensor, kept: tf.Tensor | undefined): Promise<tf.Tensor> =>
      kept !== undefined ? tf.clone(kept) : this.options.sequenceParallel ? f.forward(local) : tf.clone(local);

    // MLP half: out = a + dropout(g(GELU(f(v) W_up + b_up) W_down) + b_down)
    const dy2 = tf.tidy(() => this.dropout(dOut, t.mask2));
    add(BLOCK.bDown, tf.tidy(() => tf.sum(dy2, [0, 1])));
    const dPartial2 = await g.backward(dy2); // [s, b, C]
    dy2.dispose();
    const [dActivated, dWDown] = vjp((h, w) => linear3d(h!, w!), [t.activated, wDown!], dPartial2);
    dPartial2.dispose();
    add(BLOCK.wDown, dWDown!);
    const [dUp] = vjp((h) => gelu(tf, h!), [t.up], dActivated!);
    dActivated!.dispose();
    const vGathered = await gathered(t.v, t.vGathered);
    const [dvPartial, dWUp, dbUp] = vjp((h, w, bb) => linear3d(h!, w!, bb!), [vGathered, wUp!, bUp!], dUp!);
    tf.dispose([dUp!, vGathered]);
    add(BLOCK.wUp, dWUp!);
    add(BLOCK.bUp, dbUp!);
    const dv = await f.backward(dvPartial!); // [sl, b, C]
    dvPartial!.dispose();
    const [daNorm, dg2, db2] = vjp((h, gg, bb) => norm(h!, gg!, bb!), [t.a, g2!, b2!], dv);
    dv.dispose();
    add(BLOCK.g2, dg2!);
    add(BLOCK.b2, db2!);
    const da = tf.add(dOut, daNorm!);
    daNorm!.dispose();

    // attention half: a = x + dropout(g(attention(f(u) W_qkv + b_qkv) W_proj) + b_proj)
    const dy1 = tf.tidy(() => this.dropout(da, t.mask1));
    add(BLOCK.bProj, tf.tidy(() => tf.sum(dy1, [0, 1])));
    const dPartial1 = await g.backward(dy1);
    dy1.dispose();
    const [dContext, dWProj] = vjp((h, w) => linear3d(h!, w!), [t.context, wProj!], dPartial1);
    dPartial1.dispose();
    add(BLOCK.wProj, dWProj!);
    const [dQkv] = vjp((q) => attentionCore(q!, heads), [t.qkv], dContext!); // recomputes the scores
    dContext!.dispose();
    const uGathered = await gathered(t.u, t.uGathered);
    const [duPartial, dWQkv, dbQkv] = vjp((h, w, bb) => linear3d(h!, w!, bb!), [uGathered, wQkv!, bQkv!], dQkv!);
    tf.dispose([dQkv!, uGathered]);
    add(BLOCK.wQkv, dWQkv!);
    add(BLOCK.bQkv, dbQkv!);
    const du = await f.backward(duPartial!);
    duPartial!.dispose();
    const [dxNorm, dg1, db1] = vjp((h, gg, bb) => norm(h!, gg!, bb!), [t.x, g1!, b1!], du);
    du.dispose();
    add(BLOCK.g1, dg1!);
    add(BLOCK.b1, db1!);
    const dx = tf.add(da, dxNorm!);
    tf.dispose([da, dxNorm!]);
    return dx;
  }

  /** This rank's positions [start, end) of a sequence of `seq`: its slice with sequence parallelism, else all. */
  positions(seq: number): [number, number] {
    return this.options.sequenceParallel ? sequenceSlice(seq, this.rank, this.degree) : [0, seq];
  }

  /** The dropout mask of (forward step, layer, site) for this rank's positions: bool [sl, b, C], drawn whole from the seed on every rank. */
  private dropoutMask(step: number, layer: number, site: number, shape: [number, number, number]): tf.Tensor | undefined {
    const p = this.options.dropout;
    if (p === 0) return undefined;
    const [sl, b, C] = shape;
    const s = this.options.sequenceParallel ? sl * this.degree : sl;
    const random = seededRandom(((this.options.seed * 1_000_003 + step) * 64 + layer) * 2 + site + 1);
    const keep = new Uint8Array(s * b * C);
    for (let i = 0; i < keep.length; i++) keep[i] = random() >= p ? 1 : 0;
    const [start] = this.positions(s);
    const mine = keep.subarray(start * b * C, (start + sl) * b * C);
    return tf.tensor(mine, shape, "bool");
  }

  private dropout(y: tf.Tensor, mask: tf.Tensor | undefined): tf.Tensor {
    return mask === undefined ? tf.clone(y) : tf.mul(tf.mul(y, tf.cast(mask, "float32")), 1 / (1 - this.options.dropout));
  }
}
