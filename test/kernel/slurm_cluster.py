"""A single-node Slurm cluster for the launcher tests, from Debian's packages.

    munged   --socket DIR/munge.socket  (a key generated for the run)
    slurmctld -D -f DIR/slurm.conf       ports picked free, state under DIR
    slurmd    -D -N NODE -f DIR/slurm.conf   NodeName = this machine's short hostname, CPUs=2

Every Slurm command finds the cluster through SLURM_CONF=DIR/slurm.conf (in
`SlurmCluster.env`), so a Slurm installed and configured on the machine is
left alone. `ensure_packages` installs slurm-wlm, munge and openmpi-bin with
apt-get when they are missing, as root; elsewhere it says why it cannot.

With `namespaced` hosts (netns_hosts.py's network namespaces), there is one
slurmd per namespace instead, each its own node (NodeName h1, h2, ... at
the namespace's address), started with `nsenter --net` (not `ip netns exec`,
which remounts /sys without the cgroup file system slurmd reads), and
slurmctld reached at the bridge's address (SlurmctldAddr).

Authentication is munge, as on a real cluster: munged runs as root with its
own socket, key, log and pid file under DIR (--force accepts DIR's parents,
such as /tmp, being writable by others).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = {"slurm-wlm": "/usr/sbin/slurmctld", "munge": "/usr/sbin/munged", "openmpi-bin": "/usr/bin/mpirun"}


class SlurmUnavailable(Exception):
    """The packages are missing and cannot be installed here (not root, no apt-get)."""


def ensure_packages(packages: dict[str, str] = PACKAGES) -> None:
    """Installs the Debian packages whose marker file is missing: apt-get update, then apt-get install -y."""
    missing = [name for name, marker in packages.items() if not Path(marker).exists()]
    if not missing:
        return
    if os.geteuid() != 0:
        raise SlurmUnavailable(f"{', '.join(missing)} not installed and this is not root (apt-get install -y {' '.join(missing)})")
    if shutil.which("apt-get") is None:
        raise SlurmUnavailable(f"{', '.join(missing)} not installed and there is no apt-get here")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *missing]):
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout[-2000:]}{result.stderr[-2000:]}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class SlurmCluster:
    directory: Path
    cpus: int = 2
    node: str = field(default_factory=lambda: socket.gethostname().split(".")[0])
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    # netns_hosts.NetnsHosts: one slurmd node per namespace instead of this machine.
    namespaced: object | None = None

    @property
    def nodes(self) -> list[str]:
        return [host.name for host in self.namespaced.hosts] if self.namespaced is not None else [self.node]

    @property
    def conf(self) -> Path:
        return self.directory / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """This process's environment with the cluster's config and no Slurm job of its own."""
        env = {key: value for key, value in os.environ.items() if not key.startswith(("SLURM_", "SALLOC_", "SBATCH_", "SRUN_"))}
        env["SLURM_CONF"] = str(self.conf)
        return env

    def up(self) -> SlurmCluster:
        self.directory.mkdir(parents=True, exist_ok=True)
        for sub in ("state", "munge", *(f"spool-{node}" for node in self.nodes)):
            (self.directory / sub).mkdir(exist_ok=True, mode=0o700)
        key = self.directory / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        munge_socket = self.directory / "munge" / "munge.socket"
        self._start(
            ["/usr/sbin/munged", "--foreground", "--force", f"--key-file={key}", f"--socket={munge_socket}",
             f"--pid-file={self.directory / 'munge' / 'munged.pid'}", f"--log-file={self.directory / 'munge' / 'munged.log'}",
             f"--seed-file={self.directory / 'munge' / 'munged.seed'}"],
            "munged", self.directory / "munge" / "munged.out",
        )
        self._wait_for(lambda: munge_socket.exists(), "munged's socket", self.directory / "munge" / "munged.log")
        self.conf.write_text(self._config(munge_socket))
        self._start(["/usr/sbin/slurmctld", "-D", "-i", "-f", str(self.conf)], "slurmctld", self.directory / "slurmctld.out")
        if self.namespaced is None:
            self._start(["/usr/sbin/slurmd", "-D", "-N", self.node, "-f", str(self.conf)], "slurmd", self.directory / f"slurmd-{self.node}.out")
        for host in getattr(self.namespaced, "hosts", []):
            self._start(["nsenter", f"--net=/run/netns/{host.namespace}", "/usr/sbin/slurmd", "-D", "-N", host.name, "-f", str(self.conf)], "slurmd", self.directory / f"slurmd-{host.name}.out")
        self._wait_for(self._nodes_idle, f"nodes {','.join(self.nodes)} idle in sinfo", self.directory / f"slurmd-{self.nodes[0]}.log")
        return self

    def down(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in reversed(self.processes):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()

    def run(self, *command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(command), capture_output=True, text=True, env=self.env, timeout=timeout)

    def jobs(self) -> list[str]:
        """`JOBID STATE NAME` of every job squeue lists."""
        result = self.run("squeue", "--noheader", "--format", "%i %T %j")
        assert result.returncode == 0, result.stderr
        return [line.strip() for line in result.stdout.splitlines() if line.strip()]

    def job_state(self, job_id: str) -> str:
        """JobState as slurmctld still knows it (MinJobAge keeps ended jobs for 30 s)."""
        result = self.run("scontrol", "show", "job", job_id)
        found = re.search(r"JobState=(\S+)", result.stdout)
        return found.group(1) if found else f"unknown ({result.stderr.strip()})"

    def log_tail(self) -> str:
        parts = []
        for name in ("slurmctld.log", "slurmctld.out", *(f"slurmd-{node}.{ext}" for node in self.nodes for ext in ("log", "out"))):
            path = self.directory / name
            if path.exists():
                parts.append(f"--- {name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-15:]))
        return "\n".join(parts)

    def _config(self, munge_socket: Path) -> str:
        d = self.directory
        if self.namespaced is None:
            nodes = f"NodeName={self.node} CPUs={self.cpus} State=UNKNOWN"
            controller_addr = ""
        else:
            nodes = "\n".join(f"NodeName={host.name} NodeAddr={host.address} CPUs={self.cpus} State=UNKNOWN" for host in self.namespaced.hosts)
            controller_addr = f"SlurmctldAddr={self.namespaced.subnet}.1\n"
        return f"""# Generated for a test run: this machine's nodes.
