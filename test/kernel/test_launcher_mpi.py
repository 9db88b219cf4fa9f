"""`%%distributed --launcher mpi`: Debian's Open MPI `mpirun` starts the agents on this
machine (localhost slots), each reading OMPI_COMM_WORLD_RANK/SIZE/LOCAL_RANK, and they
form a group through a real kernel: an allReduce, state kept across cells, mpirun ended
when the group closes. The kernel runs as root here, so this also covers Open MPI's
refusal to run as root being lifted (--allow-run-as-root and OMPI_ALLOW_RUN_AS_ROOT*).
Then the bad inputs: mpirun not on PATH, no --hosts and no --mpi, mpirun refusing its
arguments (its message shown)."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_client import KernelManager
from kernel_helpers import KERNEL_CLI, KERNEL_NAME, STARTUP_TIMEOUT, ensure_kernelspec_installed, execute, stop_kernel
from lingering_agent import lingered, lingering_agent_command
from slurm_cluster import SlurmUnavailable, ensure_packages

AGENT = f"--agent-command 'node {KERNEL_CLI}'"
BODY = "let kept = (dist.rank + 1) * 10;\nconst sum = await dist.allReduce(new Float32Array([dist.rank + 1]));\n[sum[0], process.env.OMPI_COMM_WORLD_RANK, process.env.OMPI_COMM_WORLD_LOCAL_RANK, process.ppid]"


def start_kernel_with(env: dict[str, str], cwd: Path) -> tuple[KernelManager, object]:
    ensure_kernelspec_installed()
    km = KernelManager(kernel_name=KERNEL_NAME)
    km.start_kernel(env={**env, "JUPYTER_PATH": os.environ.get("JUPYTER_PATH", "")}, cwd=str(cwd))
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=STARTUP_TIMEOUT)
    return km, kc


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, Path]]:
    try:
        ensure_packages({"openmpi-bin": "/usr/bin/mpirun"})
    except SlurmUnavailable as error:
        pytest.skip(f"Open MPI cannot be installed here: {error}")
    directory = tmp_path_factory.mktemp("mpi")
    token = directory / "token"
    token.write_text(secrets.token_hex(32) + "\n")
    token.chmod(0o600)
    # No OMPI_* of the caller's: the kernel must set what running as root needs itself.
    env = {key: value for key, value in os.environ.items() if not key.startswith("OMPI_")}
    km, kc = start_kernel_with(env, directory)
    try:
        yield kc, token
    finally:
        stop_kernel(km, kc)


def values_of(outcome) -> list:
    assert outcome.status == "ok", (outcome.error, outcome.stderr)
    return outcome.results[-1]["application/json"]


def running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def agents_with(token: str) -> list[str]:
    """Command lines of live `distlab agent` processes started with this token file."""
    found = subprocess.run(["pgrep", "-af", f"agent --connect .* --token-file {token}"], capture_output=True, text=True)
    return [line for line in found.stdout.splitlines() if running(int(line.split()[0]))]


def mpirun_pids() -> set[int]:
    found = subprocess.run(["pgrep", "-x", "mpirun"], capture_output=True, text=True)
    return {int(pid) for pid in found.stdout.split()}


@pytest.mark.parametrize("placement", ["--hosts localhost,localhost", '--mpi "-np 2 --host localhost:2"'])
def test_mpirun_starts_two_agents_that_form_a_group_and_end_with_it(kernel, placement: str):
    kc, token = kernel
    before = mpirun_pids()
    # Agents that outlive their connection: only mpirun's teardown on close can end them.
    magic = f"%%distributed -n 4 --launcher mpi {placement} --token-file {token} {lingering_agent_command(token.parent)} --timeout 30"
    first = execute(kc, f"{magic}\n{BODY}", timeout=120)
    values = values_of(first)
    assert [value[0] for value in values] == [10, 10, 10, 10], values
    # Agent i is MPI rank i: ranks 0,1 on agent 0, ranks 2,3 on agent 1, each seeing its agent's variables.
    assert [value[1:3] for value in values] == [["0", "0"], ["0", "0"], ["1", "1"], ["1", "1"]], values
    assert values[0][3] == values[1][3] != values[2][3] == values[3][3], values
    progress = "\n".join(display["data"].get("text/plain", "") for display in first.displays)
    assert re.search(r"mpirun running \(pid \d+\)", progress), progress
    assert re.search(r"2 of 2 agents connected at 127\.0\.0\.1:\d+: agent 0 \S+ \(2 slots\), agent 1 \S+ \(2 slots\)", progress), progress
    ours = mpirun_pids() - before
    assert len(ours) == 1, ours
    assert values_of(execute(kc, f"{magic}\nkept", timeout=60)) == [10, 20, 30, 40]
    execute(kc, "%dist stop", timeout=30)
    deadline = time.monotonic() + 15
    while ours & mpirun_pids() or any(running(pid) for pid in (values[0][3], values[2][3])) or lingered():
        assert time.monotonic() < deadline, f"mpirun {ours & mpirun_pids()}, agents {[pid for pid in (values[0][3], values[2][3]) if running(pid)]} or lingering agents {lingered()} still running after %dist stop"
        time.sleep(0.2)


@pytest.mark.parametrize(
    ("flags", "flag", "message"),
    [
        ("", "--hosts", 'say where the agents run: --hosts h1,h2 (or a hostfile, one agent a line) or --mpi "ARGS"'),
        ('--mpi "-np 2 --no-such-flag"', "--mpi", 'mpirun ended (status 1) before every agent connected; mpirun said:\nmpirun: Error: unknown option "--no-such-flag"'),
    ],
)
def test_bad_input_is_refused_naming_the_flag(kernel, flags: str, flag: str, message: str):
    kc, token = kernel
    outcome = execute(kc, f"%%distributed -n 2 --launcher mpi {flags} --token-file {token} {AGENT} --rendezvous-timeout 20\ndist.rank", timeout=60)
    assert outcome.status == "error"
    evalue = outcome.error["evalue"]
    assert message in evalue and flag in evalue, evalue
    assert execute(kc, "1 + 1", timeout=30).status == "ok"


def test_mpirun_not_installed_is_named(tmp_path: Path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "node").symlink_to(subprocess.run(["sh", "-c", "command -v node"], capture_output=True, text=True).stdout.strip())
    token = tmp_path / "token"
    token.write_text(secrets.token_hex(32) + "\n")
    token.chmod(0o600)
    km, kc = start_kernel_with({**os.environ, "PATH": str(bin_dir)}, tmp_path)
    try:
        outcome = execute(kc, f"%%distributed -n 2 --launcher mpi --hosts localhost --token-file {token}\ndist.rank", timeout=60)
        assert outcome.status == "error"
        assert f"%%distributed --launcher mpi: Open MPI is not installed here: no `mpirun` on PATH ({bin_dir})" in outcome.error["evalue"], outcome.error
        assert execute(kc, "1 + 1", timeout=30).status == "ok"
    finally:
        stop_kernel(km, kc)


def test_mpirun_starts_the_agents_across_network_namespaces_over_ssh(kernel, tmp_path: Path):
    """Two namespaces with their own sshd (netns_hosts.py): mpirun reaches them through ssh with the
    run's ssh config, the agents dial the kernel on the bridge, and the ranks' data crosses it."""
    from netns_hosts import NamespacesUnavailable, NetnsHosts

    kc, token = kernel
    hosts = NetnsHosts(tmp_path / "netns", 2)
    try:
        hosts.up()
    except NamespacesUnavailable as error:
        hosts.down()
        pytest.skip(f"network namespaces are not permitted here ({error})")
    try:
        # routed=direct: each namespace's orted talks to mpirun directly (Open MPI's default tree
        # routing cannot resolve the namespaces' names from their side).
        mpi = f"--mca routed direct --mca plm_rsh_agent 'ssh -F {hosts.ssh_config}'"
        magic = f'%%distributed -n 4 --launcher mpi --hosts h1,h2 --mpi "{mpi}" --rendezvous {hosts.subnet}.1 --insecure --token-file {token} {AGENT} --timeout 30'
        body = BODY.replace("process.ppid", "(await import('node:os')).hostname()")
        first = execute(kc, f"{magic}\n{body}", timeout=120)
        values = values_of(first)
        assert [value[0] for value in values] == [10, 10, 10, 10], values
        assert [value[1] for value in values] == ["0", "0", "1", "1"], values
        assert [value[3] for value in values] == [f"dl{hosts.ident}-h1"] * 2 + [f"dl{hosts.ident}-h2"] * 2, values
        assert values_of(execute(kc, f"{magic}\nkept", timeout=60)) == [10, 20, 30, 40]
        execute(kc, "%dist stop", timeout=30)
        # Before the namespaces go: the agents there ended with the group (their connection closed).
        deadline = time.monotonic() + 15
        while (left := agents_with(str(token))):
            assert time.monotonic() < deadline, f"agents {left} still running after %dist stop"
            time.sleep(0.2)
    finally:
        hosts.down()
