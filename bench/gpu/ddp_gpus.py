"""Data parallelism over the GPUs of one machine, through the real kernel, next to PyTorch DDP
with NCCL on the same GPUs in the same run.

On a GPU machine (no network needed), from the repo root with .device/ prepared:
    bash test/gpu/kernel-e2e.sh bench/gpu/ddp_gpus.py

For each rank count n (DDP_RANKS, default 1, 2, 4, 8 up to the machine's GPUs; DDP_SHARE=1 lets
n exceed them, ranks then take turns on a GPU), a fresh kernel runs one `%%distributed -n n
--backend gpus` cell: GPT-2 small's shapes (distlab/models createGpt2Small, 124M parameters, at
context DDP_CONTEXT, default 256) trained by DistributedDataParallel (buckets of 1 then 25 MiB,
SGD) on DDP_BATCH sequences a rank (default 8), DDP_WARMUP untimed steps (2), then DDP_STEPS
timed ones (5), a barrier before each. A step's time is the slowest rank's; samples/s is
n * batch / the median step. From the cell's timeline it sums, per step and rank, the gradient
path's three parts: `readback stage i` (waits for the GPU and the copy to the host), `bucket i
allReduce` (the host allReduce, on the rank's comm thread) and `upload` (the averaged gradients
back to the GPU). Then, in the same group, the host-staged allReduce alone: DDP_ALLREDUCE_MIB
(default 64) of registered memory, in place, 2 untimed and 5 timed calls, busbw (nccl-tests:
bytes / time x 2(n-1)/n).

PyTorch's side (bench/gpu/ddp_torch.py, n processes, NCCL): the same model, batch and steps, and
NCCL's busbw for the same allReduce size (NCCL runs one rank a GPU: with DDP_SHARE its rows for
more ranks than GPUs fail, and say so). Prints one JSON line per measurement and a table; writes
$OUT/ddp-gpus.json when OUT is set.

A smoke test of the cells without a GPU: DDP_BACKEND=processes DDP_SHARE=1 DDP_TORCH=0
DDP_GPT2_OPTIONS='{"nLayer":1,"nEmbd":32,"nHead":2,"vocabSize":300}' .venv/bin/python bench/gpu/ddp_gpus.py
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "test" / "kernel"))
from kernel_helpers import ensure_kernelspec_installed, execute, start_kernel, stop_kernel  # noqa: E402

CONTEXT = int(os.environ.get("DDP_CONTEXT", "256"))
BATCH = int(os.environ.get("DDP_BATCH", "8"))
WARMUP = int(os.environ.get("DDP_WARMUP", "2"))
STEPS = int(os.environ.get("DDP_STEPS", "5"))
ALLREDUCE_MIB = int(os.environ.get("DDP_ALLREDUCE_MIB", "64"))
BACKEND = os.environ.get("DDP_BACKEND", "gpus")
# overrides of the model's options (JSON), for a smoke test at a small size; the PyTorch side is GPT-2 small's shapes
GPT2_OPTIONS = {"blockSize": CONTEXT, "seed": 0, **json.loads(os.environ.get("DDP_GPT2_OPTIONS", "{}"))}
VOCABULARY = GPT2_OPTIONS.get("vocabSize", 50304)


def gpu_count() -> int:
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    except FileNotFoundError:
        return 0
    return len([line for line in listed.stdout.splitlines() if line.startswith("GPU ")])


def rank_counts(gpus: int) -> list[int]:
    wanted = [int(n) for n in os.environ.get("DDP_RANKS", "1,2,4,8").split(",")]
    share = os.environ.get("DDP_SHARE") == "1"
    return [n for n in wanted if n <= gpus or share]


def lines_of(outcome, tag: str) -> list[dict]:
    if outcome.error:
        raise RuntimeError(f"{outcome.error['ename']}: {outcome.error['evalue']}\n{outcome.stdout[-3000:]}{outcome.stderr[-3000:]}")
    return [json.loads(found) for found in re.findall(rf"{tag} (\{{.*\}})", outcome.stdout)]


def train_cell(n: int) -> str:
    return f"""%%distributed -n {n} --backend {BACKEND} --timeout 900