ClusterName=distlabtest
SlurmctldHost={self.node}
{controller_addr}SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={d / 'state'}
SlurmdSpoolDir={d / 'spool-%n'}
SlurmctldPidFile={d / 'slurmctld.pid'}
SlurmdPidFile={d / 'slurmd-%n.pid'}
SlurmctldLogFile={d / 'slurmctld.log'}
SlurmdLogFile={d / 'slurmd-%n.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
MinJobAge=30
KillWait=2
InactiveLimit=0
SlurmdTimeout=30
{nodes}
PartitionName=debug Nodes={",".join(self.nodes)} Default=YES MaxTime=INFINITE State=UP
"""

    def _start(self, command: list[str], name: str, output: Path) -> None:
        with output.open("wb") as sink:
            self.processes.append(subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=self.env))

    def _nodes_idle(self) -> bool:
        result = self.run("sinfo", "--noheader", "--Node", "--format", "%T")
        states = result.stdout.split()
        return result.returncode == 0 and len(states) == len(self.nodes) and all(state in ("idle", "mixed", "allocated") for state in states)

    def _wait_for(self, ready, what: str, log: Path, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    self.down()
                    raise RuntimeError(f"{process.args[0]} exited ({process.returncode}) while waiting for {what}:\n{self.log_tail()}")
            if ready():
                return
            time.sleep(0.2)
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        self.down()
        raise RuntimeError(f"{what}: not ready within {timeout} s\n{tail}\n{self.log_tail()}")


if __name__ == "__main__":
    # `python3 slurm_cluster.py DIR [NETNS_DIR]` runs the cluster until SIGTERM or SIGINT (bench/hosts_slurm.mjs,
    # by hand); with NETNS_DIR (netns_hosts.py up NETNS_DIR N), one node per namespace.
    import signal
    import sys

    from netns_hosts import NetnsHosts

    ensure_packages()
    cluster = SlurmCluster(Path(sys.argv[1]), namespaced=NetnsHosts.load(Path(sys.argv[2])) if len(sys.argv) > 2 else None).up()
    print(f"export SLURM_CONF={cluster.conf}", flush=True)
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, lambda *_: (cluster.down(), sys.exit(0)))
    while True:
        time.sleep(3600)
