"""fpi on Apache Spark: the single-process triage, run where the data lives.

Turns enter as raw `fpi-trace/1` lines (`read_dumps`, or any DataFrame with a `value` column of
JSON lines) or as a DataFrame of trace columns (a table in the lake). They are repartitioned by
`dialogue_id` and sorted, so each task sees whole dialogues in input order; each task then runs
the single-process path on its lines: `fpi.io` parses and validates them (the same rules, the
same reasons), `fpi.triage.triage_traces` extracts features, predicts and explains. The model
travels once per executor as the bundle's files (LightGBM text and JSON), never as pickles.

Needs the `spark` extra (PySpark) and Java 17; the core package never imports this module.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from fpi.errors import InputError
from fpi.schema import REJECT_SCHEMA, TRIAGE_SCHEMA

if TYPE_CHECKING:
    from pyspark import Broadcast
    from pyspark.sql import DataFrame, SparkSession

    from fpi.model import ModelBundle
    from fpi.triage import TriageFilter

#: Raw lines as the triage job reads them: the bytes of a line, where it came from.
LINE_COLUMNS = ("value", "source_file", "source_line", "file_order", "_reject")
#: Turns per block a task triages at once (whole dialogues; bounds executor memory).
BLOCK_TURNS = 50_000
_KEY = "_dialogue"
_REJECT = "_reject"
_KEPT = "_kept"
#: The ISO week of a triaged turn, the partition column of `fpi triage --engine spark`.
WEEK = "week"


def _arrow_schema(schema: pl.Schema) -> pa.Schema:
    """A polars schema as the plain Arrow types Spark reads (string, not large/view strings)."""
    table = schema.to_frame().to_arrow(compat_level=pl.CompatLevel.oldest())
    return pa.schema([pa.field(f.name, _plain(f.type)) for f in table.schema])


def _plain(dtype: pa.DataType) -> pa.DataType:
    if pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype):
        return pa.string()
    if pa.types.is_large_binary(dtype):
        return pa.binary()
    if pa.types.is_large_list(dtype) or pa.types.is_list(dtype):
        return pa.list_(pa.field(dtype.value_field.name, _plain(dtype.value_type)))
    if pa.types.is_struct(dtype):
        return pa.struct([pa.field(f.name, _plain(f.type)) for f in dtype])
    return dtype


LINE_ARROW = pa.schema(
    [
        pa.field("value", pa.binary()),
        pa.field("source_file", pa.string()),
        pa.field("source_line", pa.int64()),
        pa.field("file_order", pa.int32()),
        pa.field("_reject", pa.string()),  # a line refused while reading (over the length cap)
    ]
)
TRIAGE_ARROW = _arrow_schema(TRIAGE_SCHEMA)
OUT_ARROW = pa.schema([*TRIAGE_ARROW, pa.field(_KEPT, pa.bool_()), pa.field(_REJECT, pa.string())])


def _spark_schema(schema: pa.Schema):
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema)


# ---- the model, shipped as files -------------------------------------------------------------


def bundle_files(bundle: ModelBundle | Path | str | None = None) -> dict[str, bytes]:
    """The bundle's files by name (LightGBM text, JSON metadata...), as they are on disk."""
    from fpi.model import ModelBundle, default_model_dir, load_bundle

    if isinstance(bundle, ModelBundle):
        with tempfile.TemporaryDirectory(prefix="fpi-bundle-") as scratch:
            bundle.save(scratch)
            return _read_files(Path(scratch))
    directory = Path(bundle) if bundle is not None else default_model_dir()
    load_bundle(directory)  # refuse a bad bundle on the driver, before any executor sees it
    return _read_files(directory)


def _read_files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


_EXECUTOR_BUNDLES: dict[str, ModelBundle] = {}


def _executor_bundle(files: dict[str, bytes]) -> ModelBundle:
    """The bundle for these files, loaded once per Python worker (with all load-time checks)."""
    from fpi.model import load_bundle

    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name])
    key = digest.hexdigest()
    if key not in _EXECUTOR_BUNDLES:
        with tempfile.TemporaryDirectory(prefix="fpi-bundle-") as scratch:
            for name, data in files.items():
                (Path(scratch) / name).write_bytes(data)
            _EXECUTOR_BUNDLES[key] = load_bundle(scratch)
    return _EXECUTOR_BUNDLES[key]


# ---- reading dumps as lines -------------------------------------------------------------------


