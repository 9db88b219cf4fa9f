"""Where gloo's time goes on a small allReduce, measured: run by
bench/gloo-small-message.mjs, which summarises what this prints.

    python3 gloo_small_message.py '{"ports": [29514, ...one per configuration], "warmup": 500, "calls": 500, "reps": 5}'

Configurations (float32 all_reduce, one process per rank, torch threads 1):
  world 1, 4 KiB          no peer: Python plus ProcessGroupGloo's dispatch to its worker thread
  2 ranks, 4 B            the latency floor of one exchange
  2 ranks, 4 KiB          the bench:collectives case
  2 ranks, 4 KiB, cores 0|1   each rank pinned to its own core
  2 ranks, 4 KiB, cores 0|0   both ranks pinned to one core
One JSON line per configuration, rank 0's view:
  first_calls_us  the first 20 calls (is there a warm-up effect?)
  calls_us        every timed call (the tail)
  blocks_ms       ms per call of each timed block (what bench:collectives reports)
  cpu_us          CPU time (user + system) of the process per call, each block
  switches        voluntary context switches of the process per call, each block (thread hand-offs that slept)
  nodelay         TCP_NODELAY on each of gloo's connected TCP sockets, the rendezvous store's left
                  out (Nagle's algorithm off when true)
"""
import json
import os
import resource
import socket
import stat
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def tcp_nodelay_flags(store_port):
    """TCP_NODELAY of every connected TCP socket this process holds but the rendezvous store's
    (local or peer port store_port): gloo's own pairs. Read through a dup of each descriptor."""
    flags = []
    for name in os.listdir("/proc/self/fd"):
        try:
            fd = int(name)
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            s = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        try:
            if s.type == socket.SOCK_STREAM and s.family in (socket.AF_INET, socket.AF_INET6):
                peer = s.getpeername()  # OSError for a listening socket
                if store_port not in (peer[1], s.getsockname()[1]):
                    flags.append(bool(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)))
        except OSError:
            pass
        finally:
            s.close()
    return flags


def rank_main(rank, size, port, nbytes, cores, plan, queue):
    if cores:
        os.sched_setaffinity(0, {cores[rank]})
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=size)
    x = torch.ones(max(1, nbytes // 4))
    calls_us, first_calls_us, blocks_ms, cpu_us, switches = [], [], [], [], []
    for i in range(plan["warmup"]):
        t = time.perf_counter()
        dist.all_reduce(x)
        if i < 20:
            first_calls_us.append((time.perf_counter() - t) * 1e6)
    for _ in range(plan["reps"]):
        dist.barrier()
        before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        for _ in range(plan["calls"]):
            t = time.perf_counter()
            dist.all_reduce(x)
            calls_us.append((time.perf_counter() - t) * 1e6)
        blocks_ms.append((time.perf_counter() - started) * 1e3 / plan["calls"])
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu_us.append(((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) * 1e6 / plan["calls"])
        switches.append((after.ru_nvcsw - before.ru_nvcsw) / plan["calls"])
    if rank == 0:
        queue.put(dict(first_calls_us=first_calls_us, calls_us=calls_us, blocks_ms=blocks_ms, cpu_us=cpu_us, switches=switches, nodelay=tcp_nodelay_flags(port)))
    dist.destroy_process_group()


CONFIGS = [
    ("world 1, 4 KiB", 1, 4096, None),
    ("2 ranks, 4 B", 2, 4, None),
    ("2 ranks, 4 KiB", 2, 4096, None),
    ("2 ranks, 4 KiB, cores 0|1", 2, 4096, [0, 1]),
    ("2 ranks, 4 KiB, cores 0|0", 2, 4096, [0, 0]),
]

if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    ctx = mp.get_context("spawn")
    for index, (name, size, nbytes, cores) in enumerate(CONFIGS):
        queue = ctx.Queue()
        procs = [ctx.Process(target=rank_main, args=(r, size, spec["ports"][index], nbytes, cores, spec, queue)) for r in range(size)]
        for p in procs:
            p.start()
        result = queue.get()
        for p in procs:
            p.join()
        print(json.dumps({"config": name, **result}), flush=True)
