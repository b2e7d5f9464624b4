"""Where one training step's time goes, per execution mode: ``torch.profiler`` on HLF-Net (and a peer), one process.

For each network and mode (fp32, channels-last, bf16 autocast, channels-last + bf16) it profiles one training
step — forward, BCE-with-logits, backward, Adam — after one warm-up step, at batch 6 and 4×192×256 by default,
and prints the share of the step's self CPU time spent in GroupNorm backward (``native_group_norm_backward``),
in GroupNorm forward and in convolutions (forward and backward), then the operators that take most time. It
also counts each network's GroupNorm layers. The shares compare modes and networks within this one run.

Usage::

    python benchmarks/profile_training.py                                  # hlfnet and unet, all modes
    python benchmarks/profile_training.py --models hlfnet --modes bf16 channels_last+bf16 --top 10
"""

from __future__ import annotations

import argparse
import contextlib

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from hlfnet import create_model

MODES = ("fp32", "channels_last", "bf16", "channels_last+bf16")
#: operator-name groups whose share of the step is reported
GROUPS = {
    "GroupNorm backward": ("native_group_norm_backward",),
    "GroupNorm forward": ("native_group_norm",),
    "convolutions (fwd + bwd)": ("mkldnn_convolution", "convolution_backward", "_convolution", "conv2d"),
}


def train_step(model: nn.Module, x: torch.Tensor, target: torch.Tensor, bf16: bool, optimizer) -> None:
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
        loss = nn.functional.binary_cross_entropy_with_logits(model(x).float(), target)
    loss.backward()
    optimizer.step()


def self_times(name: str, mode: str, x: torch.Tensor) -> tuple[dict[str, float], int]:
    """Self CPU time (µs) of every operator in one profiled training step, and the GroupNorm count."""
    torch.manual_seed(0)
    model = create_model(name, in_channels=x.shape[1], out_channels=1).train()
    if mode.startswith("channels_last"):
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    bf16 = mode.endswith("bf16")
    target = (torch.rand(x.shape[0], 1, *x.shape[2:]) > 0.5).float()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    train_step(model, x, target, bf16, optimizer)  # warm-up: allocations and kernel selection
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train_step(model, x, target, bf16, optimizer)
    times: dict[str, float] = {}
    for event in prof.key_averages():
        times[event.key] = times.get(event.key, 0.0) + event.self_cpu_time_total
    return times, sum(isinstance(m, nn.GroupNorm) for m in model.modules())


def share(times: dict[str, float], names: tuple[str, ...]) -> float:
    total = sum(times.values())
    return sum(t for k, t in times.items() if k.removeprefix("aten::") in names) / total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["hlfnet", "unet"])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--batch", type=int, default=6)
    parser.add_argument("--size", type=int, nargs=2, default=(192, 256), metavar=("H", "W"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--top", type=int, default=5, help="also list this many most expensive operators")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.randn(args.batch, 4, *args.size)
    print(
        f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, input 4×{args.size[0]}×{args.size[1]}"
    )
    print("\n| network | GroupNorms | mode | step s (profiled) | " + " | ".join(GROUPS) + " |")
    print("|---|---:|---|---:|" + "---:|" * len(GROUPS))
    tops = []
    for name in args.models:
        for mode in args.modes:
            times, norms = self_times(name, mode, x.clone())
            shares = " | ".join(f"{100 * share(times, ops):.1f} %" for ops in GROUPS.values())
            print(f"| {name} | {norms} | {mode} | {sum(times.values()) / 1e6:.2f} | {shares} |", flush=True)
            total = sum(times.values())
            ranked = sorted(times.items(), key=lambda kv: -kv[1])[: args.top]
            tops.append(f"{name} {mode}: " + ", ".join(f"{k} {100 * t / total:.1f} %" for k, t in ranked))
    print("\nMost expensive operators (share of the step's self CPU time):")
    print("\n".join(f"* {line}" for line in tops))


if __name__ == "__main__":
    main()
