"""Mismatched, late and stuck communication on every backend, through a real kernel.

Each test runs on the threads backend (shared memory) and the processes
backend (a TCP world between child processes): the same fault must end in
the same one clear error, and the group must work in the next cell.
"""

from __future__ import annotations

import re

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


# Rank 2 of 3 disagrees with ranks 0 and 1 in one argument of the same call: (call each rank
# makes, what rank 0's call reads as, what rank 2's call reads as).
MISMATCHES = {
    "dtype": (
        "dist.allReduce(dist.rank === 2 ? new Float64Array(4) : new Float32Array(4))",
        r"allReduce #\d+ of cell \d+ \(4 x float32, op sum",
        r"allReduce #\d+ of cell \d+ \(4 x float64, op sum",
    ),
    "op": (
        "dist.rank === 2 ? dist.allGather(new Float32Array(4)) : dist.allReduce(new Float32Array(4))",
        r"allReduce #\d+ of cell \d+ \(4 x float32, op sum",
        r"allGather #\d+ of cell \d+ \(4 x float32,",
    ),
    "length": (
        "dist.allReduce(new Float32Array(dist.rank === 2 ? 5 : 4))",
        r"allReduce #\d+ of cell \d+ \(4 x float32, op sum",
        r"allReduce #\d+ of cell \d+ \(5 x float32, op sum",
    ),
    "root": (
        "dist.broadcast(new Float32Array(4), dist.rank === 2 ? 2 : 0)",
        r"broadcast #\d+ of cell \d+ \(4 x float32, root 0,",
        r"broadcast #\d+ of cell \d+ \(4 x float32, root 2,",
    ),
    "shape": (
        "dist.allReduce(tf.ones(dist.rank === 2 ? [2, 2] : [4, 1]))",
        # a shape the reporting rank has not seen itself is printed by its hash
        r"allReduce #\d+ of cell \d+ \(4 x float32, shape (\[4, 1\]|another shape \(hash [0-9a-f]+\)), op sum",
        r"allReduce #\d+ of cell \d+ \(4 x float32, shape (\[2, 2\]|another shape \(hash [0-9a-f]+\)), op sum",
    ),
}


@pytest.mark.parametrize("kind", list(MISMATCHES))
@pytest.mark.parametrize("backend", BACKENDS)
def test_three_ranks_that_disagree_get_one_error_naming_each_ranks_call_and_keep_their_state(kernel, backend, kind):
    _, kc = kernel
    call, agreeing, odd = MISMATCHES[kind]
    setup = execute(kc, cell(backend, "const mark = 10 * dist.rank;\nmark", n=3, flags="--timeout 10"), timeout=120)
    assert setup.status == "ok", setup.error
    out = execute(kc, cell(backend, f"const pending = {call};\nawait pending;\n'no error'", n=3, flags="--timeout 10"), timeout=60)
    assert out.status == "error", out.results
    assert out.error["ename"] == "CommMismatchError", out.error
    evalue = out.error["evalue"]
    # every rank's call, in rank order, in one message (after the `rank N: ` of the rank that reports it)
    assert re.search(rf"mismatched collectives: rank 0 called {agreeing}.*; rank 1 called {agreeing}.*; rank 2 called {odd}", evalue), evalue
    after = execute(kc, cell(backend, "const sum = await dist.allReduce(new Float32Array([1]));\n[mark, sum[0]]", n=3, flags="--timeout 10"), timeout=60)
    assert after.status == "ok", (after.error or {}).get("evalue")
    assert after.results[0]["application/json"] == [[0, 3], [10, 3], [20, 3]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_collective_against_a_point_to_point_call_ends_by_the_timeout_naming_that_call(kernel, backend):
    _, kc = kernel
    # Rank 1 waits in recv from rank 0 (three times over, so it is still inside one when the others
    # time out) while ranks 0 and 2 enter allGather: no mismatch a rank can see (the recv's peer may
    # yet send), so the collective times out, and its blame says which call rank 1 is in. Each rank
    # returns the error it caught.
    body = (
        "let caught = 'none';\n"
        "if (dist.rank === 1) { for (let i = 0; i < 3; i++) await dist.recv(new Float32Array(2), 0).catch((e) => { caught = e.name; }); }\n"
        "else await dist.allGather(new Float32Array(2)).catch((e) => { caught = `${e.name}: ${e.message}`; });\n"
        "caught"
    )
    out = execute(kc, cell(backend, body, n=3, flags="--timeout 2"), timeout=120)
    assert out.status == "ok", out.error
    caught = out.results[0]["application/json"]
    assert caught[1] == "CommTimeoutError", caught
    for rank in (0, 2):
        assert re.fullmatch(
            rf"CommTimeoutError: rank {rank} waited \d+\.\d s in allGather #\d+ for .*rank 1 did not arrive: .*"
            r"rank 1 has not entered allGather #\d+ \(it is in recv #\d+ from rank 0; its latest collective: none\).*",
            caught[rank],
        ), caught
    after = execute(kc, cell(backend, "(await dist.allReduce(new Float32Array([1])))[0]", n=3, flags="--timeout 10"), timeout=60)
    assert after.status == "ok", (after.error or {}).get("evalue")
    assert after.results[0]["application/json"] == [3, 3, 3]


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
    # Rank 0's timer calls allReduce after the cell ended; the promise `lateOutcome` settles with
    # what became of that call. The next cell awaits it before its own first collective: a late
    # call that waited for partners (the fault) would hold the next cell until the timeout and
    # settle with a CommTimeoutError, not be refused.
    late = (
        "const kept = 10 + dist.rank;\n"
        "const lateOutcome = dist.rank !== 0 ? null : new Promise((settle) => setTimeout(() => {\n"
        "  dist.allReduce(new Float32Array([100])).then(\n"
        "    () => settle('late call ran'),\n"
        "    (e) => settle(`late call: ${e.name}: ${e.message}`));\n"
        "}, 300));\n"
        "1"
    )
    first = execute(kc, cell(backend, late, flags="--timeout 20"), timeout=120)
    assert first.status == "ok", first.error
    body = (
        "const before = await lateOutcome;\n"
        "const sum = (await dist.allReduce(new Float32Array([dist.rank])))[0];\n"
        "[kept, before, sum]"
    )
    second = execute(kc, cell(backend, body, flags="--timeout 20"), timeout=60)
    assert second.status == "ok", second.error
    (kept0, before0, sum0), (kept1, before1, sum1) = second.results[0]["application/json"]
    # the ranks' declarations survived, and the next cell's collective completed
    assert [kept0, kept1, sum0, sum1] == [10, 11, 1, 1]
    assert before1 is None
    # refused (not run, not timed out) before the next cell's first collective, naming the cell that started it
    assert re.fullmatch(r"late call: CommCellEndedError: rank 0: allReduce of cell (\d+): refused: cell \1 has ended.*", before0, re.S), before0


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
