"""``hlfnet reproduce``: train, evaluate and tabulate Table 1 (ISIC 2017) under a protocol sized for the machine.

Three protocols, each a set of shipped configs ``<network>_isic2017_<protocol>.yaml``:

* ``cpu`` -- the paper's recipe at 96×128 for 24 epochs (rate ×0.1 after 8 and 16), bf16 autocast, with a
  brightness/contrast jitter: one network in about an hour on two CPU cores.
* ``cpu_paper`` -- the same at the paper's schedule (45 epochs, ×0.1 after 15 and 30) in float32.
* ``gpu`` -- the paper's recipe as §3.1 states it (192×256, 45 epochs, ×0.1 after 15 and 30, crop + flip only)
  in float32 with channels-last and loader workers.

The CPU protocols train the networks **one after another**, each with every core; the GPU protocol trains them
**concurrently on one GPU** (each its own process). Each network trains in ``<runs_dir>/<network>`` (resumed if
interrupted, skipped if finished), is evaluated on its held-out test split (``hlfnet evaluate``), and the table
(with the paper's values and paired statistics against Unet-28) is written to ``<runs_dir>/table1.md``.

``seeds`` repeats this per training seed in ``<runs_dir>/seed<N>`` (one seed after another; the config's
top-level ``seed`` set to ``N``, the split's ``data.seed`` unchanged) and writes the spread over the seeds to
``<runs_dir>/seeds.md``. Every run of one invocation must have the same split (checked after training).
``dry_run`` validates every config and returns the plans without training: CI runs it for every protocol.
"""

from __future__ import annotations

import logging
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from hlfnet.atomic import atomic_write_bytes, check_target, owned_outputs
from hlfnet.data.splits import read_split
from hlfnet.errors import OutputRefused, UserError
from hlfnet.experiment.config import load_config

__all__ = [
    "CONTROL_NETWORKS",
    "PROTOCOLS",
    "TABLE1_NETWORKS",
    "ReproducePlan",
    "plan_reproduction",
    "reproduce",
    "seed_spread_markdown",
]

logger = logging.getLogger(__name__)

#: Table 1's ISIC networks, baseline first (the reference of the paired statistics).
TABLE1_NETWORKS = ("unet", "resunet", "hlfnet_hfe", "hlfnet_lfe", "hlfnet")
#: Networks a protocol can train beside Table 1's (asked for by name, never by default): the U-Net-16 ceiling
#: control, the skeleton of the three HLE-Net variants without either module.
CONTROL_NETWORKS = ("unet16",)
PROTOCOLS = ("cpu", "cpu_paper", "gpu")
TABLE_NAME = "table1.md"


@dataclass(frozen=True)
class ReproducePlan:
    """What :func:`reproduce` will run for one training seed: one command per network, and where it goes.

    ``seed`` is ``None`` for the config's own seed (runs in ``runs_dir/<network>``), else the training seed
    of ``runs_dir`` = ``<parent>/seed<seed>``.
    """

    protocol: str
    runs_dir: Path
    networks: tuple[str, ...]
    commands: dict[str, list[str]]
    concurrent: bool
    seed: int | None = None

    def describe(self) -> str:
        mode = "concurrently on one GPU" if self.concurrent else "one after another"
        seed = "" if self.seed is None else f", training seed {self.seed}"
        lines = [
            f"protocol {self.protocol}: {len(self.networks)} network(s), {mode}{seed}, runs in {self.runs_dir}"
        ]
        lines += ["  " + " ".join(self.commands[n]) for n in self.networks]
        return "\n".join(lines)


def _epochs_done(run_dir: Path) -> int:
    metrics = run_dir / "metrics.csv"
    if not metrics.is_file():
        return 0
    return max(0, len(metrics.read_text().strip().splitlines()) - 1)


