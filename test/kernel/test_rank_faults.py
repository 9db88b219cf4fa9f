"""Rank faults against a real distlab kernel: what survives a late error, and what dies with the kernel."""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
from conftest import execute
from kernel_helpers import alive, children, start_kernel, stop_kernel


def descendants(pid: int) -> set[int]:
    """Every process below `pid` in the process tree."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children(todo.pop()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def cpu_ticks_by_thread(pid: int) -> dict[int, int]:
    """utime + stime (clock ticks) of each thread of `pid`, from /proc/PID/task/TID/stat."""
    ticks = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        ticks[int(task.name)] = int(fields[11]) + int(fields[12])
    return ticks


def threads_of(pid: int) -> list[int]:
    try:
        return [int(t.name) for t in Path(f"/proc/{pid}/task").iterdir()]
    except (FileNotFoundError, ProcessLookupError):
        return []


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_ranks_busy_in_a_synchronous_loop_die_with_a_sigkilled_kernel(backend):
    km, kc = start_kernel()
    try:
        kernel_pid = km.provisioner.process.pid
        out = execute(kc, f"%%distributed -n 2 --backend {backend}\nprocess.pid", timeout=120)
        assert out.status == "ok", out.error
        reported = out.results[0]["application/json"]
        rank_pids = {pid for pid in reported if pid != kernel_pid}
        # Threads live in the kernel's process; processes are its children.
        assert len(rank_pids) == (2 if backend == "processes" else 0), rank_pids
        assert rank_pids <= set(children(kernel_pid))
        kc.execute(f"%%distributed -n 2 --backend {backend}\nwhile (true) {{}}")
        time.sleep(1.5)
        if backend == "threads":
            # the two ranks spin on threads of the kernel's own process: over a second, at least
            # two of its threads gain CPU time (on a busy machine each still gets some ticks)
            first = cpu_ticks_by_thread(kernel_pid)
            time.sleep(1.0)
            later = cpu_ticks_by_thread(kernel_pid)
            spinning = [tid for tid, t in later.items() if tid != kernel_pid and t - first.get(tid, t) >= 3]
            assert len(spinning) >= 2, f"threads of the kernel that ran in the last second: {spinning} (ticks {first} -> {later})"
        below = descendants(kernel_pid)
        assert rank_pids <= below
        os.kill(kernel_pid, signal.SIGKILL)
        watched = below | {kernel_pid}
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (any(alive(pid) for pid in watched) or threads_of(kernel_pid)[1:]):
            time.sleep(0.1)
        survivors = [pid for pid in watched if alive(pid)]
        for pid in survivors:
            os.kill(pid, signal.SIGKILL)
        assert survivors == [], f"still running 5 s after the kernel was SIGKILLed: {survivors}"
        # the rank threads went with the process (a zombie keeps at most its main thread's entry)
        assert threads_of(kernel_pid)[1:] == [], threads_of(kernel_pid)
    finally:
        stop_kernel(km, kc)


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_a_3_mb_result_is_capped_in_the_reply_and_pulled_whole(kernel, backend):
    _, kc = kernel
    flags = f"-n 2 --backend {backend}"
    out = execute(kc, f"%%distributed {flags}\nconst big = 'x'.repeat(3_000_000) + dist.rank;\nbig", timeout=120)
    assert out.status == "ok", out.error
    for value in out.results[0]["application/json"]:
        assert re.search(r"over the 1\.0 MiB cap per rank.*%dist pull NAME", str(value)), str(value)[:300]
    pulled = execute(kc, "%dist pull big", timeout=60)
    assert pulled.status == "ok", pulled.error
    lengths = execute(kc, "JSON.stringify([big.length, big[0].length, big[1].length, big[0].slice(-1), big[1].slice(-1)])", timeout=60)
    assert lengths.status == "ok", lengths.error
    assert json.loads(ast.literal_eval(lengths.results[0]["text/plain"])) == [2, 3_000_001, 3_000_001, "0", "1"], lengths.results


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_a_late_rejection_under_the_wasm_backend_is_reported_and_the_rank_keeps_its_state(kernel, backend):
    _, kc = kernel
    flags = f"-n 2 --backend {backend} --tf-backend wasm"
    out = execute(kc, f"%%distributed {flags}\nlet kept = dist.rank + 1;\ntf.getBackend()", timeout=120)
    assert out.status == "ok", out.error
    assert out.results[0]["application/json"] == ["wasm", "wasm"]
    armed = execute(kc, f"%%distributed {flags}\nif (dist.rank === 1) setTimeout(() => Promise.reject(new Error('late')), 300);", timeout=60)
    assert armed.status == "ok", armed.error
    out = execute(kc, f"%%distributed {flags}\nawait new Promise((r) => setTimeout(r, 600));\nkept", timeout=60)
    assert out.status == "ok", out.error
    assert out.results[0]["application/json"] == [1, 2]
    assert "[rank 1] unhandled rejection on rank 1, outside any await of its cell (the rank keeps running; its state is kept):\n" in out.stderr
    assert "[rank 1] Error: late\n" in out.stderr
