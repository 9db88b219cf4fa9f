"""Fixtures shared by the kernel-level tests (protocol, distributed, notebooks).

Every test here talks to a real distlab kernel started from this checkout's
kernel/dist through jupyter_client; kernels are always shut down afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from jupyter_client import BlockingKernelClient, KernelManager

from kernel_helpers import ExecuteOutcome, ensure_kernelspec_installed, execute, start_kernel, stop_kernel

__all__ = ["ExecuteOutcome", "execute"]


@pytest.fixture(scope="session", autouse=True)
def distlab_kernelspec() -> str:
    """The path of the kernel.json this session uses (installed into sys.prefix first)."""
    try:
        return str(ensure_kernelspec_installed())
    except RuntimeError as error:
        pytest.exit(f"cannot install the distlab kernelspec: {error}", returncode=3)


@pytest.fixture
def kernel() -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    """A freshly started distlab kernel for one test: (manager, blocking client)."""
    km, kc = start_kernel()
    try:
        yield km, kc
    finally:
        stop_kernel(km, kc)


@pytest.fixture(scope="module")
def module_kernel() -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    """One distlab kernel shared by a module's tests, for checks that leave no state behind."""
    km, kc = start_kernel()
    try:
        yield km, kc
    finally:
        stop_kernel(km, kc)
