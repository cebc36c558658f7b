"""Domain errors. The CLI maps each to a message and an exit code; nothing else prints."""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fpi.schema import Problem

# Exit codes of the `fpi` command (0 is success).
EXIT_INVALID_RECORDS = 1
EXIT_UNUSABLE = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


class FpiError(Exception):
    """Base class: a failure the user can act on, shown without a traceback."""

    exit_code = EXIT_UNUSABLE


class InputError(FpiError):
    """A file or directory that cannot be read as traces (missing, binary, truncated...)."""


class InvalidRecordsError(FpiError):
    """Input records that break the trace contract, with every problem found."""

    exit_code = EXIT_INVALID_RECORDS

    def __init__(self, problems: Sequence[Problem], *, hint: str = "") -> None:
        self.problems = tuple(problems)
        first = "\n".join(p.message for p in self.problems[:10])
        more = len(self.problems) - 10
        tail = f"\n... and {more} more" if more > 0 else ""
        super().__init__(f"{len(self.problems)} invalid record problem(s):\n{first}{tail}{hint}")


class ModelError(FpiError):
    """A model bundle that is missing, corrupt or incompatible with this code."""


class ConfigError(FpiError):
    """A configuration file (e.g. owners.toml) with a mistake, named by file and line."""


def display_path(path: str | PathLike[str]) -> str:
    """`path` as text any UTF-8 output accepts: undecodable bytes of a file name (which
    Python holds as lone surrogates) become `\\udcXX` escapes."""
    return str(path).encode("utf-8", "backslashreplace").decode("utf-8")
