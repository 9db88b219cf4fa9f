// The standalone side of the matMul comparison: this process sets up TF.js
// exactly as a rank does (kernel/dist/compute/backend-choice.js) and times
// matmul-timing.js. Prints one JSON line per size and mode.
const tf = require("@tensorflow/tfjs");
const { chooseBackend } = require("../../kernel/dist/compute/backend-choice.js");
const { matMulTflops } = require("./matmul-timing.js");
(async () => {
  const chosen = await chooseBackend(tf, process.env.E2E_BACKEND === "processes" ? undefined : "webgpu");
  const sizes = (process.env.E2E_SIZES ?? "4096:30,4096:110,8192:10,8192:30").split(",").map((pair) => pair.split(":").map(Number));
  // Three rounds, alternating sizes and modes, as the cell does; the median of each.
  const runs = new Map();
  for (let round = 0; round < 3; round++) {
    for (const [n, reps] of sizes) {
      for (const keep of [false, true]) {
        const key = JSON.stringify([n, reps, keep]);
        runs.set(key, [...(runs.get(key) ?? []), await matMulTflops(tf, n, reps, keep)]);
      }
    }
  }
  for (const [key, all] of runs) {
    const [n, reps, keep] = JSON.parse(key);
    const median = [...all].sort((a, b) => a - b)[1];
    console.log(JSON.stringify({ where: "standalone", n, reps, keep, tflops: Number(median.toFixed(2)), all: all.map((x) => Number(x.toFixed(2))), backend: chosen.backend }));
  }
})().catch((error) => { console.error(error); process.exit(1); });
