"""Compiler snapshots through the real kernel (repl/compiler-snapshot.ts): the first kernel in a
folder builds its chains' snapshots once quiet; the next kernel in that folder compiles its first
`%%distributed` cell in a process started from the ranks chain's blob; a kernel killed with
SIGKILL leaves no compiler process behind."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from kernel_helpers import alive, children, execute, start_kernel, stop_kernel

BUILD_TIMEOUT_S = 120


def manifests(cache: Path) -> list[str]:
    """The finished snapshots' manifests (`<key>.json`; a build's working files have longer names)."""
    return sorted(p.name for p in cache.glob("*.json") if len(p.stem) == 24)


def compiler_processes(kernel_pid: int) -> list[int]:
    """The kernel's child processes started from a snapshot blob."""
    return [pid for pid in children(kernel_pid) if "--snapshot-blob" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")]


def test_the_next_kernel_in_a_folder_compiles_from_the_snapshot_the_first_built(tmp_path: Path) -> None:
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    cache = tmp_path / "cache"
    env = {**os.environ, "DISTLAB_COMPILER_SNAPSHOT_DIR": str(cache)}

    km, kc = start_kernel(cwd=notebooks, env=env)
    try:
        pid = km.provisioner.process.pid
        assert compiler_processes(pid) == [], "no snapshot yet: the programs are created on threads"
        out = execute(kc, "%%distributed -n 2\ndist.rank", timeout=60)
        assert out.results[0]["application/json"] == [0, 1], out.messages
        deadline = time.monotonic() + BUILD_TIMEOUT_S
        while len(manifests(cache)) < 2:
            assert time.monotonic() < deadline, f"the two chains' snapshots not built within {BUILD_TIMEOUT_S} s: {sorted(p.name for p in cache.glob('*'))}"
            time.sleep(0.5)
    finally:
        stop_kernel(km, kc)
    assert len(list(cache.glob("*.blob"))) == 2, sorted(p.name for p in cache.glob("*"))

    km, kc = start_kernel(cwd=notebooks, env=env)
    try:
        pid = km.provisioner.process.pid
        out = execute(kc, "%%distributed -n 2\nconst n: number = dist.rank * 10;\nn", timeout=60)
        assert out.results[0]["application/json"] == [0, 10], out.messages
        compilers = compiler_processes(pid)
        assert len(compilers) >= 1, f"the ranks chain's compiler runs from its blob: children {children(pid)}"
        wrong = execute(kc, '%%distributed -n 2\nconst s: string = dist.rank;', timeout=60)
        assert wrong.error is not None and "Type 'number' is not assignable to type 'string'" in str(wrong.error), wrong.messages
        plain = execute(kc, "const xs: number[] = [1, 2, 3];\nxs.length", timeout=60)
        assert plain.results[0]["text/plain"] == "3", plain.messages
        compilers = compiler_processes(pid)

        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(alive(compiler) for compiler in compilers):
            assert time.monotonic() < deadline, f"compiler processes {compilers} outlived the killed kernel by 10 s"
            time.sleep(0.1)
    finally:
        stop_kernel(km, kc)