def plan_reproduction(
    protocol: str,
    data_root: str | os.PathLike[str],
    networks: tuple[str, ...] = TABLE1_NETWORKS,
    runs_dir: str | os.PathLike[str] | None = None,
    overrides: list[str] | None = None,
    seed: int | None = None,
) -> ReproducePlan:
    """Validate the protocol's configs for ``networks`` and build their training commands.

    Args:
        protocol: one of :data:`PROTOCOLS`.
        data_root: the ISIC 2017 folder.
        networks: which networks (default Table 1's five).
        runs_dir: parent of the run folders (default ``runs/isic2017_<protocol>``).
        overrides: ``key=value`` config overrides for every network.
        seed: ``None``: the configs' training seed, runs in ``runs_dir/<network>``; else this training seed
            (the config's top-level ``seed``; the split's ``data.seed`` is kept), runs in
            ``runs_dir/seed<seed>/<network>``.

    Raises:
        ValueError: an unknown protocol or network, a config override that does not validate, or a ``seed``
            override beside ``seed``.
        FileNotFoundError: ``data_root`` does not exist.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    known = (*TABLE1_NETWORKS, *CONTROL_NETWORKS)
    unknown = [n for n in networks if n not in known]
    if unknown or not networks:
        raise ValueError(f"networks {unknown or '(none)'}: choose from {', '.join(known)}")
    if not Path(data_root).is_dir():
        raise FileNotFoundError(f"{data_root}: no such ISIC 2017 folder (hlfnet data check {data_root})")
    runs_dir = Path(runs_dir) if runs_dir is not None else Path("runs") / f"isic2017_{protocol}"
    extra = [f"data.root={data_root}", "train.progress_bar=false", *(overrides or [])]
    if seed is not None:
        if any(item.split("=", 1)[0].strip() == "seed" for item in overrides or []):
            raise ValueError(
                "config key 'seed': give the training seeds once, as seeds (--seeds), not as --set seed"
            )
        runs_dir = runs_dir / f"seed{seed}"
        extra.append(f"seed={seed}")
    commands = {}
    for network in networks:
        config = f"{network}_isic2017_{protocol}"
        load_config(config, extra)  # validates now: a typo fails before anything trains
        run_dir = runs_dir / network
        base = [sys.executable, "-m", "hlfnet", "train"]
        if (run_dir / "checkpoints" / "last.ckpt").is_file():
            commands[network] = [*base, "--resume", str(run_dir), "--set", "train.progress_bar=false"]
        else:
            sets = [arg for item in extra for arg in ("--set", item)]
            commands[network] = [*base, "--config", config, "--run-dir", str(run_dir), *sets]
    return ReproducePlan(
        protocol, runs_dir, tuple(networks), commands, concurrent=protocol == "gpu", seed=seed
    )


def _finished(plan: ReproducePlan, network: str) -> bool:
    run_dir = plan.runs_dir / network
    config = run_dir / "config.yaml"
    if not config.is_file() or not (run_dir / "model.safetensors").is_file():
        return False
    from hlfnet.schema import read_yaml

    return _epochs_done(run_dir) >= int(read_yaml(config)["train"]["max_epochs"])


def _train_all(plan: ReproducePlan) -> dict[str, float]:
    """Run the training commands (sequentially or concurrently); returns wall seconds per network."""
    todo = [n for n in plan.networks if not _finished(plan, n)]
    for network in plan.networks:
        if network not in todo:
            logger.info("%s: already trained (%s)", network, plan.runs_dir / network)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    walls: dict[str, float] = {}
    running: dict[str, tuple[subprocess.Popen, float, object]] = {}

    def start(network: str) -> None:
        log = open_log(plan.runs_dir, f"{network}.log")
        logger.info("%s: training, log %s", network, log.name)
        running[network] = (
            subprocess.Popen(plan.commands[network], stdout=log, stderr=subprocess.STDOUT, env=env),
            time.perf_counter(),
            log,
        )

    def wait(network: str) -> None:
        process, started, log = running.pop(network)
        code = process.wait()
        log.close()
        walls[network] = time.perf_counter() - started
        if code != 0:
            raise UserError(
                f"{plan.runs_dir / network}.log: training {network} failed (exit status {code}); its last lines "
                f"say why. Fix that and rerun the same command: finished networks are kept, {network} resumes"
            )
        logger.info("%s: trained in %.1f min", network, walls[network] / 60)

    try:
        if plan.concurrent:
            for network in todo:
                start(network)
            for network in todo:
                wait(network)
        else:
            for network in todo:
                start(network)
                wait(network)
    finally:
        for process, _, log in running.values():
            process.terminate()
            log.close()
    return walls


def open_log(folder: Path, name: str) -> IO[str]:
    """Open ``folder/name`` for appending a training's output: never through a symbolic link.

    The caller has claimed ``name`` (:func:`hlfnet.atomic.owned_outputs`), so it is hlfnet's own log.
    """
    path = check_target(folder / name, folder)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    except OSError:
        if path.is_symlink():
            raise OutputRefused(f"{path}: is a symbolic link; hlfnet never writes through links") from None
        raise
    return os.fdopen(fd, "a")


def _check_same_split(runs: list[Path]) -> None:
    splits = {run: read_split(run / "split.json") for run in runs}
    differing = [str(run) for run in runs if splits[run] != splits[runs[0]]]
    if differing:
        raise ValueError(f"{differing} trained on another split than {runs[0]}; retrain them")


def reproduce(
    protocol: str,
    data_root: str | os.PathLike[str],
    networks: tuple[str, ...] = TABLE1_NETWORKS,
    runs_dir: str | os.PathLike[str] | None = None,
    overrides: list[str] | None = None,
    dry_run: bool = False,
    seeds: tuple[int, ...] | None = None,
) -> list[ReproducePlan] | Path:
    """Train (or resume), evaluate on the test split and tabulate every network of the protocol.

    Args:
        protocol: one of :data:`PROTOCOLS`.
        data_root: the ISIC 2017 folder.
        networks: which networks (default Table 1's five).
        runs_dir: parent of the run folders (default ``runs/isic2017_<protocol>``).
        overrides: ``key=value`` config overrides applied to every network.
        dry_run: only validate and return the plans.
        seeds: training seeds, one after another, each in ``runs_dir/seed<N>`` (``None``: the configs' seed,
            in ``runs_dir``).

    Returns:
        The plans, one per seed (dry run); else the written ``table1.md`` (no ``seeds``) or ``seeds.md``.

    Raises:
        ValueError: see :func:`plan_reproduction`; a seed given twice; runs trained on different splits.
    """
    if seeds is not None and (not seeds or len(set(seeds)) != len(seeds)):
        raise ValueError(f"seeds must be distinct training seeds, at least one, got {list(seeds)}")
    plans = [
        plan_reproduction(protocol, data_root, networks, runs_dir, overrides, seed)
        for seed in (seeds if seeds is not None else (None,))
    ]
    if dry_run:
        return plans
    trained: list[Path] = []
    tables = []
    for plan in plans:
        # The runs folder is reproduce's: its table and logs are replaced only when reproduce wrote them, and
        # two reproductions never write into it at once.
        names = [TABLE_NAME, *(f"{n}.log" for n in plan.networks)]
        legacy = _legacy_outputs(plan.runs_dir, plan.networks)
        with owned_outputs(plan.runs_dir, names, "reproduce", overwrite=True, legacy=legacy):
            walls = _train_all(plan)
            trained += [plan.runs_dir / n for n in plan.networks]
            _check_same_split(trained)
            tables.append(_tabulate(plan, walls))
    if seeds is None:
        return tables[0]
    from hlfnet.atomic import atomic_write_bytes

    out = plans[0].runs_dir.parent / "seeds.md"
    text = f"# Table 1 (ISIC 2017), protocol {protocol}, training seeds {', '.join(map(str, seeds))}\n\n"
    text += seed_spread_markdown({plan.seed: plan.runs_dir for plan in plans}, networks)
    text += "\nPer seed: " + ", ".join(str(t) for t in tables) + "\n"
    atomic_write_bytes(out, text.encode())
    return out


def _legacy_outputs(runs_dir: Path, networks: tuple[str, ...]) -> list[str]:
    """What a reproduce from before the marker wrote in ``runs_dir``: a table that starts as ours does, and
    the log of each network whose run folder hlfnet made (used only while the folder has no marker)."""
    names = [f"{n}.log" for n in networks if (runs_dir / n / "config.yaml").is_file()]
    table = runs_dir / TABLE_NAME
    try:
        if table.is_file() and not table.is_symlink():
            with table.open("rb") as handle:
                if handle.read(64).startswith(b"# Table 1 (ISIC 2017), protocol "):
                    names.append(TABLE_NAME)
    except OSError:
        pass
    return names


def seed_spread_markdown(seed_dirs: dict[int | None, Path], networks: tuple[str, ...]) -> str:
    """Mean and sample standard deviation over the training seeds of each network's test scores.

    Args:
        seed_dirs: each seed's folder of evaluated runs (``<seed_dir>/<network>``).
        networks: the rows, in order.
    """
    from hlfnet.evaluation.compare import TABLE_METRICS, compare_runs

    lines = [
        "| network | seeds | " + " | ".join(f"{m} mean ± sd" for m in TABLE_METRICS) + " |",
        "|---|---:|" + "---:|" * len(TABLE_METRICS),
    ]
    for network in networks:
        rows = compare_runs([folder / network for folder in seed_dirs.values()], split="test")
        cells = []
        for metric in TABLE_METRICS:
            values = [row.metrics[metric] for row in rows]
            sd = statistics.stdev(values) if len(values) > 1 else float("nan")
            cells.append(f"{statistics.fmean(values):.4f} ± {sd:.4f}")
        lines.append(f"| {rows[0].paper_name} ({network}) | {len(rows)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _tabulate(plan: ReproducePlan, walls: dict[str, float]) -> Path:
    """Evaluate the plan's runs on the test split (where stale) and write its ``table1.md``."""
    from hlfnet.evaluation.compare import compare_runs, summary_path, table_markdown
    from hlfnet.evaluation.evaluate import evaluate_run
    from hlfnet.evaluation.statistics import paired_comparison, paired_markdown

    runs = [plan.runs_dir / n for n in plan.networks]
    for run in runs:
        summary = summary_path(run, "test")
        weights = run / "model.safetensors"
        if not summary.is_file() or summary.stat().st_mtime < weights.stat().st_mtime:
            logger.info("%s: evaluating on the test split", run)
            evaluate_run(run, split="test")
    table = table_markdown(compare_runs(runs, split="test"), paper="isic2017")
    reference = next((r for r in runs if r.name == "unet"), runs[0])
    paired = [
        result
        for run in runs
        if run != reference
        for result in paired_comparison(reference, run, split="test")
    ]
    seed = "" if plan.seed is None else f", training seed {plan.seed}"
    text = f"# Table 1 (ISIC 2017), protocol {plan.protocol}{seed}\n\n{table}\n"
    if paired:
        text += f"\nPaired, each network minus {reference.name}:\n\n{paired_markdown(paired)}"
    if walls:
        text += "\nTraining wall time this invocation: " + ", ".join(
            f"{n} {s / 60:.1f} min" for n, s in walls.items()
        )
        text += "\n"
    out = plan.runs_dir / TABLE_NAME
    atomic_write_bytes(out, text.encode(), root=plan.runs_dir)
    return out
