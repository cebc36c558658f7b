"""Atomic outputs: written beside the target, renamed into place only when complete."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fpi.errors import InputError

#: Temporary outputs are `.fpi-<random>-<name>`: hidden, and with the target's suffixes.
TEMP_PREFIX = ".fpi-"


@contextlib.contextmanager
def atomic_output(path: Path | str) -> Iterator[Path]:
    """A temporary path beside `path` to write to; on success it is flushed to disk and
    renamed over `path`, on any failure it is removed and `path` is left as it was.

        with atomic_output("triage.parquet") as tmp:
            frame.write_parquet(tmp)
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=f"-{path.name}", dir=path.parent)
    except OSError as exc:
        raise InputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync(path: Path) -> None:
    if not path.exists():  # the writer wrote nothing: an empty file
        path.touch()
    with path.open("rb+") as fh:
        os.fsync(fh.fileno())


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a directory be opened
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
