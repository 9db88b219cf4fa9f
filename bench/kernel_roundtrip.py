"""Round trip of a trivial cell, measured by bench/kernel.mjs (`npm run bench:kernel`),
which summarises what this script prints: distlab's plain cell and
`%%distributed -n 4` cell, each warm (the same source every time: after the
first, a hit in the kernel's compile cache) and cold (a new literal every time,
so every call type-checks and compiles), next to ipyparallel's `execute` on 4
local engines (warm: "pass"; cold: a new literal), all in one run.

    .venv/bin/python bench/kernel_roundtrip.py [--warmup 20] [--calls 20] [--reps 5] [--skip-ipyparallel]

Every figure gets the same plan: `warmup` untimed round trips, then `reps`
blocks of `calls` round trips. A round trip is from sending execute_request to
having the reply and the kernel's return to idle, through jupyter_client as
JupyterLab would see it; ipyparallel's is `view.execute(code, block=True)`,
which is what `%%px` does per cell. Prints one JSON line per figure:
{"figure", "ms": [milliseconds per round trip of each block]}, then one with
the start-up times.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test" / "kernel"))
from kernel_helpers import ensure_kernelspec_installed, execute, start_kernel, stop_kernel  # noqa: E402

WORKERS = 4
DISTRIBUTED = f"%%distributed -n {WORKERS}\n"
# A new literal for every cold call of the whole run: no source is ever seen twice.
fresh = itertools.count(1)


def time_blocks(call: Callable[[], None], plan: argparse.Namespace) -> list[float]:
    """Milliseconds per call of each of `plan.reps` blocks of `plan.calls` calls, after `plan.warmup` untimed calls."""
    for _ in range(plan.warmup):
        call()
    blocks = []
    for _ in range(plan.reps):
        started = time.perf_counter()
        for _ in range(plan.calls):
            call()
        blocks.append((time.perf_counter() - started) * 1000 / plan.calls)
    return blocks


def checked_execute(kc, code: str) -> None:
    outcome = execute(kc, code, timeout=120)
    if outcome.status != "ok":
        raise RuntimeError(f"cell failed during the benchmark: {code!r}: {outcome.error or outcome.reply['content']}")


def measure_distlab(plan: argparse.Namespace) -> dict[str, object]:
    ensure_kernelspec_installed()
    km, kc = start_kernel()
    try:
        started = time.perf_counter()
        checked_execute(kc, DISTRIBUTED + "0")  # the first one starts the group of ranks
        pool_start_ms = (time.perf_counter() - started) * 1000
        figures = {
            "distlab plain cell, warm": time_blocks(lambda: checked_execute(kc, "0"), plan),
            "distlab plain cell, cold": time_blocks(lambda: checked_execute(kc, str(next(fresh))), plan),
            f"distlab %%distributed -n {WORKERS}, warm": time_blocks(lambda: checked_execute(kc, DISTRIBUTED + "0"), plan),
            f"distlab %%distributed -n {WORKERS}, cold": time_blocks(lambda: checked_execute(kc, DISTRIBUTED + str(next(fresh))), plan),
        }
    finally:
        stop_kernel(km, kc)
    return {"figures": figures, "pool_start_ms": pool_start_ms}


def measure_ipyparallel(plan: argparse.Namespace) -> dict[str, object]:
    import ipyparallel

    started = time.perf_counter()
    cluster = ipyparallel.Cluster(n=WORKERS, log_level=40)  # 40: errors only
    client = cluster.start_and_connect_sync(activate=False)
    try:
        client.wait_for_engines(WORKERS, timeout=120)
        cluster_start_ms = (time.perf_counter() - started) * 1000
        view = client[:]
        figures = {
            f"ipyparallel {WORKERS} engines execute (%%px), warm": time_blocks(lambda: view.execute("pass", block=True), plan),
            f"ipyparallel {WORKERS} engines execute (%%px), cold": time_blocks(lambda: view.execute(str(next(fresh)), block=True), plan),
        }
    finally:
        client.close()
        cluster.stop_cluster_sync()
    return {"figures": figures, "cluster_start_ms": cluster_start_ms}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warmup", type=int, default=20, help="untimed round trips before each figure (default 20)")
    parser.add_argument("--calls", type=int, default=20, help="round trips per timed block (default 20)")
    parser.add_argument("--reps", type=int, default=5, help="timed blocks per figure, at least 5 (default 5)")
    parser.add_argument("--skip-ipyparallel", action="store_true", help="measure distlab only")
    plan = parser.parse_args()
    if plan.reps < 5:
        parser.error(f"--reps must be at least 5 (a figure is the median of at least 5 blocks), got {plan.reps}")
    if plan.calls < 1 or plan.warmup < 0:
        parser.error("--calls must be at least 1 and --warmup at least 0")

    ours = measure_distlab(plan)
    theirs = None if plan.skip_ipyparallel else measure_ipyparallel(plan)
    for result in (ours, theirs):
        for figure, ms in (result or {"figures": {}})["figures"].items():
            print(json.dumps({"figure": figure, "ms": ms}), flush=True)
    starts = {f"distlab: first %%distributed -n {WORKERS} to its result (group start)": ours["pool_start_ms"]}
    if theirs:
        starts[f"ipyparallel: cluster start to {WORKERS} engines connected"] = theirs["cluster_start_ms"]
    print(json.dumps({"starts_ms": starts, "plan": {"warmup": plan.warmup, "calls": plan.calls, "reps": plan.reps}}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
