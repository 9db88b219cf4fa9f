"""What the live timeline costs a cell whose ranks call collectives in a tight loop, in a real
distlab kernel through jupyter_client: a 4 KiB in-place allReduce on `-n 2` thread ranks, the
same cell with the timeline on (the default) and with `--timeline off`, alternating, a fresh
kernel for the whole run.

    .venv/bin/python bench/kernel_timeline_cost.py [--rounds 5] [--calls 5000] [--warmup 3000]

Each round runs the cell once per setting: --warmup untimed calls, then --calls timed calls;
the round's figure is the microseconds per call, the slowest rank's. Prints the median
[min, max] over the rounds for each setting and the ratio of the medians. Plain script: prints
numbers, asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test" / "kernel"))
from kernel_helpers import ensure_kernelspec_installed, execute, start_kernel, stop_kernel  # noqa: E402

CELL = """%%distributed -n 2 {flags}
const a = new Float32Array(1024);
for (let i = 0; i < {warmup}; i++) await dist.allReduce(a, {{ out: a }});
await dist.barrier();
const started = performance.now();
for (let i = 0; i < {calls}; i++) await dist.allReduce(a, {{ out: a }});
const mine = (performance.now() - started) / {calls} * 1000;
console.log("COST " + JSON.stringify(mine));"""


# Seconds between cells: the kernel sends the final timeline and collects after a cell's reply.
SETTLE_S = 2.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=3000)
    args = parser.parse_args()
    if args.rounds < 5:
        parser.error(f"--rounds must be at least 5 (a figure is the median of at least 5), got {args.rounds}")
    ensure_kernelspec_installed()
    km, kc = start_kernel()
    settings = {"timeline on (default)": "", "--timeline off": "--timeline off"}
    per_call: dict[str, list[float]] = {name: [] for name in settings}
    try:
        for _ in range(args.rounds):
            for name, flags in settings.items():
                out = execute(kc, CELL.format(flags=flags, calls=args.calls, warmup=args.warmup), timeout=600)
                if out.status != "ok":
                    raise RuntimeError(f"{name}: {out.error}")
                ranks = [json.loads(line.split("COST ", 1)[1]) for line in out.stdout.splitlines() if "COST " in line]
                per_call[name].append(max(ranks))
                # Let the kernel finish with this cell (its final timeline, collections) before the next is timed.
                time.sleep(SETTLE_S)
    finally:
        stop_kernel(km, kc)
    medians = {name: statistics.median(values) for name, values in per_call.items()}
    print(f"4 KiB allReduce(a, {{out: a}}) on 2 thread ranks, {args.rounds} rounds of {args.warmup} warm-up + {args.calls} timed calls per setting, alternating; us a call, median [min, max]")
    for name, values in per_call.items():
        print(f"  {name:24} {medians[name]:7.1f} [{min(values):.1f}, {max(values):.1f}]  rounds: {', '.join(f'{v:.1f}' for v in values)}")
    print(f"  on / off: {medians['timeline on (default)'] / medians['--timeline off']:.2f}")


if __name__ == "__main__":
    main()
