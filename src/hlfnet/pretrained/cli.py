"""``hlfnet pretrained``: list, verify and publish the pretrained networks shipped in the package."""

from __future__ import annotations

import argparse


def _list(args: argparse.Namespace) -> int:
    from hlfnet.pretrained import pretrained_table

    print(pretrained_table())
    return 0


def _verify(args: argparse.Namespace) -> int:
    from hlfnet.pretrained import list_pretrained, verify_pretrained

    for name in args.names or list_pretrained():
        print(f"{name}: ok ({verify_pretrained(name)})")
    return 0


def _publish(args: argparse.Namespace) -> int:
    from hlfnet.pretrained.publish import publish_pretrained

    path = publish_pretrained(
        args.run,
        args.name,
        protocol=args.protocol,
        split=args.split,
        folder=args.folder,
        replace=args.replace,
    )
    print(f"wrote {path} and its manifest entry")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``hlfnet pretrained {list,verify,publish}``."""
    parser = subparsers.add_parser("pretrained", help="list, verify or publish shipped pretrained models")
    commands = parser.add_subparsers(dest="pretrained_command", metavar="ACTION", required=True)
    p = commands.add_parser("list", help="the shipped models with protocol and measured scores")
    p.set_defaults(handler=_list)
    p = commands.add_parser("verify", help="check the weights' sha256 against the manifest")
    p.add_argument("names", nargs="*", help="default: every shipped model")
    p.set_defaults(handler=_verify)
    p = commands.add_parser(
        "publish",
        help="ship an evaluated run as a pretrained model (float16 safetensors + manifest entry)",
        description="A deliberate step: writes <folder>/<name>.safetensors and its manifest entry (sha256, "
        "network, preprocessing, split, protocol, code commit, scores of RUN/evaluation/<split>).",
    )
    p.add_argument("run", help="the run folder, evaluated on --split")
    p.add_argument("--name", required=True, help="pretrained name, e.g. hlfnet-isic2017")
    p.add_argument("--protocol", required=True, help="how it was trained, e.g. 'cpu: 96x128, 24 epochs'")
    p.add_argument("--split", default="test", help="the evaluated split whose scores are recorded")
    p.add_argument("--folder", help="where to write (default: the installed package's pretrained folder)")
    p.add_argument("--replace", action="store_true", help="replace an entry of the same name")
    p.set_defaults(handler=_publish)
