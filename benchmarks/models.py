"""Speed of every registered network against a peer (MONAI BasicUNet, 5.96 M parameters), in one process.

For each network: parameters, forward GFLOPs and the activation memory a training step keeps for backward
(batch 6, fp32). For each network and each execution mode (fp32; channels-last; bf16 autocast; channels-last + bf16) it
measures inference and training images/s at batch 6 and 4×192×256, and the achieved GFLOP/s as a fraction of
this machine's matmul peak, measured in the same run (fp32 peak for fp32 modes, bf16 peak for bf16 modes).
Training FLOPs are counted as 3 × forward (forward + two backward products).

Usage::

    python benchmarks/models.py                       # everything, 2 threads (the paper-sized default)
    python benchmarks/models.py --models hlfnet unet --modes fp32 bf16 --iters 3
    python benchmarks/models.py --markdown docs/benchmarks-models.md
    python benchmarks/models.py --device cuda --batch 32                # on a GPU (bf16 autocast on CUDA)
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable

import torch
from torch import nn

from hlfnet import create_model, list_models
from hlfnet.models import count_flops, count_parameters

MODES = ("fp32", "channels_last", "bf16", "channels_last+bf16")
PEER = "monai_basicunet"


def build(name: str, in_channels: int) -> nn.Module:
    if name == PEER:
        from monai.networks.nets import BasicUNet

        return BasicUNet(
            spatial_dims=2, in_channels=in_channels, out_channels=1, features=(28, 56, 112, 224, 448, 28)
        )
    return create_model(name, in_channels=in_channels, out_channels=1)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_peak(dtype: torch.dtype, n: int = 2048, seconds: float = 2.0, device: str = "cpu") -> float:
    """Achieved GFLOP/s of a large square matmul: the practical peak of this machine for ``dtype``."""
    if device.startswith("cuda"):
        n *= 4  # a GPU needs a larger product to reach its peak
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    torch.mm(a, b)
    sync(device)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.mm(a, b)
        count += 1
        sync(device)
    return 2 * n**3 * count / (time.perf_counter() - start) / 1e9


def activation_mib(model: nn.Module, x: torch.Tensor) -> float:
    """MiB of tensors autograd saves for the backward pass in one training forward (the activation memory).

    Counted through ``saved_tensors_hooks``, each storage once: exact and independent of machine load,
    unlike resident-set sizes.
    """
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x).sum()
    return sum(seen.values()) / 2**20


def timed(step: Callable[[], None], iters: int, warmup: int, device: str = "cpu") -> float:
    """Fastest of ``iters`` timed calls: the least disturbed by other load on a shared machine."""
    for _ in range(warmup):
        step()
    sync(device)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - start)
    return min(times)


def measure(model: nn.Module, mode: str, x: torch.Tensor, iters: int, warmup: int) -> tuple[float, float]:
    """Seconds per batch for inference and for one training step (forward, backward, Adam)."""
    channels_last = mode.startswith("channels_last")
    bf16 = mode.endswith("bf16")
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    device = x.device.type
    autocast = (lambda: torch.autocast(device, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    target = (torch.rand(x.shape[0], 1, *x.shape[2:], device=x.device) > 0.5).float()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def infer() -> None:
        with torch.inference_mode(), autocast():
            model(x)

    def train() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = nn.functional.binary_cross_entropy_with_logits(model(x).float(), target)
        loss.backward()
        optimizer.step()

    model.eval()
    t_infer = timed(infer, iters, warmup, device)
    model.train()
    t_train = timed(train, iters, warmup, device)
    return t_infer, t_train


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=[*list_models(), PEER])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--batch", type=int, default=6)
    parser.add_argument("--size", type=int, nargs=2, default=(192, 256), metavar=("H", "W"))
    parser.add_argument("--in-channels", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    parser.add_argument("--markdown", help="also write the table to this file")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    # The peak is the best of several short measurements: a busy moment must not inflate the fractions.
    dtypes = {"fp32": torch.float32}
    if any(m.endswith("bf16") for m in args.modes):
        dtypes["bf16"] = torch.bfloat16
    peak = {
        k: max(matmul_peak(d, seconds=0.7, device=args.device) for _ in range(3)) for k, d in dtypes.items()
    }
    where = (
        torch.cuda.get_device_name(args.device)
        if args.device.startswith("cuda")
        else f"{args.threads} threads"
    )
    header = (
        f"torch {torch.__version__}, {where}, batch {args.batch}, input "
        f"{args.in_channels}×{args.size[0]}×{args.size[1]}; matmul peak: "
        + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peak.items())
    )
    lines = [
        header,
        "",
        "| network | params | fwd GFLOPs/img | activations MiB | mode | infer img/s | train img/s "
        "| infer % peak | train % peak |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    print("\n".join(lines), flush=True)
    x = torch.randn(args.batch, args.in_channels, *args.size, device=args.device)
    for name in args.models:
        gflops = count_flops(build(name, args.in_channels), (1, args.in_channels, *args.size)) / 1e9
        params = count_parameters(build(name, args.in_channels)) / 1e6
        memory = activation_mib(build(name, args.in_channels).to(args.device), x)
        for mode in args.modes:
            torch.manual_seed(0)
            model = build(name, args.in_channels).to(args.device)
            t_infer, t_train = measure(model, mode, x.clone(), args.iters, args.warmup)
            ref = peak["bf16" if mode.endswith("bf16") else "fp32"]
            ips_i, ips_t = args.batch / t_infer, args.batch / t_train
            row = (
                f"| {name} | {params:.2f} M | {gflops:.2f} | {memory:.0f} | {mode} | {ips_i:.2f} | {ips_t:.2f} "
                f"| {100 * gflops * ips_i / ref:.0f} % | {100 * 3 * gflops * ips_t / ref:.0f} % |"
            )
            lines.append(row)
            print(row, flush=True)
    if args.markdown:
        with open(args.markdown, "w") as handle:
            handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
