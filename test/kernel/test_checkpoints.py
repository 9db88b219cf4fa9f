"""`dist.checkpoint` and `dist.restore` through a real kernel, on every backend:
rank 0 writing for all and each rank writing its own shard, tensors and typed
arrays coming back as they were, and bad input (a missing file, a damaged
file, a group of the wrong size, no `shards` option) named clearly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import execute
from hosts_agents import Agent, write_token

# Each rank holds a tensor, a typed array and a number of its own; a save, then the
# values are overwritten, then restore must give back what was saved.
SAVE_AND_RESTORE = """
const own = {{ w: tf.tensor([[dist.rank, 1], [2, 3]]), v: Float64Array.of(dist.rank * 10, 7), step: 5 + dist.rank }};
await dist.checkpoint({path}, own, {{ shards: {mode} }});
const back: any = await dist.restore({path});
[back.w.arraySync(), Array.from(back.v), back.step, back.w.dtype]
"""


def expected(mode: str, size: int) -> list:
    source = [0] * size if mode == "rank0" else list(range(size))
    return [[[[r, 1], [2, 3]], [r * 10, 7], 5 + r, "float32"] for r in source]


def run_modes(kc, magic: str, directory: Path, size: int) -> None:
    for mode in ["rank0", "per-rank"]:
        path = directory / f"{mode}.ckpt"
        body = SAVE_AND_RESTORE.format(path=f'"{path}"', mode=f'"{mode}"')
        out = execute(kc, f"{magic}\n{body}", timeout=180)
        assert out.status == "ok", out.error
        assert out.results[-1]["application/json"] == expected(mode, size), mode
        assert path.exists()
        shards = sorted(p.name for p in directory.glob(f"{mode}.ckpt.*"))
        assert len(shards) == (size if mode == "per-rank" else 0), shards


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_checkpoint_and_restore_on_a_local_backend(kernel, backend, tmp_path):
    _, kc = kernel
    run_modes(kc, f"%%distributed -n 2 --backend {backend}", tmp_path, 2)


def test_a_second_per_rank_save_replaces_the_first_and_its_shards(kernel, tmp_path):
    _, kc = kernel
    magic = "%%distributed -n 2 --backend threads"
    path = tmp_path / "state.ckpt"
    for step in [1, 2]:
        out = execute(kc, f'{magic}\nawait dist.checkpoint("{path}", {{ step: {step}, rank: dist.rank }}, {{ shards: "per-rank" }});', timeout=120)
        assert out.status == "ok", out.error
    out = execute(kc, f'{magic}\nawait dist.restore("{path}")', timeout=60)
    assert out.status == "ok", out.error
    assert out.results[-1]["application/json"] == [{"step": 2, "rank": 0}, {"step": 2, "rank": 1}]
    assert len(list(tmp_path.glob("state.ckpt.*"))) == 2, "the first save's shards were removed"


def test_bad_input_is_named(kernel, tmp_path):
    _, kc = kernel
    magic = "%%distributed -n 2 --backend threads"
    missing = tmp_path / "nothing.ckpt"
    out = execute(kc, f'{magic}\nawait dist.restore("{missing}")', timeout=120)
    assert out.status == "error"
    assert out.error["ename"] == "CheckpointError", out.error
    assert f"dist.restore: {missing}: no such checkpoint file" in out.error["evalue"], out.error

    damaged = tmp_path / "damaged.ckpt"
    out = execute(kc, f'{magic}\nawait dist.checkpoint("{damaged}", {{ x: Float32Array.of(1, 2, 3) }}, {{ shards: "rank0" }});', timeout=60)
    assert out.status == "ok", out.error
    content = bytearray(damaged.read_bytes())
    content[len(content) // 2] ^= 0x40
    damaged.write_bytes(bytes(content))
    out = execute(kc, f'{magic}\nawait dist.restore("{damaged}")', timeout=60)
    assert out.status == "error"
    assert f"dist.restore: {damaged} is damaged: its SHA-256 does not match its contents" in out.error["evalue"], out.error

    sharded = tmp_path / "sharded.ckpt"
    out = execute(kc, f'{magic}\nawait dist.checkpoint("{sharded}", dist.rank, {{ shards: "per-rank" }});', timeout=60)
    assert out.status == "ok", out.error
    out = execute(kc, f'%%distributed -n 3 --backend threads\nawait dist.restore("{sharded}")', timeout=120)
    assert out.status == "error"
    assert f"dist.restore: {sharded} was saved as 2 per-rank shards, but this group has 3 ranks; restore it with -n 2" in out.error["evalue"], out.error

    out = execute(kc, f'%%distributed -n 3 --backend threads\nawait dist.checkpoint("{sharded}", 1, {{}} as any);', timeout=60)
    assert out.status == "error"
    assert 'dist.checkpoint: say who writes with { shards: "rank0" }' in out.error["evalue"], out.error

    # One rank's shard damaged: that rank's error names its file, the others say which rank failed.
    out = execute(kc, f'{magic}\nawait dist.restore("{sharded}")', timeout=120)
    assert out.status == "ok", out.error
    shard = sorted(tmp_path.glob("sharded.ckpt.*.rank1-of-2"))[0]
    shard.write_bytes(shard.read_bytes()[:-5])
    out = execute(kc, f'{magic}\nawait dist.restore("{sharded}")', timeout=60)
    assert out.status == "error"
    assert f"{shard} is damaged" in out.error["evalue"] or "rank 1 could not read its shard" in out.error["evalue"], out.error
    assert out.error["evalue"].startswith("rank 1: ") or "rank 1 could not read its shard" in out.error["evalue"], out.error


@pytest.fixture
def two_agents(tmp_path) -> Iterator[tuple[Path, list[Agent]]]:
    token_file = write_token(tmp_path)
    agents = [Agent(token_file, slots=1), Agent(token_file, slots=1)]
    try:
        yield token_file, agents
    finally:
        for agent in agents:
            agent.stop()


def test_checkpoint_and_restore_on_hosts(kernel, two_agents, tmp_path):
    _, kc = kernel
    token_file, agents = two_agents
    magic = f"%%distributed -n 2 --backend hosts --hosts {agents[0].address},{agents[1].address} --token-file {token_file}"
    directory = tmp_path / "ckpt"
    directory.mkdir()
    run_modes(kc, magic, directory, 2)
