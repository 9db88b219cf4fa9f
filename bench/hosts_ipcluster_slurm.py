"""ipyparallel's Slurm engine launcher (`ipcluster start --engines=slurm`), for
bench/hosts_slurm.mjs: how long 4 engines on 2 Slurm nodes take from start to a
first result, on the same Slurm as distlab's group start (SLURM_CONF in the
environment; run with the .venv's python, where requirements-dev.txt installs
ipyparallel).

    python hosts_ipcluster_slurm.py '{"controller_ip": "10.x.y.1", "engines": 4, "options": "--nodes=2 --ntasks-per-node=2", "reps": 5, "dir": D}'

Each repetition: a fresh cluster (controller on this machine, listening on the
bridge the nodes reach; engines submitted as one sbatch job of `srun python
-m ipyparallel.engine` tasks), `start_and_connect_sync` until every engine
registered, then one `apply_sync` on every engine; stopped (scancel) before the
next. Prints {"ms": [...]}.
"""
import json
import os
import sys
import time

import ipyparallel as ipp
from traitlets.config import Config


def main(spec):
    count = spec["engines"]
    times = []
    for rep in range(spec["reps"]):
        config = Config()
        config.SlurmEngineSetLauncher.options = spec["options"]
        config.SlurmEngineSetLauncher.timelimit = "5"
        profile_dir = os.path.join(spec["dir"], f"profile-{rep}")
        os.makedirs(profile_dir, exist_ok=True)
        started = time.perf_counter()
        cluster = ipp.Cluster(engines="slurm", n=count, controller_ip=spec["controller_ip"], config=config, profile_dir=profile_dir, cluster_id=f"bench{rep}", log_level=40)
        client = cluster.start_and_connect_sync()
        client.wait_for_engines(count, timeout=120)
        client[:].apply_sync(lambda: 0)
        times.append((time.perf_counter() - started) * 1000)
        client.close()
        cluster.stop_cluster_sync()
    print(json.dumps({"ms": times}), flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