def _file_lines(path: Path, max_line_bytes: int) -> Iterator[pa.Table]:
    """The lines of one dump as `LINE_ARROW` tables, read exactly as `fpi.io` reads them.

    JSONL lines keep their bytes (no decoding: the parser judges them); a line over
    `max_line_bytes` is never held whole and comes as its reject; a Parquet row becomes the
    JSON line `fpi.io` checks for it, numbered by its row. Blank lines are not records.
    """
    from fpi.io.decode import line_blocks
    from fpi.io.files import dump_format
    from fpi.io.jsonl import long_line_reject
    from fpi.io.parquet import parquet_batches, parquet_rows_ndjson

    fmt, file = dump_format(path), str(path)
    if fmt == ".parquet":
        offset = 0
        for batch in parquet_batches(path):
            lines = parquet_rows_ndjson(batch, path).split(b"\n")[: batch.height]
            yield _lines_table(lines, range(offset, offset + batch.height), file)
            offset += batch.height
        return
    for block in line_blocks(path, fmt, max_line_bytes):
        if block.long_line is not None:
            if not block.long_line.blank:
                reject = long_line_reject(block, file, max_line_bytes)
                yield _lines_table([b""], [block.first_line], file, [_reject_json(reject)])
            continue
        lines, numbers = [], []
        for number, line in enumerate(block.data.split(b"\n"), start=block.first_line):
            if line.strip(b" \t\r"):
                lines.append(line)
                numbers.append(number)
        yield _lines_table(lines, numbers, file)


def _lines_table(
    lines: Sequence[bytes], numbers: Sequence[int], file: str, rejects: Sequence | None = None
) -> pa.Table:
    """Lines of one file as a `LINE_ARROW` table (`file_order` set by the caller)."""
    return pa.table(
        {
            "value": pa.array(lines, pa.binary()),
            "source_file": pa.array([file] * len(lines), pa.string()),
            "source_line": pa.array(list(numbers), pa.int64()),
            "file_order": pa.array([0] * len(lines), pa.int32()),
            _REJECT: pa.array(rejects if rejects is not None else [None] * len(lines), pa.string()),
        },
        schema=LINE_ARROW,
    )


def _with_order(table: pa.Table, order: int) -> pa.Table:
    return table.set_column(3, "file_order", pa.array([order] * table.num_rows, pa.int32()))


def _reject_json(reject) -> str:
    return json.dumps(reject.to_json(), ensure_ascii=False)


