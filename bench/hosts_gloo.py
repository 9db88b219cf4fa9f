"""One PyTorch gloo rank for bench/hosts.mjs, run inside a host's network
namespace (`ip netns exec NS /usr/bin/python3 hosts_gloo.py SPEC`):

    SPEC = {"rank": 0, "size": 3, "master": "10.x.y.11", "port": 29600,
            "plan": [{"op": "allReduce", "bytes": 1048576, "warmup": 4, "calls": 4, "reps": 5}, ...]}

Follows the plan as distlab's ranks do (collectives_gloo.py's calls: warm-up,
then `reps` blocks of `calls` in-place calls, a barrier before each block).
Rank 0 prints one JSON line per entry: {"op", "bytes", "ms": [the slowest
rank's milliseconds per call, one a block], "cpu": [[user ms, system ms] per
timed call, one a rank]} (getrusage of the whole process: gloo's threads too).
"""
import json
import os
import resource
import sys
import time

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from collectives_gloo import make_call  # noqa: E402


def main(spec):
    rank, size = spec["rank"], spec["size"]
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://{spec['master']}:{spec['port']}", rank=rank, world_size=size)
    for entry in spec["plan"]:
        run = make_call(entry["op"], entry["bytes"], rank, size)
        for _ in range(entry["warmup"]):
            run()
        blocks = []
        before = resource.getrusage(resource.RUSAGE_SELF)
        for _ in range(entry["reps"]):
            dist.barrier()
            t0 = time.perf_counter()
            for _ in range(entry["calls"]):
                run()
            blocks.append((time.perf_counter() - t0) * 1000 / entry["calls"])
        after = resource.getrusage(resource.RUSAGE_SELF)
        timed = entry["reps"] * entry["calls"]
        cpu = [(after.ru_utime - before.ru_utime) * 1000 / timed, (after.ru_stime - before.ru_stime) * 1000 / timed]
        every_rank = [None] * size
        dist.all_gather_object(every_rank, (blocks, cpu))
        if rank == 0:
            print(json.dumps({"op": entry["op"], "bytes": entry["bytes"], "ms": [max(b) for b in zip(*(r[0] for r in every_rank))], "cpu": [r[1] for r in every_rank]}), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
