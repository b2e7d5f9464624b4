"""The one progress bar of hlfnet's commands: tqdm on stderr.

``hlfnet predict`` and ``hlfnet evaluate`` update a :func:`progress_bar` as cases finish. ``hlfnet data check``,
``prepare`` and ``download`` hand a :class:`ProgressCallback` — called as ``progress(done, total)`` — to the data
functions, which drives the same bar. Training shows Lightning's own bar (``train.progress_bar``).
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["ProgressCallback", "progress_bar"]


def progress_bar(
    total: int | None,
    unit: str = "it",
    *,
    desc: str | None = None,
    enabled: bool | None = True,
    leave: bool = False,
    unit_scale: bool = False,
) -> Any:
    """A tqdm progress bar on stderr.

    Args:
        total: the number of steps (``None``: unknown).
        unit: what a step is (``"img"``, ``"volume"``, ``"B"``, ...).
        desc: a label before the bar.
        enabled: ``False`` gives a silent bar (same methods); ``None`` shows it only when stderr is a terminal.
        leave: keep the finished bar on screen (otherwise it is erased).
        unit_scale: show counts with SI prefixes (k, M, G; powers of 1024 for bytes).

    Returns:
        The ``tqdm`` bar: call ``update(n)`` and ``close()``.
    """
    from tqdm import tqdm

    return tqdm(
        total=total,
        unit=unit,
        desc=desc,
        disable=None if enabled is None else not enabled,
        leave=leave,
        unit_scale=unit_scale,
        unit_divisor=1024 if unit == "B" else 1000,
        dynamic_ncols=True,
        file=sys.stderr,
    )


class ProgressCallback:
    """``progress(done, total)`` for functions that report progress so, drawn as one :func:`progress_bar`.

    The bar appears at the first call (nothing is shown for work that never reports), is left on screen, and
    closes when ``done`` reaches ``total`` or at :meth:`close`. By default it is shown only on a terminal.

    Args:
        desc: the label before the bar.
        unit: what a step is.
        enabled: as in :func:`progress_bar` (``None``: only when stderr is a terminal).
        unit_scale: as in :func:`progress_bar`.
    """

    def __init__(
        self, desc: str, unit: str = "it", enabled: bool | None = None, unit_scale: bool = False
    ) -> None:
        self.desc = desc
        self.unit = unit
        self.enabled = enabled
        self.unit_scale = unit_scale
        self.bar: Any = None

    def __call__(self, done: int, total: int | None) -> None:
        if self.bar is None:
            self.bar = progress_bar(
                total, self.unit, desc=self.desc, enabled=self.enabled, leave=True, unit_scale=self.unit_scale
            )
        self.bar.update(done - self.bar.n)
        if total and done >= total:
            self.close()

    def close(self) -> None:
        """Close the bar (if it was ever shown)."""
        if self.bar is not None:
            self.bar.close()
