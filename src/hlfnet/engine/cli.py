"""``hlfnet train`` and ``hlfnet demo`` (registered by :mod:`hlfnet.cli`).

Thin: parse, then call :func:`hlfnet.engine.training.train` / :func:`hlfnet.engine.demo.run_demo`. Heavy modules
(torch, Lightning) are imported inside the handlers so that ``hlfnet --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

#: Keys that may change when a run is resumed (more epochs, other hardware); anything else would make the
#: continued run a different experiment.
RESUME_OVERRIDABLE = (
    "train.max_epochs",
    "train.max_time",
    "train.accelerator",
    "train.devices",
    "train.num_nodes",
    "train.strategy",
    "train.num_workers",
    "train.channels_last",
    "train.progress_bar",
    "train.log_every_n_steps",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train`` and ``demo`` to ``hlfnet``."""
    train = subparsers.add_parser(
        "train",
        help="train a network with the paper's recipe (Lightning), recording a run folder",
        description=(
            "Train one experiment. CONFIG is a YAML file or a shipped config name "
            "(hlfnet train --list-configs). Every run is recorded in runs/<name>/ "
            "(config.yaml, split.json, checkpoints/{best,last}.ckpt, model.safetensors + model.json, "
            "metrics.csv, curves.png, logs/)."
        ),
    )
    train.add_argument("--config", help="YAML file or shipped config name (e.g. hlfnet_isic2017, synthetic)")
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.max_epochs=3 --set data.root=/data/isic (repeatable)",
    )
    train.add_argument("--run-dir", type=Path, help="run folder (default: <train.runs_dir>/<name>)")
    train.add_argument("--resume", type=Path, metavar="RUN", help="continue RUN from checkpoints/last.ckpt")
    train.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    train.add_argument("--accelerator", choices=["cpu", "gpu", "cuda", "auto"], help="train.accelerator")
    train.add_argument("--devices", type=int, help="train.devices (per node)")
    train.add_argument("--num-nodes", type=int, help="train.num_nodes")
    train.add_argument("--strategy", help="train.strategy (auto, ddp, ddp_spawn, ...)")
    train.add_argument("--precision", choices=["32", "bf16-mixed", "16-mixed", "64"], help="train.precision")
    train.add_argument("--list-configs", action="store_true", help="print the shipped config names and exit")
    train.set_defaults(handler=run_train)

    plan = subparsers.add_parser(
        "plan",
        help="fingerprint a data set and print its native-resolution plan (spacing, intensities, patch size)",
        description=(
            "Derive the preprocessing plan `hlfnet train` would use for a native-resolution config "
            "(data.preprocessing: patch): per-case spacings and sizes, target spacing, intensity normalisation, "
            "patch and batch size. Prints it and writes it as JSON (--output, default plan.json)."
        ),
    )
    plan.add_argument("--data", required=True, help="data folder (sets data.root)")
    plan.add_argument(
        "--config", help="config (default: patch_3d for a folder of volumes, patch_2d for images)"
    )
    plan.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    plan.add_argument("--output", type=Path, default=Path("plan.json"), help="where the plan goes")
    plan.add_argument("--overwrite", action="store_true", help="replace a plan written earlier")
    plan.set_defaults(handler=run_plan_command)

    demo = subparsers.add_parser(
        "demo",
        help="the main job: train HLF-Net briefly on built-in synthetic data, evaluate, write a run folder",
        description=(
            "Needs no data and no network: builds the synthetic dataset, trains HLF-Net for a few epochs on "
            "CPU (about two minutes on two cores), evaluates the best model on the test split and prints "
            "where everything went."
        ),
    )
    demo.add_argument("--run-dir", type=Path, help="run folder (default: the first free runs/demo[-N])")
    demo.add_argument("--overwrite", action="store_true", help="replace --run-dir if it exists")
    demo.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override the demo config",
    )
    demo.set_defaults(handler=run_demo_command)

    reproduce = subparsers.add_parser(
        "reproduce",
        help="Table 1 on ISIC 2017: train, evaluate and tabulate every network under the cpu or gpu protocol",
        description=(
            "Trains each network with <network>_isic2017_<protocol>.yaml into RUNS_DIR/<network> (resumed if "
            "interrupted, skipped if finished), evaluates it on the held-out test split and writes "
            "RUNS_DIR/table1.md with the paper's values and paired statistics against Unet-28. cpu: one network "
            "after another, ~1 h each on two cores; gpu: all at once on one GPU, the paper's recipe in float32. "
            "--seeds 0,1,2: the same per training seed in RUNS_DIR/seed<N>, the spread in RUNS_DIR/seeds.md."
        ),
    )
    reproduce.add_argument("--protocol", choices=("cpu", "cpu_paper", "gpu"), required=True)
    reproduce.add_argument("--data", required=True, help="the ISIC 2017 folder")
    reproduce.add_argument(
        "--networks",
        default="unet,resunet,hlfnet_hfe,hlfnet_lfe,hlfnet",
        help="comma-separated subset of unet,resunet,hlfnet_hfe,hlfnet_lfe,hlfnet, or the control unet16 "
        "(default: the five of Table 1)",
    )
    reproduce.add_argument(
        "--seeds",
        help="comma-separated training seeds, one after another, each in RUNS_DIR/seed<N> (the split stays the "
        "data.seed one); default: the configs' seed, in RUNS_DIR",
    )
    reproduce.add_argument("--runs-dir", type=Path, help="default runs/isic2017_<protocol>")
    reproduce.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="for every network"
    )
    reproduce.add_argument("--dry-run", action="store_true", help="validate the configs, print the commands")
    reproduce.set_defaults(handler=run_reproduce_command)


