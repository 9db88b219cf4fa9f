"""`%%distributed --hosts HOSTFILE --ssh-tunnel --data-via ssh` against a real distlab
kernel and compute hosts behind a login node that cannot reach each other
(netns_login.py with isolated=True: c1 and c2 on bridges and subnets of their
own, the login namespace does not forward). The ranks' connections between
hosts ride the kernel's ssh sessions (hosts/data-relay.ts): an allReduce
crosses from c1 to c2 and its bytes go through the login host's link to the
kernel (its veth's counters); without --data-via ssh the cell fails, and the
kernel goes on."""

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
    yield from namespaces_up_or_skip(LoginCluster(tmp_path_factory.mktemp("login-isolated"), isolated=True), "the --data-via ssh tests")


@pytest.fixture(scope="module")
def kernel(cluster: LoginCluster) -> Iterator[tuple[object, str]]:
    script = checkout_distlab_script(cluster.directory)
    hostfile = cluster.directory / "hosts"
    hostfile.write_text("# one rank on each compute host\nc1 slots=1\nc2 slots=1\n")
    km, kc = start_kernel()
    try:
        yield kc, f"--hosts {hostfile} --ssh-config {cluster.ssh_config} --agent-command {script} --timeout 8 --ssh-tunnel"
    finally:
        stop_kernel(km, kc)


def _values(outcome) -> list:
    assert outcome.status == "ok", outcome.error
    return outcome.results[-1]["application/json"]


def test_the_compute_hosts_cannot_reach_each_other(cluster):
    c1, c2 = cluster.hosts
    probe = "import socket,sys; s=socket.socket(); s.settimeout(3); sys.exit(s.connect_ex((sys.argv[1], 22)))"
    assert subprocess.run(["ip", "netns", "exec", c1.namespace, "python3", "-c", probe, c2.address]).returncode != 0, "c1 reached c2's sshd"
    assert subprocess.run(["ip", "netns", "exec", c1.namespace, "python3", "-c", probe, c1.address]).returncode == 0, "the probe works: c1 reaches its own sshd"


def test_without_data_via_ssh_the_cell_fails_naming_the_address_and_the_kernel_goes_on(cluster, kernel):
    kc, flags = kernel
    outcome = execute(kc, f"%%distributed -n 2 {flags}\ndist.rank", timeout=120)
    assert outcome.status == "error"
    # c2's rank cannot reach the rendezvous on c1
    assert cluster.hosts[0].address in f"{outcome.error}", outcome.error
    assert execute(kc, "1 + 1", timeout=30).status == "ok"


def test_an_allreduce_between_hosts_that_cannot_reach_each_other_rides_ssh(cluster, kernel):
    kc, flags = kernel
    magic = f"%%distributed -n 2 {flags} --data-via ssh"
    assert _values(execute(kc, f"{magic}\nlet kept = dist.rank * 7;\nkept", timeout=180)) == [0, 7]
    login_before, compute_before = cluster.login_veth_bytes(), cluster.veth_bytes()
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
    for rank, (_, _, sent_to) in enumerate(values):
        assert sum(sent_to.values()) >= (2 << 20) and sent_to.get(str(rank), 0) == 0, f"rank {rank} sent: {sent_to}"
    # Each rank sent half of 4 MiB twice (reduce-scatter, all-gather) = 4 MiB in all, both ways through the
    # kernel: up c1's ssh and down c2's, and back. Every such byte crosses the login host's link to the
    # kernel twice (in and out), so that veth carries at least 2 x 4 MiB, which direct data never does.
    login_carried = cluster.login_veth_bytes() - login_before
    compute_carried = [after - start for after, start in zip(cluster.veth_bytes(), compute_before)]
    print(f"--data-via ssh, allReduce of 4 MiB: login's link carried {login_carried} bytes, the compute hosts' links {compute_carried}")
    assert login_carried > 2 * (4 << 20), f"bytes through the login host's link to the kernel: {login_carried}"
    assert all(count > 2 * (2 << 20) for count in compute_carried), f"bytes through each compute host's veth: {compute_carried}"
    assert _values(execute(kc, f"{magic}\nkept", timeout=60)) == [0, 7]
