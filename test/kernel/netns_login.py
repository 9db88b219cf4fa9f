"""Hosts behind a login node, made of Linux network namespaces running
Debian's OpenSSH server (the setting of `%%distributed --ssh-tunnel`).

    root namespace (the kernel): bridge dlb<id> 10.<a>.<b>.1/24
        `-- veth dlh<id>l <-> eth0 in namespace dl<id>-login   10.<a>.<b>.10  sshd :22
                                   namespace dl<id>-login: bridge cl0 10.<c>.<d>.1/24
                                       |-- veth <-> eth0 in dl<id>-c1  10.<c>.<d>.11  sshd :22
                                       `-- veth <-> eth0 in dl<id>-c2  10.<c>.<d>.12  sshd :22

The compute network exists only inside the login namespace: the root
namespace has no route to it, and the login namespace does not forward, so
the kernel reaches c1 and c2 only through `ProxyJump login`, and they cannot
reach the kernel at all. With `isolated=True` each compute host has a
bridge and subnet of its own (cl1, cl2) in the login namespace, so c1 and c2
cannot reach each other either (the setting of `--data-via ssh`). The ssh config names login, and c1, c2 with
ProxyJump login. Keys are generated for the run, as in netns_hosts.py.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from netns_hosts import SSHD, _run, require_sshd_and_namespaces


@dataclass
class LoginHost:
    name: str  # ssh config alias: login, c1, c2
    namespace: str
    address: str
    veth: str  # the end of its veth pair outside its namespace (in root for login, in login for c1, c2)
    process: subprocess.Popen | None = None


@dataclass
class LoginCluster:
    directory: Path
    compute: int = 2
    isolated: bool = False
    ident: str = field(default_factory=lambda: secrets.token_hex(2))
    login: LoginHost | None = None
    hosts: list[LoginHost] = field(default_factory=list)

    @property
    def ssh_config(self) -> Path:
        return self.directory / "ssh_config"

    def up(self) -> LoginCluster:
        require_sshd_and_namespaces(self.ident)
        self.directory.mkdir(parents=True, exist_ok=True)
        outer = f"10.{200 + secrets.randbelow(50)}.{secrets.randbelow(250)}"
        inner = f"10.{150 + secrets.randbelow(50)}.{secrets.randbelow(250)}"
        bridge = f"dlb{self.ident}"
        _run("ip", "link", "add", bridge, "type", "bridge")
        _run("ip", "addr", "add", f"{outer}.1/24", "dev", bridge)
        _run("ip", "link", "set", bridge, "up")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "distlab-test", "-f", str(self.directory / "id_ed25519"))
        (self.directory / "authorized_keys").write_text((self.directory / "id_ed25519.pub").read_text())

        self.login = LoginHost("login", f"dl{self.ident}-login", f"{outer}.10", f"dlh{self.ident}l")
        self._namespace(self.login, outside=None, bridge=bridge)
        inside_login = ("ip", "netns", "exec", self.login.namespace)
        _run(*inside_login, "sysctl", "-qw", "net.ipv4.ip_forward=0")
        for index in range(1, self.compute + 1):
            # isolated: a bridge and /24 for each compute host (inner's third number + index); else one shared
            bridge_in, subnet = (f"cl{index}", f"{inner.rsplit('.', 1)[0]}.{(int(inner.rsplit('.', 1)[1]) + index) % 250}") if self.isolated else ("cl0", inner)
            if index == 1 or self.isolated:
                _run(*inside_login, "ip", "link", "add", bridge_in, "type", "bridge")
                _run(*inside_login, "ip", "addr", "add", f"{subnet}.1/24", "dev", bridge_in)
                _run(*inside_login, "ip", "link", "set", bridge_in, "up")
            host = LoginHost(f"c{index}", f"dl{self.ident}-c{index}", f"{subnet}.{10 + index}", f"dlc{index}")
            self.hosts.append(host)
            self._namespace(host, outside=self.login.namespace, bridge=bridge_in)
        known = []
        for host in [self.login, *self.hosts]:
            self._start_sshd(host)
            key_type, key = (self.directory / f"{host.name}_host_ed25519.pub").read_text().split()[:2]
            known.append(f"{host.address} {key_type} {key}")
        (self.directory / "known_hosts").write_text("\n".join(known) + "\n")
        common = [
            "  User root",
            f"  IdentityFile {self.directory / 'id_ed25519'}",
            f"  UserKnownHostsFile {self.directory / 'known_hosts'}",
            "  GlobalKnownHostsFile /dev/null",
            "  IdentitiesOnly yes",
        ]
        blocks = [f"Host login\n  HostName {self.login.address}\n" + "\n".join(common)]
        for host in self.hosts:
            blocks.append(f"Host {host.name}\n  HostName {host.address}\n  ProxyJump login\n" + "\n".join(common))
        self.ssh_config.write_text("\n\n".join(blocks) + "\n")
        self._wait_for_sshd()
        return self

    def _namespace(self, host: LoginHost, outside: str | None, bridge: str) -> None:
        """The namespace of `host` with eth0 on `bridge`, which lives in namespace `outside` (None: root)."""
        there = () if outside is None else ("ip", "netns", "exec", outside)
        _run("ip", "netns", "add", host.namespace)
        _run(*there, "ip", "link", "add", host.veth, "type", "veth", "peer", "name", f"dlp{self.ident}{host.name}")
        _run(*there, "ip", "link", "set", f"dlp{self.ident}{host.name}", "netns", host.namespace)
        _run(*there, "ip", "link", "set", host.veth, "master", bridge, "up")
        inside = ("ip", "netns", "exec", host.namespace)
        _run(*inside, "ip", "link", "set", f"dlp{self.ident}{host.name}", "name", "eth0")
        _run(*inside, "ip", "addr", "add", f"{host.address}/24", "dev", "eth0")
        _run(*inside, "ip", "link", "set", "eth0", "up")
        _run(*inside, "ip", "link", "set", "lo", "up")

    def _start_sshd(self, host: LoginHost) -> None:
        host_key = self.directory / f"{host.name}_host_ed25519"
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key))
        config = self.directory / f"{host.name}_sshd_config"
        config.write_text("\n".join([
            f"ListenAddress {host.address}", "Port 22", f"HostKey {host_key}",
            f"AuthorizedKeysFile {self.directory / 'authorized_keys'}", "PidFile none",
            "StrictModes no", "UsePAM no", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password", "AllowTcpForwarding yes", "AcceptEnv none", "LogLevel ERROR", "",
        ]))
        log = open(self.directory / f"{host.name}_sshd.log", "w")
        # A hostname of its own (UTS namespace): ranks sharing one would talk over Unix sockets instead of the network.
        hostname = f"dl{self.ident}-{host.name}"
        host.process = subprocess.Popen(
            ["ip", "netns", "exec", host.namespace, "unshare", "--uts", "sh", "-c", f'hostname {hostname} && exec {SSHD} -D -e -f "$0"', str(config)],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        )

    def _wait_for_sshd(self) -> None:
        deadline = time.monotonic() + 30
        for host in [self.login, *self.hosts]:
            while True:
                probe = _run("ssh", "-F", str(self.ssh_config), "-o", "BatchMode=yes", "-o", "ConnectTimeout=3", host.name, "true", check=False)
                if probe.returncode == 0:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"sshd of {host.name} did not let the test key in: {probe.stderr.strip()}")
                time.sleep(0.2)

    def veth_bytes(self) -> list[int]:
        """Bytes each compute host's veth carried both ways, counted in the login namespace."""
        total = []
        for host in self.hosts:
            counts = _run("ip", "netns", "exec", self.login.namespace, "cat",  # type: ignore[union-attr]
                          f"/sys/class/net/{host.veth}/statistics/rx_bytes", f"/sys/class/net/{host.veth}/statistics/tx_bytes").stdout.split()
            total.append(sum(int(count) for count in counts))
        return total

    def login_veth_bytes(self) -> int:
        """Bytes the login host's veth carried both ways, counted in the root namespace: all ssh between the kernel and login."""
        stats = Path(f"/sys/class/net/{self.login.veth}/statistics")  # type: ignore[union-attr]
        return int((stats / "rx_bytes").read_text()) + int((stats / "tx_bytes").read_text())

    def down(self) -> None:
        for host in [*self.hosts, *([self.login] if self.login else [])]:
            for pid in _run("ip", "netns", "pids", host.namespace, check=False).stdout.split():
                try:
                    os.kill(int(pid), 9)
                except (ProcessLookupError, ValueError):
                    pass
            _run("ip", "netns", "del", host.namespace, check=False)
        _run("ip", "link", "del", f"dlh{self.ident}l", check=False)
        _run("ip", "link", "del", f"dlb{self.ident}", check=False)
