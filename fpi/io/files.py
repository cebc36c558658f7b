"""Finding the files: dump suffixes, inputs (files, directories, globs), and output refusals.

The one copy of the suffix lists and of path resolution; every reader and writer uses it.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from fpi.errors import InputError
from fpi.io.atomic import TEMP_PREFIX

DUMP_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".parquet")
#: Compression suffixes fpi reads (`fpi.io.decode` decompresses them).
COMPRESSION_SUFFIXES = (".gz", ".zst")
#: Suffixes of triage output files (`fpi triage --out`), readable back by `fpi report`.
TRIAGE_SUFFIXES = (".parquet", ".jsonl", ".csv")


def suffix_list(suffixes: Sequence[str] = DUMP_SUFFIXES) -> str:
    return ", ".join(suffixes)


def dump_format(path: Path | str) -> str | None:
    """The dump suffix of a file name (one of `DUMP_SUFFIXES`), or None."""
    name = Path(path).name.lower()
    return next((s for s in sorted(DUMP_SUFFIXES, key=len, reverse=True) if name.endswith(s)), None)


def _files_under(directory: Path, wanted: Callable[[Path], object]) -> list[Path]:
    return sorted(
        p
        for p in directory.rglob("*")
        if p.is_file() and wanted(p) and not p.name.startswith(TEMP_PREFIX)
    )


def expand_inputs(
    paths: Sequence[str | Path],
    *,
    any_file: bool = False,
    wanted: Callable[[Path], object] = dump_format,
    what: str = "trace dumps",
) -> list[Path]:
    """Files to read: files as given, directories searched recursively for `wanted` files
    (default: dumps), globs expanded (sorted), each file once. A file named directly must be
    `wanted` unless `any_file` (the caller decides what it is, e.g. triage output)."""
    expected = suffix_list() if wanted is dump_format else what
    found: dict[Path, Path] = {}  # resolved path -> path as given
    for given in paths:
        path = Path(given)
        if path.is_dir():
            files = _files_under(path, wanted)
            if not files:
                raise InputError(f"{path}: no {what} in this directory ({expected})")
        elif path.exists():
            if not any_file and not wanted(path):
                one = "a trace dump" if wanted is dump_format else f"one of the {what}"
                raise InputError(f"{path}: not {one} (expected {expected})")
            files = [path]
        elif glob.has_magic(str(given)):
            matches = sorted(Path(p) for p in glob.glob(str(given), recursive=True))
            files = [f for m in matches for f in (_files_under(m, wanted) if m.is_dir() else [m])]
            files = [f for f in files if f.is_file() and (any_file or wanted(f))]
            if not files:
                raise InputError(f"{given}: no {what} match this pattern")
        else:
            raise InputError(f"{path}: no such file or directory")
        for file in files:
            found.setdefault(file.resolve(), file)
    if not found:
        raise InputError(f"no {what} given")
    return list(found.values())


def resolve_inputs(paths: Sequence[str | Path]) -> list[Path]:
    """Dumps to read: files as given, directories searched recursively, globs expanded."""
    return expand_inputs(paths)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def check_output(
    path: Path | str | None,
    inputs: Iterable[Path | str] = (),
    *,
    option: str = "--out",
    directory: bool = False,
) -> None:
    """Refuse, before anything is read, an output that would destroy an input or cannot be
    written: the same file as an input (symlinks and hard links followed), an existing
    directory where a file is meant, or an existing file where a directory is meant."""
    if path is None:
        return
    path = Path(path)
    if directory:
        if path.exists() and not path.is_dir():
            raise InputError(f"{path}: {option} names a file, but a directory is meant")
        for given in inputs:
            if Path(given).resolve() == path.resolve():
                raise InputError(f"{path}: {option} is the input directory")
        return
    if path.is_dir():
        raise InputError(f"{path}: {option} names a directory, but a file is meant")
    for given in inputs:
        if _same_file(path, Path(given)):
            raise InputError(f"{path}: {option} is an input file; refusing to overwrite it")


def check_outputs(inputs: Sequence[Path], **outputs: Path | str | None) -> None:
    """`check_output` for several file outputs (keyword = option name), also refusing two
    outputs that are the same file (`out=..., rejects=...`)."""
    named = [(f"--{name.replace('_', '-')}", Path(p)) for name, p in outputs.items() if p]
    for option, path in named:
        check_output(path, inputs, option=option)
    for i, (option, path) in enumerate(named):
        for other, second in named[i + 1 :]:
            if path.resolve() == second.resolve():
                raise InputError(f"{path}: {option} and {other} name the same file")
