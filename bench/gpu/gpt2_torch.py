"""PyTorch twin of bench/gpu/gpt2-bench.ts: GPT-2 small as distlab/models'
createGpt2Small builds it (kernel/src/models/tiny-gpt.ts), in eager f32
(TF32 off), timed the same way.

Same shapes and initialisation: 12 blocks of 768 channels and 12 heads,
context 1024, vocabulary 50,304, head tied to the token embedding (no head
bias); weights N(0, 0.02), the two residual projections of each block
N(0, 0.02 / sqrt(2 * 12)), layer norms 1 and 0 (eps 1e-5), biases 0; GELU's
tanh form; mean cross-entropy; Adam (lr 1e-3, betas 0.9 / 0.999, eps 1e-8).
Attention is the explicit masked softmax the TF.js model computes
(--attention explicit); --attention sdpa takes
F.scaled_dot_product_attention (fused kernels) for reference.

Prints JSON lines: the step times (ms, each step reading its loss back, as
the TF.js step does) after --warmup untimed steps, then the allocated CUDA
memory every 10 of --memory-steps further steps.
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, c, heads, attention):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(c), nn.LayerNorm(c)
        self.qkv, self.proj = nn.Linear(c, 3 * c), nn.Linear(c, c)
        self.fc, self.fcproj = nn.Linear(c, 4 * c), nn.Linear(4 * c, c)
        self.heads, self.attention = heads, attention

    def forward(self, x, mask):
        b, t, c = x.shape
        hs = c // self.heads
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, hs).transpose(1, 2) for z in (q, k, v))  # [b, heads, t, hs]
        if self.attention == "sdpa":
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            y = F.softmax(q @ k.transpose(-2, -1) / math.sqrt(hs) + mask[:t, :t], dim=-1) @ v
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, c))
        return x + self.fcproj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class Gpt2(nn.Module):
    def __init__(self, vocabulary, context, c, heads, layers, attention):
        super().__init__()
        self.wte = nn.Embedding(vocabulary, c)
        self.wpe = nn.Parameter(torch.zeros(context, c))
        self.blocks = nn.ModuleList([Block(c, heads, attention) for _ in range(layers)])
        self.lnf = nn.LayerNorm(c)
        residual_std = 0.02 / math.sqrt(2 * layers)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(p, 0, residual_std)
            elif name.endswith("weight") and p.dim() == 2 or name == "wpe":
                nn.init.normal_(p, 0, 0.02)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, tokens, mask):
        x = self.wte(tokens) + self.wpe[: tokens.shape[1]]
        for block in self.blocks:
            x = block(x, mask)
        return self.lnf(x) @ self.wte.weight.t()  # tied head: [b, t, vocabulary]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--context", type=int, default=1024)
    parser.add_argument("--vocabulary", type=int, default=50304)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--attention", default="explicit", choices=["explicit", "sdpa"])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--memory-steps", type=int, default=100)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = args.device
    b, t, v = args.batch, args.context, args.vocabulary
    model = Gpt2(v, t, args.width, args.heads, args.layers, args.attention).to(device)
    parameters = sum(p.numel() for p in model.parameters())
    tokens = torch.randint(0, v, (b, t), device=device)
    targets = torch.randint(0, v, (b * t,), device=device)
    mask = torch.triu(torch.full((t, t), -1e9, device=device), diagonal=1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(tokens, mask).view(b * t, v), targets)
        loss.backward()
        opt.step()
        return loss.item()

    losses = [step() for _ in range(args.warmup)]
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        losses.append(step())
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    ordered = sorted(times)
    record = {"step": "gpt2", "framework": f"torch {torch.__version__}", "attention": args.attention, "batch": b, "parameters": parameters,
              "medianMs": round(ordered[len(ordered) // 2], 1), "minMs": round(ordered[0], 1), "maxMs": round(ordered[-1], 1),
              "ms": [round(x, 1) for x in times], "losses": [round(x, 4) for x in losses]}
    if device.startswith("cuda"):
        record["gpu"] = torch.cuda.get_device_name()
    print(json.dumps(record), flush=True)
    if args.memory_steps and device.startswith("cuda"):
        samples = []
        for i in range(args.memory_steps + 1):
            if i % 10 == 0:
                samples.append({"step": i, "allocatedMiB": round(torch.cuda.memory_allocated() / 2 ** 20, 1)})
            if i < args.memory_steps:
                step()
        print(json.dumps({"memory": "gpt2", "framework": "torch", "attention": args.attention, "steps": args.memory_steps,
                          "allocatedMiBDrift": samples[-1]["allocatedMiB"] - samples[0]["allocatedMiB"],
                          "peakMiB": round(torch.cuda.max_memory_allocated() / 2 ** 20, 1), "samples": samples}), flush=True)


if __name__ == "__main__":
    main()
