"""`%%distributed --hosts` through the SSH launcher, against a real distlab
kernel and three real hosts: Linux network namespaces joined by veth pairs
to a bridge, each running Debian's OpenSSH server with generated keys
(netns_hosts.py). The kernel starts `distlab agent --stdio` on each through
the system's ssh client: data between namespaces, state across cells, an
interrupt, a cut link, refusals before anything starts, and no agent left
behind when the group closes or the kernel dies."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import execute
from kernel_helpers import checkout_distlab_script, alive, start_kernel, stop_kernel
from netns_hosts import NetnsHosts, namespaces_up_or_skip


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsHosts]:
    directory = tmp_path_factory.mktemp("netns")
    yield from namespaces_up_or_skip(NetnsHosts(directory, 3), "the SSH launcher tests")


@pytest.fixture(scope="module")
def agent_command(hosts: NetnsHosts) -> str:
    """What runs distlab on the hosts: this checkout's CLI (the namespaces share the file system)."""
    script = checkout_distlab_script(hosts.directory)
    return str(script)


@pytest.fixture(scope="module")
def session(hosts: NetnsHosts, agent_command: str) -> Iterator[tuple[object, object, str]]:
    hostfile = hosts.directory / "hosts"
    hostfile.write_text("# one rank on each namespace\nh1 slots=1\nh2 slots=1\nh3 slots=1\n")
    km, kc = start_kernel()
    magic = f"%%distributed -n 3 --hosts {hostfile} --ssh-config {hosts.ssh_config} --agent-command {agent_command} --timeout 8"
    try:
        yield km, kc, magic
    finally:
        stop_kernel(km, kc)


def _values(outcome) -> list:
    assert outcome.status == "ok", outcome.error
    return outcome.results[-1]["application/json"]


def _agents_in(hosts: NetnsHosts) -> dict[str, list[str]]:
    """The command lines of every process but sshd in each namespace."""
    found: dict[str, list[str]] = {}
    for host in hosts.hosts:
        pids = subprocess.run(["ip", "netns", "pids", host.namespace], capture_output=True, text=True).stdout.split()
        lines = []
        for pid in pids:
            try:
                lines.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip())
            except FileNotFoundError:
                continue
        found[host.name] = [line for line in lines if not line.startswith("sshd:") and "sshd -D" not in line]
    return found


def _agent_environments(hosts: NetnsHosts) -> list[bytes]:
    """The environment blocks of the `distlab agent --stdio` processes in the namespaces."""
    found = []
    for host in hosts.hosts:
        for pid in subprocess.run(["ip", "netns", "pids", host.namespace], capture_output=True, text=True).stdout.split():
            try:
                if b"agent\0--stdio" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.append(Path(f"/proc/{pid}/environ").read_bytes())
            except FileNotFoundError:
                continue
    return found


def _wait_until_no_agents(hosts: NetnsHosts, seconds: float) -> dict[str, list[str]]:
    deadline = time.monotonic() + seconds
    while True:
        left = _agents_in(hosts)
        if not any(left.values()) or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def _veth_bytes(hosts: NetnsHosts) -> list[int]:
    """Bytes each host's veth carried both ways, as the root namespace's kernel counts them."""
    total = []
    for host in hosts.hosts:
        stats = Path(f"/sys/class/net/{host.veth}/statistics")
        total.append(int((stats / "rx_bytes").read_text()) + int((stats / "tx_bytes").read_text()))
    return total


