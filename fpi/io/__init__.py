"""Reading and writing `fpi-trace/1` dumps (JSONL, .jsonl.gz, .jsonl.zst, Parquet) and the
files fpi writes, one module per job:

- `files`: suffixes, inputs (files, directories, globs), refusing outputs that name inputs;
- `decode`: what a file holds, decompression, bounded blocks of whole lines;
- `jsonl`: a block of lines to checked records and rejects (`scan`: the compiled pre-check);
- `parquet`: Parquet row batches, checked the same way;
- `batches`: files to batches of whole dialogues in bounded memory (`iter_trace_batches`);
- `write`: dumps and rejects files; `atomic`: every output renamed into place on success;
- `triagefile`: triage output, written in input order and read back;
- `validation`: `validate_dumps`, the report behind `fpi validate`.
"""

from fpi.io.atomic import atomic_output
from fpi.io.batches import (
    ReadStats,
    RejectsSink,
    TraceBatch,
    iter_trace_batches,
    read_traces,
)
from fpi.io.decode import BLOCK_BYTES, MAX_LINE_BYTES
from fpi.io.files import (
    DUMP_SUFFIXES,
    check_output,
    check_outputs,
    dump_format,
    expand_inputs,
    resolve_inputs,
)
from fpi.io.jsonl import from_trace_records
from fpi.io.parquet import PARQUET_BATCH_ROWS
from fpi.io.triagefile import TriageWriter, read_triage_file, write_triage_frame
from fpi.io.validation import ValidationReport, validate_dumps
from fpi.io.write import (
    RejectsWriter,
    jsonl_stream,
    to_trace_records,
    trace_sink,
    write_rejects,
    write_traces,
)

__all__ = [
    "BLOCK_BYTES",
    "DUMP_SUFFIXES",
    "MAX_LINE_BYTES",
    "PARQUET_BATCH_ROWS",
    "ReadStats",
    "RejectsSink",
    "RejectsWriter",
    "TraceBatch",
    "TriageWriter",
    "ValidationReport",
    "atomic_output",
    "check_output",
    "check_outputs",
    "dump_format",
    "expand_inputs",
    "from_trace_records",
    "iter_trace_batches",
    "jsonl_stream",
    "read_traces",
    "read_triage_file",
    "resolve_inputs",
    "to_trace_records",
    "trace_sink",
    "validate_dumps",
    "write_rejects",
    "write_traces",
    "write_triage_frame",
]
