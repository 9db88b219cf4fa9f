"""`%%distributed --launcher env`: agents started by a plain shell script with
torchrun's variables (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK)
dial a real kernel's rendezvous on 127.0.0.1 (`distlab agent --connect env`),
and a cell runs an allReduce across them with state kept between cells; then
the bad inputs: variables missing or inconsistent, a wrong token on dial-in,
an agent that never comes, an interrupt during the wait."""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import execute
from kernel_helpers import KERNEL_CLI, alive, start_kernel, stop_kernel

AGENTS_SCRIPT = """#!/bin/sh
# What a scheduler's job script does: export the rendezvous, start one agent per task.
export MASTER_ADDR=127.0.0.1 MASTER_PORT="$1" WORLD_SIZE=2
for index in 0 1; do
  RANK=$index LOCAL_RANK=$index node "$2" agent --connect env --token-file "$3" --slots 2 --connect-timeout 120 \\
    2> "$4/agent$index.log" &
  echo $! > "$4/agent$index.pid"
done
wait
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_token(path: Path) -> Path:
    path.write_text(secrets.token_hex(32) + "\n")
    path.chmod(0o600)
    return path


def agent_env(**variables: str) -> dict[str, str]:
    """This process's environment without any scheduler's variables, plus `variables`."""
    names = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SLURM_NTASKS", "JOB_COMPLETION_INDEX", "DISTLAB_WORLD_SIZE", "DISTLAB_RENDEZVOUS")
    env = {key: value for key, value in os.environ.items() if key not in names}
    env.update(variables)
    return env


@pytest.fixture(scope="module")
def kernel() -> Iterator[tuple[object, object]]:
    km, kc = start_kernel()
    try:
        yield km, kc
    finally:
        stop_kernel(km, kc)


def _values(outcome) -> list:
    assert outcome.status == "ok", outcome.error
    return outcome.results[-1]["application/json"]


def test_agents_from_a_torchrun_style_script_dial_in_and_run_a_group_that_keeps_state(kernel, tmp_path: Path):
    _, kc = kernel
    token = write_token(tmp_path / "token")
    port = free_port()
    script = tmp_path / "agents.sh"
    script.write_text(AGENTS_SCRIPT)
    script.chmod(0o755)
    # Started before the kernel listens, as a scheduler may: the agents dial again until it does.
    job = subprocess.Popen([str(script), str(port), str(KERNEL_CLI), str(token), str(tmp_path)], start_new_session=True)
    magic = f"%%distributed -n 4 --launcher env --rendezvous 127.0.0.1:{port} --token-file {token} --timeout 30"
    try:
        time.sleep(1)
        first = execute(kc, f"{magic}\nlet kept = (dist.rank + 1) * 10;\nconst sum = await dist.allReduce(new Float32Array([dist.rank + 1]));\n[sum[0], process.ppid]", timeout=120)
        values = _values(first)
        agents = [int((tmp_path / f"agent{index}.pid").read_text()) for index in (0, 1)]
        assert [value[0] for value in values] == [10, 10, 10, 10], values
        # Ranks fill agent 0's two slots, then agent 1's: placement follows the announced index.
        assert [value[1] for value in values] == [agents[0], agents[0], agents[1], agents[1]], (values, agents)
        progress = "\n".join(display["data"]["text/plain"] for display in first.displays if "text/plain" in display["data"])
        assert re.search(r"2 of 2 agents connected at 127\.0\.0\.1:\d+: agent 0 \S+ \(2 slots\), agent 1 \S+ \(2 slots\)", progress), progress
        second = execute(kc, f"{magic}\nkept", timeout=60)
        assert _values(second) == [10, 20, 30, 40]
        assert not any("agents connected" in str(display["data"]) for display in second.displays), "a group whose agents are all in shows no progress line"

        report = execute(kc, "%dist hosts", timeout=30).stdout
        for index, ranks in ((0, "ranks 0, 1"), (1, "ranks 2, 3")):
            assert re.search(rf"^  \S+ \(agent {index}\): agent distlab \S+ on \S+ \(dialled in\); {ranks};", report, re.M), report
        for index in (0, 1):
            log = (tmp_path / f"agent{index}.log").read_text()
            assert f"rendezvous from MASTER_ADDR:MASTER_PORT, RANK/WORLD_SIZE: agent {index} of 2 (local index {index})" in log, log
            assert token.read_text().strip() not in log
        # Closing the group ends the agents: the job's script finishes by itself.
        execute(kc, "%dist stop", timeout=30)
        assert job.wait(30) == 0
        assert not any(alive(pid) for pid in agents)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait(10)


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29471", "RANK": "3", "WORLD_SIZE": "2"}, "RANK=3 with WORLD_SIZE=2: the index must be below the world size (0 to 1)"),
        ({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29471", "RANK": "0"}, "RANK is set but WORLD_SIZE is not (expected the number of agents, e.g. WORLD_SIZE=2)"),
        ({"RANK": "0", "WORLD_SIZE": "1"}, "no rendezvous address: give --connect HOST:PORT, or set DISTLAB_RENDEZVOUS=HOST:PORT"),
        ({"JOB_COMPLETION_INDEX": "0", "DISTLAB_RENDEZVOUS": "127.0.0.1:29471"}, "JOB_COMPLETION_INDEX is set but DISTLAB_WORLD_SIZE is not"),
    ],
)
def test_missing_or_inconsistent_variables_stop_the_agent_naming_the_variable(tmp_path: Path, variables: dict[str, str], message: str):
    token = write_token(tmp_path / "token")
    done = subprocess.run(["node", str(KERNEL_CLI), "agent", "--connect", "--token-file", str(token)], env=agent_env(**variables), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done
    assert f"distlab agent --connect env: {message}" in done.stderr, done.stderr


def test_a_wrong_token_on_dial_in_is_refused_and_logged_and_nothing_runs(kernel, tmp_path: Path):
    _, kc = kernel
    token = write_token(tmp_path / "token")
    wrong = write_token(tmp_path / "wrong")
    marker = tmp_path / "ran"
    port = free_port()
    intruder = subprocess.Popen(
        ["node", str(KERNEL_CLI), "agent", "--connect", f"127.0.0.1:{port}", "--token-file", str(wrong), "--slots", "1", "--connect-timeout", "60"],
        env=agent_env(RANK="0", WORLD_SIZE="1"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        # Dialling (and backing off: at most 5 s between attempts) before the kernel listens, and after.
        outcome = execute(
            kc,
            f"%%distributed -n 1 --launcher env --rendezvous 127.0.0.1:{port} --token-file {token} --rendezvous-timeout 8\n"
            f"(await import('node:fs')).writeFileSync({str(marker)!r}, 'ran')",
            timeout=60,
        )
        intruder.terminate()
        _, log = intruder.communicate(timeout=30)
        assert outcome.status == "error"
        evalue = outcome.error["evalue"]
        assert re.search(rf"--rendezvous 127\.0\.0\.1:{port}: no agent dialled in within 8 s .*refused meanwhile: refused 127\.0\.0\.1:\d+: the agent did not prove it holds the token", evalue), (evalue, log)
        assert re.search(rf"refused kernel 127\.0\.0\.1:{port}: the kernel refused this agent: wrong token", log), log
        assert wrong.read_text().strip() not in log and token.read_text().strip() not in log
        assert not marker.exists(), "the cell ran although no agent proved the token"
    finally:
        if intruder.poll() is None:
            intruder.kill()


def test_a_missing_agent_ends_the_wait_naming_its_index_within_the_timeout(kernel, tmp_path: Path):
    _, kc = kernel
    token = write_token(tmp_path / "token")
    port = free_port()
    present = subprocess.Popen(
        ["node", str(KERNEL_CLI), "agent", "--connect", "env", "--token-file", str(token), "--slots", "1"],
        env=agent_env(DISTLAB_RENDEZVOUS=f"127.0.0.1:{port}", SLURM_PROCID="0", SLURM_NTASKS="2"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        started = time.monotonic()
        outcome = execute(kc, f"%%distributed -n 2 --launcher env --rendezvous {port} --token-file {token} --rendezvous-timeout 6\ndist.rank", timeout=60)
        took = time.monotonic() - started
        assert outcome.status == "error"
        assert re.search(rf"--rendezvous 127\.0\.0\.1:{port}: agent 1 of 2 did not dial in within 6 s \(--rendezvous-timeout; connected: agent 0 ", outcome.error["evalue"]), outcome.error
        assert took < 6 + 10, f"the wait took {took:.1f} s for a 6 s timeout"
        # The kernel is alive and answers the next cell.
        assert execute(kc, "1 + 1", timeout=30).status == "ok"
    finally:
        present.kill()
        present.wait(10)


def test_an_interrupt_during_the_wait_ends_the_cell_promptly(kernel, tmp_path: Path):
    km, kc = kernel
    token = write_token(tmp_path / "token")
    port = free_port()
    msg_id = kc.execute(f"%%distributed -n 2 --launcher env --rendezvous 127.0.0.1:{port} --token-file {token} --rendezvous-timeout 120\ndist.rank")
    # Interrupt once the cell shows it is waiting (not while it is still being compiled).
    deadline = time.monotonic() + 60
    waiting = False
    while not waiting:
        assert time.monotonic() < deadline, "the cell never showed that it waits for agents"
        message = kc.get_iopub_msg(timeout=60)
        if message.get("parent_header", {}).get("msg_id") == msg_id and message["header"]["msg_type"] == "display_data":
            waiting = "waiting for agents at 127.0.0.1:" in message["content"]["data"].get("text/plain", "")
    interrupted = time.monotonic()
    km.interrupt_kernel()
    reply = kc.get_shell_msg(timeout=60)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=60)
    took = time.monotonic() - interrupted
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "InterruptedError", reply["content"]
    assert f"interrupted while waiting for agents at 127.0.0.1:{port} (no agent connected yet)" in reply["content"]["evalue"], reply["content"]
    assert took < 10, f"the cell took {took:.1f} s to end after the interrupt"
    assert execute(kc, "%dist stop", timeout=30).status == "ok"


def test_a_non_loopback_rendezvous_without_tls_is_refused_before_listening(kernel, tmp_path: Path):
    _, kc = kernel
    token = write_token(tmp_path / "token")
    outcome = execute(kc, f"%%distributed -n 1 --launcher env --rendezvous 0.0.0.0:{free_port()} --token-file {token}\ndist.rank", timeout=30)
    assert outcome.status == "error"
    assert "refusing to listen on --rendezvous 0.0.0.0:" in outcome.error["evalue"] and "--tls-cert FILE --tls-key FILE" in outcome.error["evalue"], outcome.error
