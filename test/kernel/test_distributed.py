"""%%distributed cells and %dist magics against a real distlab kernel (jupyter_client, zeromq).

Tests that share `module_kernel` run in any order (pytest-randomly shuffles them): each one starts
the group shape it needs and declares names no other test declares.
"""

from __future__ import annotations

import os
import re
import time

import pytest
from conftest import execute


def test_outputs_are_tagged_by_rank_and_values_come_back_as_one_json_array(module_kernel):
    _, kc = module_kernel
    out = execute(kc, "%%distributed -n 3\nconst x = dist.rank * 2;\nconsole.log(`hello from ${dist.rank}`);\nx", timeout=120)
    assert out.status == "ok", out.error
    for rank in range(3):
        assert f"[rank {rank}] hello from {rank}\n" in out.stdout
    assert len(out.results) == 1
    assert out.results[0]["application/json"] == [0, 2, 4]
    assert out.results[0]["text/plain"] == "[rank 0] 0\n[rank 1] 2\n[rank 2] 4"


def test_state_persists_per_rank_and_allreduce_sums(module_kernel):
    _, kc = module_kernel
    out = execute(kc, "%%distributed -n 3\nconst persisted = dist.rank * 2;", timeout=120)
    assert out.status == "ok", out.error
    out = execute(kc, "%%distributed -n 3\nconst y = await dist.allReduce(new Float32Array([persisted, 1]));\nArray.from(y)", timeout=60)
    assert out.status == "ok", out.error
    assert out.results[0]["application/json"] == [[6, 3]] * 3
    assert out.results[0]["text/plain"].startswith("[all 3 ranks]")


def test_registered_buffers_from_dist_alloc_allreduce_in_place(module_kernel):
    _, kc = module_kernel
    code = (
        "%%distributed -n 3\n"
        "const big = dist.alloc(Float32Array, 1 << 20).fill(dist.rank + 1);\n"
        "await dist.allReduce(big, { op: 'sum', out: big });\n"
        "const shared = big.buffer instanceof SharedArrayBuffer;\n"
        "const values = [big[0], big[(1 << 20) - 1]];\n"
        "dist.free(big);\n"
        "({ shared, values })"
    )
    out = execute(kc, code, timeout=60)
    assert out.status == "ok", out.error
    assert out.results[0]["application/json"] == [{"shared": True, "values": [6, 6]}] * 3


def test_pooled_results_of_one_cell_survive_the_next_cells_calls(module_kernel):
    # 16 MiB results come from each rank's result pool: a result kept in a global, and one kept
    # only through a subarray, must not be handed out again by later calls (the pool collects when
    # idle between the cells), and tensors get pooled results with the right values
    _, kc = module_kernel
    first = (
        "%%distributed -n 2\n"
        "const g: any = globalThis;\n"
        "g.kept = await dist.allReduce(new Float32Array(1 << 22).fill(dist.rank + 1));\n"
        "g.head = (await dist.allReduce(new Float32Array(1 << 22).fill(10))).subarray(0, 4);\n"
        "const t = await dist.allReduce(tf.ones([1 << 22]));\n"
        "({ pooled: g.kept.buffer instanceof SharedArrayBuffer, kept: g.kept[(1 << 22) - 1], tensor: t.dataSync()[(1 << 22) - 1] })"
    )
    out = execute(kc, first, timeout=120)
    assert out.status == "ok", out.error
    assert out.results[0]["application/json"] == [{"pooled": True, "kept": 3, "tensor": 2}] * 2
    later = (
        "%%distributed -n 2\n"
        "const g: any = globalThis;\n"
        "for (let i = 0; i < 20; i++) (await dist.allReduce(new Float32Array(1 << 22).fill(i))).fill(-1);\n"
        "[g.kept.every((v: number) => v === 3), Array.from(g.head)]"
    )
    out = execute(kc, later, timeout=120)
    assert out.status == "ok", out.error
    assert out.results[0]["application/json"] == [[True, [20, 20, 20, 20]]] * 2


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_a_collective_not_yet_awaited_lets_the_sends_after_it_go_out(module_kernel, backend):
    # A collective starts after the caller's synchronous code: on threads it then blocks its thread
    # until every rank has entered it, so started at once, rank 0's send would never go out while
    # rank 1 waits for it before its own allReduce (CommCore.serialize).
    _, kc = module_kernel
    code = (
        f"%%distributed -n 2 --timeout 10 --backend {backend}\n"
        "const mine = new Float32Array([dist.rank + 1]);\n"
        "let seen: number[];\n"
        "if (dist.rank === 0) {\n"
        "  const reduced = dist.allReduce(mine);\n"
        "  await dist.send(new Float32Array([7, 7]), 1);\n"
        "  seen = [(await reduced)[0]];\n"
        "} else {\n"
        "  const got = await dist.recv(new Float32Array(2), 0);\n"
        "  seen = [got[0], (await dist.allReduce(mine))[0]];\n"
        "}\n"
        "seen"
    )
    out = execute(kc, code, timeout=60)
    assert out.status == "ok", out.error
    assert out.results[0]["application/json"] == [[3], [7, 3]]