def read_dumps(
    spark: SparkSession, paths: Sequence[str | Path], *, max_line_bytes: int | None = None
) -> DataFrame:
    """Dumps (files, directories, globs; .jsonl[.gz|.zst], .parquet) as a DataFrame of lines.

    Files are found on the driver with `fpi.io.resolve_inputs` and read by the executors, one
    task per file, with `fpi.io`'s own decoding: the paths must be visible to every executor
    (a shared file system, or local mode). For a lake table, pass its DataFrame to `triage`.
    """
    from fpi.io import MAX_LINE_BYTES, resolve_inputs

    max_line_bytes = max_line_bytes or MAX_LINE_BYTES
    files = [str(p) for p in resolve_inputs(paths)]

    def read(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for order in batch.column("id").to_pylist():
                for table in _file_lines(Path(files[order]), max_line_bytes):
                    yield from _with_order(table, order).to_batches()

    ids = spark.range(0, len(files), numPartitions=max(len(files), 1))
    return ids.mapInArrow(read, _spark_schema(LINE_ARROW))


def _as_lines(df: DataFrame) -> DataFrame:
    """Any input as `LINE_COLUMNS`: raw lines as they are, trace columns as their JSON lines."""
    from pyspark.sql import functions as F

    if "value" in df.columns:
        defaults = {
            "source_file": F.input_file_name(),
            "source_line": F.monotonically_increasing_id(),
            "file_order": F.lit(0),
            _REJECT: F.lit(None),
        }
        columns = {
            name: F.col(name) if name in df.columns else default
            for name, default in defaults.items()
        }
        return df.select(
            F.col("value").cast("binary").alias("value"),
            columns["source_file"].cast("string").alias("source_file"),
            columns["source_line"].cast("long").alias("source_line"),
            columns["file_order"].cast("int").alias("file_order"),
            columns[_REJECT].cast("string").alias(_REJECT),
        )

    def encode(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from fpi.io.parquet import parquet_rows_ndjson

        for batch in batches:
            if not batch.num_rows:
                continue
            rows = pl.from_arrow(pa.Table.from_batches([batch]))
            body = rows.drop("_source", "_row")
            lines = parquet_rows_ndjson(body, Path("<table>")).split(b"\n")[: body.height]
            table = _lines_table(lines, rows.get_column("_row").to_list(), "")
            yield from table.set_column(
                1, "source_file", pa.array(rows.get_column("_source").to_list(), pa.string())
            ).to_batches()

    tagged = df.withColumn("_source", F.input_file_name()).withColumn(
        "_row", F.monotonically_increasing_id()
    )
    return tagged.mapInArrow(encode, _spark_schema(LINE_ARROW))


# ---- the triage task --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    """What every task needs besides its lines (small, plain values)."""

    top_k: int
    abstain_below: float | None
    keep: TriageFilter | None
    block_turns: int
    max_line_bytes: int


def _triage_block(block: pa.Table, bundle: ModelBundle, job: _Job) -> pa.RecordBatch:
    """Parse, validate and triage one block of whole dialogues, exactly as `fpi triage` does."""
    from fpi.io import read_traces
    from fpi.schema import TRACE_SCHEMA, Problem, Reject
    from fpi.triage import triage_traces

    frame = pl.from_arrow(block).sort("file_order", "source_line")
    refused_on_reading = frame.get_column(_REJECT).drop_nulls().to_list()
    frame = frame.filter(pl.col(_REJECT).is_null())
    found: list[Reject] = []
    with tempfile.TemporaryDirectory(prefix="fpi-block-") as scratch:
        names: dict[str, tuple[str, list[int]]] = {}
        paths = []
        for (order,), part in frame.partition_by("file_order", as_dict=True).items():
            path = Path(scratch) / f"{order:06d}.jsonl"
            path.write_bytes(b"\n".join(part.get_column("value").to_list()) + b"\n")
            names[str(path)] = (part.get_column("source_file")[0], part["source_line"].to_list())
            paths.append(path)
        traces = (
            read_traces(sorted(paths), rejects=found, max_line_bytes=job.max_line_bytes)
            if paths
            else TRACE_SCHEMA.to_frame()
        )

    def original(match: re.Match) -> str:  # a block line named in a message, e.g. a repeat's
        file, numbers = names[match.group(1)]
        return f"{file}:{numbers[int(match.group(2)) - 1]}"

    mentioned = re.compile("(" + "|".join(re.escape(n) for n in names) + r"):(\d+)")
    rejects = refused_on_reading
    for reject in found:
        file, numbers = names[reject.file]
        line = numbers[reject.line - 1] if reject.line is not None else None
        problems = tuple(
            Problem(file, line, p.field, p.expected, mentioned.sub(original, p.found))
            for p in reject.problems
        )
        rejects.append(_reject_json(Reject(file, line, reject.record, problems)))
    triaged = triage_traces(traces, bundle, top_k=job.top_k, abstain_below=job.abstain_below)
    kept = (
        job.keep.apply(triaged.with_row_index("_position")).get_column("_position")
        if job.keep is not None
        else None
    )
    marks = pl.Series(_KEPT, [True] * triaged.height, pl.Boolean)
    if kept is not None:
        marks = pl.Series(_KEPT, [False] * triaged.height, pl.Boolean).scatter(kept, True)
    turns = triaged.with_columns(marks, pl.lit(None, pl.String).alias(_REJECT))
    refused = pl.DataFrame({_REJECT: rejects}, schema={_REJECT: pl.String})
    out = pl.concat([turns, refused], how="diagonal_relaxed") if rejects else turns
    table = out.select(OUT_ARROW.names).to_arrow(compat_level=pl.CompatLevel.oldest())
    return table.cast(OUT_ARROW).combine_chunks().to_batches()[0] if table.num_rows else None


def _triage_partition(files: Broadcast, job: _Job):
    """The mapInArrow function: batches sorted by dialogue in, triage and rejects out."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        bundle = _executor_bundle(files.value)
        pending: list[pa.RecordBatch] = []
        size = 0
        for batch in batches:
            pending.append(batch)
            size += batch.num_rows
            if size < job.block_turns:
                continue
            table = pa.Table.from_batches(pending)
            cut = _last_dialogue_start(table.column(_KEY))
            if cut == 0:
                continue  # one dialogue so far: keep gathering it
            out = _triage_block(table.slice(0, cut), bundle, job)
            if out is not None:
                yield out
            rest = table.slice(cut).combine_chunks()
            pending, size = rest.to_batches(), rest.num_rows
        if size:
            out = _triage_block(pa.Table.from_batches(pending), bundle, job)
            if out is not None:
                yield out

    return run


def _last_dialogue_start(keys: pa.ChunkedArray) -> int:
    """Where the last dialogue of a sorted key column begins (0 if it is the only one)."""
    values = keys.to_pylist()
    last = values[-1]
    i = len(values)
    while i > 0 and values[i - 1] == last:
        i -= 1
    return i


def _triage_all(
    df: DataFrame,
    bundle: ModelBundle | Path | str | None,
    *,
    top_k: int,
    abstain_below: float | None,
    keep: TriageFilter | None = None,
    block_turns: int = BLOCK_TURNS,
    partitions: int | None = None,
    max_line_bytes: int | None = None,
) -> DataFrame:
    """Triage rows and rejects of `df` in one DataFrame (`OUT_ARROW` columns)."""
    from pyspark.sql import functions as F

    lines = _as_lines(df)
    spark = lines.sparkSession
    files = spark.sparkContext.broadcast(bundle_files(bundle))  # sent once per executor
    key = F.get_json_object(F.col("value").cast("string"), "$.dialogue_id")
    count = partitions or spark.sparkContext.defaultParallelism * 2
    grouped = (
        lines.withColumn(_KEY, F.coalesce(key, F.lit("")))
        .repartition(count, _KEY)
        .sortWithinPartitions(_KEY, "file_order", "source_line")
    )
    from fpi.io import MAX_LINE_BYTES

    job = _Job(top_k, abstain_below, keep, block_turns, max_line_bytes or MAX_LINE_BYTES)
    return grouped.select(*LINE_COLUMNS, _KEY).mapInArrow(
        _triage_partition(files, job), _spark_schema(OUT_ARROW)
    )


@dataclass
class SparkTriage:
    """One cached triage of a DataFrame: its turns, its rejects, and the counts of both."""

    rows: DataFrame  # OUT_ARROW columns: a turn, or a reject (`_reject` set)

    @property
    def turns(self) -> DataFrame:
        """`TRIAGE_SCHEMA` rows plus `_kept` (True where the filters keep the turn)."""
        from pyspark.sql import functions as F

        return self.rows.filter(F.col(_REJECT).isNull()).drop(_REJECT)

    @property
    def rejects(self) -> DataFrame:
        """`REJECT_SCHEMA` rows: file, line, reasons, the verbatim record."""
        from pyspark.sql import functions as F

        reject = F.from_json(F.col(_REJECT), _spark_schema(REJECT_ARROW)).alias("r")
        return self.rows.filter(F.col(_REJECT).isNotNull()).select(reject).select("r.*")

    def counts(self) -> dict[tuple[bool, str | None, bool | None], int]:
        """Rows by (rejected, failure point, kept), from one pass over the cached rows."""
        from pyspark.sql import functions as F

        grouped = self.rows.groupBy(
            F.col(_REJECT).isNotNull().alias("rejected"), "failure_point", _KEPT
        ).count()
        return {(r[0], r[1], r[2]): r[3] for r in grouped.collect()}


def triage_with_rejects(
    df: DataFrame,
    bundle: ModelBundle | Path | str | None = None,
    *,
    top_k: int = 5,
    abstain_below: float | None = None,
    keep: TriageFilter | None = None,
    partitions: int | None = None,
    max_line_bytes: int | None = None,
) -> SparkTriage:
    """Triage `df` (raw lines or trace columns); invalid turns go to `rejects` with reasons.

    Turns and rejects come from one cached computation, so `read = triaged + rejected`.
    `max_line_bytes` is the line cap (default `fpi.io.MAX_LINE_BYTES`; give `read_dumps` the
    same one).
    """
    from pyspark import StorageLevel

    _check_options(top_k, abstain_below)
    rows = _triage_all(
        df,
        bundle,
        top_k=top_k,
        abstain_below=abstain_below,
        keep=keep,
        partitions=partitions,
        max_line_bytes=max_line_bytes,
    )
    return SparkTriage(rows.persist(StorageLevel.DISK_ONLY))  # bounded heap, any size


def triage(
    df: DataFrame,
    bundle: ModelBundle | Path | str | None = None,
    *,
    top_k: int = 5,
    abstain_below: float | None = None,
) -> DataFrame:
    """`fpi-trace/1` turns in (raw lines or trace columns), `TRIAGE_SCHEMA` rows out.

    The same features, prediction and exact SHAP reasons as `fpi triage` on one machine;
    invalid turns are left out (`triage_with_rejects` returns them with their reasons).
    """
    run = triage_with_rejects(df, bundle, top_k=top_k, abstain_below=abstain_below)
    return run.turns.drop(_KEPT)


def _check_options(top_k: int, abstain_below: float | None) -> None:
    if top_k < 1:
        raise InputError(f"top_k must be at least 1, not {top_k}")
    if abstain_below is not None and not 0 <= abstain_below <= 1:
        raise InputError(f"abstain_below must be within [0, 1], not {abstain_below}")


REJECT_ARROW = _arrow_schema(REJECT_SCHEMA)


# ---- the CLI's job ----------------------------------------------------------------------------


@dataclass
class SparkRun:
    """What `run_triage` did: the nothing-lost counts and the kept class mix."""

    read: int
    triaged: int
    rejected: int
    kept: int
    per_failure_point: dict[str, int]


def session(master: str | None = None, *, app_name: str = "fpi") -> SparkSession:
    """A SparkSession in UTC (ISO weeks and timestamps as on one machine).

    Without `master`, the session is the one `spark-submit` (or the environment) configures.
    """
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        # plain files on local disks: no .crc or _SUCCESS files beside the Parquet
        .config("spark.hadoop.fs.file.impl", "org.apache.hadoop.fs.RawLocalFileSystem")
        .config("spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")
    )
    if master is not None:
        builder = builder.master(master)
    if master is not None and master.startswith("local"):
        # local workers run this interpreter, so they import the same fpi and packages; the
        # driver and its web UI listen on loopback only (set SPARK_LOCAL_IP to open them)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        # the driver is the only JVM in local mode; Spark's 1 GiB default is too small
        builder = builder.config("spark.driver.memory", os.environ.get("FPI_SPARK_MEMORY", "4g"))
    return builder.getOrCreate()


def week_column():
    """The ISO week (`2026-W48`) of `timestamp`, as `fpi report --week` names weeks."""
    from pyspark.sql import functions as F

    monday = F.date_trunc("week", F.col("timestamp"))
    iso_year = F.year(F.date_add(F.to_date(monday), 3))
    return F.format_string("%d-W%02d", iso_year, F.weekofyear(F.col("timestamp")))


def run_triage(
    spark: SparkSession,
    paths: Sequence[str | Path],
    out: Path | str,
    *,
    bundle: ModelBundle | Path | str | None = None,
    top_k: int = 5,
    abstain_below: float | None = None,
    keep: TriageFilter | None = None,
    rejects_sink=None,
    partitions: int | None = None,
    max_line_bytes: int | None = None,
) -> SparkRun:
    """Triage dumps on Spark into `out` (Parquet partitioned by ISO week, `fpi report` reads it).

    Without `rejects_sink` an invalid record fails the run before anything is written, as
    `fpi triage` does; with one (e.g. a `RejectsWriter`), each reject goes there.
    """
    from pyspark.sql import functions as F

    from fpi.errors import InvalidRecordsError
    from fpi.schema import Problem, Reject

    run = triage_with_rejects(
        read_dumps(spark, paths, max_line_bytes=max_line_bytes),
        bundle,
        top_k=top_k,
        abstain_below=abstain_below,
        keep=keep,
        partitions=partitions,
        max_line_bytes=max_line_bytes,
    )
    counts = run.counts()
    rejected = sum(n for (is_reject, _, _), n in counts.items() if is_reject)
    if rejected:
        rows = run.rejects.orderBy("file", "line").toLocalIterator()
        found = (
            Reject(
                r["file"],
                r["line"],
                r["record"],
                tuple(
                    Problem(r["file"], r["line"], p["field"], p["expected"], p["found"])
                    for p in r["reasons"]
                ),
            )
            for r in rows
        )
        if rejects_sink is None:
            raise InvalidRecordsError([p for r in _first(found, 20) for p in r.problems])
        for reject in found:
            rejects_sink(reject)
    per_failure_point: dict[str, int] = {}
    for (is_reject, name, kept), n in counts.items():
        if not is_reject and kept:
            per_failure_point[name] = per_failure_point.get(name, 0) + n
    with _replaced_directory(Path(out)) as staging:
        (
            run.turns.filter(F.col(_KEPT))
            .drop(_KEPT)
            .withColumn(WEEK, week_column())
            .write.partitionBy(WEEK)
            .parquet(str(staging))
        )
    triaged = sum(n for (is_reject, _, _), n in counts.items() if not is_reject)
    return SparkRun(
        read=triaged + rejected,
        triaged=triaged,
        rejected=rejected,
        kept=sum(per_failure_point.values()),
        per_failure_point=per_failure_point,
    )


@contextmanager
def _replaced_directory(out: Path) -> Iterator[Path]:
    """A staging directory beside `out` that replaces it only when the block succeeds.

    A failed job leaves an earlier `out` as it was; on success the old directory is moved
    aside, the new one renamed into place, and the old one removed.
    """
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: --engine spark writes a directory, and this is a file")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    staging.rmdir()  # Spark creates it
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
        out.rename(old / out.name)
    staging.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _first(items: Iterator[Any], n: int) -> list[Any]:
    out = []
    for item in items:
        out.append(item)
        if len(out) >= n:
            break
    return out
