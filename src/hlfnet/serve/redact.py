"""No server path in an API answer: absolute paths become their last component.

The model's manifest, its source and library error messages may name files on the server (the run folder,
the data root, the private upload folder). A client needs the file's name at most, never where it lies.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["public_text", "public_value"]

# an absolute POSIX path of two or more components ("/srv/runs/x/model.safetensors"), a home path ("~/runs/x") or
# a Windows path ("C:\\runs\\x"), not preceded by a word character, a dot, a colon or a slash ("image/png",
# "http://host/a" and "./a/b" are left alone)
_ABSOLUTE = re.compile(
    r"(?<![\w.:/\\])(?:~?/(?:[^\s/'\"(),;:]+/)+|[A-Za-z]:\\(?:[^\s\\'\"(),;:]+\\)+)([^\s/\\'\"(),;:]*)"
)
_WHOLE = re.compile(r"^(?:~|/|[A-Za-z]:\\)")


def public_text(text: str) -> str:
    """``text`` with every absolute path replaced by its last component (``/a/b/model.json`` → ``model.json``)."""
    text = _ABSOLUTE.sub(lambda m: m[1] or "…", text)
    if _WHOLE.match(text) and "/" not in text[1:] and "\\" not in text[1:]:
        return text.lstrip("~/\\") or "…"  # a one-component absolute path ("/data")
    return text


def public_value(value: Any) -> Any:
    """A JSON-like value with :func:`public_text` applied to every string (keys included)."""
    if isinstance(value, str):
        return public_text(value)
    if isinstance(value, dict):
        return {public_text(str(k)): public_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [public_value(v) for v in value]
    return value