def test_group_outputs_rank_prints_grouped_per_rank(module_kernel):
    _, kc = module_kernel
    out = execute(kc, "%%distributed -n 3 --group-outputs rank\nconsole.log('a');\nawait dist.barrier();\nconsole.log('b');", timeout=60)
    assert out.status == "ok", out.error
    assert out.stdout == "".join(f"[rank {r}] a\n[rank {r}] b\n" for r in range(3))


def test_an_error_on_one_rank_names_the_rank(module_kernel):
    _, kc = module_kernel
    out = execute(kc, "%%distributed -n 3\nif (dist.rank === 2) {\n  throw new RangeError('bad shard');\n}\nawait dist.barrier();", timeout=60)
    assert out.status == "error"
    assert out.error["ename"] == "RangeError"
    assert out.error["evalue"].startswith("rank 2: RangeError: bad shard")
    # The throw is on the cell's third line, counting the %%distributed line.
    assert any(re.search(r"<cell \d+>:3:\d+", line) for line in out.error["traceback"]), out.error["traceback"]
    assert "cancelled because rank 2 failed: ranks 0 and 1" in out.error["traceback"]


def test_bad_flags_and_unknown_magics_are_usage_errors_and_the_kernel_keeps_going(module_kernel):
    _, kc = module_kernel
    cases = {
        "%%distributed -n 0\n1": "-n",
        "%%distributed -n 100000\n1": "-n",
        "%%distributed -n abc\n1": "-n",
        "%%distributed --frobnicate\n1": "--frobnicate",
        "%%distributed --timeout\n1": "--timeout",
        "%%distributed --backend hosts\n1": "--backend hosts",
        "%%foo\n1": "%%foo",
        "%dist frobnicate": "frobnicate",
    }
    for code, culprit in cases.items():
        out = execute(kc, code)
        assert out.status == "error", code
        assert culprit in out.error["evalue"], (code, out.error["evalue"])
    out = execute(kc, "%%distributed -n 3\ndist.size")
    assert out.status == "ok", out.error
    assert out.results[0]["application/json"] == [3, 3, 3]


def test_completion_and_inspection_in_a_distributed_body_know_dist_tf_and_earlier_distributed_cells(module_kernel):
    _, kc = module_kernel
    out = execute(kc, "%%distributed -n 2\nconst declaredForCompletion = dist.rank;", timeout=120)
    assert out.status == "ok", out.error

    def complete(code: str) -> dict:
        reply = kc.complete(code, len(code), reply=True, timeout=60)["content"]
        assert reply["status"] == "ok", reply
        return reply

    # positions count code points of the whole cell: the magic line and a comment with an astral character (2 UTF-16 units) before the cursor
    head = "%%distributed -n 2\n// ranks \U0001f642\n"
    reply = complete(head + "dist.allRed")
    assert "allReduce" in reply["matches"], reply
    assert (reply["cursor_start"], reply["cursor_end"]) == (len(head) + len("dist."), len(head + "dist.allRed"))
    assert "zeros" in complete(head + "tf.zer")["matches"]
    assert "declaredForCompletion" in complete(head + "declaredForComp")["matches"]
    # a plain cell still completes against the notebook's own declarations, which have no dist
    assert "allReduce" not in complete("dist.allRed")["matches"]

    code = head + "dist.allReduce"
    reply = kc.inspect(code, len(code) - 2, reply=True, timeout=60)["content"]
    assert reply["status"] == "ok" and reply["found"], reply
    assert "allReduce" in reply["data"]["text/plain"], reply