import {{ DistributedDataParallel }} from "distlab/techniques";
import {{ createGpt2Small }} from "distlab/models";
import {{ tokenBatches }} from "distlab/data";
const model = createGpt2Small({json.dumps(GPT2_OPTIONS)});
const ddp = new DistributedDataParallel(model, dist, {{ lr: 1e-4 }});
const corpus = new Int32Array(1 << 20).map((_, i) => (i * 2654435761 + dist.rank) % {VOCABULARY});
const next = tokenBatches(corpus, {BATCH}, {CONTEXT}, 11 + dist.rank);
const stepMs: number[] = [];
const losses: number[] = [];
for (let step = 0; step < {WARMUP + STEPS}; step++) {{
  const batch = next();
  await dist.barrier();
  const started = performance.now();
  const {{ loss }} = await ddp.step(batch);
  if (step >= {WARMUP}) stepMs.push(performance.now() - started);
  losses.push(loss);
  tf.dispose([batch.x, batch.y]);
}}
console.log("DDP " + JSON.stringify({{ rank: dist.rank, device: String(dist.device), stepMs, losses, buckets: ddp.buckets.length }}));
"""


def allreduce_cell(n: int) -> str:
    elements = ALLREDUCE_MIB * 1024 * 1024 // 4
    return f"""%%distributed -n {n} --backend {BACKEND} --timeout 900
