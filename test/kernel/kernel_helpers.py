"""Talking to a real distlab kernel from tests and benchmarks.

`start_kernel` starts the `distlab` kernelspec through jupyter_client;
`execute` runs one request and gathers everything the kernel said about it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any

from jupyter_client import BlockingKernelClient, KernelManager

REPO_ROOT = Path(__file__).resolve().parents[2]
KERNEL_NAME = "distlab"
KERNEL_CLI = REPO_ROOT / "kernel" / "dist" / "cli.js"
STARTUP_TIMEOUT = 60  # seconds; the kernel loads TypeScript's compiler on start


def venv_jupyter_data_dir() -> Path:
    return Path(sys.prefix) / "share" / "jupyter"


def ensure_kernelspec_installed() -> Path:
    """Installs this checkout's kernelspec into sys.prefix and makes it win.

    JUPYTER_PATH comes first in Jupyter's search order, ahead of a user-level
    `distlab` that another checkout may have registered, so tests always talk
    to the kernel built from this tree.
    """
    if not KERNEL_CLI.exists():
        raise RuntimeError(f"{KERNEL_CLI} does not exist: run `npm run setup` to build the kernel")
    result = subprocess.run(
        ["node", str(KERNEL_CLI), "install", "--prefix", sys.prefix],
        capture_output=True, text=True, timeout=60,
    )
    if result.returncode != 0:
        raise RuntimeError(f"`distlab install --prefix {sys.prefix}` failed:\n{result.stdout}{result.stderr}")
    data_dir = str(venv_jupyter_data_dir())
    paths = [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p and p != data_dir]
    os.environ["JUPYTER_PATH"] = os.pathsep.join([data_dir, *paths])
    spec = venv_jupyter_data_dir() / "kernels" / KERNEL_NAME / "kernel.json"
    if not spec.exists():
        raise RuntimeError(f"kernelspec not found at {spec} after install")
    return spec


def start_kernel(
    startup_timeout: float = STARTUP_TIMEOUT, cwd: Path | None = None, env: dict[str, str] | None = None
) -> tuple[KernelManager, BlockingKernelClient]:
    """A fresh kernel in `cwd`; `env` (the whole environment) replaces this process's."""
    km = KernelManager(kernel_name=KERNEL_NAME)
    km.start_kernel(**({"cwd": str(cwd)} if cwd is not None else {}), **({"env": env} if env is not None else {}))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=startup_timeout)
    except BaseException:
        stop_kernel(km, kc)
        raise
    return km, kc


def stop_kernel(km: KernelManager, kc: BlockingKernelClient) -> None:
    kc.stop_channels()
    if km.has_kernel:
        km.shutdown_kernel(now=True)


@dataclass
class ExecuteOutcome:
    """Everything a kernel sent for one execute_request."""

    reply: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)  # IOPub, in order, without status/execute_input
    arrived_at: list[float] = field(default_factory=list)  # time.monotonic() when each of `messages` arrived
    idle_at: float = 0.0  # time.monotonic() when the request's idle status arrived

    @property
    def status(self) -> str:
        return self.reply["content"]["status"]

    def of_type(self, *msg_types: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["header"]["msg_type"] in msg_types]

    def stream(self, name: str = "stdout") -> str:
        return "".join(m["content"]["text"] for m in self.of_type("stream") if m["content"]["name"] == name)

    @property
    def stdout(self) -> str:
        return self.stream("stdout")

    @property
    def stderr(self) -> str:
        return self.stream("stderr")

    @property
    def results(self) -> list[dict[str, Any]]:
        """The `data` bundles of execute_result messages."""
        return [m["content"]["data"] for m in self.of_type("execute_result")]

    @property
    def displays(self) -> list[dict[str, Any]]:
        """The `content` of display_data and update_display_data messages."""
        return [m["content"] for m in self.of_type("display_data", "update_display_data")]

    @property
    def error(self) -> dict[str, Any] | None:
        errors = self.of_type("error")
        return errors[-1]["content"] if errors else None


def execute(kc: BlockingKernelClient, code: str, timeout: float = 30, **kwargs: Any) -> ExecuteOutcome:
    """Runs `code` and returns its reply plus every IOPub message of that request.

    Waits for both the shell reply and the IOPub `idle` of this request, so no
    output of this cell leaks into the next. Raises TimeoutError naming the code.
    """
    msg_id = kc.execute(code, **kwargs)
    deadline = time.monotonic() + timeout
    messages: list[dict[str, Any]] = []
    arrived_at: list[float] = []
    idle_at = 0.0
    idle = False
    while not idle:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no idle status within {timeout}s for: {code[:80]!r}")
        try:
            message = kc.get_iopub_msg(timeout=remaining)
        except Empty:
            continue
        if message.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        msg_type = message["header"]["msg_type"]
        if msg_type == "status":
            idle = message["content"]["execution_state"] == "idle"
            idle_at = time.monotonic()
        elif msg_type != "execute_input":
            messages.append(message)
            arrived_at.append(time.monotonic())
    reply = _shell_reply(kc, msg_id, max(deadline - time.monotonic(), 1))
    return ExecuteOutcome(reply=reply, messages=messages, arrived_at=arrived_at, idle_at=idle_at)


def _shell_reply(kc: BlockingKernelClient, msg_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no execute_reply for request {msg_id} within {timeout}s")
        try:
            reply = kc.get_shell_msg(timeout=remaining)
        except Empty:
            continue
        if reply.get("parent_header", {}).get("msg_id") == msg_id:
            return reply


# Process table reads for tests that check what is left running.
def alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (dead, not yet reaped) counts as gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        if ppid == pid:
            found.append(int(entry.name))
    return found


def checkout_distlab_script(directory: Path) -> Path:
    """`directory/distlab`: a script that runs this checkout's CLI with this machine's node, for
    hosts that share the file system (network namespaces): what `--agent-command` names there."""
    node = os.path.realpath(subprocess.check_output(["which", "node"], text=True).strip())
    script = directory / "distlab"
    script.write_text(f'#!/bin/sh\nexec {node} {KERNEL_CLI} "$@"\n')
    script.chmod(0o755)
    return script
