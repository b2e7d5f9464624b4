"""Errors a user can fix: the CLI shows them as one line (no traceback) and exits with status 2.

:class:`UserError` subclasses :class:`ValueError`, so ``except ValueError`` (and ``pytest.raises(ValueError)``)
keeps working; its subclasses say what kind of problem it is. Anything else that escapes a command is treated
as a bug in hlfnet (traceback and how to report it), except the operating-system errors listed in
:mod:`hlfnet.cli` (read-only or full disk, permissions, a file where a folder is expected).
"""

from __future__ import annotations

__all__ = ["UserError", "OutputRefused", "ResourceLimitError", "NonFiniteError", "Terminated"]


class UserError(ValueError):
    """Bad input, bad config or an environment the user controls: shown as one line, exit status 2."""


class OutputRefused(UserError):
    """Writing would follow a symlink, leave the output folder, replace an input or a file hlfnet did not write."""


class ResourceLimitError(UserError):
    """An input or a setting would need more memory than the configured limit (names the limit to raise)."""


class NonFiniteError(UserError):
    """A NaN or infinite value where a finite one is needed (hyper-parameter, loss, weights)."""


class Terminated(BaseException):  # noqa: N818 -- named like KeyboardInterrupt, its sibling
    """The process received SIGTERM: the CLI says so on one line and exits with status 143 (128 + 15).

    A :class:`BaseException`, like :class:`KeyboardInterrupt`, so that no ``except Exception`` swallows it.
    """
