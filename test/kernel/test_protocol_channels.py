"""Protocol behaviour beyond the conformance suite: stdin, stop_on_error,
help syntax, silent cells, user_expressions, displays, comms and the wire's
signature check, against the real distlab kernel."""

from __future__ import annotations

import json
import time
import uuid

import zmq

from kernel_helpers import execute


def test_kernel_info_names_the_language_and_protocol(module_kernel):
    _km, kc = module_kernel
    kc.kernel_info()
    reply = kc.get_shell_msg(timeout=10)
    content = reply["content"]
    assert content["status"] == "ok"
    assert content["protocol_version"] == "5.3"
    assert content["implementation"] == "distlab"
    assert content["language_info"]["name"] == "typescript"
    assert content["language_info"]["file_extension"] == ".ts"


def test_prompt_asks_the_frontend_on_stdin(kernel):
    _km, kc = kernel
    msg_id = kc.execute('const answer = await prompt("Your name? ");\n`hello ${answer}`', allow_stdin=True)
    request = kc.stdin_channel.get_msg(timeout=30)
    assert request["header"]["msg_type"] == "input_request"
    assert request["parent_header"]["msg_id"] == msg_id
    assert request["content"] == {"prompt": "Your name? ", "password": False}
    kc.input("Ada")
    while True:
        reply = kc.get_shell_msg(timeout=30)
        if reply["parent_header"]["msg_id"] == msg_id:
            break
    assert reply["content"]["status"] == "ok"
    assert execute(kc, "answer").results[0]["text/plain"] == "'Ada'"


def test_prompt_without_stdin_fails_with_a_clear_error(module_kernel):
    _km, kc = module_kernel
    outcome = execute(kc, 'await prompt("never answered")', allow_stdin=False)
    assert outcome.status == "error"
    assert "allow_stdin" in outcome.reply["content"]["evalue"]


def test_error_aborts_the_cells_queued_behind_it(module_kernel):
    _km, kc = module_kernel
    failing = kc.execute('await new Promise((r) => setTimeout(r, 300)); throw new Error("first fails")')
    queued = kc.execute("1 + 1")
    replies = {}
    while len(replies) < 2:
        reply = kc.get_shell_msg(timeout=30)
        replies[reply["parent_header"]["msg_id"]] = reply["content"]
    assert replies[failing]["status"] == "error"
    assert replies[queued]["status"] == "aborted"
    # stop_on_error=False keeps the queue running.
    failing = kc.execute('throw new Error("tolerated")', stop_on_error=False)
    queued = kc.execute("2 + 2")
    replies = {}
    while len(replies) < 2:
        reply = kc.get_shell_msg(timeout=30)
        replies[reply["parent_header"]["msg_id"]] = reply["content"]
    assert replies[queued]["status"] == "ok"


def test_help_syntax_pages_the_inspection(module_kernel):
    _km, kc = module_kernel
    outcome = execute(kc, "Math?")
    assert outcome.status == "ok"
    [page] = outcome.reply["content"]["payload"]
    assert page["source"] == "page"
    assert "text/plain" in page["data"]
    missing = execute(kc, "noSuchThingAnywhere?")
    assert missing.reply["content"]["payload"] == []
    assert "Object `noSuchThingAnywhere` not found." in missing.stdout


def test_silent_cells_show_no_result_and_keep_the_count(module_kernel):
    _km, kc = module_kernel
    before = execute(kc, "1").reply["content"]["execution_count"]
    silent = execute(kc, "console.log('side effect'); 5", silent=True)
    assert silent.results == []
    assert "side effect" in silent.stdout
    assert execute(kc, "1").reply["content"]["execution_count"] == before + 1


def test_user_expressions_are_evaluated_after_the_cell(module_kernel):
    _km, kc = module_kernel
    outcome = execute(kc, "const base = 20;", user_expressions={"double": "base * 2", "broken": "noSuchName"})
    expressions = outcome.reply["content"]["user_expressions"]
    assert expressions["double"]["status"] == "ok"
    assert expressions["double"]["data"]["text/plain"] == "40"
    assert expressions["broken"]["status"] == "error"
    assert "noSuchName" in expressions["broken"]["evalue"]


