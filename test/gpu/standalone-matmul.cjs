// The standalone side of the matMul comparison: this process sets up TF.js
// exactly as a rank does (kernel/dist/compute/backend-choice.js) and times
// matmul-timing.js. Prints one JSON line per size and mode.
const tf = require("@tensorflow/tfjs");
const { chooseBackend } = require("../../kernel/dist/compute/backend-choice.js");
const { matMulTflops } = require("./matmul-timing.js");
(async () => {
  const chosen = await chooseBackend(tf, process.env.E2E_BACKEND === "processes" ? undefined : "webgpu");
  const sizes = (process.env.E2E_SIZES ?? "4096:30,8192:10,4096:110").split(",").map((pair) => pair.split(":").map(Number));
  for (const [n, reps] of sizes) {
    for (const keep of [false, true]) {
      const tflops = await matMulTflops(tf, n, reps, keep);
      console.log(JSON.stringify({ where: "standalone", n, reps, keep, tflops: Number(tflops.toFixed(2)), backend: chosen.backend }));
    }
  }
})().catch((error) => { console.error(error); process.exit(1); });
