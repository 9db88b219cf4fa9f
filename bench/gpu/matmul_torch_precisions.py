"""PyTorch's square matMul on the GPU at each precision a WebGPU kernel may be compared with: f32
(TF32 off), TF32 (f32 storage, tensor cores with a 10-bit mantissa), bf16 and f16. The anchor
for bench/gpu/subgroup-matrix-bench.mjs; run on the same card in the same command.

    python3 bench/gpu/matmul_torch_precisions.py [--sizes 2048,4096,8192] [--reps 7]

Per size and precision: 3 warm-up products, then --reps blocks of products (about 20 TFLOP of
work a block), each block timed with a synchronize; prints one JSON line per row with the
median [min, max] TFLOP/s of the blocks.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

PRECISIONS = {
    "f32": (torch.float32, False),
    "tf32": (torch.float32, True),
    "bf16": (torch.bfloat16, False),
    "f16": (torch.float16, False),
}


def blocks_tflops(n: int, dtype: torch.dtype, tf32: bool, reps: int) -> list[float]:
    torch.backends.cuda.matmul.allow_tf32 = tf32
    a = torch.randn(n, n, device="cuda", dtype=dtype)
    b = torch.randn(n, n, device="cuda", dtype=dtype)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    products = max(3, min(200, int(2e13 / (2 * n**3))))
    out = []
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(products):
            a @ b
        torch.cuda.synchronize()
        out.append(2 * n**3 * products / (time.perf_counter() - start) / 1e12)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="2048,4096,8192")
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    if args.reps < 5:
        parser.error(f"--reps must be at least 5, got {args.reps}")
    print(json.dumps({"torch": torch.__version__, "gpu": torch.cuda.get_device_name()}))
    for n in (int(s) for s in args.sizes.split(",")):
        for name, (dtype, tf32) in PRECISIONS.items():
            t = blocks_tflops(n, dtype, tf32, args.reps)
            print(json.dumps({"who": "pytorch", "n": n, "precision": name, "tflops": round(statistics.median(t), 2),
                              "min": round(min(t), 2), "max": round(max(t), 2)}))


if __name__ == "__main__":
    main()