def test_new_display_updates_in_place(module_kernel):
    _km, kc = module_kernel
    code = 'import * as tslab from "tslab";\nconst d = tslab.newDisplay();\nd.html("<i>one</i>");\nd.html("<i>two</i>");'
    outcome = execute(kc, code)
    kinds = [m["header"]["msg_type"] for m in outcome.of_type("display_data", "update_display_data")]
    assert kinds == ["display_data", "update_display_data"]
    first, second = outcome.displays
    assert first["transient"]["display_id"] == second["transient"]["display_id"]
    assert second["data"]["text/html"] == "<i>two</i>"


def test_error_message_carries_name_value_and_traceback(module_kernel):
    _km, kc = module_kernel
    outcome = execute(kc, 'throw new RangeError("out of range")')
    assert outcome.error["ename"] == "RangeError"
    assert outcome.error["evalue"] == "out of range"
    assert any("out of range" in line for line in outcome.error["traceback"])
    assert outcome.reply["content"]["ename"] == "RangeError"


def test_comm_open_to_an_unknown_target_is_closed_and_info_lists_none(module_kernel):
    _km, kc = module_kernel
    comm_id = uuid.uuid4().hex
    msg = kc.session.msg("comm_open", {"comm_id": comm_id, "target_name": "no.such.target", "data": {}})
    kc.shell_channel.send(msg)
    deadline = time.monotonic() + 10
    closed = False
    while not closed and time.monotonic() < deadline:
        message = kc.get_iopub_msg(timeout=10)
        closed = message["header"]["msg_type"] == "comm_close" and message["content"]["comm_id"] == comm_id
    assert closed, "the kernel did not close a comm opened to an unknown target"
    kc.comm_info()
    reply = kc.get_shell_msg(timeout=10)
    assert reply["header"]["msg_type"] == "comm_info_reply"
    assert comm_id not in reply["content"]["comms"]


def test_messages_with_a_bad_signature_are_dropped(module_kernel):
    km, kc = module_kernel
    info = km.get_connection_info()
    rogue = zmq.Context.instance().socket(zmq.DEALER)
    try:
        rogue.connect(f"{info['transport']}://{info['ip']}:{info['shell_port']}")
        header = json.dumps(kc.session.msg_header("execute_request"), default=str).encode()
        forged_signature = b"0" * 64
        rogue.send_multipart([b"<IDS|MSG>", forged_signature, header, b"{}", b"{}", b'{"code": "1"}'])
        # The forged request gets no reply, and the kernel keeps answering signed ones.
        assert rogue.poll(1000) == 0
    finally:
        rogue.close(linger=0)
    assert execute(kc, "21 * 2").results[0]["text/plain"] == "42"


def test_interrupt_cancels_a_pending_prompt(kernel):
    km, kc = kernel
    msg_id = kc.execute('await prompt("never answered: ")', allow_stdin=True)
    request = kc.stdin_channel.get_msg(timeout=30)
    assert request["header"]["msg_type"] == "input_request"
    km.interrupt_kernel()
    while True:
        reply = kc.get_shell_msg(timeout=15)
        if reply["parent_header"]["msg_id"] == msg_id:
            break
    assert reply["content"]["status"] == "error"
    assert execute(kc, "3 * 3").results[0]["text/plain"] == "9"


def test_an_error_thrown_by_a_timer_is_shown_and_the_kernel_survives(module_kernel):
    km, kc = module_kernel
    execute(kc, 'setTimeout(() => { throw new Error("thrown later by a timer"); }, 50);')
    deadline = time.monotonic() + 10
    shown = ""
    while "thrown later by a timer" not in shown and time.monotonic() < deadline:
        message = kc.get_iopub_msg(timeout=10)
        if message["header"]["msg_type"] == "stream" and message["content"]["name"] == "stderr":
            shown += message["content"]["text"]
    assert "thrown later by a timer" in shown
    assert km.is_alive()
    assert execute(kc, "5 + 5").results[0]["text/plain"] == "10"
