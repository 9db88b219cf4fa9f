/**
 * WebAssembly SIMD loops for the wasm backend's fused kernels, run on the
 * backend's own heap: the module imports TF.js's WebAssembly.Memory, so
 * tensors are read and written where they lie (byte addresses from the
 * backend's dataIdMap), with no copies in or out.
 *
 * Why not JavaScript loops over Float32Array views of the heap: V8 does not
 * vectorise them, and these f32x4 loops run several times faster per
 * element (figures: docs/compute.md, "Figures behind the code").
 * The functions below run 4 lanes at a time and need row widths (or
 * element counts) that are multiples of 4; the kernels use their
 * JavaScript loops for other shapes (or for an element-count tail).
 * Exponentials stay with TF.js's own vectorised kernels (Sigmoid, Softmax),
 * which the kernels call between passes.
 *
 * Every pointer argument is a byte address in the heap; every size in
 * bytes unless named a count. Loops keep the operation order of the stock
 * ops they replace where that matters (Adam: bit for bit).
 */
import { Wasm } from "../../comm/wasm-api";
import { add, Func, hsum, ifThen, moduleBytes, mul, op, type Code } from "./simd-asm";

const K = Math.sqrt(2 / Math.PI);
const GELU_C = 0.044715;

function layerNormStats(f: Func, row: string): Code[] {
  // mean, then rstd = 1 / sqrt(mean((x - mean)^2) + eps), as splat vectors
  return [
    f.set("acc", op.vconst(0, 0, 0, 0)),
    f.for("c", op.i32(0), f.get("rowBytes"), 16, [f.set("acc", [f.get("acc"), add(f.get(row), f.get("c")), op.load(), op.vAdd])]),
    f.set("mean", [hsum(f.get("acc")), f.get("invC"), op.f32Mul, op.splat]),
    f.set("acc", op.vconst(0, 0, 0, 0)),
    f.for("c", op.i32(0), f.get("rowBytes"), 16, [
      f.set("d", [add(f.get(row), f.get("c")), op.load(), f.get("mean"), op.vSub]),
      f.set("acc", [f.get("acc"), f.get("d"), f.get("d"), op.vMul, op.vAdd]),
    ]),
    f.set("rstd", [op.f32(1), hsum(f.get("acc")), f.get("invC"), op.f32Mul, f.get("eps"), op.f32Add, op.f32Sqrt, op.f32Div, op.splat]),
  ];
}

/** layerNorm(x, gain, bias, y, rows, rowBytes, invC, eps): y = (x - mean) rstd gain + bias per row. */
function layerNorm() {
  const f = new Func(
    { x: "i32", gain: "i32", bias: "i32", y: "i32", rows: "i32", rowBytes: "i32", invC: "f32", eps: "f32" },
    { r: "i32", c: "i32", xr: "i32", yr: "i32", acc: "v128", d: "v128", mean: "v128", rstd: "v128" },
  );
  return { name: "layerNorm", func: f, code: [
    f.for("r", op.i32(0), f.get("rows"), 1, [
      f.set("xr", add(f.get("x"), mul(f.get("r"), f.get("rowBytes")))),
      f.set("yr", add(f.get("y"), mul(f.get("r"), f.get("rowBytes")))),
      ...layerNormStats(f, "xr"),
      f.for("c", op.i32(0), f.get("rowBytes"), 16, [
        add(f.get("yr"), f.get("c")),
        add(f.get("xr"), f.get("c")), op.load(), f.get("mean"), op.vSub, f.get("rstd"), op.vMul,
        add(f.get("gain"), f.get("c")), op.load(), op.vMul,
        add(f.get("bias"), f.get("c")), op.load(), op.vAdd,
        op.store(),
      ]),
    ]),
  ] };
}

/**
 * layerNormGrad(dy, x, gain, dx, dgain, dbias, rows, rowBytes, invC, eps):
 * dx = rstd (g - mean(g) - xhat mean(g xhat)), g = dy gain; adds dy xhat
 * into dgain and dy into dbias (both zeroed by the caller).
 */