def test_help_is_generated_from_the_flag_spec(module_kernel):
    _, kc = module_kernel
    out = execute(kc, "%%distributed --help\n")
    assert out.status == "ok"
    for flag in ["-n, --workers", "--backend", "--timeout", "--group-outputs", "--link", "--tf-backend", "--timeline WHEN", "--no-timeline"]:
        assert flag in out.stdout
    out = execute(kc, "%dist help")
    for sub in ["status", "stop", "push NAME", "pull NAME", "scatter NAME", "gather NAME", "timeline", "doctor"]:
        assert f"%dist {sub}" in out.stdout


def test_push_pull_scatter_gather_move_variables_between_notebook_and_ranks(module_kernel):
    _, kc = module_kernel
    assert execute(kc, "%%distributed -n 3\ndist.size", timeout=120).status == "ok"
    assert execute(kc, "const data = [1, 2, 3, 4, 5, 6, 7];\nconst scale = 10;").status == "ok"
    assert execute(kc, "%dist push scale").status == "ok"
    out = execute(kc, "%dist scatter data")
    assert out.status == "ok", out.error
    assert "3, 2, 2" in out.stdout
    out = execute(kc, "%%distributed -n 3\nconst scaled = data.map((v) => v * scale);\nscaled.length")
    assert out.status == "ok", out.error
    assert out.results[0]["application/json"] == [3, 2, 2]
    assert execute(kc, "%dist gather scaled").status == "ok"
    assert execute(kc, "%dist pull scale").status == "ok"
    out = execute(kc, "JSON.stringify([scaled, scale])")
    assert out.status == "ok", out.error
    assert "[[10,20,30,40,50,60,70],[10,10,10]]" in str(out.results[0]["text/plain"])


def test_status_reports_each_rank(module_kernel):
    _, kc = module_kernel
    assert execute(kc, "%%distributed -n 3\nawait dist.allReduce(new Float32Array(4));\ndist.size", timeout=120).status == "ok"
    out = execute(kc, "%dist status")
    assert out.status == "ok"
    assert "group: -n 3 --backend threads" in out.stdout
    for rank in range(3):
        assert f"rank {rank}: alive, idle" in out.stdout
    assert "MiB" in out.stdout and "tf " in out.stdout
    # the wire counters: the allReduce above moved bytes, so every rank has sent and received
    for rank in range(3):
        line = next(l for l in out.stdout.splitlines() if f"rank {rank}: alive" in l)
        assert re.search(r"sent \d+(\.\d)? (B|KiB|MiB) in [1-9]\d* messages, received \d+(\.\d)? (B|KiB|MiB) in [1-9]\d*", line), line


def test_a_changed_shape_restarts_the_group_and_says_so(module_kernel):
    _, kc = module_kernel
    out = execute(kc, "%%distributed -n 3\nconst beforeTheChange = dist.rank;", timeout=120)
    assert out.status == "ok", out.error
    out = execute(kc, "%%distributed -n 2\ndist.size", timeout=60)
    assert out.status == "ok", out.error
    assert "group shape changed (-n 3 --backend threads -> -n 2 --backend threads)" in out.stderr
    assert out.results[0]["application/json"] == [2, 2]
    # The ranks' declarations went with the old group: `beforeTheChange` no longer type-checks.
    out = execute(kc, "%%distributed -n 2\nbeforeTheChange")
    assert out.status == "error"
    assert "Cannot find name 'beforeTheChange'" in out.error["evalue"]


def test_interrupting_a_distributed_infinite_loop_respawns_the_ranks(kernel):
    km, kc = kernel
    assert execute(kc, "%%distributed -n 2\nlet kept = 1;", timeout=120).status == "ok"
    msg_id = kc.execute("%%distributed -n 2\nwhile (true) {}")
    time.sleep(2)
    started = time.monotonic()
    km.interrupt_kernel()
    reply = kc.get_shell_msg(timeout=30)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=30)
    assert time.monotonic() - started < 10
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "InterruptedError"
    assert "state lost on ranks 0 and 1" in reply["content"]["evalue"]
    out = execute(kc, "%%distributed -n 2\ndist.rank + 1", timeout=60)
    assert out.status == "ok", out.error
    assert out.results[0]["application/json"] == [1, 2]


