"""Does computing GroupNorm in NCHW inside a channels-last network pay? One process, interleaved rounds.

PyTorch's CPU GroupNorm backward is slow for channels-last tensors (``benchmarks/profile_training.py``). The
experiment: in a channels-last network, every GroupNorm converts its input to contiguous NCHW, normalises, and
converts the result back to channels-last ("nchw-groupnorm"), against the unchanged network. Five
configurations of the same network and weights are timed:

* ``channels_last`` and ``channels_last + nchw-groupnorm`` (float32);
* ``channels_last+bf16`` and ``channels_last+bf16 + nchw-groupnorm`` (bfloat16 autocast);
* ``bf16`` in plain NCHW, the fastest training mode of ``benchmarks/models.py``, as the reference.

Inference = ``torch.inference_mode()`` forward; training = forward + BCE-with-logits + backward + Adam. Every
round times each configuration once (interleaved); the fastest of ``--rounds`` is reported.

Usage::

    python benchmarks/groupnorm_layout.py                               # HLF-Net, batch 6, 4×192×256, 2 threads
    python benchmarks/groupnorm_layout.py --model unet --rounds 5
"""

from __future__ import annotations

import argparse
import contextlib
import time
import types
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from hlfnet import create_model

#: name -> (channels-last, bf16, GroupNorm in NCHW)
CONFIGS = {
    "channels_last": (True, False, False),
    "channels_last + nchw-groupnorm": (True, False, True),
    "channels_last+bf16": (True, True, False),
    "channels_last+bf16 + nchw-groupnorm": (True, True, True),
    "bf16 (NCHW)": (False, True, False),
}


def nchw_group_norm(self: nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
    """GroupNorm computed on a contiguous NCHW copy of ``x``, returned in channels-last memory format."""
    y = F.group_norm(x.contiguous(), self.num_groups, self.weight, self.bias, self.eps)
    return y.contiguous(memory_format=torch.channels_last)


def build(name: str, channels_last: bool, nchw_groupnorm: bool) -> nn.Module:
    torch.manual_seed(0)
    model = create_model(name, in_channels=4, out_channels=1)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if nchw_groupnorm:
        for module in model.modules():
            if isinstance(module, nn.GroupNorm):
                module.forward = types.MethodType(nchw_group_norm, module)
    return model


def steps(model: nn.Module, x: torch.Tensor, bf16: bool) -> tuple[Callable[[], None], Callable[[], None]]:
    """The inference and training step of one configuration."""
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    target = (torch.rand(x.shape[0], 1, *x.shape[2:]) > 0.5).float()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def infer() -> None:
        model.eval()
        with torch.inference_mode(), autocast():
            model(x)

    def train() -> None:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = F.binary_cross_entropy_with_logits(model(x).float(), target)
        loss.backward()
        optimizer.step()

    return infer, train


def seconds(step: Callable[[], None]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="hlfnet")
    parser.add_argument("--batch", type=int, default=6)
    parser.add_argument("--size", type=int, nargs=2, default=(192, 256), metavar=("H", "W"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.randn(args.batch, 4, *args.size)
    runs = {}
    for label, (channels_last, bf16, nchw) in CONFIGS.items():
        model = build(args.model, channels_last, nchw)
        batch = x.contiguous(memory_format=torch.channels_last) if channels_last else x.clone()
        runs[label] = steps(model, batch, bf16)
        for step in runs[label]:  # warm-up: allocations and kernel selection
            step()
    times: dict[str, list[list[float]]] = {label: [[], []] for label in runs}
    for _ in range(args.rounds):
        for label, (infer, train) in runs.items():
            times[label][0].append(seconds(infer))
            times[label][1].append(seconds(train))
    print(
        f"{args.model}, torch {torch.__version__}, {args.threads} threads, batch {args.batch}, input "
        f"4×{args.size[0]}×{args.size[1]}, fastest of {args.rounds} interleaved rounds\n"
    )
    print("| configuration | inference img/s | training img/s |")
    print("|---|---:|---:|")
    speed = {label: (args.batch / min(t[0]), args.batch / min(t[1])) for label, t in times.items()}
    for label, (infer, train) in speed.items():
        print(f"| {label} | {infer:.2f} | {train:.2f} |")
    print()
    for base in ("channels_last", "channels_last+bf16"):
        (i0, t0), (i1, t1) = speed[base], speed[f"{base} + nchw-groupnorm"]
        print(f"nchw-groupnorm in {base}: inference {i1 / i0:.2f}×, training {t1 / t0:.2f}×")
    best_train = speed["channels_last+bf16 + nchw-groupnorm"][1] / speed["bf16 (NCHW)"][1]
    print(f"channels_last+bf16 + nchw-groupnorm training vs bf16 (NCHW) training: {best_train:.2f}×")


if __name__ == "__main__":
    main()
