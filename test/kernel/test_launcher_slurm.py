"""`%%distributed --launcher slurm` against a real single-node Slurm (slurm_cluster.py:
Debian's munged, slurmctld and slurmd with a generated config), through a real kernel:

- inside an allocation (`salloc --no-shell`, its SLURM_JOB_ID and SLURM_NTASKS in the
  kernel's environment, as salloc's shell would have them): srun starts one agent per task;
- outside one, `--slurm "-N 1 -n 2 --time 5"`: sbatch submits the agents as a job, the cell
  shows the job id and its state, and the job is cancelled when the group closes and when
  the kernel shuts down (squeue no longer lists it);
- an allReduce over the ranks, state kept across cells, SLURM_PROCID/SLURM_LOCALID seen by
  the ranks;
- the bad inputs: Slurm not on PATH, no allocation and no --slurm, sbatch refusing the
  arguments (its own message shown), --slurm-per other than node|task.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_client import KernelManager
from kernel_helpers import KERNEL_CLI, KERNEL_NAME, STARTUP_TIMEOUT, ensure_kernelspec_installed, execute, stop_kernel
from lingering_agent import lingered, lingering_agent_command
from slurm_cluster import SlurmCluster, SlurmUnavailable, ensure_packages

AGENT = f"--agent-command 'node {KERNEL_CLI}'"
BODY = "let kept = (dist.rank + 1) * 10;\nconst sum = await dist.allReduce(new Float32Array([dist.rank + 1]));\n[sum[0], process.env.SLURM_PROCID, process.env.SLURM_LOCALID, process.env.SLURM_JOB_ID]"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    try:
        ensure_packages()
    except SlurmUnavailable as error:
        pytest.skip(f"Slurm cannot be installed here: {error}")
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm")).up()
    try:
        yield cluster
    finally:
        cluster.down()


def start_kernel_with(env: dict[str, str], cwd: Path) -> tuple[KernelManager, object]:
    ensure_kernelspec_installed()
    km = KernelManager(kernel_name=KERNEL_NAME)
    km.start_kernel(env={**env, "JUPYTER_PATH": os.environ.get("JUPYTER_PATH", "")}, cwd=str(cwd))
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=STARTUP_TIMEOUT)
    return km, kc


def write_token(path: Path) -> Path:
    path.write_text(secrets.token_hex(32) + "\n")
    path.chmod(0o600)
    return path


def values_of(outcome) -> list:
    assert outcome.status == "ok", (outcome.error, outcome.stderr)
    return outcome.results[-1]["application/json"]


def progress_of(outcome) -> str:
    return "\n".join(display["data"].get("text/plain", "") for display in outcome.displays)


def wait_until(check, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_inside_an_allocation_srun_starts_one_agent_per_task_and_the_step_ends_with_the_group(cluster: SlurmCluster, tmp_path: Path):
    granted = cluster.run("salloc", "--no-shell", "-n", "2", "--time", "5", "--job-name", "distlab-alloc")
    job = re.search(r"Granted job allocation (\d+)", granted.stderr)
    assert job, granted.stderr
    job_id = job.group(1)
    env = {**cluster.env, "SLURM_JOB_ID": job_id, "SLURM_NTASKS": "2", "SLURM_JOB_NUM_NODES": "1", "SLURM_NNODES": "1", "SLURM_JOB_NODELIST": cluster.node}
    km, kc = start_kernel_with(env, tmp_path)
    token = write_token(tmp_path / "token")
    # Agents that outlive their connection: only the step's end on close can end them.
    magic = f"%%distributed -n 4 --launcher slurm --token-file {token} {lingering_agent_command(tmp_path)} --timeout 30"
    try:
        first = execute(kc, f"{magic}\n{BODY}", timeout=120)
        values = values_of(first)
        assert [value[0] for value in values] == [10, 10, 10, 10], values
        # One agent per task: ranks 0,1 on task 0, ranks 2,3 on task 1; each sees its task's variables.
        assert [value[1:] for value in values] == [["0", "0", job_id], ["0", "0", job_id], ["1", "1", job_id], ["1", "1", job_id]], values
        progress = progress_of(first)
        assert re.search(rf"srun step in allocation {job_id} \(pid \d+\)", progress), progress
        assert re.search(r"2 of 2 agents connected at 127\.0\.0\.1:\d+: agent 0 \S+ \(2 slots\), agent 1 \S+ \(2 slots\)", progress), progress
        assert values_of(execute(kc, f"{magic}\nkept", timeout=60)) == [10, 20, 30, 40]
        steps = cluster.run("squeue", "--steps", "--noheader", "--jobs", job_id, "--format", "%i")
        assert f"{job_id}.0" in steps.stdout, steps
        execute(kc, "%dist stop", timeout=30)
        # The step ended; the allocation is the user's and stays.
        wait_until(lambda: f"{job_id}.0" not in cluster.run("squeue", "--steps", "--noheader", "--jobs", job_id, "--format", "%i").stdout, f"step {job_id}.0 still listed after %dist stop")
        wait_until(lambda: not lingered(), f"agents {lingered()} outlived the step after %dist stop", timeout=15)
        assert any(line.startswith(f"{job_id} RUNNING") for line in cluster.jobs()), cluster.jobs()
    finally:
        stop_kernel(km, kc)
        cluster.run("scancel", job_id)


def test_a_submitted_job_shows_its_progress_runs_the_group_and_is_cancelled_on_close_and_on_shutdown(cluster: SlurmCluster, tmp_path: Path):
    km, kc = start_kernel_with(cluster.env, tmp_path)
    token = write_token(tmp_path / "token")
    magic = f'%%distributed -n 4 --launcher slurm --slurm "-N 1 -n 2 --time 5 --job-name distlab-agents" --token-file {token} {AGENT} --timeout 30'
    shut_down = False
    try:
        first = execute(kc, f"{magic}\n{BODY}", timeout=120)
        values = values_of(first)
        assert [value[0] for value in values] == [10, 10, 10, 10], values
        job_id = values[0][3]
        assert [value[1:3] for value in values] == [["0", "0"], ["0", "0"], ["1", "1"], ["1", "1"]], values
        progress = progress_of(first)
        assert re.search(rf"Slurm job {job_id} (submitted|queued \(\w+\)|running on {cluster.node})", progress), progress
        assert "2 of 2 agents connected" in progress, progress
        assert values_of(execute(kc, f"{magic}\nkept", timeout=60)) == [10, 20, 30, 40]
        assert any(line.startswith(f"{job_id} RUNNING distlab-agents") for line in cluster.jobs()), cluster.jobs()

        # Closing the group cancels the job at once (scancel, before %dist stop returns): Slurm records
        # it CANCELLED, where agents ending by themselves would have left it COMPLETED.
        execute(kc, "%dist stop", timeout=30)
        wait_until(lambda: not any(line.startswith(f"{job_id} ") and " COMPLETING " not in line for line in cluster.jobs()), f"job {job_id} still queued or running after %dist stop: {cluster.jobs()}", timeout=5)
        wait_until(lambda: cluster.job_state(job_id) != "COMPLETING", f"job {job_id} still completing")
        assert cluster.job_state(job_id) == "CANCELLED", cluster.job_state(job_id)

        # A new group submits a new job; a graceful kernel shutdown cancels it.
        again = values_of(execute(kc, f"{magic}\n{BODY}", timeout=120))
        second_job = again[0][3]
        assert second_job != job_id
        assert any(line.startswith(f"{second_job} RUNNING") for line in cluster.jobs()), cluster.jobs()
        kc.stop_channels()
        km.shutdown_kernel(now=False)
        shut_down = True
        wait_until(lambda: not any(line.startswith(f"{second_job} ") and " COMPLETING " not in line for line in cluster.jobs()), f"job {second_job} outlived the kernel: {cluster.jobs()}", timeout=5)
        wait_until(lambda: cluster.job_state(second_job) != "COMPLETING", f"job {second_job} still completing")
        assert cluster.job_state(second_job) == "CANCELLED", cluster.job_state(second_job)
    finally:
        if not shut_down:
            stop_kernel(km, kc)


def test_a_job_still_queued_shows_under_the_cell_is_interruptible_is_named_when_the_wait_ends_and_cancelled_on_close(cluster: SlurmCluster, tmp_path: Path):
    km, kc = start_kernel_with(cluster.env, tmp_path)
    token = write_token(tmp_path / "token")
    magic = f'%%distributed -n 2 --launcher slurm --slurm "-n 2 --begin now+1hour" --rendezvous-timeout 8 --token-file {token} {AGENT}'
    try:
        # --begin keeps the job pending: no agent can come. The cell shows the job queued; the stop
        # button ends the wait at once, and the job stays queued for the next cell.
        msg_id = kc.execute(f"{magic}\ndist.rank")
        deadline = time.monotonic() + 60
        shown = ""
        while not re.search(r"Slurm job \d+ queued \(BeginTime\)", shown):
            assert time.monotonic() < deadline, f"the cell never showed the job queued: {shown!r}"
            message = kc.get_iopub_msg(timeout=60)
            if message.get("parent_header", {}).get("msg_id") == msg_id and message["header"]["msg_type"] in ("display_data", "update_display_data"):
                shown = message["content"]["data"].get("text/plain", "")
        interrupted = time.monotonic()
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=60)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = kc.get_shell_msg(timeout=60)
        assert reply["content"]["ename"] == "InterruptedError", reply["content"]
        assert time.monotonic() - interrupted < 10
        job_id = re.search(r"Slurm job (\d+) queued", shown).group(1)
        assert any(line.startswith(f"{job_id} PENDING") for line in cluster.jobs()), cluster.jobs()
        # The next cell waits for the same job (no second submission) and names it when its wait ends.
        outcome = execute(kc, f"{magic}\ndist.rank", timeout=60)
        assert outcome.status == "error"
        found = re.search(r"no agent dialled in within 8 s \(--rendezvous-timeout\); Slurm job (\d+) queued \(BeginTime\)", outcome.error["evalue"])
        assert found, outcome.error["evalue"]
        assert found.group(1) == job_id and len(cluster.jobs()) == 1, (found.group(1), cluster.jobs())
        assert any(line.startswith(f"{job_id} PENDING") for line in cluster.jobs()), cluster.jobs()
        execute(kc, "%dist stop", timeout=30)
        wait_until(lambda: not any(line.startswith(f"{job_id} ") for line in cluster.jobs()), f"queued job {job_id} left behind after %dist stop: {cluster.jobs()}", timeout=5)
        wait_until(lambda: cluster.job_state(job_id) != "COMPLETING", f"job {job_id} still completing")
        assert cluster.job_state(job_id) == "CANCELLED", cluster.job_state(job_id)
    finally:
        stop_kernel(km, kc)


@pytest.fixture(scope="module")
def plain_kernel(cluster: SlurmCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, Path]]:
    directory = tmp_path_factory.mktemp("slurm-bad")
    km, kc = start_kernel_with(cluster.env, directory)
    try:
        yield kc, write_token(directory / "token")
    finally:
        stop_kernel(km, kc)


@pytest.mark.parametrize(
    ("flags", "flag", "message"),
    [
        ("", "--slurm", "not inside a Slurm allocation (SLURM_JOB_ID is not set in the kernel's environment) and no --slurm \"ARGS\" to submit a job with"),
        ('--slurm "-N 1 --no-such-option"', "--slurm", "sbatch refused the job (status 255): sbatch: unrecognized option '--no-such-option'"),
        ('--slurm "-N 1 -p nosuchpartition"', "--slurm", "sbatch: error: invalid partition specified: nosuchpartition"),
        ('--slurm "-N 1" --slurm-per rack', "--slurm-per", "--slurm-per must be one of node|task, got 'rack'"),
    ],
)
def test_bad_input_is_refused_naming_the_flag_and_the_kernel_stays_up(plain_kernel, cluster: SlurmCluster, flags: str, flag: str, message: str):
    kc, token = plain_kernel
    before = cluster.jobs()
    outcome = execute(kc, f"%%distributed -n 2 --launcher slurm {flags} --token-file {token} {AGENT}\ndist.rank", timeout=60)
    assert outcome.status == "error"
    text = f"{outcome.error['evalue']}\n{outcome.stderr}"
    assert message in text, text
    assert flag in text, text
    assert cluster.jobs() == before, "a refused cell left a job behind"
    assert execute(kc, "1 + 1", timeout=30).status == "ok"


def test_slurm_not_installed_is_named(cluster: SlurmCluster, tmp_path: Path):
    # A PATH holding node and nothing of Slurm's.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "node").symlink_to(os.path.realpath("/usr/bin/node") if Path("/usr/bin/node").exists() else os.popen("command -v node").read().strip())
    km, kc = start_kernel_with({**cluster.env, "PATH": str(bin_dir)}, tmp_path)
    try:
        token = write_token(tmp_path / "token")
        for flags, missing in (('--slurm "-N 1"', "no `sbatch`, `squeue`, `scancel` on PATH"),):
            outcome = execute(kc, f"%%distributed -n 2 --launcher slurm {flags} --token-file {token}\ndist.rank", timeout=60)
            assert outcome.status == "error"
            assert f"%%distributed --launcher slurm: Slurm is not installed here: {missing} ({bin_dir})" in outcome.error["evalue"], outcome.error
        assert execute(kc, "1 + 1", timeout=30).status == "ok"
    finally:
        stop_kernel(km, kc)


def test_a_job_over_two_nodes_in_network_namespaces_runs_one_agent_per_node(tmp_path: Path):
    """Two slurmd nodes, each in its own network namespace (netns_hosts.py), joined to one
    slurmctld: `--slurm "-N 2 -n 4" --slurm-per node` puts one agent on each node (not one per task), and they dial the
    kernel across the bridge."""
    from netns_hosts import NamespacesUnavailable, NetnsHosts

    try:
        ensure_packages()
    except SlurmUnavailable as error:
        pytest.skip(f"Slurm cannot be installed here: {error}")
    hosts = NetnsHosts(tmp_path / "netns", 2)
    try:
        hosts.up()
    except NamespacesUnavailable as error:
        hosts.down()
        pytest.skip(f"network namespaces are not permitted here ({error})")
    cluster = None
    try:
        cluster = SlurmCluster(tmp_path / "slurm", namespaced=hosts).up()
        km, kc = start_kernel_with(cluster.env, tmp_path)
        token = write_token(tmp_path / "token")
        magic = f'%%distributed -n 4 --launcher slurm --slurm "-N 2 -n 4 --time 5" --slurm-per node --rendezvous {hosts.subnet}.1 --insecure --token-file {token} {AGENT} --timeout 30'
        try:
            body = BODY.replace("process.env.SLURM_JOB_ID", "process.env.SLURMD_NODENAME")
            values = values_of(execute(kc, f"{magic}\n{body}", timeout=120))
            assert [value[0] for value in values] == [10, 10, 10, 10], values
            # One agent per node: each node's single task has local id 0.
            assert [value[1:] for value in values] == [["0", "0", "h1"], ["0", "0", "h1"], ["1", "0", "h2"], ["1", "0", "h2"]], values
            assert values_of(execute(kc, f"{magic}\nkept", timeout=60)) == [10, 20, 30, 40]
            job_id = next(line.split()[0] for line in cluster.jobs())
            execute(kc, "%dist stop", timeout=30)
            wait_until(lambda: cluster.job_state(job_id) not in ("RUNNING", "COMPLETING"), f"job {job_id} still running")
            assert cluster.job_state(job_id) == "CANCELLED", cluster.job_state(job_id)
        finally:
            stop_kernel(km, kc)
    finally:
        if cluster is not None:
            cluster.down()
        hosts.down()