def test_processes_backend_allreduces_and_keeps_each_ranks_state(kernel):
    _, kc = kernel
    code = (
        "%%distributed -n 2 --backend processes\n"
        "const mine = dist.rank + 1;\n"
        "const total = await dist.allReduce(new Float32Array([mine, 10]));\n"
        "[Array.from(total), process.pid]"
    )
    out = execute(kc, code, timeout=120)
    assert out.status == "ok", out.error
    values = out.results[0]["application/json"]
    assert [value[0] for value in values] == [[3, 20], [3, 20]]
    assert values[0][1] != values[1][1], "each rank is a process of its own"
    out = execute(kc, "%%distributed -n 2 --backend processes\nmine * 100", timeout=60)
    assert out.status == "ok", out.error
    assert out.results[0]["application/json"] == [100, 200]
    out = execute(kc, "%dist status")
    assert "group: -n 2 --backend processes" in out.stdout
    for rank in range(2):
        assert f"rank {rank}: alive, idle" in out.stdout


def test_interrupting_a_process_rank_respawns_only_the_stuck_rank(kernel):
    """Jupyter signals the kernel's whole process group: ranks that stop when cancelled keep their state."""
    km, kc = kernel
    assert execute(kc, "%%distributed -n 2 --backend processes\nlet kept = dist.rank + 1;", timeout=120).status == "ok"
    msg_id = kc.execute("%%distributed -n 2 --backend processes\nif (dist.rank === 0) { while (true) {} }\nawait dist.barrier();")
    time.sleep(2)
    km.interrupt_kernel()
    reply = kc.get_shell_msg(timeout=30)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=30)
    assert reply["content"]["ename"] == "InterruptedError"
    assert reply["content"]["evalue"].endswith("state lost on rank 0")
    out = execute(kc, "%%distributed -n 2 --backend processes\ntypeof kept === 'number' ? kept : 'lost'", timeout=60)
    assert out.status == "ok", out.error
    assert out.results[0]["application/json"] == ["lost", 2]


def test_gpus_backend_without_gpu_device_nodes_is_a_clear_error(module_kernel):
    if any(re.fullmatch(r"nvidia\d+", name) for name in os.listdir("/dev")):
        pytest.skip("this machine has GPU device nodes")
    _, kc = module_kernel
    out = execute(kc, "%%distributed --backend gpus\ndist.device")
    assert out.status == "error"
    assert out.error["ename"] == "NotAvailableError"
    assert out.error["evalue"].startswith("--backend gpus: no GPU device nodes were found")
    out = execute(kc, "1 + 1")
    assert out.status == "ok"


# (func (param v128 v128 v128) (result v128) local.get 0 local.get 1 local.get 2 f32x4.relaxed_madd):
# Node 20 compiles it only in a process started with --experimental-wasm-relaxed-simd.
RELAXED_MADD_MODULE = (
    "new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 8, 1, 96, 3, 123, 123, 123, 1, 123, 3, 2, 1, 0, "
    "10, 13, 1, 11, 0, 32, 0, 32, 1, 32, 2, 253, 133, 2, 11])"
)


def test_relaxed_simd_compiles_in_the_kernel_and_in_thread_and_process_ranks(module_kernel):
    # The V8 flag is given where Node takes it: on the node command line of the kernel (kernel.json)
    # and of each process rank; thread ranks share the kernel's process flags (kernel/src/v8-start-flags.ts)
    _, kc = module_kernel
    probe = f"(globalThis as any).WebAssembly.validate({RELAXED_MADD_MODULE})"
    out = execute(kc, probe, timeout=60)
    assert out.status == "ok", out.error
    assert out.results[0]["text/plain"] == "true", "the kernel process compiles relaxed SIMD"
    for backend in ("threads", "processes"):
        out = execute(kc, f"%%distributed -n 2 --backend {backend}\n{probe}", timeout=120)
        assert out.status == "ok", out.error
        assert out.results[0]["application/json"] == [True, True], f"{backend} ranks compile relaxed SIMD"
