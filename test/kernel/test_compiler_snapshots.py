"""Compiler snapshots through the real kernel (repl/compiler-snapshot.ts): the first kernel in a
folder builds its chains' snapshots once quiet; the next kernel in that folder compiles its first
`%%distributed` cell in a process started from the ranks chain's blob; a kernel killed with
SIGKILL leaves no compiler process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from kernel_helpers import alive, children, execute, start_kernel, stop_kernel

BUILD_TIMEOUT_S = 120
REPO = Path(__file__).resolve().parents[2]


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

        # An interrupt in signal mode is SIGINT to the kernel's process group: for the cell, not the compilers.
        km.kernel_spec.interrupt_mode = "signal"
        km.interrupt_kernel()
        time.sleep(0.5)
        assert all(alive(compiler) for compiler in compilers), f"compiler processes {compilers} ended on the interrupt"
        after = execute(kc, "%%distributed -n 2\nconst m: number = dist.rank + 40;\nm", timeout=60)
        assert after.results[0]["application/json"] == [40, 41], after.messages

        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(alive(compiler) for compiler in compilers):
            assert time.monotonic() < deadline, f"compiler processes {compilers} outlived the killed kernel by 10 s"
            time.sleep(0.1)
    finally:
        stop_kernel(km, kc)


def test_distlab_snapshots_prepares_a_folder_for_its_first_kernel(tmp_path: Path) -> None:
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    env = {**os.environ, "DISTLAB_COMPILER_SNAPSHOT_DIR": str(tmp_path / "cache")}
    # The kernelspec's node: a blob is keyed by the node that builds and loads it.
    node = json.loads((REPO / ".venv" / "share" / "jupyter" / "kernels" / "distlab" / "kernel.json").read_text())["argv"][0]
    cli = [node, str(REPO / "kernel" / "dist" / "cli.js"), "snapshots"]

    built = subprocess.run(cli, cwd=notebooks, env=env, capture_output=True, text=True, timeout=180)
    assert built.returncode == 0, built.stdout + built.stderr
    assert [line.split(":")[0] for line in built.stdout.splitlines() if ": built in " in line] == ["ranks chain", "notebook chain"], built.stdout
    again = subprocess.run(cli, cwd=notebooks, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and again.stdout.count(": up to date ") == 2, again.stdout + again.stderr

    km, kc = start_kernel(cwd=notebooks, env=env)
    try:
        pid = km.provisioner.process.pid
        out = execute(kc, "%%distributed -n 2\ndist.size", timeout=60)
        assert out.results[0]["application/json"] == [2, 2], out.messages
        assert len(compiler_processes(pid)) >= 1, f"the first kernel in the folder compiles from the blob: children {children(pid)}"
    finally:
        stop_kernel(km, kc)

    wrong = subprocess.run([*cli, "--now"], cwd=notebooks, env=env, capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2 and "distlab snapshots: Unknown option '--now'" in wrong.stderr, wrong.stderr
