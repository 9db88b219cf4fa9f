"""`%%distributed --hosts HOSTFILE --ssh-tunnel` (c1 and c2, one slot each) against a real distlab kernel
and hosts behind a login node (netns_login.py): the kernel reaches c1 and c2
only through ssh's ProxyJump, and they cannot reach the kernel. With
--ssh-tunnel the ranks' rendezvous runs on c1, so an allReduce crosses the
compute network and state stays between cells; without it the cell fails
with an error naming the address the ranks cannot reach."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
from conftest import execute
from kernel_helpers import checkout_distlab_script, start_kernel, stop_kernel
from netns_hosts import namespaces_up_or_skip
from netns_login import LoginCluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoginCluster]:
    yield from namespaces_up_or_skip(LoginCluster(tmp_path_factory.mktemp("login")), "the --ssh-tunnel tests")


@pytest.fixture(scope="module")
def kernel(cluster: LoginCluster) -> Iterator[tuple[object, str]]:
    # This checkout's CLI runs distlab on the hosts (the namespaces share the file system).
    script = checkout_distlab_script(cluster.directory)
    hostfile = cluster.directory / "hosts"
    hostfile.write_text("# one rank on each compute host\nc1 slots=1\nc2 slots=1\n")
    km, kc = start_kernel()
    try:
        yield kc, f"--hosts {hostfile} --ssh-config {cluster.ssh_config} --agent-command {script} --timeout 8"
    finally:
        stop_kernel(km, kc)


def _values(outcome) -> list:
    assert outcome.status == "ok", outcome.error
    return outcome.results[-1]["application/json"]


def test_the_kernel_cannot_reach_the_compute_hosts_directly(cluster):
    # The premise: no route from the kernel's namespace to c1, so ssh must jump through login.
    direct = subprocess.run(["ssh", "-F", str(cluster.ssh_config), "-o", "BatchMode=yes", "-o", "ConnectTimeout=3", "-o", "ProxyJump=none", "c1", "true"],
                            capture_output=True, text=True)
    assert direct.returncode != 0, "c1 answered without the login node"


def test_an_allreduce_runs_through_the_tunnel_and_state_stays(cluster, kernel):
    kc, flags = kernel
    magic = f"%%distributed -n 2 {flags} --ssh-tunnel"
    # The group starts first: its agents' link measurement (bytes through ssh) is not the allReduce's.
    assert _values(execute(kc, f"{magic}\nlet kept = dist.rank * 7;\nkept", timeout=180)) == [0, 7]
    before = cluster.veth_bytes()
    outcome = execute(
        kc,
        f"{magic}\ndist.stats.reset();\n"
        "const sum = await dist.allReduce(new Float32Array(1 << 20).fill(dist.rank + 1));\n"
        "const s = dist.stats();\n"
        "[sum[0], require('os').hostname(), Object.fromEntries(Object.entries(s.byPeer).map(([p, c]) => [p, c.bytesSent]))]",
        timeout=180,
    )
    values = _values(outcome)
    assert [value[0] for value in values] == [3, 3]
    assert [value[1] for value in values] == [f"dl{cluster.ident}-c1", f"dl{cluster.ident}-c2"]
    # Each rank's wire counters: its half of a 4 MiB allReduce went to the other host's rank.
    for rank, (_, _, sent_to) in enumerate(values):
        assert sum(sent_to.values()) >= (2 << 20) and sent_to.get(str(rank), 0) == 0, f"rank {rank} sent: {sent_to}"
    # And the compute hosts' veths (inside the login namespace) carried it.
    carried = [after - start for after, start in zip(cluster.veth_bytes(), before)]
    assert all(count > 2 * (2 << 20) for count in carried), f"bytes through each compute host's veth: {carried}"
    assert _values(execute(kc, f"{magic}\nkept", timeout=60)) == [0, 7]


def test_without_the_tunnel_the_cell_names_the_address_the_ranks_cannot_reach(cluster, kernel):
    kc, flags = kernel
    outcome = execute(kc, f"%%distributed -n 2 {flags}\ndist.rank", timeout=120)
    assert outcome.status == "error"
    # c1 sees the kernel at the login node's compute-side address (ssh's SSH_CONNECTION).
    login_inner = cluster.hosts[0].address.rsplit(".", 1)[0] + ".1"
    message = f"{outcome.error}"
    assert login_inner in message and "--ssh-tunnel" in message, message
    # The kernel goes on: the tunnelled group starts again.
    assert _values(execute(kc, f"%%distributed -n 2 {flags} --ssh-tunnel\ndist.rank", timeout=120)) == [0, 1]
