"""Mismatched, late and stuck communication on every backend, through a real kernel.

Each test runs on the threads backend (shared memory) and the processes
backend (a TCP world between child processes): the same fault must end in
the same one clear error, and the group must work in the next cell.
"""

from __future__ import annotations

import re
import time

import pytest
from conftest import execute

BACKENDS = ["threads", "processes"]


def cell(backend: str, body: str, n: int = 2, flags: str = "") -> str:
    return f"%%distributed -n {n} --backend {backend} {flags}\n{body}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_broadcast_with_a_different_root_on_each_rank_fails_and_the_group_keeps_its_state(kernel, backend):
    _, kc = kernel
    setup = execute(kc, cell(backend, "const mark = 10 * dist.rank;\nmark", flags="--timeout 10"), timeout=120)
    assert setup.status == "ok", setup.error
    out = execute(kc, cell(backend, "await dist.broadcast(new Float32Array([dist.rank]), dist.rank)", flags="--timeout 10"), timeout=60)
    assert out.status == "error", out.results
    assert out.error["ename"] == "CommMismatchError", out.error
    # one error naming each rank's call
    assert re.search(r"rank 0 called broadcast #\d+ of cell \d+ \(1 x float32, root 0", out.error["evalue"]) or re.search(
        r"rank 1 called broadcast #\d+ of cell \d+ \(1 x float32, root 1", out.error["evalue"]
    ), out.error["evalue"]
    assert "root 0" in out.error["evalue"] and "root 1" in out.error["evalue"], out.error["evalue"]
    after = execute(kc, cell(backend, "const sum = await dist.allReduce(new Float32Array([1]));\n[mark, sum[0]]", flags="--timeout 10"), timeout=60)
    assert after.status == "ok", (after.error or {}).get("evalue")
    assert after.results[0]["application/json"] == [[0, 2], [10, 2]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_allreduce_of_tensors_of_different_shapes_and_equal_length_fails_naming_the_shapes(kernel, backend):
    _, kc = kernel
    body = "const t = dist.rank === 0 ? tf.ones([2, 3]) : tf.ones([3, 2]);\n(await dist.allReduce(t)).shape"
    out = execute(kc, cell(backend, body, flags="--timeout 10"), timeout=120)
    assert out.status == "error", out.results
    assert out.error["ename"] == "CommMismatchError", out.error
    assert re.search(r"allReduce #\d+ of cell \d+ \(6 x float32, shape \[(2, 3|3, 2)\]", out.error["evalue"]), out.error["evalue"]
    same = execute(kc, cell(backend, "(await dist.allReduce(tf.ones([2, 3]))).shape", flags="--timeout 10"), timeout=60)
    assert same.status == "ok", same.error
    assert same.results[0]["application/json"] == [[2, 3], [2, 3]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_send_nobody_received_is_dropped_at_the_end_of_its_cell(kernel, backend):
    _, kc = kernel
    # the same flags in both cells: the group keeps its world (a changed --timeout would rebuild it)
    first = execute(kc, cell(backend, "if (dist.rank === 0) await dist.send(new Float32Array([42]), 1);\n1", flags="--timeout 10"), timeout=120)
    assert first.status == "ok", first.error
    body = (
        "dist.rank === 0\n"
        "  ? (await dist.send(new Float32Array([7]), 1), 0)\n"
        "  : (await dist.recv(new Float32Array(1), 0))[0]"
    )
    second = execute(kc, cell(backend, body, flags="--timeout 10"), timeout=60)
    assert second.status == "ok", second.error
    assert second.results[0]["application/json"] == [0, 7]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_collective_started_by_a_timer_after_its_cell_ended_is_refused_at_once(kernel, backend):
    _, kc = kernel
    late = (
        "if (dist.rank === 0) setTimeout(() => {\n"
        "  dist.allReduce(new Float32Array([100])).then(\n"
        "    () => console.log('late call ran'),\n"
        "    (e) => console.log(`late call: ${e.name}: ${e.message}`));\n"
        "}, 300);\n"
        "1"
    )
    first = execute(kc, cell(backend, late, flags="--timeout 20"), timeout=120)
    assert first.status == "ok", first.error
    started = time.monotonic()
    body = "await new Promise((r) => setTimeout(r, 1500));\nArray.from(await dist.allReduce(new Float32Array([dist.rank])))"
    second = execute(kc, cell(backend, body, flags="--timeout 20"), timeout=60)
    elapsed = time.monotonic() - started
    assert second.status == "ok", second.error
    assert second.results[0]["application/json"] == [[1], [1]]
    assert elapsed < 15, f"the next cell took {elapsed:.1f} s"
    assert re.search(r"late call: CommCellEndedError: rank 0: allReduce of cell (\d+): refused: cell \1 has ended", second.stdout), second.stdout
    assert "late call ran" not in second.stdout


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_rank_stuck_outside_communication_is_the_rank_the_timeout_names(kernel, backend):
    _, kc = kernel
    # rank 1 never enters the ring allReduce; ranks 0 and 2 each wait on a neighbour
    body = (
        "if (dist.rank === 1) { const end = Date.now() + 6000; while (Date.now() < end); }\n"
        "await dist.allReduce(new Float32Array(1024), { algorithm: 'ring' });"
    )
    out = execute(kc, cell(backend, body, n=3, flags="--timeout 2"), timeout=120)
    assert out.status == "error"
    assert out.error["ename"] == "CommTimeoutError", out.error
    evalue = out.error["evalue"]
    assert re.search(r"waited \d+\.\d s in allReduce #\d+ for rank 1( \(|$)", evalue) or "rank 1 did not arrive" in evalue, evalue
    after = execute(kc, cell(backend, "(await dist.allReduce(new Float32Array([1])))[0]", n=3, flags="--timeout 10"), timeout=60)
    assert after.status == "ok", (after.error or {}).get("evalue")
    assert after.results[0]["application/json"] == [3, 3, 3]


def test_a_stopped_rank_process_is_the_rank_the_timeout_names(kernel):
    _, kc = kernel
    body = (
        "if (dist.rank === 1) process.kill(process.pid, 'SIGSTOP');\n"
        "await dist.allReduce(new Float32Array(1024));"
    )
    out = execute(kc, cell("processes", body, n=3, flags="--timeout 2"), timeout=120)
    assert out.status == "error"
    evalue = out.error["evalue"]
    assert out.error["ename"] == "CommTimeoutError", out.error
    assert re.search(r"waited \d+\.\d s in allReduce #\d+ for rank 1( \(|$)", evalue) or (
        "rank 1 did not arrive: " in evalue and re.search(r"rank 1 did not answer within \d\.\d s \(stopped, or busy in code outside communication\)", evalue)
    ), evalue
