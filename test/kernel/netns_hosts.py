"""Hosts made of Linux network namespaces, each running Debian's OpenSSH server.

    root namespace: bridge dlb<id> 10.<a>.<b>.1/24  (the kernel runs here)
        |-- veth dlh<id>n1 <-> eth0 in namespace dl<id>-h1  10.<a>.<b>.11  sshd :22
        |-- veth dlh<id>n2 <-> eth0 in namespace dl<id>-h2  10.<a>.<b>.12  sshd :22
        `-- ...

Every key is generated for the run: one host key per namespace, one user key,
a known_hosts holding exactly those host keys, and an ssh config naming the
hosts h1, h2, ... (plus h1-nokey, whose key the server does not accept, and
h1-unknown, whose host key is not in known_hosts, for the refusal tests).
Each namespace has its own hostname (a UTS namespace) and shares the file
system, so a distlab checkout here is also there.

Used by test/kernel/test_hosts_ssh.py and bench/hosts.mjs (through the CLI:
`python3 netns_hosts.py up DIR N` prints the hosts as JSON, `down DIR` undoes
everything `up` did).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

SSHD = "/usr/sbin/sshd"


class NamespacesUnavailable(Exception):
    """Creating a network namespace is not permitted here (not root, or no CAP_SYS_ADMIN)."""


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


def require_sshd_and_namespaces(ident: str) -> None:
    """Raises unless Debian's sshd is installed and this process may create network namespaces."""
    if not Path(SSHD).exists():
        raise RuntimeError(f"{SSHD} is missing: install openssh-server (npm run setup does)")
    probe = f"dl{ident}-probe"
    created = _run("ip", "netns", "add", probe, check=False)
    if created.returncode != 0:
        raise NamespacesUnavailable(f"ip netns add: {created.stderr.strip()}")
    _run("ip", "netns", "del", probe)


def namespaces_up_or_skip(netns, needed_by: str):
    """Brings `netns` (NetnsHosts or netns_login.LoginCluster) up for a pytest fixture, yields it and
    takes it down after; where namespaces are not permitted, skips the tests that need them."""
    import pytest

    try:
        netns.up()
    except NamespacesUnavailable as error:
        netns.down()
        pytest.skip(f"network namespaces are not permitted here ({error}); {needed_by} need them")
    except BaseException:
        netns.down()
        raise
    try:
        yield netns
    finally:
        netns.down()


@dataclass
class Host:
    name: str  # ssh config alias: h1, h2, ...
    namespace: str
    address: str
    veth: str  # the root-namespace end of its veth pair (ip link set VETH down cuts the host off)
    sshd_pid: int = 0


