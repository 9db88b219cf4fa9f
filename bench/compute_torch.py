"""PyTorch twins of bench/compute-models.ts, timed the same way.

Prints one JSON line: {"mlp_ms": [...], "gpt_ms": [...], ...}: the milliseconds
of each of --steps timed steps after --warmup untimed ones (the driver,
bench/compute.mjs, summarises them with bench/stats.ts).
  --device cpu (one thread, as the anchors) or cuda (TF32 off).
  --only mlp|gpt|matmul   --sizes 1024,2048,...  (matmul: f32 TFLOP/s)
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def mlp(device):
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)).to(device)
    x = torch.randn(256, 784, device=device)
    y = torch.randint(0, 10, (256,), device=device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()  # reads the loss back, as the TF.js step does
    return step


GPT = dict(layers=4, heads=4, channels=128, context=64, batch=12, vocabulary=65)


class Block(nn.Module):
    def __init__(self, c, heads):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(c), nn.LayerNorm(c)
        self.qkv, self.proj = nn.Linear(c, 3 * c), nn.Linear(c, c)
        self.fc, self.fcproj = nn.Linear(c, 4 * c), nn.Linear(4 * c, c)
        self.heads = heads

    def forward(self, x, mask):
        b, t, c = x.shape
        hs = c // self.heads
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, hs).transpose(1, 2) for z in (q, k, v))  # [b, heads, t, hs]
        att = F.softmax(q @ k.transpose(-2, -1) / math.sqrt(hs) + mask, dim=-1)   # explicit softmax, like the TF.js model
        x = x + self.proj((att @ v).transpose(1, 2).reshape(b, t, c))
        return x + self.fcproj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class TinyGpt(nn.Module):
    def __init__(self):
        super().__init__()
        c = GPT["channels"]
        self.wte = nn.Embedding(GPT["vocabulary"], c)
        self.wpe = nn.Parameter(torch.randn(GPT["context"], c) * 0.02)
        self.blocks = nn.ModuleList([Block(c, GPT["heads"]) for _ in range(GPT["layers"])])
        self.lnf, self.head = nn.LayerNorm(c), nn.Linear(c, GPT["vocabulary"])

    def forward(self, tokens, mask):
        x = self.wte(tokens) + self.wpe
        for block in self.blocks:
            x = block(x, mask)
        return self.head(self.lnf(x))


def gpt(device):
    t, b, v = GPT["context"], GPT["batch"], GPT["vocabulary"]
    model = TinyGpt().to(device)
    tokens = torch.randint(0, v, (b, t), device=device)
    targets = torch.randint(0, v, (b * t,), device=device)
    mask = torch.triu(torch.full((t, t), -1e9, device=device), diagonal=1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(tokens, mask).view(b * t, v), targets)
        loss.backward()
        opt.step()
        return loss.item()
    return step


def step_times_ms(step, warmup, steps):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def matmul_tflops(n, device):
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    reps = max(3, min(50, int(2e13 / (2 * n ** 3))))
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize()
    return 2 * n ** 3 * reps / (time.perf_counter() - start) / 1e12


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", default="mlp,gpt")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--sizes", default="1024,2048,4096,8192")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.device == "cpu":
        torch.set_num_threads(1)
    else:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": args.device}
    if args.device != "cpu":
        out["gpu"] = torch.cuda.get_device_name()
    only = args.only.split(",")
    sync = torch.cuda.synchronize if args.device != "cpu" else (lambda: None)
    for name, make in (("mlp", mlp), ("gpt", gpt)):
        if name in only:
            step = make(args.device)
            out[f"{name}_ms"] = step_times_ms(lambda: (step(), sync()), args.warmup, args.steps)
    if "matmul" in only:
        out["matmul_tflops"] = {n: matmul_tflops(int(n), args.device) for n in args.sizes.split(",")}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
