"""GPU ranks through the real kernel, on a GPU machine (test/gpu/kernel-e2e.sh runs it).

Starts the distlab kernel through jupyter_client and runs `%%distributed -n 1
--backend gpus` cells: the backend and device; a synchronous read of a GPU
tensor (a clear error) and an async one; a tensor as the cell's value; the
tiny GPT (4 layers, 128 wide) trained with DataParallel and with DDP, whose
loss must fall; matMul timed inside the cell with test/gpu/matmul-timing.js,
the same code standalone-matmul.cjs times outside the kernel. Then one rank
per GPU of the machine (`nvidia-smi -L`): a tiny-GPT data-parallel step on
every GPU, the cell's live timeline bundle (a first display, updates under
the same display id, a final one with every rank's spans), and `%dist status`
naming each rank's GPU. Prints one JSON line per result and PASS/FAIL per
check; exits 1 if a check failed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "kernel"))
from kernel_helpers import ensure_kernelspec_installed, execute, start_kernel, stop_kernel  # noqa: E402

# E2E_BACKEND=processes, E2E_STEPS and E2E_SIZES=256:3 try the cells on a machine without a GPU (the webgpu checks then fail).
GPU = f"%%distributed -n 1 --backend {os.environ.get('E2E_BACKEND', 'gpus')}\n"
STEPS = int(os.environ.get("E2E_STEPS", "100"))
SIZES = [tuple(map(int, pair.split(":"))) for pair in os.environ.get("E2E_SIZES", "4096:30,4096:110,8192:10,8192:30").split(",")]
failures: list[str] = []
# The cell-vs-standalone check needs a timed window of at least this much work (flop; bench/gpu times about 15e12).
MIN_TIMED_FLOP = 1e13


def check(name: str, ok: bool, detail: object) -> None:
    print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)
    if not ok:
        failures.append(name)


TIMELINE_MIME = "application/vnd.distlab.timeline+json"


def gpu_names() -> list[str]:
    """The machine's GPUs in index order, from `nvidia-smi -L` ("GPU 0: NVIDIA H200 (UUID: ...)")."""
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60)
    if listed.returncode != 0:
        raise RuntimeError(f"nvidia-smi -L failed: {listed.stderr.strip()}")
    return [m.group(1).strip() for m in re.finditer(r"^GPU \d+: (.*?) \(UUID", listed.stdout, re.M)]


def every_gpu(kc) -> dict[str, object]:
    """One rank per GPU: a tiny-GPT DataParallel step each, the live timeline, `%dist status`."""
    names = gpu_names()
    n = len(names)
    check("nvidia-smi lists the GPUs", n >= 1, names)
    outcome = execute(kc, f"%%distributed -n {n} --backend gpus\n" + """
import { DataParallel } from "distlab/techniques";
import { createTinyGpt } from "distlab/models";
import { tokenBatches } from "distlab/data";
const tokens = Int32Array.from({ length: 20000 }, (_, i) => (i * 7) % 65);
const gpt = createTinyGpt({ vocabSize: 65, blockSize: 64, nEmbd: 128, nHead: 4, nLayer: 4, seed: 1 });
const trainer = new DataParallel(gpt, dist, { lr: 0.3 });
const next = tokenBatches(tokens, 12, 64, 7 + dist.rank);
const losses: number[] = [];
for (let step = 0; step < 5; step++) {
  const batch = next();
  losses.push(await dist.step(step, async () => (await trainer.step(batch)).loss));
  tf.dispose([batch.x, batch.y]);
}
// The ranks drew different batches; after averaged updates their weights must still agree.
const sums = await Promise.all(gpt.params.map(async (p) => { const s = tf.sum(tf.abs(p)); const v = (await s.data())[0]!; s.dispose(); return v; }));
tf.dispose(gpt.params);
console.log("E2E " + JSON.stringify({ rank: dist.rank, device: String(dist.device), backend: tf.getBackend(), losses, weights: sums.reduce((a, b) => a + b, 0) }));""", timeout=600)
    if outcome.error:
        raise RuntimeError(f"{outcome.error['ename']}: {outcome.error['evalue']}\n{outcome.stdout}{outcome.stderr}")
    ranks = [json.loads(m.group(1)) for m in re.finditer(r"E2E (.*)", outcome.stdout)]
    print(json.dumps({"every_gpu": ranks}), flush=True)
    check(f"a rank on each of the {n} GPU(s)", sorted(r["rank"] for r in ranks) == list(range(n)), [r["rank"] for r in ranks])
    check("every rank computes on webgpu", all(r["backend"] == "webgpu" for r in ranks), [r["backend"] for r in ranks])
    check("rank i's device is /dev/nvidia<i>", all(r["device"].startswith(f"/dev/nvidia{r['rank']} ") for r in ranks), [r["device"] for r in ranks])
    weights = [r["weights"] for r in ranks]
    check("every rank holds the same weights after 5 averaged steps", bool(weights) and max(weights) - min(weights) <= 1e-5 * max(weights), weights)

    shown = [m for m in outcome.messages if m["header"]["msg_type"] in ("display_data", "update_display_data") and TIMELINE_MIME in m["content"]["data"]]
    kinds = [m["header"]["msg_type"] for m in shown]
    ids = {m["content"]["transient"]["display_id"] for m in shown}
    check("the timeline is shown at once, then updated under one display id", bool(shown) and kinds[0] == "display_data" and all(k == "update_display_data" for k in kinds[1:]) and len(ids) == 1,
          f"{kinds.count('display_data')} display, {kinds.count('update_display_data')} updates, display ids {len(ids)}")
    final = shown[-1]["content"]["data"][TIMELINE_MIME] if shown else {"ranks": [], "spans": [], "live": True}
    steps = {rank: sorted({s["args"]["step"] for s in final["spans"] if s["rank"] == rank and s.get("args", {}).get("step") is not None}) for rank in range(n)}
    comm = {rank: sum(1 for s in final["spans"] if s["rank"] == rank and s["cat"] == "comm") for rank in range(n)}
    check("the final timeline holds every rank, its GPU and its 5 steps", final["live"] is False and [r["rank"] for r in final["ranks"]] == list(range(n))
          and all(r["device"].startswith(f"/dev/nvidia{r['rank']} ") for r in final["ranks"]) and all(steps[rank] == [0, 1, 2, 3, 4] for rank in range(n)),
          {"ranks": final["ranks"], "steps": steps, "spans": len(final["spans"])})
    if n > 1:
        check("every rank's allReduces are on the timeline", all(comm[rank] >= 5 for rank in range(n)), comm)

    status = execute(kc, "%dist status", timeout=60)
    lines = {rank: next((line for line in status.stdout.splitlines() if f"rank {rank}: alive" in line), "") for rank in range(n)}
    # The device names the GPU node and Dawn's adapter, whose description spells the model as "nvidia-h200" for nvidia-smi's "NVIDIA H200".
    model = lambda name: name.lower().replace(" ", "-")  # noqa: E731
    check("%dist status names each rank's GPU", all(f"device /dev/nvidia{rank} " in lines[rank] and model(names[rank]) in lines[rank].lower() for rank in range(n)), lines)
    return {"gpus": names, "ranks": ranks, "status": list(lines.values()), "timeline_updates": len(shown) - 1}


