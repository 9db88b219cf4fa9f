"""ipyparallel's `ipcluster` with its SSH engine launcher, for bench/hosts.mjs:
how long 2 hosts x 2 engines take from start to a first result, on the same
network namespaces as distlab's group start (run with the .venv's python,
where requirements-dev.txt installs ipyparallel).

    python hosts_ipcluster.py '{"ssh_config": F, "controller_ip": "10.x.y.1", "engines": {"h1": 2, "h2": 2}, "reps": 5, "dir": D}'

Each repetition: a fresh cluster (controller on this machine, listening on
the bridge; engines started through `ssh -F F`, their connection files sent
with scp), `start_and_connect_sync` until all engines registered, then one
`apply_sync` on every engine; stopped before the next. Prints {"ms": [...]}.
"""
import json
import os
import sys
import time

import ipyparallel as ipp
from traitlets.config import Config


def main(spec):
    count = sum(spec["engines"].values())
    times = []
    for rep in range(spec["reps"]):
        config = Config()
        ssh = ["-F", spec["ssh_config"], "-o", "BatchMode=yes"]
        config.SSHLauncher.ssh_args = ssh
        config.SSHLauncher.scp_args = ssh
        config.SSHLauncher.remote_python = sys.executable
        # The namespaces share this file system: a remote profile dir of its own keeps scp from copying a file onto itself.
        config.SSHLauncher.remote_profile_dir = os.path.join(spec["dir"], f"remote-profile-{rep}")
        config.SSHEngineSetLauncher.engines = spec["engines"]
        profile_dir = os.path.join(spec["dir"], f"profile-{rep}")
        os.makedirs(profile_dir, exist_ok=True)
        started = time.perf_counter()
        cluster = ipp.Cluster(engines="ssh", n=count, controller_ip=spec["controller_ip"], config=config, profile_dir=profile_dir, log_level=40)
        client = cluster.start_and_connect_sync()
        client.wait_for_engines(count, timeout=120)
        client[:].apply_sync(lambda: 0)
        times.append((time.perf_counter() - started) * 1000)
        client.close()
        cluster.stop_cluster_sync()
    print(json.dumps({"ms": times}), flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
