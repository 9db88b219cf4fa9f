"""Faults of `%%distributed --backend hosts`, through a real distlab kernel
and real `distlab agent` processes on 127.0.0.1: agent A runs ranks 0 and 1,
agent B runs rank 2. Each fault must end the cell with one error naming the
host, the rank and what happened, with every other rank stopped within the
collective timeout; the kernel must keep running, and a later cell must
start the lost ranks afresh (their state lost) while the others keep theirs.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ExecuteOutcome, execute
from hosts_agents import Agent, write_token
from kernel_helpers import alive, children
from kernel_helpers import start_kernel, stop_kernel

TIMEOUT_S = 20  # the cells' --timeout (collective timeout, seconds)
# Every rank busy in allReduces until stopped: a fault lands mid-collective.
LOOP = (
    "const until = Date.now() + 120000;\n"
    "while (Date.now() < until) await dist.allReduce(new Float32Array(4096).fill(1));"
)


@dataclass
class Hosts:
    kc: object
    token_file: Path
    a: Agent
    b: Agent

    @property
    def magic(self) -> str:
        return (
            f"%%distributed -n 3 --backend hosts --timeout {TIMEOUT_S} "
            f"--hosts {self.a.address},{self.b.address} --token-file {self.token_file}"
        )

    def cell(self, body: str, timeout: float = 120) -> ExecuteOutcome:
        return execute(self.kc, f"{self.magic}\n{body}", timeout=timeout)

    def values(self, body: str) -> list:
        outcome = self.cell(body)
        assert outcome.status == "ok", outcome.error
        return outcome.results[-1]["application/json"]


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    token_file = write_token(tmp_path_factory.mktemp("hosts-faults"))
    a, b = Agent(token_file, slots=2), Agent(token_file, slots=1)
    km, kc = start_kernel()
    state = Hosts(kc, token_file, a, b)
    try:
        yield state
    finally:
        stop_kernel(km, kc)
        state.a.stop()
        state.b.stop()


def marked_pids(hosts: Hosts) -> list[int]:
    """Marks each rank's state (mark = rank) and returns the ranks' process ids."""
    return hosts.values("(globalThis as any).mark = dist.rank;\nprocess.pid")


def run_with_fault(hosts: Hosts, fault) -> tuple[ExecuteOutcome, float]:
    """Runs LOOP, applies `fault()` once every rank is in it; returns the outcome and the seconds from the fault to the reply."""
    box: dict[str, ExecuteOutcome] = {}
    runner = threading.Thread(target=lambda: box.setdefault("outcome", hosts.cell(LOOP, timeout=180)))
    runner.start()
    time.sleep(4)
    faulted_at = time.monotonic()
    fault()
    runner.join(200)
    outcome = box["outcome"]
    seconds = outcome.idle_at - faulted_at
    # Shown with `pytest -s`: the figures the docs quote.
    print(f"\n{seconds:.1f} s after the fault: {(outcome.error or {}).get('evalue')}")
    return outcome, seconds


def assert_kept_and_fresh(hosts: Hosts, old_pids: list[int], lost: set[int]) -> None:
    """The next cell runs on every rank: ranks in `lost` in new processes without their state, the others as they were."""
    after = hosts.values("[process.pid, (globalThis as any).mark ?? null, (await dist.allReduce(new Float32Array([1])))[0]]")
    for rank, (pid, mark, total) in enumerate(after):
        assert total == 3, after
        if rank in lost:
            assert pid != old_pids[rank] and mark is None, f"rank {rank} starts afresh: {after}"
        else:
            assert pid == old_pids[rank] and mark == rank, f"rank {rank} keeps its process and state: {after}"


def test_kill_9_of_a_rank_process_mid_allreduce(hosts: Hosts):
    pids = marked_pids(hosts)
    outcome, seconds = run_with_fault(hosts, lambda: os.kill(pids[2], signal.SIGKILL))
    assert outcome.status == "error"
    evalue = outcome.error["evalue"]
    assert evalue.startswith(f"rank 2 on {hosts.b.address}: RankProcessExit: its process ended (signal SIGKILL)"), evalue
    assert "state lost" in evalue, evalue
    assert seconds < TIMEOUT_S, f"the other ranks stopped {seconds:.1f} s after the kill"
    assert_kept_and_fresh(hosts, pids, lost={2})


def test_kill_9_of_an_agent_mid_allreduce_and_a_restarted_agent(hosts: Hosts):
    pids = marked_pids(hosts)
    b_ranks = children(hosts.b.process.pid)
    assert pids[2] in b_ranks, (pids, b_ranks)
    outcome, seconds = run_with_fault(hosts, lambda: os.kill(hosts.b.process.pid, signal.SIGKILL))
    hosts.b.process.wait(10)
    assert outcome.status == "error"
    evalue = outcome.error["evalue"]
    assert evalue.startswith(f"rank 2 on {hosts.b.address}: RankProcessExit: its process was lost; "), evalue
    assert f"lost the connection to the agent at {hosts.b.address}" in evalue, evalue
    assert "state lost" in evalue, evalue
    assert seconds < TIMEOUT_S, f"the other ranks stopped {seconds:.1f} s after the kill"
    # The killed agent's rank process does not outlive it (its lifeline to the agent broke).
    deadline = time.monotonic() + 10
    while alive(pids[2]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(pids[2]), "the dead agent's rank process ended"
    # While the agent is down, a cell fails at once naming it; the kernel keeps running.
    down = hosts.cell("1", timeout=60)
    assert down.status == "error"
    assert f"cannot reach the agent at {hosts.b.address}" in down.error["evalue"], down.error
    hosts.b = hosts.b.restarted()
    assert_kept_and_fresh(hosts, pids, lost={2})


def test_a_host_that_never_answers(hosts: Hosts):
    """Agent B and its rank process are stopped (SIGSTOP): nothing on that host answers, its TCP connections stay open."""
    pids = marked_pids(hosts)
    frozen = [hosts.b.process.pid, pids[2]]

    def freeze() -> None:
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)

    try:
        outcome, seconds = run_with_fault(hosts, freeze)
        assert outcome.status == "error"
        evalue = outcome.error["evalue"]
        assert f"rank 2 on {hosts.b.address}" in evalue, evalue
        assert seconds < TIMEOUT_S + 5, f"the other ranks stopped {seconds:.1f} s after the host stopped answering"
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    # Continued, the agent finds its kernel gone, ends the stale rank, and serves the next cell afresh.
    assert_kept_and_fresh(hosts, pids, lost={2})
    deadline = time.monotonic() + 10
    while alive(pids[2]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(pids[2]), "the stale rank process ended once its agent ran again"


def test_an_agent_that_stops_relaying_is_given_up_after_its_silence(hosts: Hosts):
    """Only agent B's process is stopped: its rank keeps computing, but nothing it says reaches the kernel."""
    pids = marked_pids(hosts)
    agent_pid = hosts.b.process.pid
    try:
        outcome, seconds = run_with_fault(hosts, lambda: os.kill(agent_pid, signal.SIGSTOP))
        assert outcome.status == "error"
        evalue = outcome.error["evalue"]
        assert evalue.startswith(f"rank 2 on {hosts.b.address}: RankProcessExit: its process was lost; "), evalue
        assert "the agent did not answer for 10 s" in evalue, evalue
        assert seconds < TIMEOUT_S + 5, f"the other ranks stopped {seconds:.1f} s after the agent went silent"
    finally:
        os.kill(agent_pid, signal.SIGCONT)
    assert_kept_and_fresh(hosts, pids, lost={2})


