"""What the communication checks cost, measured by bench/checks-cost.mjs (`npm run bench:checks-cost`),
which builds the checkouts and summarises what this script prints.

The checks are the descriptor agreement of every collective (op, root, dtype, length, tensor
shape, cell), the agreement frames of one-way collectives (broadcast, reduce, gather, scatter),
and the cell epochs on every frame. Each build named on the command line gets a kernel of its
own; all kernels run side by side and take turns, so load that comes and goes falls on every
build alike:

    .venv/bin/python bench/checks_cost.py --build before=/tmp/x --build after=. [--rounds 31]

For each shape (threads, shared memory, on 4 and on 2 ranks; processes, TCP between rank
processes, on 4) and each of `rounds` rounds, every build (in an order that alternates round to
round) measures:
  - the round trip of a trivial `%%distributed -n N` cell, seen from jupyter_client: ms per
    cell over a block of `cells` cells;
  - 4 KiB (1024 x float32) allReduce and broadcast latency inside a `%%distributed -n N` cell:
    each of `calls` back-to-back calls (after `warmup` untimed ones) is timed on its own, and the
    figure is the median call in microseconds, on the slowest rank (the largest of the ranks'
    medians: a collective is done when its last rank is). The median, not the block's mean: four
    ranks share 2 cores here, and a block's mean swung 3-7x between rounds of one build with
    the scheduler's occasional long preemptions, which have nothing to do with the checks.
Prints one JSON line per (figure, build) with one figure per round: {"figure", "build", "values"}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test" / "kernel"))
from jupyter_client import BlockingKernelClient, KernelManager  # noqa: E402
from kernel_helpers import execute  # noqa: E402

# (backend, ranks). The figures are 4 ranks; 4 rank threads on 2 cores put each call's
# latency at the scheduler's mercy (the median call moved 100-300 us between rounds, and the
# checks commit alone read 0.98-1.14 of "before" across runs), so 2 thread ranks, one a core,
# are measured too: there the per-call cost of the checks is what moves the figure.
SHAPES = [("threads", 4), ("processes", 4), ("threads", 2)]


def install_kernelspecs(builds: dict[str, Path], into: Path) -> None:
    """One kernelspec per build (`distlab-bench-NAME`), made by that build's own `distlab install`."""
    for name, checkout in builds.items():
        cli = checkout / "kernel" / "dist" / "cli.js"
        if not cli.exists():
            raise SystemExit(f"--build {name}={checkout}: {cli} does not exist (build it with `tsc -b kernel` there)")
        prefix = into / f"prefix-{name}"
        done = subprocess.run(["node", str(cli), "install", "--prefix", str(prefix)], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise SystemExit(f"--build {name}: `distlab install` failed:\n{done.stdout}{done.stderr}")
        spec = prefix / "share" / "jupyter" / "kernels" / "distlab"
        shutil.copytree(spec, into / "kernels" / f"distlab-bench-{name}")


def checked(kc: BlockingKernelClient, build: str, code: str):
    outcome = execute(kc, code, timeout=300)
    if outcome.status != "ok":
        raise RuntimeError(f"build {build}: cell failed during the benchmark: {code!r}: {outcome.error or outcome.reply['content']}")
    return outcome


def collective_cell(backend: str, ranks: int, op: str, warmup: int, calls: int) -> str:
    call = "dist.allReduce(x)" if op == "allReduce" else "dist.broadcast(x, 0)"
    return (
        f"%%distributed -n {ranks} --backend {backend}\n"
        "const x = new Float32Array(1024);\n"
        f"for (let i = 0; i < {warmup}; i++) await {call};\n"
        f"const took = new Float64Array({calls});\n"
        f"for (let i = 0; i < {calls}; i++) {{ const t0 = performance.now(); await {call}; took[i] = performance.now() - t0; }}\n"
        "took.sort();\n"
        f"took[{calls} >> 1] * 1000"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", action="append", required=True, help="NAME=CHECKOUT, a built checkout (at least two)")
    # 31: a round's median call on 4 threads sharing 2 cores moves 100-300 us with the scheduler, and at 7-11
    # rounds the ratio of two builds' medians swung 0.99-1.23 between runs of one build pair
    parser.add_argument("--rounds", type=int, default=31, help="rounds per backend, at least 5 (default 31)")
    parser.add_argument("--cells", type=int, default=20, help="trivial cells per round trip block (default 20)")
    parser.add_argument("--calls", type=int, default=500, help="timed collective calls per block (default 500)")
    parser.add_argument("--warmup", type=int, default=100, help="untimed collective calls before each block (default 100)")
    plan = parser.parse_args()
    if plan.rounds < 5:
        parser.error(f"--rounds must be at least 5 (a figure is the median of at least 5 rounds), got {plan.rounds}")
    builds: dict[str, Path] = {}
    for item in plan.build:
        name, sep, where = item.partition("=")
        if not sep or not name or not where:
            parser.error(f"--build takes NAME=CHECKOUT, got {item!r}")
        if name in builds:
            parser.error(f"--build {name} given twice")
        builds[name] = Path(where).resolve()
    if len(builds) < 2:
        parser.error("give at least two --build NAME=CHECKOUT to compare")

    with tempfile.TemporaryDirectory(prefix="distlab-checks-cost-") as tmp:
        install_kernelspecs(builds, Path(tmp))
        os.environ["JUPYTER_PATH"] = tmp
        kernels: dict[str, tuple[KernelManager, BlockingKernelClient]] = {}
        try:
            for name in builds:
                km = KernelManager(kernel_name=f"distlab-bench-{name}")
                km.start_kernel()
                kc = km.client()
                kc.start_channels()
                kc.wait_for_ready(timeout=120)
                kernels[name] = (km, kc)
            names = list(builds)
            for backend, ranks in SHAPES:
                trivial = f"%%distributed -n {ranks} --backend {backend}\n0"
                # the 4-rank figures keep their names; other shapes name their rank count
                shape = backend if ranks == 4 else f"{backend} -n {ranks}"
                for name in names:
                    checked(kernels[name][1], name, trivial)  # starts the group
                    checked(kernels[name][1], name, collective_cell(backend, ranks, "allReduce", plan.warmup, plan.calls))
                values: dict[tuple[str, str], list[float]] = {}
                for round_ in range(plan.rounds):
                    order = names if round_ % 2 == 0 else names[::-1]
                    for name in order:
                        kc = kernels[name][1]
                        started = time.perf_counter()
                        for _ in range(plan.cells):
                            checked(kc, name, trivial)
                        values.setdefault((f"%%distributed -n {ranks} round trip, {backend} (ms)", name), []).append(
                            (time.perf_counter() - started) * 1000 / plan.cells
                        )
                        for op in ("allReduce", "broadcast"):
                            out = checked(kc, name, collective_cell(backend, ranks, op, plan.warmup, plan.calls))
                            per_rank = out.results[0]["application/json"]
                            values.setdefault((f"4 KiB {op} latency, {shape} (us)", name), []).append(max(per_rank))
                for (figure, name), vs in values.items():
                    print(json.dumps({"figure": figure, "build": name, "values": vs}), flush=True)
        finally:
            for km, kc in kernels.values():
                kc.stop_channels()
                km.shutdown_kernel(now=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
