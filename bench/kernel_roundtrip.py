"""Round trip of a trivial cell: distlab (normal and `%%distributed -n 4`) next
to ipyparallel's `execute` on 4 local engines, measured in the same run.

    npm run bench:kernel -- [--runs 200] [--warmup 20] [--skip-ipyparallel]

A round trip is from sending execute_request to having the reply and the
kernel's return to idle, through jupyter_client as JupyterLab would see it.
ipyparallel's figure is `view.execute("pass", block=True)` on 4 engines,
which is what `%%px` does per cell. Target: distlab's distributed round trip at
most 0.25 of ipyparallel's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test" / "kernel"))
from kernel_helpers import ensure_kernelspec_installed, execute, start_kernel, stop_kernel  # noqa: E402

TARGET_RATIO = 0.25
WORKERS = 4
DISTRIBUTED_CELL = f"%%distributed -n {WORKERS}\n0"


def time_calls(call: Callable[[], None], runs: int, warmup: int) -> list[float]:
    """Milliseconds per call, after `warmup` untimed calls."""
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def checked_execute(kc, code: str) -> None:
    outcome = execute(kc, code, timeout=120)
    if outcome.status != "ok":
        raise RuntimeError(f"cell failed during the benchmark: {code!r}: {outcome.error or outcome.reply['content']}")


def measure_distlab(runs: int, warmup: int) -> dict[str, object]:
    ensure_kernelspec_installed()
    km, kc = start_kernel()
    try:
        started = time.perf_counter()
        checked_execute(kc, DISTRIBUTED_CELL)  # the first one starts the group of ranks
        pool_start_ms = (time.perf_counter() - started) * 1000
        normal = time_calls(lambda: checked_execute(kc, "0"), runs, warmup)
        distributed = time_calls(lambda: checked_execute(kc, DISTRIBUTED_CELL), runs, warmup)
    finally:
        stop_kernel(km, kc)
    return {"normal": normal, "distributed": distributed, "pool_start_ms": pool_start_ms}


def measure_ipyparallel(runs: int, warmup: int) -> dict[str, object]:
    import ipyparallel

    started = time.perf_counter()
    cluster = ipyparallel.Cluster(n=WORKERS, log_level=40)  # 40: errors only
    client = cluster.start_and_connect_sync(activate=False)
    try:
        client.wait_for_engines(WORKERS, timeout=120)
        cluster_start_ms = (time.perf_counter() - started) * 1000
        view = client[:]
        samples = time_calls(lambda: view.execute("pass", block=True), runs, warmup)
    finally:
        client.close()
        cluster.stop_cluster_sync()
    return {"execute": samples, "cluster_start_ms": cluster_start_ms}


def row(label: str, samples: list[float]) -> str:
    return f"| {label:<42} | {statistics.median(samples):>10.2f} | {percentile(samples, 0.9):>10.2f} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200, help="timed round trips per figure (default 200)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed round trips first (default 20)")
    parser.add_argument("--skip-ipyparallel", action="store_true", help="measure distlab only")
    args = parser.parse_args()
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be at least 1 and --warmup at least 0")

    ours = measure_distlab(args.runs, args.warmup)
    theirs = None if args.skip_ipyparallel else measure_ipyparallel(args.runs, args.warmup)

    print(f"\nkernel round trip, {args.runs} runs after {args.warmup} warm-up (milliseconds)")
    print(f"| {'what':<42} | {'median':>10} | {'p90':>10} |")
    print(f"|{'-' * 44}|{'-' * 12}|{'-' * 12}|")
    print(row("distlab: trivial cell", ours["normal"]))
    print(row(f"distlab: %%distributed -n {WORKERS} trivial cell", ours["distributed"]))
    if theirs:
        print(row("ipyparallel 4 engines: execute (%%px)", theirs["execute"]))
    print(f"\ndistlab: first %%distributed -n {WORKERS} to its result (group start): {ours['pool_start_ms']:.0f} ms")
    if theirs:
        print(f"ipyparallel: cluster start to {WORKERS} engines connected: {theirs['cluster_start_ms']:.0f} ms")
        ratio = statistics.median(ours["distributed"]) / statistics.median(theirs["execute"])
        verdict = "meets" if ratio <= TARGET_RATIO else "misses"
        print(f"ratio distlab distributed / ipyparallel execute (medians): {ratio:.3f} (target <= {TARGET_RATIO}: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
