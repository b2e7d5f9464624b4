"""``hlfnet reproduce``: train, evaluate and tabulate Table 1 (ISIC 2017) under a protocol sized for the machine.

Two protocols, each a set of shipped configs ``<network>_isic2017_<protocol>.yaml``:

* ``cpu`` -- the paper's recipe at 96×128 for 24 epochs (rate ×0.1 after 8 and 16), bf16 autocast and
  channels-last: one network in about an hour on two CPU cores. The networks train **one after another**, each
  with every core.
* ``gpu`` -- the paper's full recipe (192×256, 45 epochs, ×0.1 after 15 and 30) in bf16 with channels-last and
  loader workers; the networks train **concurrently on one GPU** (each its own process), sized to finish in
  minutes on a modern GPU.

Each network trains in ``<runs_dir>/<network>`` (resumed if interrupted, skipped if finished), is evaluated on
its held-out test split (``hlfnet evaluate``), and the table (with the paper's values and paired statistics
against Unet-28) is written to ``<runs_dir>/table1.md``. Every network uses the same seeded split (checked).
``dry_run`` validates every config and prints the commands without training: CI runs it for both protocols.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from hlfnet.atomic import atomic_write_bytes, check_target, owned_outputs
from hlfnet.data.splits import read_split
from hlfnet.engine.config import load_config
from hlfnet.errors import OutputRefused, UserError

__all__ = [
    "CONTROL_NETWORKS",
    "PROTOCOLS",
    "TABLE1_NETWORKS",
    "ReproducePlan",
    "plan_reproduction",
    "reproduce",
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
    """What :func:`reproduce` will run: one training command per network, and where everything goes."""

    protocol: str
    runs_dir: Path
    networks: tuple[str, ...]
    commands: dict[str, list[str]]
    concurrent: bool

    def describe(self) -> str:
        mode = "concurrently on one GPU" if self.concurrent else "one after another"
        lines = [
            f"protocol {self.protocol}: {len(self.networks)} network(s), {mode}, runs in {self.runs_dir}"
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
) -> ReproducePlan:
    """Validate the protocol's configs for ``networks`` and build their training commands.

    Raises:
        ValueError: an unknown protocol or network, or a config override that does not validate.
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
    return ReproducePlan(protocol, runs_dir, tuple(networks), commands, concurrent=protocol == "gpu")


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


def _check_same_split(plan: ReproducePlan) -> None:
    splits = {n: read_split(plan.runs_dir / n / "split.json") for n in plan.networks}
    first = plan.networks[0]
    differing = [n for n in plan.networks if splits[n] != splits[first]]
    if differing:
        raise ValueError(f"{plan.runs_dir}: {differing} trained on another split than {first}; retrain them")


def reproduce(
    protocol: str,
    data_root: str | os.PathLike[str],
    networks: tuple[str, ...] = TABLE1_NETWORKS,
    runs_dir: str | os.PathLike[str] | None = None,
    overrides: list[str] | None = None,
    dry_run: bool = False,
) -> ReproducePlan | Path:
    """Train (or resume), evaluate on the test split and tabulate every network of the protocol.

    Args:
        protocol: ``"cpu"`` or ``"gpu"``.
        data_root: the ISIC 2017 folder.
        networks: which of Table 1's networks (default all five).
        runs_dir: parent of the run folders (default ``runs/isic2017_<protocol>``).
        overrides: ``key=value`` config overrides applied to every network.
        dry_run: only validate and return the :class:`ReproducePlan`.

    Returns:
        The plan (dry run), else the written ``table1.md``.
    """
    plan = plan_reproduction(protocol, data_root, networks, runs_dir, overrides)
    if dry_run:
        return plan
    # The runs folder is reproduce's: its table and logs are replaced only when reproduce wrote them, and two
    # reproductions never write into it at once.
    names = [TABLE_NAME, *(f"{n}.log" for n in plan.networks)]
    legacy = _legacy_outputs(plan.runs_dir, plan.networks)
    with owned_outputs(plan.runs_dir, names, "reproduce", overwrite=True, legacy=legacy):
        return _reproduce(plan, protocol)


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


def _reproduce(plan: ReproducePlan, protocol: str) -> Path:
    walls = _train_all(plan)
    _check_same_split(plan)

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
    text = f"# Table 1 (ISIC 2017), protocol {protocol}\n\n{table}\n"
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
