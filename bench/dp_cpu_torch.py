"""PyTorch side of bench:dp-cpu: DDP with gloo on N processes (one thread
each), the MLP 784-512-512-10, batch 256 per rank, SGD lr 0.01.
Prints one JSON line: {"ranks": N, "step_ms": [milliseconds of each timed
step, the slowest rank's]}; bench/dp-cpu.mjs summarises."""
import argparse
import json
import os
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F


def rank_main(rank, size, steps, warmup, port, queue):
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=size)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
    ddp = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.01)
    torch.manual_seed(1 + rank)
    x, y = torch.randn(256, 784), torch.randint(0, 10, (256,))

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(ddp(x), y).backward()
        opt.step()
    for _ in range(warmup):
        step()
    dist.barrier()
    step_ms = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        step_ms.append((time.perf_counter() - start) * 1e3)
    every_rank = [None] * size
    dist.all_gather_object(every_rank, step_ms)
    if rank == 0:
        queue.put([max(times) for times in zip(*every_rank)])
        queue.close()
        queue.join_thread()  # the result is in the pipe before this process ends
    dist.barrier()
    # End without running destructors: in PyTorch 1.13 the DDP Reducer's destructor joins gloo's
    # worker thread while holding the GIL, and that thread can be waiting for the GIL to free a
    # tensor, so a rank hung in teardown at 100% CPU (seen with 4 ranks on 2 cores).
    os._exit(0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--port", type=int, default=29517, help="the rendezvous port (bench/dp-cpu.mjs passes a free one)")
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    ranks = mp.spawn(rank_main, args=(args.ranks, args.steps, args.warmup, args.port, queue), nprocs=args.ranks, join=False)
    # Read before joining: rank 0 cannot exit until its queued result has been taken off the pipe.
    step_ms = queue.get()
    while not ranks.join():
        pass
    print(json.dumps({"ranks": args.ranks, "step_ms": step_ms}))


if __name__ == "__main__":
    main()