def test_an_allreduce_crosses_the_namespaces_and_state_stays_between_cells(hosts, session):
    _, kc, magic = session
    before = _veth_bytes(hosts)
    outcome = execute(
        kc,
        f"{magic}\nlet kept = dist.rank * 7;\ndist.stats.reset();\n"
        "const sum = await dist.allReduce(new Float32Array(1 << 20).fill(dist.rank + 1));\n"
        "const s = dist.stats();\n"
        "[sum[0], require('fs').readlinkSync('/proc/self/ns/net'), "
        "Object.fromEntries(Object.entries(s.byPeer).map(([p, c]) => [p, c.bytesSent])), "
        "Object.values(s.byPeer).reduce((n, c) => n + c.messagesSent, 0)]",
        timeout=180,
    )
    values = _values(outcome)
    assert [value[0] for value in values] == [6, 6, 6]
    kernel_namespace = os.readlink("/proc/self/ns/net")
    namespaces = [value[1] for value in values]
    assert len(set(namespaces)) == 3 and kernel_namespace not in namespaces, f"one rank in each host's namespace: {namespaces}"
    # A ring allReduce of 4 MiB over 3 ranks: each rank sends 2 x 2/3 of it to its neighbour, on another host.
    for rank, (_, _, sent_to, _) in enumerate(values):
        assert sent_to.get(str(rank), 0) == 0 and sum(sent_to.values()) >= (4 << 20), f"rank {rank} sent to ranks on other hosts: {sent_to}"
    # Between machines the ring runs natively (tcp-native-ring.ts): one message a step, 2 (n-1) = 4 a
    # rank (the framed ring cuts each 4/3 MiB block into 1 MiB chunks: 8)
    print(f"messages sent by each rank: {[value[3] for value in values]}")
    assert all(value[3] == 4 for value in values), f"messages each rank sent: {[value[3] for value in values]}"
    # What the veths carried: each host sent and received at least its share of a 4 MiB ring allReduce.
    carried = [after - start for after, start in zip(_veth_bytes(hosts), before)]
    assert all(count > 2 * (4 << 20) * 2 // 3 for count in carried), f"bytes through each host's veth: {carried}"
    assert _values(execute(kc, f"{magic}\nkept", timeout=60)) == [0, 7, 14]
    status = execute(kc, "%dist status", timeout=30)
    assert "rank 2 on h3: alive, idle" in status.stdout, status.stdout
    report = execute(kc, "%dist hosts", timeout=30).stdout
    for rank, host in enumerate(hosts.hosts):
        line = re.search(rf"^  {host.name}: agent distlab (\S+) on dl{hosts.ident}-{host.name} \(started through ssh\); rank {rank}; GPUs none given; "
                         r"round trip ([0-9.]+) ms, link ([0-9.]+) (MiB|GiB)/s$", report, re.M)
        assert line and float(line.group(2)) > 0 and float(line.group(3)) > 0, report
    print(report)


def test_a_large_allreduce_between_hosts_runs_on_the_native_ring(hosts, session):
    """16 MiB between 3 hosts takes the ring, which runs natively between machines (tcp-native-ring.ts):
    every byte goes to the right neighbour, in one message a step (2(n-1) = 4), and the veths carry it."""
    _, kc, magic = session
    length = 1 << 22  # floats: 16 MiB, above the pairwise exchange's 4 MiB
    before = _veth_bytes(hosts)
    outcome = execute(
        kc,
        f"{magic}\ndist.stats.reset();\n"
        f"const sum = await dist.allReduce(new Float32Array({length}).fill(dist.rank + 1));\n"
        "const s = dist.stats();\n"
        "[sum[0], sum[sum.length - 1], Object.fromEntries(Object.entries(s.byPeer).map(([p, c]) => [p, c.bytesSent])), s.byOp.allReduce.messagesSent]",
        timeout=180,
    )
    values = _values(outcome)
    assert [value[:2] for value in values] == [[6, 6]] * 3
    for rank, (_, _, sent_to, messages) in enumerate(values):
        right = str((rank + 1) % 3)
        # the ring's formula: 2 (n-1)/n of the array, blocks of floor(i * length / 3) bounds, all to the right
        blocks = [((b + 1) * length) // 3 - (b * length) // 3 for b in range(3)]
        want = 4 * sum(blocks[(rank - s) % 3] + blocks[(rank + 1 - s) % 3] for s in range(2))
        payload = {peer: count for peer, count in sent_to.items() if count > 0}
        assert payload == {right: want}, f"rank {rank} sent {sent_to}, want {want} bytes to rank {right} only"
        assert messages == 4, f"rank {rank}: {messages} messages (the framed ring sends one a 1 MiB chunk)"
    carried = [after - start for after, start in zip(_veth_bytes(hosts), before)]
    assert all(count > 2 * (4 * length) * 2 // 3 for count in carried), f"bytes through each host's veth: {carried}"


def test_an_interrupt_reaches_a_rank_on_a_host_through_its_agent(session):
    km, kc, magic = session
    assert _values(execute(kc, f"{magic}\nlet mark = dist.rank + 1;\nmark", timeout=120)) == [1, 2, 3]
    msg_id = kc.execute(f"{magic}\nif (dist.rank === 1) {{ while (true) {{}} }}\nawait dist.barrier();")
    time.sleep(3)
    km.interrupt_kernel()
    reply = kc.get_shell_msg(timeout=60)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=60)
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "InterruptedError", reply["content"]
    assert reply["content"]["evalue"].endswith("state lost on rank 1"), reply["content"]["evalue"]
    after = _values(execute(kc, f"{magic}\ntypeof mark === 'number' ? mark : 'lost'", timeout=120))
    assert after == [1, "lost", 3], "only the spinning rank lost its state; the agents (and ssh) outlived the interrupt"


# 256 KiB: the pairwise exchange over the framed connections; 16 MiB: the native ring
@pytest.mark.parametrize("length", [1 << 16, 1 << 22], ids=["framed", "native-ring"])
def test_a_cut_link_ends_the_cell_naming_the_host_and_the_rank_and_the_next_cell_starts_afresh(hosts, session, length):
    _, kc, magic = session
    assert _values(execute(kc, f"{magic}\nlet before = 1;\ndist.rank", timeout=120)) == [0, 1, 2]
    msg_id = kc.execute(f"{magic}\nconst x = new Float32Array({length});\nfor (let i = 0; i < 1e9; i++) await dist.allReduce(x, {{ out: x }});")
    time.sleep(4)
    cut = hosts.hosts[2]
    subprocess.run(["ip", "link", "set", cut.veth, "down"], check=True)
    started = time.monotonic()
    try:
        reply = kc.get_shell_msg(timeout=120)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = kc.get_shell_msg(timeout=120)
        ended_after = time.monotonic() - started
    finally:
        subprocess.run(["ip", "link", "set", cut.veth, "up"], check=True)
    content = reply["content"]
    assert content["status"] == "error"
    print(f"cut link: the cell ended {ended_after:.1f} s after the link went down: {content['ename']}: {content['evalue'][:300]}")
    assert re.search(r"rank 2 on h3\b", content["evalue"]), content["evalue"]
    assert ended_after < 8 + 30, f"the cell ended {ended_after:.1f} s after the cut (collective timeout 8 s plus the grace periods)"
    assert execute(kc, "1 + 1", timeout=30).status == "ok", "the kernel is alive"
    after = execute(kc, f"{magic}\n[dist.rank, typeof before === 'number' ? 'kept' : 'lost']", timeout=180)
    values = _values(after)
    assert [value[0] for value in values] == [0, 1, 2]
    assert [value[1] for value in values] == ["kept", "kept", "lost"], "the ranks on the hosts still reached kept their state"
    assert re.search(r"distlab: h3: the connection to its agent was lost \(.+\); started a fresh agent, the state of rank 2 is lost", after.stderr), after.stderr


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_a_stopped_agent_s_rank_ends_on_its_own_when_its_lifeline_goes_silent(hosts, session):
    """SIGSTOP of h3's agent: its rank hears no heartbeat on its lifeline and ends itself within the
    silence (RANK_LIFELINE_SILENCE_MS, 10 s) plus a margin, while the agent is still stopped; the other
    hosts' ranks live on, and once the agent runs again the next cell starts h3 afresh."""
    _, kc, magic = session
    pids = _values(execute(kc, f"{magic}\nlet still = 1;\nprocess.pid", timeout=180))
    agent_pid = _parent_of(pids[2])
    assert b"agent" in Path(f"/proc/{agent_pid}/cmdline").read_bytes(), "rank 2's parent is its agent"
    os.kill(agent_pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        while alive(pids[2]) and time.monotonic() - stopped < 10 + 15:
            time.sleep(0.2)
        ended_after = time.monotonic() - stopped
        assert not alive(pids[2]), f"rank 2 (pid {pids[2]}) still runs {ended_after:.1f} s after its agent stopped"
        assert alive(pids[0]) and alive(pids[1]), "the ranks of the hosts whose agents run live on"
        print(f"stopped agent: its rank ended {ended_after:.1f} s after the SIGSTOP")
    finally:
        os.kill(agent_pid, signal.SIGCONT)
    values = _values(execute(kc, f"{magic}\ntypeof still === 'number' ? 'kept' : 'lost'", timeout=180))
    assert values == ["kept", "kept", "lost"], values


def test_an_agent_cut_off_from_its_kernel_ends_its_ranks_after_the_kernel_s_silence(hosts, session, agent_command):
    """h3's link cut while idle: nothing reaches its agent, whose ssh channel stays open (sshd does not probe
    clients), so only the kernel's silence tells. Its agent, run with DISTLAB_AGENT_KERNEL_SILENCE_MS=4000,
    ends the session and its rank while the link is still down."""
    _, kc, magic = session
    script = hosts.directory / "distlab-quick-silence"
    script.write_text(f'#!/bin/sh\nDISTLAB_AGENT_KERNEL_SILENCE_MS=4000 exec {agent_command} "$@"\n')
    script.chmod(0o755)
    magic = magic.replace(f"--agent-command {agent_command}", f"--agent-command {script}")
    pids = _values(execute(kc, f"{magic}\nprocess.pid", timeout=180))
    cut = hosts.hosts[2]
    subprocess.run(["ip", "link", "set", cut.veth, "down"], check=True)
    started = time.monotonic()
    try:
        while alive(pids[2]) and time.monotonic() - started < 4 + 15:
            time.sleep(0.2)
        ended_after = time.monotonic() - started
        assert not alive(pids[2]), f"rank 2 (pid {pids[2]}) still runs {ended_after:.1f} s after its host was cut off"
        print(f"cut-off host: its rank ended {ended_after:.1f} s after the cut")
    finally:
        subprocess.run(["ip", "link", "set", cut.veth, "up"], check=True)
    # The next cell hears of the lost rank (an error naming it, or a note), and the one after runs on a fresh agent.
    first = execute(kc, f"{magic}\ndist.rank", timeout=180)
    assert first.status == "ok" or "rank 2 on h3" in f"{first.error}", first.error
    assert _values(execute(kc, f"{magic}\ndist.rank", timeout=180)) == [0, 1, 2]


def test_bad_hosts_input_fails_before_anything_starts_naming_the_host_line_or_value(hosts, session, agent_command):
    _, kc, _ = session
    base = f"--ssh-config {hosts.ssh_config} --agent-command {agent_command}"

    def error_of(flags: str, timeout: float = 90) -> str:
        outcome = execute(kc, f"%%distributed {flags}\n1", timeout=timeout)
        assert outcome.status == "error", f"{flags} ran"
        return outcome.error["evalue"]

    started = time.monotonic()
    refused = error_of(f"-n 1 --hosts h1-nokey {base}")
    assert refused.startswith("--hosts: agent at h1-nokey:"), refused
    assert "Permission denied" in refused and "BatchMode=yes, so it cannot ask for a password" in refused, refused
    unknown = error_of(f"-n 1 --hosts h1-unknown {base}")
    assert "h1-unknown" in unknown and "Host key verification failed" in unknown, unknown
    unreachable = error_of(f"-n 1 --hosts unreachable {base}")
    assert "agent at unreachable:" in unreachable and re.search(r"No route to host|timed out", unreachable), unreachable
    hostfile = hosts.directory / "hostfile"
    hostfile.write_text("# three namespaces\nh1 slots=1\nh2 slots=1 gpus=0,1,x\nh3\n")
    assert re.search(r'line 3 \("h2 slots=1 gpus=0,1,x"\): "gpus=0,1,x" is not slots=N or gpus=', error_of(f"-n 2 --hosts {hostfile} {base}"))
    hostfile.write_text("h1 slots=1\nh2 slots=1\n")
    assert "-n 3 is more ranks than the 2 slots of --hosts (h1: 1, h2: 1)" in error_of(f"-n 3 --hosts {hostfile} {base}")
    missing = hosts.directory / "no-such-token"
    assert f"--token-file {missing}: no such file" in error_of(f"-n 1 --hosts h1 {base} --token-file {missing}")
    assert f"--ssh-config {missing}: no such file" in error_of(f"-n 1 --hosts h1 --ssh-config {missing}")
    assert _wait_until_no_agents(hosts, 10) == {host.name: [] for host in hosts.hosts}, "nothing was left running"
    print(f"bad input: 7 refusals in {time.monotonic() - started:.1f} s")
    assert execute(kc, "1 + 1", timeout=30).status == "ok"


def test_agents_stop_when_the_group_stops_and_when_the_kernel_dies(hosts, session, agent_command):
    _, kc, magic = session
    assert _values(execute(kc, f"{magic}\ndist.rank", timeout=180)) == [0, 1, 2]
    running = _agents_in(hosts)
    assert all(any("agent --stdio" in line for line in lines) for lines in running.values()), running
    assert not any("--token" in line or re.search(r"\b[0-9a-f]{64}\b", line) for lines in running.values() for line in lines), running
    environments = _agent_environments(hosts)
    assert len(environments) == 3 and not any(re.search(rb"[0-9a-f]{64}", environ) for environ in environments), "no token in an agent's environment"
    assert "stopped the group" in execute(kc, "%dist stop", timeout=60).stdout
    assert _wait_until_no_agents(hosts, 20) == {host.name: [] for host in hosts.hosts}, "group closed: no agent or rank left"

    km, kc2 = start_kernel()
    try:
        assert _values(execute(kc2, f"%%distributed -n 2 --hosts h1,h3 --ssh-config {hosts.ssh_config} --agent-command {agent_command}\ndist.rank", timeout=180)) == [0, 1]
        assert any(_agents_in(hosts).values())
        km.provisioner.process.send_signal(signal.SIGKILL)  # the kernel dies without closing anything
        left = _wait_until_no_agents(hosts, 30)
        assert left == {host.name: [] for host in hosts.hosts}, f"orphans after the kernel was killed: {left}"
    finally:
        stop_kernel(km, kc2)