def run(kc, code: str, timeout: float = 300) -> object:
    """Runs a cell whose last line prints `E2E <json>`; returns the parsed JSON (or raises with the cell's error)."""
    outcome = execute(kc, code, timeout=timeout)
    if outcome.error:
        raise RuntimeError(f"{outcome.error['ename']}: {outcome.error['evalue']}\n{outcome.stdout}{outcome.stderr}")
    match = re.search(r"E2E (.*)", outcome.stdout)
    if not match:
        raise RuntimeError(f"no E2E line in the cell's output:\n{outcome.stdout}{outcome.stderr}")
    return json.loads(match.group(1))


def timing_function() -> str:
    """matmul-timing.js as TypeScript a cell accepts."""
    source = (HERE / "matmul-timing.js").read_text()
    source = source.split('if (typeof module !== "undefined")')[0]
    source = source.replace("async function matMulTflops(tf, n, reps, keep)", "async function matMulTflops(tf: any, n: number, reps: number, keep: boolean): Promise<number>")
    return source.replace("const held = [];", "const held: any[] = [];").replace("let last;", "let last: any;")


def main() -> int:
    ensure_kernelspec_installed()
    km, kc = start_kernel()
    try:
        info = run(kc, GPU + 'console.log("E2E " + JSON.stringify({ backend: tf.getBackend(), device: String(dist.device) }));', timeout=120)
        print(json.dumps({"rank": info}), flush=True)
        check("rank uses webgpu", info["backend"] == "webgpu", info)

        sync = run(kc, GPU + """
const product = tf.matMul(tf.ones([64, 64]), tf.ones([64, 64]));
let syncMessage = "";
try { product.dataSync(); } catch (error) { syncMessage = `${(error as Error).name}: ${(error as Error).message}`; }
const first = (await product.data())[0];
product.dispose();
console.log("E2E " + JSON.stringify({ syncMessage, first }));""")
        check("dataSync of a GPU tensor says to use await t.data()", "await t.data()" in sync["syncMessage"], sync["syncMessage"])
        check("await t.data() reads the product", sync["first"] == 64, sync["first"])

        shown = execute(kc, GPU + "tf.mul(tf.ones([2, 2]), 3)", timeout=60)
        value = shown.results[-1].get("application/json") if shown.results else None
        check("a GPU tensor as the cell's value is shown", shown.error is None and value == [[[3, 3], [3, 3]]], value or shown.error)

        train = run(kc, GPU + f"""
import {{ DataParallel, DistributedDataParallel }} from "distlab/techniques";
import {{ createTinyGpt }} from "distlab/models";
import {{ tokenBatches }} from "distlab/data";
const vocab = 65, block = 64, steps = {STEPS};
// Each token is the one before it plus 7 (mod 65): learnable from the previous token alone.
const tokens = Int32Array.from({{ length: 20000 }}, (_, i) => (i * 7) % vocab);
const runs: Record<string, object> = {{}};
for (const kind of ["DataParallel", "DDP"]) {{
  const gpt = createTinyGpt({{ vocabSize: vocab, blockSize: block, nEmbd: 128, nHead: 4, nLayer: 4, seed: 1 }});
  const trainer = kind === "DataParallel" ? new DataParallel(gpt, dist, {{ lr: 0.3 }}) : new DistributedDataParallel(gpt, dist, {{ lr: 0.3 }});
  const next = tokenBatches(tokens, 12, block, 7);
  const curve: number[] = [];
  let started = 0;
  for (let step = 0; step < steps; step++) {{
    if (step === 5) started = performance.now();
    const batch = next();
    curve.push((await trainer.step(batch)).loss);
    tf.dispose([batch.x, batch.y]);
  }}
  runs[kind] = {{ first: curve[0], last: curve[steps - 1], msPerStep: (performance.now() - started) / (steps - 5), curve: curve.map((l) => Number(l.toFixed(3))) }};
  tf.dispose(gpt.params);
}}
console.log("E2E " + JSON.stringify(runs));""", timeout=500)
        for kind, result in train.items():
            print(json.dumps({"gpt": kind, **result}), flush=True)
            # SGD at lr 0.3 on batches of 12 is noisy step to step: compare the means of the first and last 10 steps.
            early, late = (sum(part) / len(part) for part in (result["curve"][:10], result["curve"][-10:]))
            check(f"tiny GPT loss falls with {kind}", late < 0.85 * early, f"mean of the first 10 steps {early:.3f}, of the last 10 {late:.3f}, {result['msPerStep']:.1f} ms/step")

        cell_rows = run(kc, GPU + timing_function() + """
// Three rounds, alternating sizes and modes; the median of each.
const timings = new Map<string, number[]>();
for (let round = 0; round < 3; round++) {
  for (const [n, reps] of """ + json.dumps(SIZES) + """) {
    for (const keep of [false, true]) {
      const key = JSON.stringify([n, reps, keep]);
      timings.set(key, [...(timings.get(key) ?? []), await matMulTflops(tf, n, reps, keep)]);
    }
  }
}
const rows = [...timings].map(([key, all]) => {
  const [n, reps, keep] = JSON.parse(key);
  const sorted = [...all].sort((a, b) => a - b);
  return { where: "cell", n, reps, keep, tflops: Number(sorted[1]!.toFixed(2)), all: all.map((x) => Number(x.toFixed(2))) };
});
console.log("E2E " + JSON.stringify(rows));""", timeout=300)

        all_gpus = every_gpu(kc)
    finally:
        stop_kernel(km, kc)

    standalone = subprocess.run(["node", str(HERE / "standalone-matmul.cjs")], capture_output=True, text=True, timeout=300)
    if standalone.returncode != 0:
        raise RuntimeError(f"standalone-matmul.cjs failed:\n{standalone.stderr}")
    alone_rows = [json.loads(line) for line in standalone.stdout.splitlines() if line.startswith("{")]
    print("| n | reps | products held | standalone TFLOP/s, median (3 rounds) | in a kernel cell TFLOP/s, median (3 rounds) | cell / standalone |", flush=True)
    print("|---|---|---|---|---|---|")
    for cell in cell_rows:
        alone = next(r for r in alone_rows if (r["n"], r["reps"], r["keep"]) == (cell["n"], cell["reps"], cell["keep"]))
        ratio = cell["tflops"] / alone["tflops"] if alone["tflops"] > 0 else 0.0
        print(f"| {cell['n']} | {cell['reps']} | {'all' if cell['keep'] else 'last'} | {alone['tflops']} ({alone['all']}) | {cell['tflops']} ({cell['all']}) | {ratio:.2f} |", flush=True)
        name = f"matMul {cell['n']} x{cell['reps']} ({'held' if cell['keep'] else 'freed'}) in a cell within 10% of standalone"
        if 2 * cell["n"] ** 3 * cell["reps"] < MIN_TIMED_FLOP:
            # A window of a few TFLOP (0.1-0.3 s) swings by up to 2x between rounds in either process: reported, not judged.
            print(f"NOTE {name}: not judged, {2 * cell['n'] ** 3 * cell['reps'] / 1e12:.1f} TFLOP of work is under {MIN_TIMED_FLOP / 1e12:.0f}; ratio {ratio:.2f}", flush=True)
        else:
            check(name, ratio >= 0.9, f"{ratio:.2f}")
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "kernel-e2e.json").write_text(json.dumps({"cell": cell_rows, "standalone": alone_rows, "gpt": train, "every_gpu": all_gpus, "failures": failures}, indent=1))
    print(f"{len(failures)} check(s) failed: {failures}" if failures else "all checks passed", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
