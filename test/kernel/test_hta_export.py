"""The per-rank export as Holistic Trace Analysis reads it, against a real kernel.

A 4-rank cell trains for ten steps marked with `dist.step`; `%dist timeline
--export` writes the trace and prints, per rank, what HTA should report. HTA
(PyPI's HolisticTraceAnalysis, installed by requirements-dev.txt) then runs its
temporal breakdown, comm/compute overlap and idle-time breakdown on the
folder, in a process of its own, and its figures must agree with distlab's
within 2 percentage points.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from conftest import execute

# Ten steps: a busy forward; an allReduce of 1 MiB on the rank's communication thread
# (its `comm` stream) while the rank computes a second busy span, so the two overlap;
# an allReduce awaited on the main stream (rank 3 computes longer, so the others wait in
# it); and an optimizer span.
TRAIN_CELL = """%%distributed -n 4
const grad = new Float32Array(1 << 18).fill(dist.rank);
const busy = (ms: number) => { const end = performance.now() + ms; let acc = 0; while (performance.now() < end) acc += Math.sqrt(acc + 1); return acc; };
await dist.commThread!.ready();
for (let step = 0; step < 10; step++) {
  await dist.step(step, async () => {
    dist.span("forward", () => busy(dist.rank === 3 ? 30 : 20));
    const inFlight = dist.commThread!.allReduce(grad.slice(), { name: "bucket" });
    dist.span("backward", () => busy(15));
    await inFlight;
    await dist.allReduce(grad);
    dist.span("optimizer", () => busy(5));
  });
}
dist.rank"""

# Runs in a child: HTA logs to stderr and starts worker processes of its own.
HTA_SCRIPT = r"""
import json, sys, warnings
warnings.filterwarnings("ignore")
from hta.trace_analysis import TraceAnalysis
t = TraceAnalysis(trace_dir=sys.argv[1])
temporal = t.get_temporal_breakdown(visualize=False)
overlap = t.get_comm_comp_overlap(visualize=False)
idle, _ = t.get_idle_time_breakdown(visualize=False)
iterations = {int(r): sorted(int(i) for i in df["iteration"].unique() if i >= 0) for r, df in t.t.traces.items()}
print(json.dumps({
    "temporal": temporal.to_dict(orient="records"),
    "overlap": overlap.to_dict(orient="records"),
    "idle_categories": sorted(set(idle["idle_category"])),
    "iterations": iterations,
}))
"""

ROW = re.compile(r"^\s*(\d+)\s+([\d.]+)%\s+([\d.]+)%\s+([\d.]+)%\s+([\d.]+)%\s*$")


def test_hta_reads_four_ranks_and_steps_and_agrees_with_distlab(module_kernel, tmp_path: Path):
    _, kc = module_kernel
    out = execute(kc, TRAIN_CELL, timeout=180)
    assert out.status == "ok", out.error
    exported = execute(kc, f"%dist timeline --export {tmp_path / 'run.json'}", timeout=60)
    assert exported.status == "ok", exported.error
    assert "steps 0..9" in exported.stdout, exported.stdout
    expected = {}
    for line in exported.stdout.splitlines():
        m = ROW.match(line)
        if m:
            rank, compute, non_compute, idle, overlap = int(m[1]), *map(float, m.groups()[1:])
            expected[rank] = {"compute": compute, "non_compute": non_compute, "idle": idle, "overlap": overlap}
    assert sorted(expected) == [0, 1, 2, 3], exported.stdout

    run = subprocess.run([sys.executable, "-c", HTA_SCRIPT, str(tmp_path / "run.hta")], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    assert "ProfilerStep not found" not in run.stderr
    assert "default to rank = 0" not in run.stderr
    hta = json.loads(run.stdout.strip().splitlines()[-1])
    temporal = {row["rank"]: row for row in hta["temporal"]}
    overlap = {row["rank"]: row for row in hta["overlap"]}
    print("distlab:", expected)
    print("HTA temporal:", temporal)
    print("HTA overlap:", overlap)
    assert sorted(temporal) == [0, 1, 2, 3]
    for rank in range(4):
        # Every real step is analysed (HTA leaves out the trace's last ProfilerStep: the export's end marker).
        assert hta["iterations"][str(rank)] == list(range(10)), hta["iterations"]
        got = temporal[rank]
        assert abs(got["compute_time_pctg"] - expected[rank]["compute"]) <= 2, (rank, got, expected[rank])
        assert abs(got["non_compute_time_pctg"] - expected[rank]["non_compute"]) <= 2, (rank, got, expected[rank])
        assert abs(got["idle_time_pctg"] - expected[rank]["idle"]) <= 2, (rank, got, expected[rank])
        assert abs(overlap[rank]["comp_comm_overlap_pctg"] - expected[rank]["overlap"]) <= 2, (rank, overlap[rank], expected[rank])
    # Communication is classified as communication: the allReduce makes up the non-compute time,
    # and the comm thread's allReduce overlaps the backward span.
    assert all(temporal[rank]["non_compute_time_pctg"] > 1 for rank in range(4)), temporal
    assert all(overlap[rank]["comp_comm_overlap_pctg"] > 1 for rank in range(4)), overlap
    assert hta["idle_categories"], hta


def test_dist_step_refuses_a_bad_step_number(module_kernel):
    _, kc = module_kernel
    bad = execute(kc, "%%distributed -n 2\ndist.step(-1, () => 0)", timeout=60)
    assert bad.status == "error"
    assert "dist.step: n must be an integer >= 0, got -1" in bad.error["evalue"]
    ok = execute(kc, "%%distributed -n 2\ndist.step(3, () => dist.rank + 1)", timeout=60)
    assert ok.status == "ok", ok.error
