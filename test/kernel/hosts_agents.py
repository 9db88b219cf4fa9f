"""Real `distlab agent` processes on 127.0.0.1 for the kernel-level hosts tests.

Each agent is a child process started from this checkout's kernel/dist; its
log lines (stderr) are collected by a reader thread. An agent can be started
again on the port it had, as an operator restarts a crashed agent.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import threading
from pathlib import Path

from kernel_helpers import KERNEL_CLI, alive, children


def write_token(directory: Path) -> Path:
    token_file = directory / "token"
    token_file.write_text(secrets.token_hex(32) + "\n")
    token_file.chmod(0o600)
    return token_file


class Agent:
    """A `distlab agent --slots N` child process listening on 127.0.0.1 (port 0: any free one)."""

    def __init__(self, token_file: Path, slots: int, port: int = 0, env: dict[str, str] | None = None) -> None:
        """`env`: variables added to this agent's environment (and its ranks'), e.g. a test hook."""
        self.token_file = token_file
        self.slots = slots
        self.env = env
        self.process = subprocess.Popen(
            ["node", str(KERNEL_CLI), "agent", "--listen", f"127.0.0.1:{port}", "--token-file", str(token_file), "--slots", str(slots)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env=None if env is None else {**os.environ, **env},
        )
        self.log: list[str] = []
        self.listening = threading.Event()
        self.port = 0
        threading.Thread(target=self._read, daemon=True).start()
        if not self.listening.wait(30):
            self.stop()
            raise RuntimeError(f"distlab agent did not start: {self.log}")

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line.rstrip("\n"))
            found = re.search(r"listening on 127\.0\.0\.1:(\d+) ", line)
            if found:
                self.port = int(found.group(1))
                self.listening.set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def restarted(self) -> Agent:
        """A new agent on this one's port (this one must have ended)."""
        return Agent(self.token_file, self.slots, self.port, self.env)

    def stop(self) -> None:
        """Ends the agent (continuing it first if it was stopped) and any rank process it left."""
        ranks = children(self.process.pid)
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)
            self.process.terminate()
            self.process.wait(10)
        for pid in ranks:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
