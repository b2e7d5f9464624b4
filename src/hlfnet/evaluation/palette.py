"""One colour per class, shared by ``hlfnet report`` and the page of ``hlfnet serve``.

Binary tasks keep the report's convention (prediction red, ground truth green). Multi-class predictions are
filled, and ground truths outlined, in the colour of their class: red, blue, amber, teal, purple... (distinct for
the common colour-vision deficiencies up to the fourth class), repeating after ten classes.
"""

from __future__ import annotations

__all__ = ["CLASS_COLOURS", "BINARY_TRUTH_COLOUR", "class_colour", "class_rgb"]

CLASS_COLOURS: tuple[str, ...] = (
    "#e6281e",  # red (the binary prediction's colour)
    "#1e78e6",  # blue
    "#f0b400",  # amber
    "#14b48c",  # teal
    "#a03cdc",  # purple
    "#ff7f0e",  # orange
    "#8c564b",  # brown
    "#e377c2",  # pink
    "#7f7f7f",  # grey
    "#bcbd22",  # olive
)
#: The ground truth's outline colour for binary tasks (the report's "ground truth green").
BINARY_TRUTH_COLOUR = "#32cd32"


def class_colour(index: int) -> str:
    """The ``#rrggbb`` colour of foreground class ``index`` (≥ 1); background is transparent (``"none"``)."""
    if index < 1:
        return "none"
    return CLASS_COLOURS[(index - 1) % len(CLASS_COLOURS)]


def class_rgb(index: int) -> tuple[float, float, float]:
    """``class_colour(index)`` as RGB in [0, 1] (matplotlib)."""
    code = class_colour(index)
    if code == "none":
        return (0.0, 0.0, 0.0)
    return tuple(int(code[i : i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[return-value]
