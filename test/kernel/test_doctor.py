"""`%dist doctor` in a cell: the same report as `distlab doctor`, from inside the kernel."""

from __future__ import annotations

from kernel_helpers import execute


def test_dist_doctor_prints_the_report_and_the_kernel_keeps_running(module_kernel) -> None:
    _, kc = module_kernel
    out = execute(kc, "%dist doctor", timeout=120)
    assert out.status == "ok", out.error
    for section in ["Node.js", "TensorFlow.js backends", "GPUs", "Launchers", "Jupyter"]:
        assert f"\n{section}\n" in f"\n{out.stdout}", out.stdout
    assert "[ok  ] wasm backend" in out.stdout, out.stdout
    assert "basics:" in out.stdout, out.stdout
    after = execute(kc, "1 + 1", timeout=60)
    assert after.status == "ok" and after.results[0]["text/plain"] == "2", after.reply