def _one_log_stream() -> None:
    """``import lightning`` adds its own console handler and still propagates to the root logger, which
    ``hlfnet`` has configured: every Lightning line would print twice. Keep the root's."""
    import lightning  # noqa: F401

    if logging.getLogger().handlers:
        lightning_logger = logging.getLogger("lightning")
        for handler in list(lightning_logger.handlers):
            lightning_logger.removeHandler(handler)


def _hardware_overrides(args: argparse.Namespace) -> list[str]:
    pairs = {
        "train.accelerator": args.accelerator,
        "train.devices": args.devices,
        "train.num_nodes": args.num_nodes,
        "train.strategy": args.strategy,
        "train.precision": args.precision,
    }
    return [f"{key}={value}" for key, value in pairs.items() if value is not None]


def run_train(args: argparse.Namespace) -> int:
    """Handler of ``hlfnet train``."""
    from hlfnet.cli import CLIError
    from hlfnet.schema import list_configs

    if args.list_configs:
        print("\n".join(list_configs()))
        return 0
    overrides = [*args.overrides, *_hardware_overrides(args)]
    _one_log_stream()
    from hlfnet.engine.training import describe_run, load_run_config, train

    if args.resume is not None:
        if args.config or args.overwrite or args.run_dir:
            raise CLIError(
                "--resume RUN continues RUN with its own config: drop --config, --run-dir and --overwrite"
            )
        for item in overrides:
            key = item.partition("=")[0].strip()
            if key not in RESUME_OVERRIDABLE:
                raise CLIError(
                    f"cannot change {key!r} when resuming (it would be another experiment); "
                    f"allowed: {', '.join(RESUME_OVERRIDABLE)}"
                )
        config = load_run_config(args.resume, overrides)
        result = train(config, args.resume, resume=True)
    else:
        if not args.config:
            raise CLIError("--config is required (a YAML file or one of: hlfnet train --list-configs)")
        from hlfnet.engine.config import load_config

        config = load_config(args.config, overrides)
        result = train(config, args.run_dir, overwrite=args.overwrite)
    from hlfnet.engine.callbacks import global_rank_from_env

    if global_rank_from_env() != 0:
        return 0  # DDP children re-run this command; rank 0 reports
    summary = describe_run(result)
    print(f"run folder: {summary['run_dir']}")
    if result.best_epoch is not None:
        print(f"best epoch: {result.best_epoch} (validation Dice {result.best_val_dice:.4f})")
    for role, path in summary["files"].items():
        print(f"  {role:16s} {path}")
    return 0


def run_demo_command(args: argparse.Namespace) -> int:
    """Handler of ``hlfnet demo``."""
    from hlfnet.engine.demo import format_demo_report, run_demo

    _one_log_stream()

    report = run_demo(run_dir=args.run_dir, overwrite=args.overwrite, overrides=args.overrides)
    print(format_demo_report(report))
    return 0


def run_plan_command(args: argparse.Namespace) -> int:
    """Handler of ``hlfnet plan``."""
    from hlfnet.atomic import atomic_write_bytes, owned_outputs
    from hlfnet.data.layouts import detect_format
    from hlfnet.engine.config import load_config
    from hlfnet.engine.training import plan_experiment

    name = args.config
    overrides = [f"data.root={args.data}", *args.overrides]
    if name is None:
        fmt = detect_format(args.data)
        name = "patch_3d" if fmt in ("msd", "nifti") else "patch_2d"
        overrides.insert(0, f"data.format={fmt}")
    config = load_config(name, overrides)
    if not config.data.is_patch_plan:
        raise ValueError(
            f"config {name!r} uses the resize plan (data.preprocessing: resize): nothing to plan"
        )
    output = Path(args.output)
    _, plan = plan_experiment(config)
    print(plan.describe())
    # the one ownership mechanism: a plan hlfnet wrote is replaced with --overwrite, any other file never
    with owned_outputs(output.parent, [output.name], "plan", overwrite=args.overwrite):
        atomic_write_bytes(output, plan.to_json().encode(), root=output.parent)
    print(f"written to {output}")
    return 0


def run_reproduce_command(args: argparse.Namespace) -> int:
    """Handler of ``hlfnet reproduce``."""
    from hlfnet.cli import CLIError
    from hlfnet.engine.reproduce import reproduce

    networks = tuple(n.strip() for n in args.networks.split(",") if n.strip())
    seeds = None
    if args.seeds is not None:
        try:
            seeds = tuple(int(s) for s in args.seeds.split(","))
        except ValueError:
            raise CLIError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from None
    if args.dry_run:
        plans = reproduce(args.protocol, args.data, networks, args.runs_dir, args.overrides, True, seeds)
        print("\n".join(plan.describe() for plan in plans))
        return 0
    table = reproduce(args.protocol, args.data, networks, args.runs_dir, args.overrides, seeds=seeds)
    print(Path(table).read_text(), end="")
    print(f"written to {table}")
    return 0
