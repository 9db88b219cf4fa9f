"""64 MiB float32 allReduce on 2 thread ranks in real `%%distributed -n 2` cells of a
fresh distlab kernel, next to PyTorch gloo (2 processes, TCP loopback) in the same minutes.

    .venv/bin/python bench/kernel_allreduce.py [--cells 3] [--reps 7]

The same cell runs `--cells` times in one kernel; the first is the first cell of the kernel (its
ranks, its result pool and its registered memory start empty). Each cell times, in this order,
`--reps` calls of each form with a barrier before each: `dist.allReduce(a)` (a plain Float32Array,
the default call), `dist.allReduce(a, {out: a})` (in place) and `dist.allReduce(t)` (a tf.Tensor,
its result disposed). A repetition's time is the slowest rank's.

The kernel's very first call of each form (in the first cell, before its repetitions) is timed and
printed apart, as "first call": it is where a process gets fresh memory from the OS (the default
call's result blocks, the tensor's heap growing), whose page faults on this build machine's VM cost
25-120 ms per 64 MiB. gloo gets the same plan in `--cells` fresh process groups: a first call,
printed apart, then `--reps` calls with a barrier before each. Later cells get no call apart: a cell
run again must be fast from its first call. Prints, per cell and form, busbw (allReduce: bytes /
time x 2(n-1)/n = bytes / time for n = 2) median [min, max] and the ratio of the slowest
repetition's busbw to gloo's median (the figure "2x gloo in every repetition" is about).
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


def cell(reps: int, first_call: bool) -> str:
    """The cell; with `first_call`, each form runs one call more first (times[form][0])."""
    calls = reps + (1 if first_call else 0)
    return f"""%%distributed -n 2
const n = {BYTES // 4};
const a = new Float32Array(n).fill(dist.rank + 1);
const t = tf.fill([n], dist.rank + 1);
const times: Record<string, number[]> = {{}};
for (const form of {json.dumps(list(FORMS))}) {{
  times[form] = [];
  for (let r = 0; r < {calls}; r++) {{
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


def gloo_ms(calls: int) -> list[float]:
    """`calls` timed calls of a fresh gloo group, its first call first."""
    plan = [{"op": "allReduce", "bytes": BYTES, "warmup": 0, "calls": 1, "reps": calls}]
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
    parser.add_argument("--raw", action="store_true", help="also print each repetition's ms")
    plan = parser.parse_args()
    if plan.reps < 5:
        parser.error("--reps: at least 5 repetitions for a median")
    print(f"# kernel_allreduce  load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ensure_kernelspec_installed()
    km, kc = start_kernel()
    cells = []
    first_calls = {}
    try:
        for i in range(plan.cells):
            out = execute(kc, cell(plan.reps, first_call=i == 0), timeout=600)
            if out.status != "ok":
                raise SystemExit(f"cell failed: {out.error}")
            per_rank = out.results[0]["application/json"]
            slowest = {form: [max(r[form][k] for r in per_rank) for k in range(len(per_rank[0][form]))] for form in FORMS}
            if i == 0:
                first_calls = {form: ms.pop(0) for form, ms in slowest.items()}
            cells.append(slowest)
    finally:
        stop_kernel(km, kc)
    gloo = [gloo_ms(plan.reps + 1) for _ in range(plan.cells)]
    gloo_first = [g[0] for g in gloo]
    gloo_all = [m for g in gloo for m in g[1:]]
    gloo_median = statistics.median(BYTES / (m / 1000) / 1e9 for m in gloo_all)
    print(f"gloo (2 processes, tcp), {plan.cells} fresh groups x {plan.reps} after a first call: busbw GB/s {summary(gloo_all)}")
    if plan.raw:
        print(f"gloo ms after the first calls {', '.join(f'{m:.1f}' for m in gloo_all)}")
    print(f"first call: gloo's in a fresh group ms {', '.join(f'{m:.1f}' for m in gloo_first)} (median {statistics.median(gloo_first):.1f})")
    for form in FORMS:
        print(f"first call: the kernel's first {form:9s} {first_calls[form]:.1f} ms, x gloo's median first call {statistics.median(gloo_first) / first_calls[form]:.2f}")
    for i, c in enumerate(cells):
        for form in FORMS:
            slowest = BYTES / (max(c[form]) / 1000) / 1e9
            median = statistics.median(BYTES / (m / 1000) / 1e9 for m in c[form])
            if plan.raw:
                print(f"cell {i + 1}  {form:9s} ms {', '.join(f'{m:.1f}' for m in c[form])}")
            print(f"cell {i + 1}  {form:9s} busbw GB/s {summary(c[form])}  x gloo median {median / gloo_median:.2f}, slowest repetition {slowest / gloo_median:.2f}")
    print(f"# finished, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
