"""The live timeline of %%distributed cells, against a real distlab kernel.

A cell shows `application/vnd.distlab.timeline+json` under itself at once,
updates it (update_display_data, same display id) while it runs, and ends
with the final bundle the notebook keeps; `%dist timeline` shows it again and
`--export` writes a Chrome trace.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from conftest import execute

MIME = "application/vnd.distlab.timeline+json"

# Four steps of a forward span around two allReduces of 16 KiB each.
TRAIN_CELL = """%%distributed -n 4
const grad = new Float32Array(4096).fill(dist.rank);
for (let step = 0; step < 4; step++) {
  await dist.span("forward", async () => {
    let acc = 0;
    for (let i = 0; i < 200_000; i++) acc += Math.sqrt(i);
    await dist.allReduce(grad);
    await dist.allReduce(grad, { op: "max" });
  }, { args: { step } });
}
dist.rank"""


def timeline_displays(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["header"]["msg_type"] in ("display_data", "update_display_data") and MIME in m["content"]["data"]]


def test_a_distributed_cell_shows_its_timeline_with_four_ranks_comm_compute_and_a_summary(module_kernel):
    _, kc = module_kernel
    out = execute(kc, TRAIN_CELL, timeout=180)
    assert out.status == "ok", out.error
    shown = timeline_displays(out.messages)
    assert shown[0]["header"]["msg_type"] == "display_data"
    display_id = shown[0]["content"]["transient"]["display_id"]
    assert all(m["header"]["msg_type"] == "update_display_data" for m in shown[1:])
    assert all(m["content"]["transient"]["display_id"] == display_id for m in shown)

    final = shown[-1]["content"]["data"]
    assert set(final) == {MIME, "text/html", "text/plain"}
    payload = final[MIME]
    assert payload["version"] == 1 and payload["live"] is False
    assert [r["rank"] for r in payload["ranks"]] == [0, 1, 2, 3]
    for rank in range(4):
        mine = [s for s in payload["spans"] if s["rank"] == rank]
        forwards = [s for s in mine if s["name"] == "forward"]
        reduces = [s for s in mine if s["cat"] == "comm"]
        assert [s["args"]["step"] for s in forwards] == [0, 1, 2, 3]
        assert all(s["cat"] == "compute" for s in forwards)
        assert len(reduces) == 8
        for span in reduces:
            args = span["args"]
            assert args["op"] == "allReduce" and args["bytes"] == 16384 and args["group"] == "world"
            assert args["peers"] == [r for r in range(4) if r != rank]
            assert isinstance(args["algorithm"], str) and isinstance(args["seq"], int)
    seqs = {rank: [s["args"]["seq"] for s in payload["spans"] if s["rank"] == rank and s["cat"] == "comm"] for rank in range(4)}
    assert len({tuple(v) for v in seqs.values()}) == 1, seqs

    summary = payload["summary"]
    assert summary["collectives"] == 8
    assert [r["rank"] for r in summary["ranks"]] == [0, 1, 2, 3]
    for row in summary["ranks"]:
        assert 0 < row["computePct"] <= 100 and 0 < row["commPct"] <= 100
        assert 0 <= row["idlePct"] <= 100
    # text/plain is the summary table: a header naming the columns, then one row per rank.
    text = final["text/plain"]
    assert re.search(r"^rank\s+compute\s+comm", text, re.M), text
    assert all(re.search(rf"^\s*{rank}\s+\d", text, re.M) for rank in range(4)), text
    assert "<svg" in final["text/html"]
    assert out.results[0]["application/json"] == [0, 1, 2, 3]


def test_update_display_data_arrives_while_a_longer_cell_still_runs(module_kernel):
    _, kc = module_kernel
    code = """%%distributed -n 4
