"""One clock for a multi-host timeline: an agent whose clock runs 250 ms ahead
(the DISTLAB_TEST_CLOCK_SKEW_MS test hook skews the agent's clock and its
ranks' span clock) and one on the kernel's clock. The kernel measures each
agent's offset over the control connection; the timeline, the Chrome trace
export and `%dist hosts` must all agree with the kernel's clock."""

from __future__ import annotations

import json
import re
import statistics
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import execute
from hosts_agents import Agent, write_token
from kernel_helpers import start_kernel, stop_kernel

MIME = "application/vnd.distlab.timeline+json"
SKEW_MS = 250
BARRIERS = 12


@pytest.fixture(scope="module")
def skewed_hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, list[Agent], str]]:
    token_file = write_token(tmp_path_factory.mktemp("clock"))
    agents = [Agent(token_file, 2, env={"DISTLAB_TEST_CLOCK_SKEW_MS": str(SKEW_MS)}), Agent(token_file, 2)]
    km, kc = start_kernel()
    magic = f"%%distributed -n 4 --backend hosts --timeout 60 --hosts {agents[0].address},{agents[1].address} --token-file {token_file}"
    try:
        yield kc, agents, magic
    finally:
        stop_kernel(km, kc)
        for agent in agents:
            agent.stop()


def test_the_timeline_puts_a_skewed_hosts_barrier_exits_on_the_kernels_clock(skewed_hosts, tmp_path: Path):
    kc, _, magic = skewed_hosts
    ran = execute(kc, f"{magic}\nfor (let i = 0; i < {BARRIERS}; i++) await dist.barrier();\ndist.rank", timeout=180)
    assert ran.status == "ok", ran.error

    shown = execute(kc, "%dist timeline", timeout=30)
    assert shown.status == "ok", shown.error
    [payload] = [m["content"]["data"][MIME] for m in shown.messages if MIME in m["content"].get("data", {})]
    offsets = {r["rank"]: r.get("clockOffsetUs") for r in payload["ranks"]}
    # Ranks 0 and 1 run on the skewed agent, 2 and 3 on the other.
    assert abs(offsets[0] / 1000 - SKEW_MS) < 2 and abs(offsets[1] / 1000 - SKEW_MS) < 2, offsets
    assert abs(offsets[2] / 1000) < 2 and abs(offsets[3] / 1000) < 2, offsets

    # Each barrier's exit (end of its span) on the skewed host against the other host, kernel's clock.
    exits: dict[int, dict[int, float]] = defaultdict(dict)
    for span in payload["spans"]:
        if span["cat"] == "comm" and span["name"] == "barrier":
            exits[span["args"]["seq"]][span["rank"]] = span["ts"] + span["dur"]
    gaps_ms = [
        abs((by_rank[0] + by_rank[1]) / 2 - (by_rank[2] + by_rank[3]) / 2) / 1000
        for by_rank in exits.values()
        if len(by_rank) == 4
    ]
    assert len(gaps_ms) == BARRIERS, exits
    print(f"barrier exit gap between hosts, ms: median {statistics.median(gaps_ms):.3f}, max {max(gaps_ms):.3f}; offsets us {offsets}")
    assert statistics.median(gaps_ms) < 2, f"the hosts' barrier exits are {gaps_ms} ms apart on the aligned timeline"

    # The Chrome trace export carries the same aligned times.
    target = tmp_path / "trace.json"
    assert execute(kc, f"%dist timeline --export {target}", timeout=30).status == "ok"
    trace = json.loads(target.read_text())
    exported = defaultdict(dict)
    for event in trace["traceEvents"]:
        if event["ph"] == "X" and event["name"] == "barrier":
            exported[event["args"]["seq"]][event["pid"]] = event["ts"] + event["dur"]
    for seq, by_rank in exits.items():
        for rank, exit_us in by_rank.items():
            assert abs(exported[seq][rank] - exit_us) < 1, (seq, rank, exported[seq][rank], exit_us)
    names = {e["pid"]: e["args"]["name"] for e in trace["traceEvents"] if e["ph"] == "M" and e["name"] == "process_name"}
    # The skewed host's ranks (0 and 1) name their clock's offset in the trace, within 2 ms of the skew.
    shown = re.search(r"host clock ([+-]?[\d.]+) ms", names[0])
    assert shown is not None and abs(float(shown[1]) - 250) < 2, names


def test_dist_hosts_reports_each_agents_clock_offset(skewed_hosts):
    kc, agents, magic = skewed_hosts
    assert execute(kc, f"{magic}\ndist.rank", timeout=120).status == "ok"
    report = execute(kc, "%dist hosts", timeout=30).stdout
    found = {
        address: re.search(rf"^  {re.escape(address)}:[^\n]*\n    clock offset ([+-][\d.]+) ms ± ([\d.]+) ms", report, re.M)
        for address in (agents[0].address, agents[1].address)
    }
    assert all(found.values()), report
    skewed, plain = (float(found[a.address].group(1)) for a in agents)
    uncertainty = float(found[agents[0].address].group(2))
    print(f"%dist hosts: skewed agent {skewed:+.3f} ms ± {uncertainty:.3f} ms, other agent {plain:+.3f} ms")
    assert abs(skewed - SKEW_MS) < 2, report
    assert abs(plain) < 2, report
    assert 0 <= uncertainty < 2, report
