"""64 MiB float32 allReduce on 2 thread ranks in real `%%distributed -n 2` cells of a
fresh distlab kernel, next to PyTorch gloo (2 processes, TCP loopback) in the same minutes.

    .venv/bin/python bench/kernel_allreduce.py [--cells 3] [--reps 7]

The same cell runs `--cells` times in one kernel; the first is the first cell of the kernel (its
ranks, its result pool and its registered memory start empty). Each cell times, in this order,
`--reps` calls of each form with a barrier before each: `dist.allReduce(a)` (a plain Float32Array,
the default call), `dist.allReduce(a, {out: a})` (in place) and `dist.allReduce(t)` (a tf.Tensor,
its result disposed). No untimed warm-up: the cell is what a user runs. A repetition's time is the
slowest rank's. gloo gets the same plan (no warm-up, `--reps` calls with a barrier before each) in
`--cells` fresh process groups. Prints, per cell and form, busbw (allReduce: bytes / time x
2(n-1)/n = bytes / time for n = 2) median [min, max] and the ratio of the slowest repetition's busbw
to gloo's median (the figure "2x gloo in every repetition" is about).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "test" / "kernel"))
from kernel_helpers import ensure_kernelspec_installed, execute, start_kernel, stop_kernel  # noqa: E402

BYTES = 64 * 1024 * 1024
FORMS = ("default", "in-place", "tensor")


def cell(reps: int) -> str:
    return f"""%%distributed -n 2
const n = {BYTES // 4};
const a = new Float32Array(n).fill(dist.rank + 1);
const t = tf.fill([n], dist.rank + 1);
const times: Record<string, number[]> = {{}};
for (const form of {json.dumps(list(FORMS))}) {{
  times[form] = [];
  for (let r = 0; r < {reps}; r++) {{
    await dist.barrier();
    const t0 = performance.now();
    if (form === "default") await dist.allReduce(a);
    else if (form === "in-place") await dist.allReduce(a, {{ out: a }});
    else (await dist.allReduce(t)).dispose();
    times[form].push(performance.now() - t0);
  }}
}}
t.dispose();
times"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gloo_ms(reps: int) -> list[float]:
    plan = [{"op": "allReduce", "bytes": BYTES, "warmup": 0, "calls": 1, "reps": reps}]
    spec = json.dumps({"size": 2, "port": free_port(), "plan": plan})
    out = subprocess.run(["/usr/bin/python3", str(HERE / "collectives_gloo.py"), spec], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["ms"]


def summary(ms: list[float]) -> str:
    gbps = sorted(BYTES / (m / 1000) / 1e9 for m in ms)
    return f"{statistics.median(gbps):.2f} [{gbps[0]:.2f}, {gbps[-1]:.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cells", type=int, default=3)
    parser.add_argument("--reps", type=int, default=7)
    plan = parser.parse_args()
    if plan.reps < 5:
        parser.error("--reps: at least 5 repetitions for a median")
    print(f"# kernel_allreduce  load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ensure_kernelspec_installed()
    km, kc = start_kernel()
    cells = []
    try:
        for _ in range(plan.cells):
            out = execute(kc, cell(plan.reps), timeout=600)
            if out.status != "ok":
                raise SystemExit(f"cell failed: {out.error}")
            per_rank = out.results[0]["application/json"]
            cells.append({form: [max(r[form][i] for r in per_rank) for i in range(plan.reps)] for form in FORMS})
    finally:
        stop_kernel(km, kc)
    gloo = [gloo_ms(plan.reps) for _ in range(plan.cells)]
    gloo_all = [m for g in gloo for m in g]
    gloo_median = statistics.median(BYTES / (m / 1000) / 1e9 for m in gloo_all)
    print(f"gloo (2 processes, tcp), {plan.cells} fresh groups x {plan.reps}: busbw GB/s {summary(gloo_all)}")
    for i, c in enumerate(cells):
        for form in FORMS:
            slowest = BYTES / (max(c[form]) / 1000) / 1e9
            median = statistics.median(BYTES / (m / 1000) / 1e9 for m in c[form])
            print(f"cell {i + 1}  {form:9s} busbw GB/s {summary(c[form])}  x gloo median {median / gloo_median:.2f}, slowest repetition {slowest / gloo_median:.2f}")
    print(f"# finished, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