def test_ranks_that_call_different_collectives(hosts: Hosts):
    pids = marked_pids(hosts)
    body = (
        "const x = new Float32Array(256).fill(1);\n"
        "if (dist.rank === 2) await dist.broadcast(x, 0); else await dist.allReduce(x);"
    )
    started = time.monotonic()
    outcome = hosts.cell(body)
    seconds = outcome.idle_at - started
    assert outcome.status == "error"
    assert outcome.error["ename"] == "CommMismatchError", outcome.error
    evalue = outcome.error["evalue"]
    assert "broadcast" in evalue and "allReduce" in evalue, evalue
    assert "rank 2" in evalue and hosts.b.address in evalue, evalue
    assert seconds < TIMEOUT_S, f"the mismatch ended the cell after {seconds:.1f} s"
    # A mismatch ends no process: every rank keeps its state.
    assert_kept_and_fresh(hosts, pids, lost=set())


def test_more_ranks_than_the_agents_offer_fails_before_anything_starts(hosts: Hosts):
    magic = hosts.magic.replace("-n 3 ", "-n 4 ")
    outcome = execute(hosts.kc, f"{magic}\n1", timeout=60)
    assert outcome.status == "error"
    assert f"-n 4 is more ranks than the 3 slots of --hosts ({hosts.a.address}: 2, {hosts.b.address}: 1)" in outcome.error["evalue"], outcome.error
    assert hosts.values("dist.rank") == [0, 1, 2]
