"""PyTorch gloo baseline for bench/collectives.mjs: times all_reduce,
all_gather and broadcast (gloo in torch 1.13 has no reduce_scatter) on N
local processes; prints one JSON line per (op, bytes) with milliseconds per
call (the slowest rank's average)."""
import json
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def iters_for(nbytes):
    return max(3, min(200, (256 << 20) // nbytes))


def worker(rank, size, port, sizes, queue):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=size)
    for op in ["allReduce", "allGather", "broadcast"]:
        for nbytes in sizes:
            n = max(1, nbytes // 4)
            if op == "allGather":
                x = torch.full((max(1, n // size),), float(rank + 1))
                out = [torch.empty_like(x) for _ in range(size)]
                run = lambda: dist.all_gather(out, x)
            elif op == "allReduce":
                x = torch.full((n,), float(rank + 1))
                run = lambda: dist.all_reduce(x)
            else:
                x = torch.full((n,), float(rank + 1))
                run = lambda: dist.broadcast(x, 0)
            iters = iters_for(nbytes)
            for _ in range(min(3, iters)):
                run()
            dist.barrier()
            t0 = time.perf_counter()
            for _ in range(iters):
                run()
            ms = (time.perf_counter() - t0) * 1000 / iters
            times = [None] * size
            dist.all_gather_object(times, ms)
            if rank == 0:
                queue.put({"op": op, "bytes": nbytes, "ms": max(times)})
    dist.destroy_process_group()
    if rank == 0:
        queue.put(None)


if __name__ == "__main__":
    size = int(sys.argv[1])
    sizes = [int(s) for s in sys.argv[2].split(",")]
    port = int(sys.argv[3]) if len(sys.argv) > 3 else 29531
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(r, size, port, sizes, queue)) for r in range(size)]
    for p in procs:
        p.start()
    while True:
        item = queue.get()
        if item is None:
            break
        print(json.dumps(item), flush=True)
    for p in procs:
        p.join()
