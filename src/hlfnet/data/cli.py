"""``hlfnet data``: check, download, prepare (build the cache) and export synthetic data.

Handlers only parse arguments and call typed functions of :mod:`hlfnet.data`; heavy modules are imported
inside them so that ``hlfnet --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import time

from hlfnet.progress import ProgressCallback


def label_values_arg(text: str) -> tuple[int, ...]:
    """``"0,128,255"`` → ``(0, 128, 255)`` for ``--label-values``."""
    try:
        return tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--label-values takes comma-separated integers (0,128,255), got {text!r}"
        ) from None


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``hlfnet data ...`` to ``hlfnet``."""
    data = subparsers.add_parser("data", help="check, download and prepare data sets")
    sub = data.add_subparsers(dest="data_command", metavar="ACTION")
    data.set_defaults(handler=lambda args: (data.print_help(), 2)[1])

    check = sub.add_parser("check", help="scan a data folder: pairs, sizes, labels, class balance, problems")
    check.add_argument("path", help="data folder")
    check.add_argument(
        "--format", choices=("isic2017", "nnunet", "msd", "folder", "nifti"), help="force a layout"
    )
    check.add_argument(
        "--num-classes", type=int, default=2, help="declared classes incl. background (default 2)"
    )
    check.add_argument("--mask-suffix", help="mask file suffix (default: per layout)")
    check.add_argument("--image-pattern", help="image file pattern with {case}, e.g. '{case}_training.tif'")
    check.add_argument(
        "--mask-pattern", help="mask file pattern with {case}, e.g. '1st_manual/{case}_manual1.gif'"
    )
    check.add_argument(
        "--label-values",
        type=label_values_arg,
        help="stored value of each class, comma-separated, index = class (0,128,255; 0,1,5,6 selects "
        "labels 1, 5, 6, others background)",
    )
    check.add_argument(
        "--mask-threshold", type=int, help="binarise masks as value > T instead of strict checks"
    )
    check.add_argument("--limit", type=int, help="decode at most N pairs")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(handler=_check)

    download = sub.add_parser("download", help="download and extract isic2017 or the MSD spleen task")
    download.add_argument("name", choices=("isic2017", "spleen"))
    download.add_argument("--root", required=True, help="destination folder")
    download.add_argument("--base-url", help="mirror serving the same file names")
    download.add_argument("--keep-archives", action="store_true", help="keep the archives after extracting")
    download.set_defaults(handler=_download)

    prepare = sub.add_parser("prepare", help="resolve the split and build the preprocessing cache")
    prepare.add_argument("--config", help="YAML/JSON with DataConfig fields (or a 'data:' section)")
    prepare.add_argument("--format", help="data format (overrides the config)")
    prepare.add_argument("--root", help="data folder (overrides the config)")
    prepare.add_argument("--cache-dir", help="cache root (overrides the config)")
    prepare.add_argument("--split-file", help="split file (overrides the config)")
    prepare.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), help="network input size")
    prepare.add_argument("--seed", type=int, help="split/augmentation seed")
    prepare.set_defaults(handler=_prepare)

    synthetic = sub.add_parser("synthetic", help="write synthetic images + masks as a PNG folder")
    synthetic.add_argument("--out", required=True, help="output folder (images/ and masks/)")
    synthetic.add_argument("--count", type=int, default=32)
    synthetic.add_argument("--seed", type=int, default=0)
    synthetic.add_argument("--image-size", type=int, nargs=2, default=(192, 256), metavar=("H", "W"))
    synthetic.set_defaults(handler=_synthetic)


def _check(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from hlfnet.data.check import check_dataset

    report = check_dataset(
        args.path,
        args.format,
        args.num_classes,
        args.mask_suffix,
        args.mask_threshold,
        args.limit,
        progress=None if args.json else ProgressCallback("checking", "pair"),
        image_pattern=args.image_pattern,
        mask_pattern=args.mask_pattern,
        label_values=args.label_values,
    )
    if args.json:
        print(json.dumps({**asdict(report), "ok": report.ok}, indent=1))
    else:
        print("\n".join(report.lines()))
    return 0 if report.ok else 1


def _download(args: argparse.Namespace) -> int:
    from hlfnet.data.download import download_dataset
    from hlfnet.errors import UserError

    bars: dict[str, ProgressCallback] = {}

    def progress(name: str, done: int, total: int | None) -> None:
        bars.setdefault(name, ProgressCallback(name, "B", unit_scale=True))(done, total)

    try:
        path = download_dataset(args.name, args.root, args.base_url, args.keep_archives, progress)
    except (FileNotFoundError, ValueError):
        raise
    except OSError as error:  # network trouble: one line, the .part file stays for the next run
        raise UserError(str(error)) from error
    finally:
        for bar in bars.values():
            bar.close()
    fmt = {"isic2017": "isic2017", "spleen": "msd"}[args.name]
    print(f"{args.name} ready at {path} (use format={fmt}, root={path})")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from hlfnet.data.cache import load_or_build
    from hlfnet.data.config import DataConfig
    from hlfnet.data.splits import resolve_split, split_pairs

    overrides = {
        "format": args.format,
        "root": args.root,
        "cache_dir": args.cache_dir,
        "split_file": args.split_file,
        "seed": args.seed,
        "image_size": list(args.image_size) if args.image_size else None,
    }
    if args.config:
        cfg = DataConfig.from_file(args.config, **overrides)
    else:
        cfg = DataConfig.from_dict({k: v for k, v in overrides.items() if v is not None})
    split = resolve_split(cfg)
    print("split: " + ", ".join(f"{k} {len(v)}" for k, v in split.items()))
    if cfg.format == "synthetic":
        print("synthetic data is generated in memory; nothing to cache")
        return 0
    for name in split:
        start = time.perf_counter()
        store = load_or_build(
            cfg, name, split_pairs(cfg, name), progress=ProgressCallback(f"{name:5s}", "pair")
        )
        print(
            f"{name}: {len(store.records)} items {tuple(store.images.shape[1:])} {store.images.dtype} "
            f"in {time.perf_counter() - start:.1f} s -> {store.path}"
        )
    return 0


def _synthetic(args: argparse.Namespace) -> int:
    from hlfnet.data.synthetic import write_synthetic_folder

    out = write_synthetic_folder(args.out, "train", args.count, tuple(args.image_size), args.seed)
    print(f"wrote {args.count} synthetic image/mask pairs to {out} (use format=folder)")
    return 0