function layerNormGrad() {
  const f = new Func(
    { dy: "i32", x: "i32", gain: "i32", dx: "i32", dgain: "i32", dbias: "i32", rows: "i32", rowBytes: "i32", invC: "f32", eps: "f32" },
    { r: "i32", c: "i32", o: "i32", xr: "i32", acc: "v128", d: "v128", mean: "v128", rstd: "v128", sumG: "v128", sumGX: "v128", xhat: "v128", dyv: "v128", gc: "v128" },
  );
  const xhat = (): Code => f.set("xhat", [add(f.get("xr"), f.get("c")), op.load(), f.get("mean"), op.vSub, f.get("rstd"), op.vMul]);
  return { name: "layerNormGrad", func: f, code: [
    f.for("r", op.i32(0), f.get("rows"), 1, [
      f.set("o", mul(f.get("r"), f.get("rowBytes"))),
      f.set("xr", add(f.get("x"), f.get("o"))),
      ...layerNormStats(f, "xr"),
      f.set("sumG", op.vconst(0, 0, 0, 0)),
      f.set("sumGX", op.vconst(0, 0, 0, 0)),
      f.for("c", op.i32(0), f.get("rowBytes"), 16, [
        xhat(),
        f.set("dyv", [add(add(f.get("dy"), f.get("o")), f.get("c")), op.load()]),
        f.set("gc", [f.get("dyv"), add(f.get("gain"), f.get("c")), op.load(), op.vMul]),
        f.set("sumG", [f.get("sumG"), f.get("gc"), op.vAdd]),
        f.set("sumGX", [f.get("sumGX"), f.get("gc"), f.get("xhat"), op.vMul, op.vAdd]),
        [add(f.get("dgain"), f.get("c")), add(f.get("dgain"), f.get("c")), op.load(), f.get("dyv"), f.get("xhat"), op.vMul, op.vAdd, op.store()],
        [add(f.get("dbias"), f.get("c")), add(f.get("dbias"), f.get("c")), op.load(), f.get("dyv"), op.vAdd, op.store()],
      ]),
      f.set("sumG", [hsum(f.get("sumG")), f.get("invC"), op.f32Mul, op.splat]),
      f.set("sumGX", [hsum(f.get("sumGX")), f.get("invC"), op.f32Mul, op.splat]),
      f.for("c", op.i32(0), f.get("rowBytes"), 16, [
        xhat(),
        add(add(f.get("dx"), f.get("o")), f.get("c")),
        f.get("rstd"),
        add(add(f.get("dy"), f.get("o")), f.get("c")), op.load(), add(f.get("gain"), f.get("c")), op.load(), op.vMul,
        f.get("sumG"), op.vSub,
        f.get("xhat"), f.get("sumGX"), op.vMul, op.vSub,
        op.vMul,
        op.store(),
      ]),
    ]),
  ] };
}

/** geluInput(x, out, bytes): out = 2u = 2 sqrt(2/pi) (x + 0.044715 x^3), the argument of GELU's sigmoid. */
function geluInput() {
  const f = new Func({ x: "i32", out: "i32", bytes: "i32" }, { p: "i32", v: "v128" });
  return { name: "geluInput", func: f, code: [
    f.for("p", op.i32(0), f.get("bytes"), 16, [
      f.set("v", [add(f.get("x"), f.get("p")), op.load()]),
      add(f.get("out"), f.get("p")),
      f.get("v"), f.get("v"), f.get("v"), op.vMul, f.get("v"), op.vMul, op.vconst(GELU_C, GELU_C, GELU_C, GELU_C), op.vMul, op.vAdd,
      op.vconst(2 * K, 2 * K, 2 * K, 2 * K), op.vMul,
      op.store(),
    ]),
  ] };
}

/** multiply(a, b, out, bytes): out = a b elementwise (out may be a or b). */
function multiply() {
  const f = new Func({ a: "i32", b: "i32", out: "i32", bytes: "i32" }, { p: "i32" });
  return { name: "multiply", func: f, code: [
    f.for("p", op.i32(0), f.get("bytes"), 16, [add(f.get("out"), f.get("p")), add(f.get("a"), f.get("p")), op.load(), add(f.get("b"), f.get("p")), op.load(), op.vMul, op.store()]),
  ] };
}