@dataclass
class NetnsHosts:
    directory: Path
    count: int
    ident: str = field(default_factory=lambda: secrets.token_hex(2))
    hosts: list[Host] = field(default_factory=list)
    subnet: str = ""

    @property
    def bridge(self) -> str:
        return f"dlb{self.ident}"

    @property
    def ssh_config(self) -> Path:
        return self.directory / "ssh_config"

    def up(self) -> NetnsHosts:
        require_sshd_and_namespaces(self.ident)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.subnet = f"10.{200 + secrets.randbelow(50)}.{secrets.randbelow(250)}"
        self._save()
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        _run("ip", "addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        user_key = self.directory / "id_ed25519"
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "distlab-test", "-f", str(user_key))
        other_key = self.directory / "other_ed25519"
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "distlab-test-other", "-f", str(other_key))
        (self.directory / "authorized_keys").write_text((self.directory / "id_ed25519.pub").read_text())
        known_hosts: list[str] = []
        for index in range(1, self.count + 1):
            host = Host(f"h{index}", f"dl{self.ident}-h{index}", f"{self.subnet}.{10 + index}", f"dlh{self.ident}n{index}")
            self.hosts.append(host)
            self._save()
            _run("ip", "netns", "add", host.namespace)
            _run("ip", "link", "add", host.veth, "type", "veth", "peer", "name", f"dlp{self.ident}n{index}")
            _run("ip", "link", "set", f"dlp{self.ident}n{index}", "netns", host.namespace)
            _run("ip", "link", "set", host.veth, "master", self.bridge, "up")
            inside = ("ip", "netns", "exec", host.namespace)
            _run(*inside, "ip", "link", "set", f"dlp{self.ident}n{index}", "name", "eth0")
            _run(*inside, "ip", "addr", "add", f"{host.address}/24", "dev", "eth0")
            _run(*inside, "ip", "link", "set", "eth0", "up")
            _run(*inside, "ip", "link", "set", "lo", "up")
            _run(*inside, "ip", "route", "add", "default", "via", f"{self.subnet}.1")
            host_key = self.directory / f"{host.name}_host_ed25519"
            _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key))
            key_type, key = (self.directory / f"{host.name}_host_ed25519.pub").read_text().split()[:2]
            known_hosts.append(f"{host.address} {key_type} {key}")
            config = self.directory / f"{host.name}_sshd_config"
            config.write_text("\n".join([
                f"ListenAddress {host.address}",
                "Port 22",
                f"HostKey {host_key}",
                f"AuthorizedKeysFile {self.directory / 'authorized_keys'}",
                "PidFile none",
                "StrictModes no",  # the keys live under /tmp, which is world-writable
                "UsePAM no",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "AcceptEnv none",
                "Subsystem sftp internal-sftp",  # scp (ipcluster's SSH launcher sends files with it)
                "LogLevel ERROR",
                "",
            ]))
            log = open(self.directory / f"{host.name}_sshd.log", "w")
            # A hostname of its own too (a UTS namespace): ranks that share a hostname take each other
            # for the same machine and talk over Unix sockets, which would bypass the network under test.
            hostname = f"dl{self.ident}-{host.name}"
            process = subprocess.Popen(
                [*inside, "unshare", "--uts", "sh", "-c", f'hostname {hostname} && exec {SSHD} -D -e -f "$0"', str(config)],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            )
            host.sshd_pid = process.pid
            self._save()
        (self.directory / "known_hosts").write_text("\n".join(known_hosts) + "\n")
        self._write_ssh_config()
        self._wait_for_sshd()
        return self

    def _write_ssh_config(self) -> None:
        blocks = []
        common = [
            "  User root",
            f"  UserKnownHostsFile {self.directory / 'known_hosts'}",
            "  GlobalKnownHostsFile /dev/null",
            "  IdentitiesOnly yes",
        ]
        for host in self.hosts:
            blocks.append("\n".join([f"Host {host.name}", f"  HostName {host.address}", f"  IdentityFile {self.directory / 'id_ed25519'}", *common]))
        first = self.hosts[0]
        blocks.append("\n".join([f"Host h1-nokey", f"  HostName {first.address}", f"  IdentityFile {self.directory / 'other_ed25519'}", *common]))
        blocks.append("\n".join([
            "Host h1-unknown", f"  HostName {first.address}", f"  IdentityFile {self.directory / 'id_ed25519'}", "  User root",
            f"  UserKnownHostsFile {self.directory / 'empty_known_hosts'}", "  GlobalKnownHostsFile /dev/null", "  IdentitiesOnly yes",
        ]))
        blocks.append("\n".join([f"Host unreachable", f"  HostName {self.subnet}.99", f"  IdentityFile {self.directory / 'id_ed25519'}", *common]))
        self.ssh_config.write_text("\n\n".join(blocks) + "\n")
        (self.directory / "empty_known_hosts").write_text("")

    def _wait_for_sshd(self) -> None:
        deadline = time.monotonic() + 20
        for host in self.hosts:
            while True:
                probe = _run("ssh", "-F", str(self.ssh_config), "-o", "BatchMode=yes", "-o", "ConnectTimeout=3", host.name, "true", check=False)
                if probe.returncode == 0:
                    break
                if time.monotonic() > deadline:
                    log = (self.directory / f"{host.name}_sshd.log").read_text()
                    raise RuntimeError(f"sshd in {host.namespace} did not let the test key in: {probe.stderr.strip()}; sshd log: {log}")
                time.sleep(0.2)

    def _save(self) -> None:
        state = {"ident": self.ident, "subnet": self.subnet, "count": self.count, "hosts": [asdict(host) for host in self.hosts]}
        (self.directory / "netns.json").write_text(json.dumps(state))

    def describe(self) -> dict:
        return {"ssh_config": str(self.ssh_config), "bridge": self.bridge, "subnet": self.subnet, "hosts": [asdict(host) for host in self.hosts]}

    def down(self) -> None:
        for host in self.hosts:
            # Everything still running in the namespace (sshd, agents, ranks) goes with it.
            pids = _run("ip", "netns", "pids", host.namespace, check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), 9)
                except (ProcessLookupError, ValueError):
                    pass
            _run("ip", "netns", "del", host.namespace, check=False)
            _run("ip", "link", "del", host.veth, check=False)
        _run("ip", "link", "del", self.bridge, check=False)

    @staticmethod
    def load(directory: Path) -> NetnsHosts:
        state = json.loads((directory / "netns.json").read_text())
        hosts = NetnsHosts(directory, state["count"], state["ident"], [Host(**host) for host in state["hosts"]], state["subnet"])
        return hosts


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[0] == "up":
        directory = Path(argv[1])
        hosts = NetnsHosts(directory, int(argv[2]))
        try:
            hosts.up()
        except BaseException:
            hosts.down()
            raise
        print(json.dumps(hosts.describe()))
        return 0
    if len(argv) == 2 and argv[0] == "down":
        NetnsHosts.load(Path(argv[1])).down()
        shutil.rmtree(argv[1], ignore_errors=True)
        return 0
    print("usage: netns_hosts.py up DIR N | down DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
