"""Group start, measured by bench/kernel.mjs (`npm run bench:kernel`) next to the round trips:
in a fresh distlab kernel, the first `%%distributed -n 4` cell to its result, then a shape
change (`-n 2`: the 4 ranks stopped, 2 started) to its result; next to ipyparallel's cluster
start (`ipcluster start -n 4` through ipyparallel.Cluster, until all 4 engines have answered an
execute), then a cluster of 2 started the same way (ipyparallel has no resize: a new cluster).

    .venv/bin/python bench/kernel_group_start.py [--kernels 5] [--settle 120] [--skip-ipyparallel]

Each figure is one sample per fresh kernel (or fresh cluster), `--kernels` of them. distlab's
first cell is sent once the kernel has settled: the CPU time of its process (all its threads,
from /proc) and of its child processes grew by less than 20 ms in 2.5 s, as after the time a
user takes to open a notebook, in which the kernel creates its TypeScript programs
(repl/compiler-threads.ts) and, the first time in a folder, builds their snapshots
(repl/compiler-snapshot.ts); at most `--settle` seconds. The figure "sent at once" sends it as
soon as the kernel answers kernel_info, so that it also waits for whatever of that work is
left: with the compiler snapshots the first settled kernel built, and, in a kernel started
with DISTLAB_COMPILER_SNAPSHOT=0, without them, as the first kernel in a folder has none. Every
cell goes through jupyter_client as JupyterLab would send it: from execute_request to the reply
and the return to idle. Besides the wall time, the kernel's CPU time over the cell (its rank
threads and its compiler processes included): on a loaded machine the wall time grows with the
load, the CPU time much less.
Prints one JSON line per figure: {"figure", "ms": [milliseconds of each fresh kernel]}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test" / "kernel"))
from kernel_helpers import ensure_kernelspec_installed, execute, start_kernel, stop_kernel  # noqa: E402

FIRST = 4
CHANGED = 2


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# The kernel counts as settled when its CPU time grows by less than this in SETTLED_WINDOW_S; the
# window is longer than the gap between the two chains' programs, created one after the other (repl/compiler-threads.ts).
SETTLED_CPU_MS = 20
SETTLED_WINDOW_S = 2.5


def process_cpu_ms(pid: int) -> float:
    """User + system CPU time of process `pid`, all its threads, milliseconds (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) * 1000 / CLOCK_TICKS  # utime, stime: fields 14 and 15 of stat


def descendants(pid: int) -> list[int]:
    """The processes below `pid` now (the compiler processes started from snapshots, a snapshot build)."""
    found: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            for child in children.read_text().split():
                found += [int(child), *descendants(int(child))]
        except FileNotFoundError:
            pass
    return found


def cpu_ms(pid: int) -> float:
    """CPU time of the kernel (all its threads, rank threads included) and of its live child
    processes (the chains' compilers where they run from snapshots), milliseconds."""
    return process_cpu_ms(pid) + sum(process_cpu_ms(child) for child in descendants(pid))


def settle(pid: int, most_s: float) -> None:
    """Waits until the kernel's CPU time stops growing (its warm-up done), at most `most_s` seconds."""
    deadline = time.monotonic() + most_s
    last = cpu_ms(pid)
    while time.monotonic() < deadline:
        time.sleep(SETTLED_WINDOW_S)
        now = cpu_ms(pid)
        if now - last < SETTLED_CPU_MS:
            return
        last = now


def timed_cell(kc, pid: int, code: str) -> tuple[float, float]:
    """(wall, kernel CPU) milliseconds of one cell."""
    cpu_before = cpu_ms(pid)
    started = time.perf_counter()
    outcome = execute(kc, code, timeout=120)
    elapsed = (time.perf_counter() - started) * 1000
    if outcome.status != "ok":
        raise RuntimeError(f"cell failed during the benchmark: {code!r}: {outcome.error or outcome.reply['content']}")
    return elapsed, cpu_ms(pid) - cpu_before


def distlab_group_starts(settle_s: float, snapshots: bool = True) -> list[tuple[float, float]]:
    """[(wall, CPU) of the first -n 4 cell, (wall, CPU) of the -n 2 cell after it] in one fresh kernel, milliseconds.
    `snapshots` False: the kernel neither uses nor builds compiler snapshots, as the first kernel in a folder."""
    km, kc = start_kernel(env=None if snapshots else {**os.environ, "DISTLAB_COMPILER_SNAPSHOT": "0"})
    try:
        pid = km.provisioner.process.pid
        if settle_s > 0:
            settle(pid, settle_s)
        return [timed_cell(kc, pid, f"%%distributed -n {FIRST}\n0"), timed_cell(kc, pid, f"%%distributed -n {CHANGED}\n0")]
    finally:
        stop_kernel(km, kc)


def ipyparallel_start(engines: int) -> float:
    """Milliseconds from starting a cluster of `engines` to all of them having answered an execute."""
    import ipyparallel

    started = time.perf_counter()
    cluster = ipyparallel.Cluster(n=engines, log_level=40)  # 40: errors only
    client = cluster.start_and_connect_sync(activate=False)
    try:
        client.wait_for_engines(engines, timeout=120)
        client[:].execute("0", block=True)
        return (time.perf_counter() - started) * 1000
    finally:
        client.close()
        cluster.stop_cluster_sync()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kernels", type=int, default=5, help="fresh kernels (and fresh clusters) per figure, at least 5 (default 5)")
    parser.add_argument("--settle", type=float, default=120.0, help="at most this many seconds for the kernel to settle before the first cell (default 120)")
    parser.add_argument("--skip-ipyparallel", action="store_true", help="measure distlab only")
    plan = parser.parse_args()
    if plan.kernels < 5:
        parser.error(f"--kernels must be at least 5 (a figure is the median of at least 5 fresh kernels), got {plan.kernels}")
    if plan.settle <= 0:
        parser.error(f"--settle must be more than 0 seconds, got {plan.settle}")

    ensure_kernelspec_installed()
    first = f"distlab first %%distributed -n {FIRST} (threads), settled kernel"
    changed = f"distlab then -n {CHANGED} (shape change)"
    at_once = f"distlab first %%distributed -n {FIRST}, sent at once"
    first_in_folder = f"distlab first %%distributed -n {FIRST}, sent at once, no compiler snapshot (first kernel in a folder)"
    figures: dict[str, list[float]] = {}
    for _ in range(plan.kernels):
        settled = distlab_group_starts(plan.settle)
        unsettled = distlab_group_starts(0)
        no_snapshot = distlab_group_starts(0, snapshots=False)
        for name, (wall, cpu) in ((first, settled[0]), (changed, settled[1]), (at_once, unsettled[0]), (first_in_folder, no_snapshot[0])):
            figures.setdefault(name, []).append(wall)
            figures.setdefault(f"{name}: kernel CPU", []).append(cpu)
    if not plan.skip_ipyparallel:
        for engines in (FIRST, CHANGED):
            figures[f"ipyparallel cluster start -n {engines} to all engines answering"] = [ipyparallel_start(engines) for _ in range(plan.kernels)]
    for figure, ms in figures.items():
        print(json.dumps({"figure": figure, "ms": ms}), flush=True)
    print(json.dumps({"group_start_plan": {"kernels": plan.kernels, "settle_s": plan.settle}}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
