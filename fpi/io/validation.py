"""`validate_dumps`, the report behind `fpi validate`: counts, kinds and first examples."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fpi.io.batches import ReadStats, iter_trace_batches
from fpi.io.decode import MAX_LINE_BYTES
from fpi.io.files import check_outputs, resolve_inputs
from fpi.io.write import RejectsWriter
from fpi.schema import Problem, Reject

_INDEX = re.compile(r"\[\d+\]")


def problem_kind(problem: Problem) -> tuple[str, str]:
    """(field with list positions dropped, expected): the key problems are counted under."""
    return _INDEX.sub("[]", problem.field), problem.expected


@dataclass
class ValidationReport:
    """What `validate_dumps` found; `read == accepted + rejected`."""

    files: tuple[str, ...]
    read: int = 0
    accepted: int = 0
    rejected: int = 0
    blank_lines: int = 0
    empty_files: list[str] = field(default_factory=list)
    problem_counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    examples: list[Reject] = field(default_factory=list)  # the first rejects found
    rejects_path: Path | None = None

    @property
    def clean(self) -> bool:
        return self.rejected == 0


def validate_dumps(
    paths: Sequence[str | Path],
    *,
    rejects_path: Path | str | None = None,
    max_examples: int = 10,
    batch_turns: int = 200_000,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> ValidationReport:
    """Check every record of the dumps, streaming with bounded memory.

    Counts and the first `max_examples` rejects are kept; with `rejects_path` every reject is
    written there as JSONL (`Reject.to_json()`), atomically. Unreadable input, or a rejects
    path that is an input, raises `InputError`.
    """
    files = resolve_inputs(paths)
    check_outputs(files, rejects=rejects_path)
    stats = ReadStats()
    report = ValidationReport(files=tuple(str(f) for f in files))
    examples: list[Reject] = []

    with RejectsWriter(rejects_path) as writer:

        def sink(reject: Reject) -> None:
            report.problem_counts.update(problem_kind(p) for p in reject.problems)
            if len(examples) < max_examples:
                examples.append(reject)
            writer(reject)

        for batch in iter_trace_batches(
            files,
            batch_turns=batch_turns,
            rejects_sink=sink,
            stats=stats,
            max_line_bytes=max_line_bytes,
        ):
            report.read += batch.read
            report.accepted += batch.traces.height
            report.rejected += batch.rejected
    order = {name: i for i, name in enumerate(report.files)}
    report.examples = sorted(examples, key=lambda r: (order.get(r.file, 0), r.line or 0))
    report.blank_lines = stats.blank_lines
    report.empty_files = list(stats.empty_files)
    report.rejects_path = Path(rejects_path) if rejects_path is not None else None
    return report