for (let i = 0; i < 25; i++) {
  await dist.span("step", () => new Promise((r) => setTimeout(r, 100)));
  await dist.allReduce(new Float32Array(1024));
}"""
    out = execute(kc, code, timeout=120)
    received, idle_at = list(zip(out.arrived_at, out.messages)), out.idle_at
    shown_at = next(t for t, m in received if m["header"]["msg_type"] == "display_data" and MIME in m["content"]["data"])
    live = [(t, m) for t, m in received
            if m["header"]["msg_type"] == "update_display_data" and MIME in m["content"]["data"]
            and m["content"]["data"][MIME]["live"] and m["content"]["data"][MIME]["spans"]]
    assert live, "no live update with spans"
    running_s = idle_at - shown_at
    assert running_s > 2.0, running_s
    # The first live update with spans comes early, and they keep coming at least twice a second.
    assert live[0][0] - shown_at < 1.0, live[0][0] - shown_at
    assert len(live) >= 2 * (running_s - 1.0), (len(live), running_s)
    gaps = [b - a for (a, _), (b, _) in zip(live, live[1:])]
    assert max(gaps) < 0.75, gaps


def test_no_timeline_flag_shows_no_timeline(module_kernel):
    _, kc = module_kernel
    out = execute(kc, "%%distributed -n 4 --no-timeline\nawait dist.allReduce(new Float32Array(8));\n1", timeout=60)
    assert out.status == "ok", out.error
    assert timeline_displays(out.messages) == []


def test_dist_timeline_shows_again_and_exports_a_chrome_trace(module_kernel, tmp_path: Path):
    _, kc = module_kernel
    assert execute(kc, TRAIN_CELL, timeout=120).status == "ok"
    shown = execute(kc, "%dist timeline", timeout=30)
    assert shown.status == "ok", shown.error
    [display] = timeline_displays(shown.messages)
    assert display["header"]["msg_type"] == "display_data"
    assert len(display["content"]["data"][MIME]["ranks"]) == 4

    target = tmp_path / "trace.json"
    exported = execute(kc, f"%dist timeline --export {target}", timeout=30)
    assert exported.status == "ok", exported.error
    assert str(target) in exported.stdout
    trace = json.loads(target.read_text())
    complete = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert sorted({e["pid"] for e in complete}) == [0, 1, 2, 3]
    assert {"compute", "comm"} <= {e["cat"] for e in complete}
    assert all(isinstance(e["ts"], (int, float)) and e["dur"] >= 0 for e in complete)
    names = {e["pid"]: e["args"]["name"] for e in trace["traceEvents"] if e["ph"] == "M" and e["name"] == "process_name"}
    assert sorted(names) == [0, 1, 2, 3] and names[2].startswith("rank 2")
    assert trace["metadata"]["distributedInfo"]["world_size"] == 4
    # One file per rank for Holistic Trace Analysis, in a folder of their own (test_hta_export.py runs HTA on them).
    assert sorted(p.name for p in (tmp_path / "trace.hta").iterdir()) == [f"rank{rank}.json" for rank in range(4)]
    for rank in range(4):
        per_rank = json.loads((tmp_path / "trace.hta" / f"rank{rank}.json").read_text())
        assert per_rank["distributedInfo"]["rank"] == rank
        assert {e["pid"] for e in per_rank["traceEvents"] if e["ph"] == "X" and e.get("cat") != "kernel"} == {rank}

    bad = execute(kc, f"%dist timeline --export {tmp_path}/missing-folder/trace.json", timeout=30)
    assert bad.status == "error"
    assert bad.error["ename"] == "UsageError"
    assert "cannot write" in bad.error["evalue"] and "missing-folder/trace.json" in bad.error["evalue"]


def test_the_final_timeline_names_the_device_of_a_cell_that_loaded_tensorflow(module_kernel):
    """The ranks' devices are known at a cell's start as "cpu:tfjs not loaded yet" until a cell uses `tf`:
    the final bundle of that cell names the device TensorFlow.js runs on, as `dist.device` does."""
    _, kc = module_kernel
    assert execute(kc, "%dist stop", timeout=60).status == "ok"
    out = execute(kc, "%%distributed -n 2 --timeline always\nconst ones = tf.ones([2]);\nones.dispose();\nString(dist.device)", timeout=180)
    assert out.status == "ok", out.error
    devices = out.results[0]["application/json"]
    assert len(devices) == 2 and all(d.startswith("cpu:") and "not loaded" not in d for d in devices), devices
    final = timeline_displays(out.messages)[-1]["content"]["data"][MIME]
    assert [r["device"] for r in final["ranks"]] == devices, final["ranks"]
