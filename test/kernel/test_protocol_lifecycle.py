"""Interrupt (signal and message modes), shutdown, restart and heartbeat of
the real distlab kernel, through jupyter_client."""

from __future__ import annotations

import time

import pytest

from kernel_helpers import execute

# Never resolves: only an interrupt can end this cell. The marker says the cell is past compiling.
ASYNC_HANG = 'console.log("waiting forever");\nawait new Promise<void>(() => {});'
# Blocks the kernel's main thread: only a signal can break it.
SYNC_HANG = "while (true) {}"


def wait_until_running(kc, msg_id, code):
    """Waits until the cell runs: its stdout marker for ASYNC_HANG, a fixed pause for SYNC_HANG
    (a blocked main thread sends nothing; 3 s covers compiling the cell)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        message = kc.get_iopub_msg(timeout=30)
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        if code == SYNC_HANG and message["header"]["msg_type"] == "execute_input":
            time.sleep(3)
            return
        if message["header"]["msg_type"] == "stream" and "waiting forever" in message["content"]["text"]:
            return
    raise TimeoutError("the cell did not start within 30 s")


def interrupt_after_start(km, kc, code, mode):
    """Starts `code`, interrupts it once it runs, and returns (reply, seconds from interrupt to reply)."""
    km.kernel_spec.interrupt_mode = mode
    msg_id = kc.execute(code)
    wait_until_running(kc, msg_id, code)
    started = time.monotonic()
    km.interrupt_kernel()
    while True:
        reply = kc.get_shell_msg(timeout=15)
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply, time.monotonic() - started


@pytest.mark.parametrize("mode", ["signal", "message"])
def test_interrupt_ends_a_cell_awaiting_forever(kernel, mode):
    km, kc = kernel
    reply, seconds = interrupt_after_start(km, kc, ASYNC_HANG, mode)
    assert reply["content"]["status"] == "error", reply["content"]
    assert seconds < 5
    assert execute(kc, "40 + 2").results[0]["text/plain"] == "42"


@pytest.mark.parametrize("mode", ["signal", "message"])
def test_interrupt_breaks_a_tight_synchronous_loop(kernel, mode):
    km, kc = kernel
    execute(kc, "let survivor = 7;")
    reply, seconds = interrupt_after_start(km, kc, SYNC_HANG, mode)
    assert reply["content"]["status"] == "error", reply["content"]
    assert seconds < 5
    # The kernel process survived and kept the state of earlier cells.
    assert execute(kc, "survivor * 6").results[0]["text/plain"] == "42"


def test_interrupt_request_is_answered_on_control_while_idle(kernel):
    _km, kc = kernel
    request = kc.session.msg("interrupt_request", {})
    kc.control_channel.send(request)
    reply = kc.control_channel.get_msg(timeout=10)
    assert reply["header"]["msg_type"] == "interrupt_reply"
    assert reply["parent_header"]["msg_id"] == request["header"]["msg_id"]
    assert reply["content"]["status"] == "ok"
    assert execute(kc, "1 + 1").results[0]["text/plain"] == "2"


def test_shutdown_request_ends_the_process(kernel):
    km, kc = kernel
    msg_id = kc.shutdown()
    reply = kc.control_channel.get_msg(timeout=10)
    assert reply["header"]["msg_type"] == "shutdown_reply"
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"] == {"status": "ok", "restart": False}
    deadline = time.monotonic() + 10
    while km.is_alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not km.is_alive(), "kernel process still running 10 s after shutdown_reply"
    assert km.provisioner.process.returncode == 0


def test_restart_gives_a_fresh_kernel_that_answers(kernel):
    km, kc = kernel
    execute(kc, "const beforeRestart = 1;")
    old_pid = km.provisioner.process.pid
    km.restart_kernel(now=False)
    assert km.provisioner.process.pid != old_pid
    kc.wait_for_ready(timeout=60)
    # Declaring the same const again only works in a fresh kernel.
    outcome = execute(kc, "const beforeRestart = 2;\nbeforeRestart")
    assert outcome.status == "ok", outcome.reply["content"]
    assert outcome.results[0]["text/plain"] == "2"
    assert outcome.reply["content"]["execution_count"] == 1


def test_heartbeat_beats_while_a_cell_blocks_the_main_thread(kernel):
    km, kc = kernel
    km.kernel_spec.interrupt_mode = "signal"
    execute(kc, "0")  # the first cell loads the compiler; the loop should not wait behind it
    msg_id = kc.execute(SYNC_HANG)
    wait_until_running(kc, msg_id, SYNC_HANG)
    assert kc.hb_channel.is_beating(), "heartbeat stopped while a cell was running"
    km.interrupt_kernel()
    while kc.get_shell_msg(timeout=15)["parent_header"].get("msg_id") != msg_id:
        pass


@pytest.mark.parametrize("taken", ["shell_port", "control_port"])
def test_a_kernel_that_cannot_bind_a_port_exits_naming_it(tmp_path, taken):
    # A port taken between the client choosing it and the kernel binding it: the kernel must say
    # which channel failed and exit, not linger answering nothing (the control thread once kept it alive).
    import json
    import socket
    import subprocess

    from kernel_helpers import KERNEL_CLI

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    free = []
    for _ in range(5):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        free.append(probe.getsockname()[1])
        probe.close()
    names = ["shell_port", "iopub_port", "stdin_port", "control_port", "hb_port"]
    connection = dict(zip(names, free))
    connection[taken] = holder.getsockname()[1]
    connection.update(ip="127.0.0.1", key="k", transport="tcp", signature_scheme="hmac-sha256", kernel_name="distlab")
    path = tmp_path / "connection.json"
    path.write_text(json.dumps(connection))
    try:
        done = subprocess.run(["node", str(KERNEL_CLI), "kernel", "--connection-file", str(path)], capture_output=True, text=True, timeout=30)
    finally:
        holder.close()
    channel = taken.removesuffix("_port")
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert f"cannot bind the {channel} channel" in done.stderr and "Address already in use" in done.stderr, done.stderr
