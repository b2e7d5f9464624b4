"""``hlfnet models``: the registry as a table with parameters and GFLOPs."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models", help="list registered networks (parameters, GFLOPs) and the shipped pretrained models"
    )
    parser.add_argument("--in-channels", type=int, default=4)
    parser.add_argument("--out-channels", type=int, default=1)
    parser.add_argument(
        "--size", type=int, nargs=2, default=(192, 256), metavar=("H", "W"), help="input size for GFLOPs"
    )
    parser.set_defaults(handler=run)


def models_table(in_channels: int = 4, out_channels: int = 1, size: tuple[int, int] = (192, 256)) -> str:
    """Markdown table of every registered network: parameters (ours, paper), forward GFLOPs at ``size``."""
    from hlfnet.models import MODELS, count_flops, count_parameters, create_model

    rows = [
        f"| name | paper | parameters | paper (Table 1) | difference | GFLOPs at {in_channels}×{size[0]}×{size[1]} |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, spec in MODELS.items():
        model = create_model(name, in_channels=in_channels, out_channels=out_channels)
        params = count_parameters(model)
        gflops = count_flops(model, (1, in_channels, *size)) / 1e9
        paper, diff = "–", "–"
        if spec.paper_parameters:
            paper = f"{spec.paper_parameters / 1e6:.1f} M"
            diff = f"{100 * (params - spec.paper_parameters) / spec.paper_parameters:+.1f} %"
        rows.append(
            f"| {name} | {spec.paper_name} | {params / 1e6:.2f} M | {paper} | {diff} | {gflops:.2f} |"
        )
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    from hlfnet.pretrained import list_pretrained, pretrained_table

    print(models_table(args.in_channels, args.out_channels, tuple(args.size)))
    print()
    if list_pretrained():
        print(
            "Pretrained (hlfnet predict --model NAME; scores on the held-out test split of their training data):"
        )
        print()
        print(pretrained_table())
    else:
        print("No pretrained models in this installation.")
    return 0
