"""Rank faults against a real distlab kernel: what survives a late error, and what dies with the kernel."""

from __future__ import annotations

import os
import signal
import time

import pytest
from conftest import execute
from kernel_helpers import alive, children, start_kernel, stop_kernel


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_ranks_busy_in_a_synchronous_loop_die_with_a_sigkilled_kernel(backend):
    km, kc = start_kernel()
    try:
        kernel_pid = km.provisioner.process.pid
        out = execute(kc, f"%%distributed -n 2 --backend {backend}\nprocess.pid", timeout=120)
        assert out.status == "ok", out.error
        rank_pids = {pid for pid in out.results[0]["application/json"] if pid != kernel_pid}
        # Threads live in the kernel's process; processes are its children.
        assert len(rank_pids) == (2 if backend == "processes" else 0), rank_pids
        assert rank_pids <= set(children(kernel_pid))
        kc.execute(f"%%distributed -n 2 --backend {backend}\nwhile (true) {{}}")
        time.sleep(1.5)
        os.kill(kernel_pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(alive(pid) for pid in rank_pids | {kernel_pid}):
            time.sleep(0.1)
        survivors = [pid for pid in rank_pids | {kernel_pid} if alive(pid)]
        for pid in survivors:
            os.kill(pid, signal.SIGKILL)
        assert survivors == [], f"still running 5 s after the kernel was SIGKILLed: {survivors}"
    finally:
        stop_kernel(km, kc)


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