/** geluGrad(dy, x, s, dx, bytes): dx = dy (s + 2 sqrt(2/pi) x s (1 - s) (1 + 3 0.044715 x^2)), s = sigmoid(2u). */
function geluGrad() {
  const f = new Func({ dy: "i32", x: "i32", s: "i32", dx: "i32", bytes: "i32" }, { p: "i32", v: "v128", sv: "v128" });
  const splat = (v: number) => op.vconst(v, v, v, v);
  return { name: "geluGrad", func: f, code: [
    f.for("p", op.i32(0), f.get("bytes"), 16, [
      f.set("v", [add(f.get("x"), f.get("p")), op.load()]),
      f.set("sv", [add(f.get("s"), f.get("p")), op.load()]),
      add(f.get("dx"), f.get("p")),
      add(f.get("dy"), f.get("p")), op.load(),
      f.get("sv"),
      f.get("v"), splat(2 * K), op.vMul, f.get("sv"), op.vMul, splat(1), f.get("sv"), op.vSub, op.vMul,
      splat(1), f.get("v"), f.get("v"), op.vMul, splat(3 * GELU_C), op.vMul, op.vAdd, op.vMul,
      op.vAdd, op.vMul,
      op.store(),
    ]),
  ] };
}

/**
 * causalScores(s, out, rows, time, rowBytes, scale): out = scale s where
 * key j <= query i (= row % time), -1e9 elsewhere (softmax's input).
 */
function causalScores() {
  const f = new Func(
    { s: "i32", out: "i32", rows: "i32", time: "i32", rowBytes: "i32", scale: "f32" },
    { r: "i32", c: "i32", o: "i32", i: "i32", limit: "v128", j: "v128", sc: "v128" },
  );
  return { name: "causalScores", func: f, code: [
    f.set("sc", [f.get("scale"), op.splat]),
    f.set("i", op.i32(0)),
    f.for("r", op.i32(0), f.get("rows"), 1, [
      f.set("o", mul(f.get("r"), f.get("rowBytes"))),
      f.set("limit", [f.get("i"), op.f32ConvertI32U, op.splat]),
      f.set("j", op.vconst(0, 1, 2, 3)),
      f.for("c", op.i32(0), f.get("rowBytes"), 16, [
        add(add(f.get("out"), f.get("o")), f.get("c")),
        add(add(f.get("s"), f.get("o")), f.get("c")), op.load(), f.get("sc"), op.vMul,
        op.vconst(-1e9, -1e9, -1e9, -1e9),
        f.get("j"), f.get("limit"), op.vLe,
        op.bitselect,
        op.store(),
        f.set("j", [f.get("j"), op.vconst(4, 4, 4, 4), op.vAdd]),
      ]),
      // i = (i + 1) % time
      f.set("i", [add(f.get("i"), op.i32(1)), op.i32(0), add(f.get("i"), op.i32(1)), f.get("time"), op.ltS, op.select]),
    ]),
  ] };
}

/** softmaxGrad(y, dy, out, rows, rowBytes, scale): out = scale (y (dy - sum_j dy y)) per row. */
function softmaxGrad() {
  const f = new Func(
    { y: "i32", dy: "i32", out: "i32", rows: "i32", rowBytes: "i32", scale: "f32" },
    { r: "i32", c: "i32", o: "i32", acc: "v128", dot: "v128", sc: "v128" },
  );
  return { name: "softmaxGrad", func: f, code: [
    f.set("sc", [f.get("scale"), op.splat]),
    f.for("r", op.i32(0), f.get("rows"), 1, [
      f.set("o", mul(f.get("r"), f.get("rowBytes"))),
      f.set("acc", op.vconst(0, 0, 0, 0)),
      f.for("c", op.i32(0), f.get("rowBytes"), 16, [
        f.set("acc", [f.get("acc"), add(add(f.get("dy"), f.get("o")), f.get("c")), op.load(), add(add(f.get("y"), f.get("o")), f.get("c")), op.load(), op.vMul, op.vAdd]),
      ]),
      f.set("dot", [hsum(f.get("acc")), op.splat]),
      f.for("c", op.i32(0), f.get("rowBytes"), 16, [
        add(add(f.get("out"), f.get("o")), f.get("c")),
        add(add(f.get("y"), f.get("o")), f.get("c")), op.load(),
        add(add(f.get("dy"), f.get("o")), f.get("c")), op.load(), f.get("dot"), op.vSub, op.vMul,
        f.get("sc"), op.vMul,
        op.store(),
      ]),
    ]),
  ] };
}

