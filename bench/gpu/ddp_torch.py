"""PyTorch's side of bench/gpu/ddp_gpus.py: DistributedDataParallel with NCCL on `--ranks` GPUs of
this machine (one process each, rank r on cuda:r mod the GPU count), the model of gpt2_torch.py
(GPT-2 small's shapes as distlab/models builds them) at `--context`, `--batch` sequences a rank,
plain SGD (lr 1e-4) as distlab's DDP steps, f32 with TF32 off. `--warmup` untimed steps, then
`--steps` timed ones, a barrier before each, each reading its loss back (as the TF.js step does);
a step's time is the slowest rank's. Then NCCL's allReduce of `--allreduce-mib` MiB of float32 on
the GPUs: 2 untimed and 5 timed calls, busbw as nccl-tests computes it.

Prints one JSON line: {"who": "torch", "ranks", "stepMs": {median, min, max}, "samplesPerS",
"allReduceBusbwGBs", ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import time

import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from gpt2_torch import Gpt2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, args: argparse.Namespace, port: int, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    device = torch.device("cuda", rank % torch.cuda.device_count())
    torch.cuda.set_device(device)
    torch_dist.init_process_group("nccl", rank=rank, world_size=args.ranks)
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    b, t, v = args.batch, args.context, 50304
    model = DistributedDataParallel(Gpt2(v, t, 768, 12, 12, "explicit").to(device), device_ids=[device.index])
    generator = torch.Generator(device="cpu").manual_seed(11 + rank)
    tokens = torch.randint(0, v, (b, t), generator=generator).to(device)
    targets = torch.randint(0, v, (b * t,), generator=generator).to(device)
    mask = torch.triu(torch.full((t, t), -1e9, device=device), diagonal=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    step_ms = []
    for step in range(args.warmup + args.steps):
        torch_dist.barrier()
        torch.cuda.synchronize()
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(tokens, mask).view(b * t, v), targets)
        loss.backward()
        optimizer.step()
        loss.item()
        if step >= args.warmup:
            step_ms.append((time.perf_counter() - started) * 1e3)
    buffer = torch.ones(args.allreduce_mib * 2**20 // 4, device=device)
    call_ms = []
    for call in range(7):
        torch_dist.barrier()
        torch.cuda.synchronize()
        started = time.perf_counter()
        torch_dist.all_reduce(buffer)
        torch.cuda.synchronize()
        if call >= 2:
            call_ms.append((time.perf_counter() - started) * 1e3)
    results[rank] = {"stepMs": step_ms, "callMs": call_ms, "gpu": torch.cuda.get_device_name(device)}
    torch_dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ranks", type=int, default=1)
    parser.add_argument("--context", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--allreduce-mib", type=int, default=64)
    args = parser.parse_args()
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(worker, args=(args, free_port(), results), nprocs=args.ranks, join=True)
        ranks = [results[rank] for rank in range(args.ranks)]
    step_ms = [max(rank["stepMs"][i] for rank in ranks) for i in range(args.steps)]
    call_ms = [max(rank["callMs"][i] for rank in ranks) for i in range(5)]
    median = statistics.median(step_ms)
    n = args.ranks
    record = {
        "who": "torch", "ranks": n, "framework": f"torch {torch.__version__} DDP, NCCL {'.'.join(map(str, torch.cuda.nccl.version()))}",
        "devices": sorted({rank["gpu"] for rank in ranks}),
        "stepMs": {"median": round(median, 1), "min": round(min(step_ms), 1), "max": round(max(step_ms), 1)},
        "samplesPerS": round(n * args.batch / (median / 1000), 2),
    }
    if n > 1:
        record["allReduceBusbwGBs"] = round(args.allreduce_mib * 2**20 / (statistics.median(call_ms) / 1000) * 2 * (n - 1) / n / 1e9, 2)
    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
