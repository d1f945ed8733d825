"""Training throughput (images/s) per registered model on this CPU, fp32 vs bf16 autocast + channels_last.

    python benchmarks/train_throughput.py [MODEL ...] [--batch 64] [--steps 8] [--compile]

``--compile`` adds a column: bf16 + channels_last trained through ``torch.compile`` (``train.compile=true``);
its compilation happens in the warm-up steps, outside the timing.

Run it with nothing else on the machine: two jobs on 2 cores halve each other.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from ferkit.machine import describe as describe_machine
from ferkit.models import create_model, list_models, model_task
from ferkit.training.device import native_bf16
from ferkit.training.loop import autocast


def throughput(name: str, *, bf16: bool, batch: int, steps: int, compile: bool = False, size: int = 48) -> float:
    torch.manual_seed(0)
    model = create_model(name)
    if bf16:
        model = model.to(memory_format=torch.channels_last)
    net = torch.compile(model) if compile else model  # as run.py does for train.compile
    opt = torch.optim.Adam(model.parameters(), 1e-3, fused=True)  # as in training
    x = torch.rand(batch, 1, size, size)
    if bf16:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (batch,))
    model.train()
    for step in range(steps + 2):  # two warm-up steps
        if step == 2:
            start = time.perf_counter()
        with autocast(bf16):
            out = net(x).float()
        loss = F.mse_loss(out, x.float()) if model_task(name) == "reconstruct" else F.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", default=None)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--compile", action="store_true", help="also time bf16 through torch.compile")
    args = parser.parse_args()
    names = args.models or list_models()
    native = "native" if native_bf16(torch.device("cpu")) else "emulated: training falls back to fp32"
    print(f"{describe_machine()}, {torch.get_num_threads()} threads, batch {args.batch} (bf16 {native})")
    header = f"{'model':24s} {'params':>10s} {'fp32 img/s':>11s} {'bf16 img/s':>11s} {'speed-up':>8s}"
    print(header + (f" {'compiled img/s':>14s} {'vs bf16':>7s}" if args.compile else ""))
    for name in names:
        params = sum(p.numel() for p in create_model(name).parameters())
        fp32 = throughput(name, bf16=False, batch=args.batch, steps=args.steps)
        bf16 = throughput(name, bf16=True, batch=args.batch, steps=args.steps)
        row = f"{name:24s} {params:10,d} {fp32:11.0f} {bf16:11.0f} {bf16 / fp32:7.2f}x"
        if args.compile:
            compiled = throughput(name, bf16=True, batch=args.batch, steps=args.steps, compile=True)
            row += f" {compiled:14.0f} {compiled / bf16:6.2f}x"
        print(row)


if __name__ == "__main__":
    main()