/**
 * heads(rowsPtr, headsPtr, count, time, heads, headBytes, rowBytes, partOffset, toHeads):
 * moves head h of row (b, t) (at rowsPtr + row rowBytes + partOffset + h headBytes)
 * to or from [b heads + h, t] of the heads layout (at headsPtr, rows of headBytes).
 */
function headLayout() {
  const f = new Func(
    { rowsPtr: "i32", headsPtr: "i32", count: "i32", time: "i32", heads: "i32", headBytes: "i32", rowBytes: "i32", partOffset: "i32", toHeads: "i32" },
    { row: "i32", h: "i32", c: "i32", t: "i32", base: "i32", a: "i32", b: "i32", from: "i32", to: "i32", stride: "i32" },
  );
  return { name: "heads", func: f, code: [
    f.set("stride", mul(f.get("time"), f.get("headBytes"))), // one head of one sequence
    f.set("t", op.i32(0)),
    f.set("base", f.get("headsPtr")),
    f.for("row", op.i32(0), f.get("count"), 1, [
      f.set("a", add(add(f.get("rowsPtr"), mul(f.get("row"), f.get("rowBytes"))), f.get("partOffset"))),
      f.set("b", add(f.get("base"), mul(f.get("t"), f.get("headBytes")))),
      f.for("h", op.i32(0), f.get("heads"), 1, [
        f.set("from", [f.get("a"), f.get("b"), f.get("toHeads"), op.select]),
        f.set("to", [f.get("b"), f.get("a"), f.get("toHeads"), op.select]),
        f.for("c", op.i32(0), f.get("headBytes"), 16, [add(f.get("to"), f.get("c")), add(f.get("from"), f.get("c")), op.load(), op.store()]),
        f.set("a", add(f.get("a"), f.get("headBytes"))),
        f.set("b", add(f.get("b"), f.get("stride"))),
      ]),
      f.set("t", add(f.get("t"), op.i32(1))),
      ifThen([f.get("t"), f.get("time"), op.eq], [
        f.set("t", op.i32(0)),
        f.set("base", add(f.get("base"), mul(f.get("heads"), f.get("stride")))),
      ]),
    ]),
  ] };
}

/** columnSum(x, out, rows, rowBytes): out[c] += sum over rows of x[r, c] (out zeroed by the caller). */
function columnSum() {
  const f = new Func({ x: "i32", out: "i32", rows: "i32", rowBytes: "i32" }, { r: "i32", c: "i32", o: "i32" });
  return { name: "columnSum", func: f, code: [
    f.for("r", op.i32(0), f.get("rows"), 1, [
      f.set("o", add(f.get("x"), mul(f.get("r"), f.get("rowBytes")))),
      f.for("c", op.i32(0), f.get("rowBytes"), 16, [
        add(f.get("out"), f.get("c")), add(f.get("out"), f.get("c")), op.load(), add(f.get("o"), f.get("c")), op.load(), op.vAdd, op.store(),
      ]),
    ]),
  ] };
}

/**
 * columnSumBlocks(x, out, rows, rowBytes): out[c] = sum over rows of x[r, c], for
 * rowBytes a multiple of 64: 16 columns at a time kept in registers down all rows.
 */
function columnSumBlocks() {
  const f = new Func({ x: "i32", out: "i32", rows: "i32", rowBytes: "i32" }, { r: "i32", c: "i32", a: "i32", end: "i32", s0: "v128", s1: "v128", s2: "v128", s3: "v128" });
  const acc = (name: string, offset: number): Code => f.set(name, [f.get(name), f.get("a"), op.load(offset), op.vAdd]);
  return { name: "columnSumBlocks", func: f, code: [
    f.set("end", add(f.get("x"), mul(f.get("rows"), f.get("rowBytes")))),
    f.for("c", op.i32(0), f.get("rowBytes"), 64, [
      f.set("s0", op.vconst(0, 0, 0, 0)), f.set("s1", op.vconst(0, 0, 0, 0)), f.set("s2", op.vconst(0, 0, 0, 0)), f.set("s3", op.vconst(0, 0, 0, 0)),
      f.for("a", add(f.get("x"), f.get("c")), f.get("end"), f.get("rowBytes"), [acc("s0", 0), acc("s1", 16), acc("s2", 32), acc("s3", 48)]),
      [add(f.get("out"), f.get("c")), f.get("s0"), op.store(0)],
      [add(f.get("out"), f.get("c")), f.get("s1"), op.store(16)],
      [add(f.get("out"), f.get("c")), f.get("s2"), op.store(32)],
      [add(f.get("out"), f.get("c")), f.get("s3"), op.store(48)],
    ]),
  ] };
}

