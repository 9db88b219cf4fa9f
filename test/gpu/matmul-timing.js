// f32 n x n matMul throughput (TFLOP/s), the same code in a kernel cell and
// standalone (test/gpu/kernel_e2e.py pastes this function into a cell and
// test/gpu/standalone-matmul.cjs requires it), so the two figures differ
// only in where they run. `keep`: hold every product until the end (what a
// cell that collects results does), instead of freeing each one as the
// next is queued (what bench/gpu's matMulTflops does, so TF.js reuses the
// output buffer).
async function matMulTflops(tf, n, reps, keep) {
  const a = tf.randomNormal([n, n]), b = tf.randomNormal([n, n]);
  for (let i = 0; i < 3; i++) tf.matMul(a, b).dispose();
  const warm = tf.matMul(a, b);
  await tf.slice(warm, [0, 0], [1, 1]).data();
  warm.dispose();
  const held = [];
  const started = performance.now();
  let last;
  for (let i = 0; i < reps; i++) {
    if (last && !keep) last.dispose();
    last = tf.matMul(a, b);
    if (keep) held.push(last);
  }
  await tf.slice(last, [0, 0], [1, 1]).data(); // the queue runs in order: the last product done means all are
  const seconds = (performance.now() - started) / 1000;
  tf.dispose([...held, last, a, b]);
  return (2 * n ** 3 * reps) / seconds / 1e12;
}
if (typeof module !== "undefined") module.exports = { matMulTflops };
