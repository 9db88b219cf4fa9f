"""The ranks' data connections between hosts with and without `--data-tls`,
seen on the wire: three network namespaces running sshd (the fixtures of
test_hosts_ssh.py), one rank in each, and a packet tap (an AF_PACKET socket)
on the root-namespace end of host h2's veth while the ranks allReduce a
recognisable float32 payload. Without TLS the tap finds the payload's bytes
(so the tap does see the data); with `--data-tls on` it finds none and the
result is still exact."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import pytest
from conftest import execute
from kernel_helpers import start_kernel, stop_kernel
from test_hosts_ssh import agent_command, hosts  # noqa: F401 (module-scoped fixtures: the namespaces and the CLI on them)

COUNT = 1 << 18
# The ring's all-gather puts every chunk of the sum on the wire; 8 floats of it at a few offsets.
PAYLOAD = f"new Float32Array({COUNT}).map((_, i) => 1000.125 * (dist.rank + 1) + i * 0.5)"


class Tap:
    """Every frame through one network interface while it runs (ETH_P_ALL on an AF_PACKET socket)."""

    def __init__(self, interface: str) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
        self.sock.bind((interface, 0))
        self.sock.settimeout(0.2)
        self.frames: list[bytes] = []
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while self.running:
            try:
                self.frames.append(self.sock.recv(1 << 18))  # segments may be GSO-sized, above the MTU
            except TimeoutError:
                continue
            except OSError:
                return

    def stop(self) -> bytes:
        self.running = False
        self.thread.join(5)
        self.sock.close()
        return b"".join(self.frames)


def windows_of_sum() -> list[bytes]:
    """32-byte windows of the allReduce's exact result (3 ranks), as the ranks hold it."""
    values = [sum(1000.125 * (rank + 1) + i * 0.5 for rank in range(3)) for i in range(COUNT)]
    return [struct.pack("<8f", *values[at:at + 8]) for at in (0, COUNT // 3, COUNT // 2, (2 * COUNT) // 3)]


@pytest.fixture(scope="module")
def kernel() -> Iterator[object]:
    km, kc = start_kernel()
    try:
        yield kc
    finally:
        stop_kernel(km, kc)


@pytest.mark.parametrize("data_tls", ["off", "on"])
def test_the_payload_crosses_the_wire_only_without_data_tls(hosts, agent_command, kernel, data_tls):  # noqa: F811
    hostfile = hosts.directory / "hosts-tls"
    hostfile.write_text("h1 slots=1\nh2 slots=1\nh3 slots=1\n")
    magic = f"%%distributed -n 3 --hosts {hostfile} --ssh-config {hosts.ssh_config} --agent-command {agent_command} --timeout 30 --data-tls {data_tls}"
    # the group starts (ssh, agents, the world) before the tap, so the tap holds the allReduce's bytes
    assert execute(kernel, f"{magic}\ndist.rank", timeout=180).status == "ok"
    tap = Tap(hosts.hosts[1].veth)
    try:
        outcome = execute(kernel, f"{magic}\nconst x = {PAYLOAD};\nconst sum = await dist.allReduce(x);\n[sum[0], sum[1]]", timeout=180)
    finally:
        wire = tap.stop()
    assert outcome.status == "ok", outcome.error
    values = outcome.results[-1]["application/json"]
    assert values == [[6000.75, 6002.25]] * 3, values
    assert len(wire) > 3 * 4 * COUNT * 2 // 3, f"the tap saw {len(wire)} bytes: it should hold h2's share of the allReduce"
    found = [window.hex() for window in windows_of_sum() if window in wire]
    print(f"\n--data-tls {data_tls}: tap saw {len(wire)} bytes on {hosts.hosts[1].veth}; plaintext windows found: {len(found)} of 4")
    if data_tls == "off":
        assert found, "without --data-tls the tap sees the payload (else it would prove nothing with TLS)"
    else:
        assert not found, f"with --data-tls on the payload's bytes crossed the wire in plaintext: {found}"
