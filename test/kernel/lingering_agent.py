"""An agent command whose process outlives its connection, as a hung agent's would: the
launcher tests start their agents through it, so after `%dist stop` only the launcher's own
teardown (mpirun's SIGTERM, the srun step's end, scancel) can end it; the agent leaving by
itself when its connection closes proves nothing about that teardown."""

from __future__ import annotations

import subprocess
from pathlib import Path

from kernel_helpers import KERNEL_CLI

# A sleep length no other process on the machine uses: it names the lingering processes.
LINGER_SECONDS = "86397"


def lingering_agent_command(directory: Path) -> str:
    """`--agent-command` that runs the real agent, then stays alive (as `sleep`) until killed."""
    script = directory / "lingering-agent.sh"
    script.write_text(f'#!/bin/sh\nnode {KERNEL_CLI} "$@"\nexec sleep {LINGER_SECONDS}\n')
    script.chmod(0o755)
    return f"--agent-command {script}"


def lingered() -> list[int]:
    """PIDs of agents that outlived their connection and were not ended by their launcher."""
    found = subprocess.run(["pgrep", "-x", "-f", f"sleep {LINGER_SECONDS}"], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]