/**
 * adam(x, m, v, g, bytes, beta1, oneMinusBeta1, beta2, oneMinusBeta2, c1, c2, eps, negLr), in place:
 *   m = m beta1 + g (1 - beta1);  v = v beta2 + (g g) (1 - beta2)
 *   x = ((m / c1) / (sqrt(v / c2) + eps)) (-lr) + x
 * in tf.train.adam's operation order, each an IEEE float32 operation like its kernels'.
 */
function adam() {
  const f = new Func(
    { x: "i32", m: "i32", v: "i32", g: "i32", bytes: "i32", beta1: "f32", oneMinusBeta1: "f32", beta2: "f32", oneMinusBeta2: "f32", c1: "f32", c2: "f32", eps: "f32", negLr: "f32" },
    { p: "i32", gv: "v128", mv: "v128", vv: "v128", b1: "v128", o1: "v128", b2: "v128", o2: "v128", k1: "v128", k2: "v128", e: "v128", lr: "v128" },
  );
  return { name: "adam", func: f, code: [
    f.set("b1", [f.get("beta1"), op.splat]), f.set("o1", [f.get("oneMinusBeta1"), op.splat]),
    f.set("b2", [f.get("beta2"), op.splat]), f.set("o2", [f.get("oneMinusBeta2"), op.splat]),
    f.set("k1", [f.get("c1"), op.splat]), f.set("k2", [f.get("c2"), op.splat]),
    f.set("e", [f.get("eps"), op.splat]), f.set("lr", [f.get("negLr"), op.splat]),
    f.for("p", op.i32(0), f.get("bytes"), 16, [
      f.set("gv", [add(f.get("g"), f.get("p")), op.load()]),
      f.set("mv", [add(f.get("m"), f.get("p")), op.load(), f.get("b1"), op.vMul, f.get("gv"), f.get("o1"), op.vMul, op.vAdd]),
      f.set("vv", [add(f.get("v"), f.get("p")), op.load(), f.get("b2"), op.vMul, f.get("gv"), f.get("gv"), op.vMul, f.get("o2"), op.vMul, op.vAdd]),
      [add(f.get("m"), f.get("p")), f.get("mv"), op.store()],
      [add(f.get("v"), f.get("p")), f.get("vv"), op.store()],
      add(f.get("x"), f.get("p")),
      f.get("mv"), f.get("k1"), op.vDiv,
      f.get("vv"), f.get("k2"), op.vDiv, op.vSqrt, f.get("e"), op.vAdd,
      op.vDiv, f.get("lr"), op.vMul,
      add(f.get("x"), f.get("p")), op.load(), op.vAdd,
      op.store(),
    ]),
  ] };
}

/** sgd(x, g, bytes, negLr): x = g negLr + x, in place (tf.train.sgd's multiply, then add). */
function sgd() {
  const f = new Func({ x: "i32", g: "i32", bytes: "i32", negLr: "f32" }, { p: "i32", lr: "v128" });
  return { name: "sgd", func: f, code: [
    f.set("lr", [f.get("negLr"), op.splat]),
    f.for("p", op.i32(0), f.get("bytes"), 16, [
      add(f.get("x"), f.get("p")),
      add(f.get("g"), f.get("p")), op.load(), f.get("lr"), op.vMul,
      add(f.get("x"), f.get("p")), op.load(), op.vAdd,
      op.store(),
    ]),
  ] };
}

