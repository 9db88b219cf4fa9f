"""`%%distributed --backend hosts` against a real distlab kernel and two real
`distlab agent` processes on 127.0.0.1 (2 slots each): data between ranks on
different agents, state across cells, errors naming host and rank, and a
rank process killed on an agent."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import execute
from kernel_helpers import KERNEL_CLI, start_kernel, stop_kernel


class Agent:
    """A `distlab agent` child process; its log lines are collected by a reader thread."""

    def __init__(self, token_file: Path) -> None:
        self.process = subprocess.Popen(
            ["node", str(KERNEL_CLI), "agent", "--listen", "127.0.0.1:0", "--token-file", str(token_file), "--slots", "2"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        self.log: list[str] = []
        self.listening = threading.Event()
        self.port = 0
        threading.Thread(target=self._read, daemon=True).start()
        if not self.listening.wait(30):
            self.stop()
            raise RuntimeError(f"distlab agent did not start: {self.log}")

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line.rstrip("\n"))
            found = re.search(r"listening on 127\.0\.0\.1:(\d+) ", line)
            if found:
                self.port = int(found.group(1))
                self.listening.set()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, list[Agent], str]]:
    directory = tmp_path_factory.mktemp("hosts")
    token_file = directory / "token"
    token_file.write_text(secrets.token_hex(32) + "\n")
    token_file.chmod(0o600)
    agents = [Agent(token_file), Agent(token_file)]
    km, kc = start_kernel()
    magic = (
        f"%%distributed -n 4 --backend hosts --timeout 20 "
        f"--hosts 127.0.0.1:{agents[0].port},127.0.0.1:{agents[1].port} --token-file {token_file}"
    )
    try:
        yield kc, agents, magic
    finally:
        stop_kernel(km, kc)
        for agent in agents:
            agent.stop()


def _values(outcome) -> list:
    assert outcome.status == "ok", outcome.error
    return outcome.results[-1]["application/json"]


def test_an_allreduce_carries_bytes_between_agents_and_state_stays_between_cells(hosts):
    kc, agents, magic = hosts
    outcome = execute(
        kc,
        f"{magic}\nlet kept = dist.rank + 100;\ndist.stats.reset();\n"
        "const sum = await dist.allReduce(new Float32Array(4096).fill(1));\n"
        "const s = dist.stats();\n"
        "[sum[0], process.ppid, Object.fromEntries(Object.entries(s.byPeer).map(([p, c]) => [p, c.bytesSent]))]",
        timeout=120,
    )
    values = _values(outcome)
    assert [value[0] for value in values] == [4, 4, 4, 4]
    agent_pids = [agent.process.pid for agent in agents]
    assert [value[1] for value in values] == [agent_pids[0], agent_pids[0], agent_pids[1], agent_pids[1]]
    for rank, (_, _, sent_to) in enumerate(values):
        other = ["2", "3"] if rank < 2 else ["0", "1"]
        assert sum(sent_to.get(peer, 0) for peer in other) > 0, f"rank {rank} sent to the other agent: {sent_to}"
    assert _values(execute(kc, f"{magic}\nkept", timeout=60)) == [100, 101, 102, 103]
    assert any("accepted 127.0.0.1:" in line for line in agents[0].log), agents[0].log


def test_a_rank_error_names_the_host_and_the_rank(hosts):
    kc, agents, magic = hosts
    outcome = execute(kc, f"{magic}\nif (dist.rank === 2) throw new RangeError('two is out');\nawait dist.barrier();", timeout=60)
    assert outcome.status == "error"
    assert outcome.error["evalue"].startswith(f"rank 2 on 127.0.0.1:{agents[1].port}: RangeError: two is out"), outcome.error


def test_kill_9_of_a_rank_process_on_an_agent_ends_the_cell_and_the_next_cell_starts_afresh(hosts):
    kc, agents, magic = hosts
    pids = _values(execute(kc, f"{magic}\n(globalThis as any).mark = dist.rank;\nprocess.pid", timeout=60))
    msg_id = kc.execute(f"{magic}\nawait new Promise((r) => setTimeout(r, 5000));\nawait dist.barrier();")
    time.sleep(1.5)
    os.kill(pids[1], signal.SIGKILL)
    reply = kc.get_shell_msg(timeout=60)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=60)
    assert reply["content"]["status"] == "error"
    assert reply["content"]["evalue"].startswith(
        f"rank 1 on 127.0.0.1:{agents[0].port}: RankProcessExit: its process ended (signal SIGKILL)"
    ), reply["content"]
    after = _values(execute(kc, f"{magic}\n[process.pid, (globalThis as any).mark ?? null]", timeout=120))
    assert after[1][0] != pids[1], "rank 1 runs in a new process"
    assert [value[1] for value in after] == [0, None, 2, 3], "only the killed rank lost its state"
