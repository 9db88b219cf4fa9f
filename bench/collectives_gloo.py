"""PyTorch gloo baseline for bench/collectives.mjs, on N local processes (the
layout a gloo user has: one process per rank, TCP loopback between them).

    python3 collectives_gloo.py '{"size": 2, "port": 29514, "plan": [{"op": "allReduce", "bytes": 4096,
                                   "warmup": 500, "calls": 500, "reps": 5}, ...]}'

Follows the plan the driver gives distlab's ranks: `warmup` untimed calls, then
`reps` blocks of `calls` calls, a barrier before each block. Prints one JSON
line per plan entry: {"op", "bytes", "ms": [milliseconds per call of each
block, the slowest rank's]}. The driver summarises (bench/stats.ts). gloo in
torch 1.13 has no reduce_scatter; entries for it are skipped.
"""
import json
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

OPS = ("allReduce", "allGather", "broadcast")


def make_call(op, nbytes, rank, size):
    n = max(1, nbytes // 4)  # float32 elements; allGather's size is the gathered output, as in nccl-tests
    if op == "allGather":
        x = torch.full((max(1, n // size),), float(rank + 1))
        out = [torch.empty_like(x) for _ in range(size)]
        return lambda: dist.all_gather(out, x)
    x = torch.full((n,), float(rank + 1))
    if op == "allReduce":
        return lambda: dist.all_reduce(x)
    return lambda: dist.broadcast(x, 0)


def worker(rank, size, port, plan, queue):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=size)
    for entry in plan:
        run = make_call(entry["op"], entry["bytes"], rank, size)
        for _ in range(entry["warmup"]):
            run()
        blocks = []
        for _ in range(entry["reps"]):
            dist.barrier()
            t0 = time.perf_counter()
            for _ in range(entry["calls"]):
                run()
            blocks.append((time.perf_counter() - t0) * 1000 / entry["calls"])
        every_rank = [None] * size
        dist.all_gather_object(every_rank, blocks)
        if rank == 0:
            queue.put({"op": entry["op"], "bytes": entry["bytes"], "ms": [max(b) for b in zip(*every_rank)]})
    dist.destroy_process_group()
    if rank == 0:
        queue.put(None)


if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    plan = [e for e in spec["plan"] if e["op"] in OPS]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(r, spec["size"], spec["port"], plan, queue)) for r in range(spec["size"])]
    for p in procs:
        p.start()
    while True:
        item = queue.get()
        if item is None:
            break
        print(json.dumps(item), flush=True)
    for p in procs:
        p.join()