const buffer = dist.alloc(Float32Array, {elements}).fill(1);
const callMs: number[] = [];
for (let call = 0; call < 7; call++) {{
  await dist.barrier();
  const started = performance.now();
  await dist.allReduce(buffer, {{ out: buffer }});
  if (call >= 2) callMs.push(performance.now() - started);
}}
dist.free(buffer);
console.log("ALLREDUCE " + JSON.stringify({{ rank: dist.rank, callMs }}));
"""


# Milliseconds a step of each part of the gradient path, per rank: the spans' sums over the timed
# steps divided by their number. A rank's timed steps begin at its (WARMUP+1)-th forward+backward span.
TIMELINE_CELL = f"""
const parts: Record<number, Record<string, number>> = {{}};
const timedFrom: Record<number, number> = {{}};
for (const rank of new Set(ddpTimeline.spans.map((s) => s.rank))) {{
  const steps = ddpTimeline.spans.filter((s) => s.rank === rank && s.name === "forward+backward").map((s) => s.ts).sort((a, b) => a - b);
  if (steps.length !== {WARMUP + STEPS}) throw new Error(`rank ${{rank}}: ${{steps.length}} forward+backward spans on the timeline, expected {WARMUP + STEPS}`);
  timedFrom[rank] = steps[{WARMUP}];
}}
for (const s of ddpTimeline.spans) {{
  const part = s.name.startsWith("readback stage") ? "readbackMs" : s.name.startsWith("bucket ") ? "allReduceMs" : s.name === "upload" ? "uploadMs" : s.name === "forward+backward" ? "forwardBackwardMs" : undefined;
  if (!part || s.ts < timedFrom[s.rank]) continue;
  const row = (parts[s.rank] ??= {{}});
  row[part] = (row[part] ?? 0) + s.dur / 1000 / {STEPS};
}}
console.log("PARTS " + JSON.stringify(parts));
"""


def ours(n: int) -> dict:
    km, kc = start_kernel()
    try:
        ranks = lines_of(execute(kc, train_cell(n), timeout=1800), "DDP")
        execute(kc, "%dist timeline --into ddpTimeline", timeout=120)
        parts = lines_of(execute(kc, TIMELINE_CELL, timeout=120), "PARTS")[0]
        calls = lines_of(execute(kc, allreduce_cell(n), timeout=900), "ALLREDUCE") if n > 1 else []
    finally:
        stop_kernel(km, kc)
    step_ms = [max(rank["stepMs"][i] for rank in ranks) for i in range(STEPS)]
    median = statistics.median(step_ms)
    result = {
        "who": "distlab", "ranks": n, "devices": sorted({rank["device"] for rank in ranks}),
        "stepMs": {"median": round(median, 1), "min": round(min(step_ms), 1), "max": round(max(step_ms), 1)},
        "samplesPerS": round(n * BATCH / (median / 1000), 2), "buckets": ranks[0]["buckets"],
        "lossFirst": ranks[0]["losses"][0], "lossLast": ranks[0]["losses"][-1],
        "perStepMs": {rank: {part: round(ms, 1) for part, ms in values.items()} for rank, values in parts.items()},
    }
    if calls:
        call_ms = [max(rank["callMs"][i] for rank in calls) for i in range(5)]
        result["allReduceBusbwGBs"] = round(ALLREDUCE_MIB * 2**20 / (statistics.median(call_ms) / 1000) * 2 * (n - 1) / n / 1e9, 2)
    return result


def theirs(n: int) -> dict:
    command = [sys.executable, str(HERE / "ddp_torch.py"), "--ranks", str(n), "--context", str(CONTEXT), "--batch", str(BATCH),
               "--warmup", str(WARMUP), "--steps", str(STEPS), "--allreduce-mib", str(ALLREDUCE_MIB)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    found = re.findall(r"^(\{.*\})$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or not found:
        return {"who": "torch", "ranks": n, "error": (done.stderr or done.stdout)[-2000:]}
    return json.loads(found[-1])


def main() -> int:
    ensure_kernelspec_installed()
    gpus = gpu_count()
    print(json.dumps({"gpus": gpus, "context": CONTEXT, "batchPerRank": BATCH, "warmup": WARMUP, "steps": STEPS}), flush=True)
    results = []
    for n in rank_counts(gpus):
        for measure in (ours, theirs) if os.environ.get("DDP_TORCH") != "0" else (ours,):
            try:
                result = measure(n)
            except Exception as error:  # one failed row must not lose the others
                result = {"who": measure.__name__, "ranks": n, "error": str(error)[-2000:]}
            print(json.dumps(result), flush=True)
            results.append(result)
            if os.environ.get("OUT"):
                Path(os.environ["OUT"], "ddp-gpus.json").write_text(json.dumps(results, indent=1))
    base = {who: next((r["samplesPerS"] for r in results if r["who"] == who and r["ranks"] == 1 and "samplesPerS" in r), None) for who in ("distlab", "torch")}
    print(f"\n{'ranks':>5} {'who':>8} {'step ms median [min, max]':>28} {'samples/s':>10} {'efficiency':>10} {'x torch':>8} {'allReduce GB/s':>15}")
    for r in results:
        if "samplesPerS" not in r:
            print(f"{r['ranks']:>5} {r['who']:>8} error: {r['error'].splitlines()[-1] if r['error'] else ''}")
            continue
        torch_same = next((t["samplesPerS"] for t in results if t["who"] == "torch" and t["ranks"] == r["ranks"] and "samplesPerS" in t), None)
        efficiency = r["samplesPerS"] / (r["ranks"] * base[r["who"]]) if base[r["who"]] else float("nan")
        versus = r["samplesPerS"] / torch_same if torch_same and r["who"] == "distlab" else float("nan")
        step = r["stepMs"]
        print(f"{r['ranks']:>5} {r['who']:>8} {step['median']:>10} [{step['min']}, {step['max']}]".ljust(44)
              + f" {r['samplesPerS']:>10} {efficiency:>10.2f} {versus:>8.2f} {r.get('allReduceBusbwGBs', '-'):>15}")
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