/** addRows(y, bias, rows, rowBytes, relu): y[r] = y[r] + bias for every row r, then max(., 0) where relu is 1 (rowBytes a multiple of 16). */
function addRows() {
  const f = new Func({ y: "i32", bias: "i32", rows: "i32", rowBytes: "i32", relu: "i32" }, { r: "i32", c: "i32", row: "i32", v: "v128" });
  return { name: "addRows", func: f, code: [
    f.for("r", op.i32(0), f.get("rows"), 1, [
      f.set("row", add(f.get("y"), mul(f.get("r"), f.get("rowBytes")))),
      f.for("c", op.i32(0), f.get("rowBytes"), 16, [
        f.set("v", [add(f.get("row"), f.get("c")), op.load(), add(f.get("bias"), f.get("c")), op.load(), op.vAdd]),
        ifThen(f.get("relu"), [f.set("v", [f.get("v"), op.vconst(0, 0, 0, 0), op.vMax])]),
        [add(f.get("row"), f.get("c")), f.get("v"), op.store()],
      ]),
    ]),
  ] };
}

/** reluGrad(dy, y, out, bytes): out = dy where y > 0, else 0 (y: relu's output, positive exactly where its input was). */
function reluGrad() {
  const f = new Func({ dy: "i32", y: "i32", out: "i32", bytes: "i32" }, { p: "i32" });
  return { name: "reluGrad", func: f, code: [
    f.for("p", op.i32(0), f.get("bytes"), 16, [
      add(f.get("out"), f.get("p")),
      add(f.get("dy"), f.get("p")), op.load(),
      add(f.get("y"), f.get("p")), op.load(), op.vconst(0, 0, 0, 0), op.vGt,
      op.vAnd, op.store(),
    ]),
  ] };
}

/** The exported functions (byte addresses and sizes as above; f32 scalars as JS numbers). */
export interface SimdKernels {
  layerNorm(x: number, gain: number, bias: number, y: number, rows: number, rowBytes: number, invC: number, eps: number): void;
  layerNormGrad(dy: number, x: number, gain: number, dx: number, dgain: number, dbias: number, rows: number, rowBytes: number, invC: number, eps: number): void;
  geluInput(x: number, out: number, bytes: number): void;
  multiply(a: number, b: number, out: number, bytes: number): void;
  geluGrad(dy: number, x: number, s: number, dx: number, bytes: number): void;
  causalScores(s: number, out: number, rows: number, time: number, rowBytes: number, scale: number): void;
  softmaxGrad(y: number, dy: number, out: number, rows: number, rowBytes: number, scale: number): void;
  heads(rowsPtr: number, headsPtr: number, count: number, time: number, heads: number, headBytes: number, rowBytes: number, partOffset: number, toHeads: number): void;
  columnSum(x: number, out: number, rows: number, rowBytes: number): void;
  columnSumBlocks(x: number, out: number, rows: number, rowBytes: number): void;
  adam(x: number, m: number, v: number, g: number, bytes: number, beta1: number, oneMinusBeta1: number, beta2: number, oneMinusBeta2: number, c1: number, c2: number, eps: number, negLr: number): void;
  sgd(x: number, g: number, bytes: number, negLr: number): void;
  reluGrad(dy: number, y: number, out: number, bytes: number): void;
  addRows(y: number, bias: number, rows: number, rowBytes: number, relu: number): void;
}

let bytes: Uint8Array | undefined;

/** The module's bytes (built once). */
export function simdModuleBytes(): Uint8Array {
  bytes ??= moduleBytes([layerNorm(), layerNormGrad(), geluInput(), multiply(), geluGrad(), causalScores(), softmaxGrad(), headLayout(), columnSum(), columnSumBlocks(), adam(), sgd(), reluGrad(), addRows()]);
  return bytes;
}

const instances = new WeakMap<object, SimdKernels | null>();

/** The kernels bound to `memory` (TF.js's heap), one instance per memory; undefined where SIMD does not compile. */
export function simdKernelsFor(memory: object): SimdKernels | undefined {
  let kernels = instances.get(memory);
  if (kernels === undefined) {
    try {
      kernels = new Wasm.Instance(new Wasm.Module(simdModuleBytes()), { env: { memory } }).exports as unknown as SimdKernels;
    } catch {
      kernels = null;
    }
    instances.set(memory, kernels);
  }
  return kernels ?? undefined;
}
