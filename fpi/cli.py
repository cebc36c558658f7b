"""The `fpi` command line: options, printing and exit codes. Logic lives in the library.

One error boundary (`ErrorBoundary.invoke`) maps every failure to an exit code and a
one-line message; commands only raise. Every console prints text literally (no rich
markup, emoji codes or highlighting), so file names and values are never rewritten.
Heavy libraries (polars, lightgbm, shap, matplotlib) are imported inside commands so
that `fpi --help` starts fast.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from fpi import __version__
from fpi.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_UNUSABLE,
    FpiError,
    display_path,
)


class LiteralConsole(Console):
    """A console that prints text as given (no markup, emoji codes, highlighting or line
    breaks inside a message), and leaves a closed output pipe to the error boundary
    instead of exiting 1 itself."""

    def __init__(self, *, stderr: bool = False) -> None:
        super().__init__(stderr=stderr, markup=False, emoji=False, highlight=False, soft_wrap=True)

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


console = LiteralConsole()
err_console = LiteralConsole(stderr=True)


def print_error(message: str, *, label: str = "error") -> None:
    """One red `label: message` line on stderr, printed literally."""
    err_console.print(Text.assemble((f"{label}: ", "bold red"), message))


class ErrorBoundary(TyperGroup):
    """The one place a failure becomes an exit code: 0 ok, 1 invalid records, 2 unusable
    input, arguments, model or output path, 3 an internal error (traceback only with
    `fpi --debug`), 130 interrupted, 141 output pipe closed."""

    def main(self, *args, **kwargs):
        for stream in (sys.stdout, sys.stderr):
            if hasattr(stream, "reconfigure"):  # lone surrogates (non-UTF-8 file names) print
                stream.reconfigure(errors="backslashreplace")
        return super().main(*args, **kwargs)

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):  # usage errors: typer prints them
            raise
        except FpiError as exc:  # a domain error: its message and exit code, never a traceback
            print_error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            print_error("interrupted", label="stopped")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except BrokenPipeError:
            _silence_stdout()
            raise typer.Exit(EXIT_BROKEN_PIPE) from None
        except OSError as exc:  # a file named on the command line cannot be read or written
            _debug_traceback(ctx)
            where = f"{display_path(exc.filename)}: " if exc.filename else ""
            print_error(f"{where}{exc.strerror or exc}")
            raise typer.Exit(EXIT_UNUSABLE) from None
        except Exception as exc:
            _debug_traceback(ctx)
            summary = (str(exc).strip().splitlines() or [""])[0][:300]
            print_error(
                f"{type(exc).__name__}: {summary}; rerun with `fpi --debug ...` for the traceback",
                label="internal error",
            )
            raise typer.Exit(EXIT_INTERNAL) from None


def _debug_traceback(ctx: typer.Context) -> None:
    if ctx.params.get("debug"):
        err_console.print(traceback.format_exc(), end="")


def _silence_stdout() -> None:
    """The reader of our output went away: send what is still buffered nowhere, quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (tests capture output)
        pass


app = typer.Typer(
    name="fpi",
    help="Failure-point isolation for voice assistants: which stage broke each turn, and why.",
    cls=ErrorBoundary,
    epilog="Exit codes: 0 success, 1 invalid records, 2 unusable input, arguments or model, "
    "3 internal error (rerun with --debug for its traceback).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        console.print(f"fpi {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug", envvar="FPI_DEBUG", help="Print the traceback of an internal error."
        ),
    ] = False,
) -> None:
    """Failure-point isolation for voice assistants."""


MAX_TURNS = 10_000_000  # the simulator holds its traces in memory
MAX_WEEKS = 520  # = fpi.report.stats.MAX_WEEKS_BACK (not imported: --help stays fast)
MAX_SEED = 2**31 - 1  # LightGBM's seed is a C int
IMAGE_SUFFIXES = (".png", ".svg", ".pdf")


def _probability(value: float | None) -> float | None:
    """A probability option: a number in [0, 1] (NaN refused)."""
    if value is not None and not 0.0 <= value <= 1.0:
        raise typer.BadParameter(f"{value} is not a probability in [0, 1]")
    return value


def _first_day(value: datetime) -> datetime:
    """A simulated first day within the years the report handles."""
    from fpi.report.stats import YEARS

    if value.year not in YEARS:
        raise typer.BadParameter(f"{value:%Y-%m-%d}: give a day in {YEARS.start}..{YEARS.stop - 1}")
    return value


def _output_path(value: Path | None) -> Path | None:
    """An output path whose name polars and every writer can handle (valid UTF-8)."""
    if value is not None and display_path(value) != str(value):
        raise typer.BadParameter(f"{display_path(value)}: the name is not valid UTF-8")
    return value


def _image_path(value: Path | None) -> Path | None:
    """A chart file matplotlib can write."""
    _output_path(value)
    if value is not None and value.suffix.lower() not in IMAGE_SUFFIXES:
        raise typer.BadParameter(f"{value}: give a {', '.join(IMAGE_SUFFIXES)} file")
    return value


def _failure_points(values: list[str] | None) -> list[str] | None:
    from fpi.schema import FAILURE_POINTS, UNCERTAIN

    return _one_of(values, (*FAILURE_POINTS, UNCERTAIN))


def _device_types(values: list[str] | None) -> list[str] | None:
    from fpi.schema import DEVICE_TYPES

    return _one_of(values, DEVICE_TYPES)


def _feature_stages(values: list[str] | None) -> list[str] | None:
    from fpi.features import CATALOG

    return _one_of(values, {feature.stage for feature in CATALOG})


def _one_of(values: list[str] | None, known: Collection[str]) -> list[str] | None:
    for value in values or ():
        if value not in known:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(sorted(known))}")
    return values


def _key_values(values: list[str] | None) -> list[str] | None:
    for item in values or ():
        key, sep, _ = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE")
    return values


def _param_overrides(items: list[str] | None) -> dict[str, object]:
    """`KEY=VALUE` items as a dict, each value read as JSON when it is JSON (5, 0.1, true)."""
    import json

    overrides: dict[str, object] = {}
    for item in items or ():
        key, _, value = item.partition("=")
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value
    return overrides


def _iso_week(value: str) -> str:
    """An ISO week such as 2026-W47, within the years the report handles."""
    from fpi.report.stats import week_start

    try:
        week_start(value)
    except FpiError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


DumpArgs = Annotated[
    list[Path],
    typer.Argument(
        help="Trace dumps: .jsonl, .jsonl.gz, .jsonl.zst, .parquet, directories or globs."
    ),
]
RejectsOption = Annotated[
    Path | None,
    typer.Option(
        "--rejects",
        dir_okay=False,
        callback=_output_path,
        help="Write invalid records here (JSONL, verbatim with reasons) and go on without them.",
    ),
]


OwnersOption = Annotated[
    Path | None,
    typer.Option("--owners", help="Owners file (TOML) mapping failure points to teams."),
]
ModelOption = Annotated[
    Path | None,
    typer.Option("--model", help="Model bundle directory (default: the bundled model)."),
]


MaxLineOption = Annotated[
    int,
    typer.Option(
        "--max-line-bytes",
        min=1,
        help="Longest JSONL line read; a longer line is an invalid record (default 16 MiB).",
    ),
]
MAX_LINE_DEFAULT = 16 << 20  # = fpi.io.MAX_LINE_BYTES (not imported: --help stays fast)
DumpOutOption = Annotated[
    Path,
    typer.Option(
        "--out",
        dir_okay=False,
        callback=_output_path,
        help="Output dump: .jsonl, .jsonl.gz, .jsonl.zst or .parquet.",
        show_default=False,
    ),
]


def _refuse_outputs(dumps: list[Path], **outputs: Path | None) -> None:
    """Refuse outputs that name an input, each other or a directory, before anything is read."""
    from fpi.io import check_outputs, resolve_inputs

    check_outputs(resolve_inputs(dumps) if dumps else [], **outputs)


@contextmanager
def _rejects_to(path: Path | None, dumps: list[Path], **outputs: Path | None) -> Iterator:
    """After refusing outputs that would destroy an input (`_refuse_outputs`), a sink
    streaming rejects to `--rejects` as they are found (None without the option: an invalid
    record stops the run); says where they went once the file is in place."""
    _refuse_outputs(dumps, rejects=path, **outputs)
    if path is None:
        yield None
        return
    from fpi.io import RejectsWriter

    with RejectsWriter(path) as writer:
        yield writer
    console.print(f"{writer.count:,} rejected record(s) written to {path}")


class Engine(StrEnum):
    """Where `fpi triage` runs."""

    local = "local"
    spark = "spark"


class ScenarioChoice(StrEnum):
    """The simulator's scenarios (kept in step with `fpi.simulate.SCENARIOS` by a test)."""

    base = "base"
    farfield = "farfield"
    newdomain = "newdomain"
    drift = "drift"


@app.command("simulate")
def simulate_command(
    out: DumpOutOption,
    turns: Annotated[
        int, typer.Option(min=1, max=MAX_TURNS, help="Turns to simulate (exactly).")
    ] = 10_000,
    seed: Annotated[
        int, typer.Option(min=0, max=MAX_SEED, help="Random seed (same seed, same traces).")
    ] = 0,
    scenario: Annotated[
        ScenarioChoice, typer.Option(help="World to simulate (see the README).")
    ] = ScenarioChoice.base,
    start: Annotated[
        datetime, typer.Option(formats=["%Y-%m-%d"], callback=_first_day, help="First day (UTC).")
    ] = datetime(2026, 11, 2),
    weeks: Annotated[
        int, typer.Option(min=1, max=MAX_WEEKS, help="Weeks the traffic spreads over.")
    ] = 4,
    randomize: Annotated[
        bool,
        typer.Option(
            "--randomize",
            help="Domain-randomised pipelines instead of --scenario: a freshly drawn pipeline "
            "(failure rates, calibrations, logged fields, status meanings) per block.",
        ),
    ] = False,
    block_turns: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Turns per drawn pipeline (with --randomize; default: the bundled recipe's, "
            "fpi.simulate.BLOCK_TURNS).",
        ),
    ] = None,
) -> None:
    """Simulate realistic voice-assistant traces with gold failure points."""
    from rich.table import Table

    from fpi.simulate import BLOCK_TURNS, simulate_to_file

    with console.status("simulating"):
        _refuse_outputs([], out=out)
        summary = simulate_to_file(
            out,
            turns,
            seed=seed,
            scenario=scenario.value,
            start=start.date(),
            weeks=weeks,
            randomize=randomize,
            block_turns=block_turns or BLOCK_TURNS,
        )
    first = f"{summary.first:%Y-%m-%d %H:%M}" if summary.first else "-"
    last = f"{summary.last:%Y-%m-%d %H:%M}" if summary.last else "-"
    console.print(
        f"{summary.turns:,} turns in {summary.dialogues:,} dialogues, {first} .. {last} UTC, "
        f"written to {out}",
    )
    mix = Table("failure point", "turns", "share", title=f"class mix ({scenario.value})")
    for label, count in summary.class_mix.items():
        mix.add_row(label, f"{count:,}", f"{count / max(summary.turns, 1):.1%}")
    console.print(mix)


@app.command()
def validate(
    dumps: DumpArgs, rejects: RejectsOption = None, max_line_bytes: MaxLineOption = MAX_LINE_DEFAULT
) -> None:
    """Check dumps against fpi-trace/1 and report every invalid record (exit 1 if any)."""
    from rich.table import Table

    from fpi.io import validate_dumps

    report = validate_dumps(dumps, rejects_path=rejects, max_line_bytes=max_line_bytes)
    console.print(
        f"{len(report.files)} file(s): {report.read:,} records read = "
        f"{report.accepted:,} accepted + {report.rejected:,} rejected",
    )
    if report.blank_lines:
        console.print(f"{report.blank_lines:,} blank line(s) skipped")
    for empty in report.empty_files:
        console.print(f"{empty}: empty, no records")
    if report.problem_counts:
        kinds = Table("field", "expected", "problems", title="problems by kind")
        for (field, expected), count in report.problem_counts.most_common():
            kinds.add_row(field or "(record)", expected, f"{count:,}")
        console.print(kinds)
        console.print("first examples:")
        for reject in report.examples:
            for problem in reject.problems:
                console.print(f"  {problem.message}")
    if rejects is not None:
        console.print(
            f"{report.rejected:,} rejected record(s) written to {rejects}",
        )
    if not report.clean:
        raise typer.Exit(1)
    console.print(Text("all records valid", style="green"))


@app.command("features")
def features_command(
    dumps: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Trace dumps: .jsonl, .jsonl.gz, .jsonl.zst, .parquet, directories or globs.",
            metavar="DUMP",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            dir_okay=False,
            callback=_output_path,
            help="Feature matrix to write (.parquet).",
        ),
    ] = None,
    list_catalogue: Annotated[
        bool, typer.Option("--list", help="Print the feature catalogue instead (no DUMP needed).")
    ] = False,
    rejects: RejectsOption = None,
    max_line_bytes: MaxLineOption = MAX_LINE_DEFAULT,
) -> None:
    """Write the feature matrix of trace dumps (one row per turn), or list the features."""
    from rich.table import Table

    from fpi.featurize import catalogue_frame, write_features

    if list_catalogue:
        catalogue = catalogue_frame()
        table = Table("name", "stage", "description", title=f"{catalogue.height} features")
        for row in catalogue.iter_rows(named=True):
            kind = " (categorical)" if row["categorical"] else ""
            table.add_row(row["name"], row["stage"], row["description"] + kind)
        console.print(table)
        return
    if not dumps:
        raise typer.BadParameter("give at least one trace dump (or --list)", param_hint="DUMP")
    if out is None or not out.name.lower().endswith(".parquet"):
        raise typer.BadParameter("give the output as --out FILE.parquet", param_hint="--out")
    with _rejects_to(rejects, dumps, out=out) as sink:
        matrix = write_features(dumps, out, rejects=sink, max_line_bytes=max_line_bytes)
    console.print(
        f"{matrix.height:,} turns x {matrix.width - 1} features written to {out}",
    )


class ClassWeighting(StrEnum):
    """`fpi.model.CLASS_WEIGHTINGS` (kept in step by a test)."""

    sqrt = "sqrt"
    inverse = "inverse"
    none = "none"


@app.command()
def train(
    dumps: DumpArgs,
    out: Annotated[
        Path,
        typer.Option(
            "--out", file_okay=False, callback=_output_path, help="Model bundle directory to write."
        ),
    ],
    seed: Annotated[
        int, typer.Option(min=0, max=MAX_SEED, help="Seed for the dialogue split and LightGBM.")
    ] = 0,
    rounds: Annotated[
        int,
        typer.Option(min=1, help="Maximum boosting rounds (all of them without early stopping)."),
    ] = 400,
    early_stopping: Annotated[
        bool,
        typer.Option(
            help="Stop when the validation log-loss stops improving; --no-early-stopping "
            "boosts exactly --rounds (choose them by grouped cross-validation)."
        ),
    ] = True,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            callback=_key_values,
            help="LightGBM parameter override, KEY=VALUE (repeatable).",
        ),
    ] = None,
    without_stage: Annotated[
        list[str] | None,
        typer.Option(
            callback=_feature_stages,
            help="Leave out this stage's features, e.g. context (an ablation).",
        ),
    ] = None,
    rejects: RejectsOption = None,
    max_line_bytes: MaxLineOption = MAX_LINE_DEFAULT,
    labels: Annotated[
        Path | None,
        typer.Option("--labels", help="Label database whose labels override the dump's."),
    ] = None,
    class_weights: Annotated[
        ClassWeighting,
        typer.Option(
            help="Weigh classes by inverse frequency: sqrt (tempered), inverse (every class "
            "the same total weight; for rare classes of a few dozen turns) or none."
        ),
    ] = ClassWeighting.sqrt,
    bag: Annotated[
        int,
        typer.Option(
            min=1,
            help="Average this many boosters, each with its own seed (steadier rare classes; "
            "the model has that many times the trees, so explaining takes that much longer).",
        ),
    ] = 1,
) -> None:
    """Train the six-class failure-point model on labelled traces."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from fpi.io import read_traces
    from fpi.model import check_params
    from fpi.model import train as train_model

    overrides = _param_overrides(param)
    check_params(overrides)
    from fpi.io import check_output, resolve_inputs

    check_output(out, resolve_inputs(dumps), directory=True)
    with _rejects_to(rejects, dumps) as sink:
        traces = read_traces(dumps, rejects=sink, max_line_bytes=max_line_bytes)
    if labels is not None:
        traces = _with_store_labels(traces, labels)
    columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("boosting", total=rounds)
        bundle = train_model(
            traces,
            params=overrides,
            rounds=rounds,
            seed=seed,
            without_stages=tuple(without_stage or ()),
            on_iteration=lambda done, total: bar.update(task, completed=done, total=total),
            class_weighting=class_weights.value,
            early_stopping=early_stopping,
            bag=bag,
        )
    bundle.save(out)
    summary = bundle.metadata["training"]
    console.print(
        f"trained on {summary['turns']} turns ({summary['dialogues']} dialogues), "
        f"{bundle.metadata['params']['best_iteration']} rounds"
        + (f" (a bag of {bag} boosters)" if bag > 1 else "")
        + f"; bundle in {out}"
    )
    for split, metrics in bundle.metadata["metrics"].items():
        console.print(
            f"  {split}: accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}, "
            f"ECE {metrics['ece_uncalibrated']:.3f} -> {metrics['ece']:.3f} calibrated "
            f"(n={metrics['n']})"
        )
    console.print(f"  calibration: {bundle.calibration.method} (chosen on valid)")


@app.command()
def evaluate(
    dumps: DumpArgs,
    model: ModelOption = None,
    json_out: Annotated[
        Path | None,
        typer.Option(
            "--json", dir_okay=False, callback=_output_path, help="Write the metrics here."
        ),
    ] = None,
    rejects: RejectsOption = None,
    max_line_bytes: MaxLineOption = MAX_LINE_DEFAULT,
    labels: Annotated[
        Path | None,
        typer.Option("--labels", help="Label database as gold; each annotator as a reference."),
    ] = None,
) -> None:
    """Score the model against gold labels, beside reference labels and a rule baseline."""
    import json

    from rich.table import Table

    from fpi.evaluate import evaluation_report, score_traces
    from fpi.io import iter_trace_batches
    from fpi.model import load_bundle
    from fpi.schema import FAILURE_POINTS

    bundle = load_bundle(model)
    check = _shift_check(bundle, model)
    gold = _store_gold(labels)

    def scored(sink):
        for batch in iter_trace_batches(dumps, rejects_sink=sink, max_line_bytes=max_line_bytes):
            check.offer(batch.traces)
            yield gold(batch.traces, score_traces(batch.traces, bundle))

    with _rejects_to(rejects, dumps, json=json_out) as sink:
        report = evaluation_report(scored(sink))
    shift = check.report()
    report["shift"] = shift.to_dict()
    systems = {"model": report, **report["references"], "rule baseline": report["rule_baseline"]}
    table = Table("", *systems, title=f"failure-point isolation on {report['n']} labelled turns")
    table.add_row("accuracy", *(f"{m['accuracy']:.3f}" for m in systems.values()))
    table.add_row("macro-F1", *(f"{m['macro_f1']:.3f}" for m in systems.values()))
    for name in FAILURE_POINTS:
        support = report["per_class"][name]["support"]
        table.add_row(
            f"F1 {name} (n={support})",
            *(f"{m['per_class'][name]['f1']:.3f}" for m in systems.values()),
        )
    console.print(table)
    confusion = Table("gold \\ predicted", *report["confusion"]["labels"], title="model confusion")
    for label, counts in zip(*report["confusion"].values(), strict=True):
        if label in FAILURE_POINTS:
            confusion.add_row(label, *map(str, counts))
    console.print(confusion)
    curve = Table("min confidence", "coverage", "accuracy", title="leave low confidence to people")
    for point in report["coverage"]:
        curve.add_row(
            f"{point['threshold']:.2f}", f"{point['coverage']:.1%}", f"{point['accuracy']:.3f}"
        )
    console.print(curve)
    report["calibration"] = bundle.calibration.method
    console.print(
        f"calibration ({report['calibration']}): ECE {report['ece_uncalibrated']:.4f} before, "
        f"{report['ece']:.4f} after (top-class confidence, 15 equal-width bins)",
        highlight=False,
    )
    _shift_line(shift)
    if json_out is not None:
        from fpi.io import atomic_output

        with atomic_output(json_out) as tmp:
            tmp.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"metrics written to {json_out}")


@app.command()
def triage(
    dumps: DumpArgs,
    model: ModelOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            callback=_output_path,
            help="Write every kept turn here: .parquet, .jsonl or .csv (a directory with "
            "--engine spark).",
        ),
    ] = None,
    component: Annotated[
        list[str] | None,
        typer.Option(
            "--component",
            callback=_failure_points,
            help="Keep turns failing at this stage (repeatable).",
        ),
    ] = None,
    min_confidence: Annotated[
        float | None,
        typer.Option(callback=_probability, help="Keep turns at or above this confidence."),
    ] = None,
    domain: Annotated[list[str] | None, typer.Option(help="Keep these NLU domains.")] = None,
    intent: Annotated[list[str] | None, typer.Option(help="Keep these NLU intents.")] = None,
    device_type: Annotated[
        list[str] | None, typer.Option(callback=_device_types, help="Keep these device types.")
    ] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Keep turns from this time on (UTC when naive).")
    ] = None,
    until: Annotated[
        datetime | None, typer.Option(help="Keep turns before this time (UTC when naive).")
    ] = None,
    abstain_below: Annotated[
        float | None,
        typer.Option(
            callback=_probability,
            help="Mark turns below this confidence 'uncertain' (for human review).",
        ),
    ] = None,
    owners: OwnersOption = None,
    owner: Annotated[
        list[str] | None, typer.Option("--owner", help="Keep this team's turns (needs --owners).")
    ] = None,
    top_k: Annotated[int, typer.Option(min=1, help="Reasons (SHAP contributions) per turn.")] = 5,
    batch_turns: Annotated[
        int, typer.Option(min=1, help="Turns per batch (bounds memory).")
    ] = 200_000,
    rejects: RejectsOption = None,
    max_line_bytes: MaxLineOption = MAX_LINE_DEFAULT,
    profile: Annotated[
        bool, typer.Option("--profile", help="Also print the seconds spent in each phase.")
    ] = False,
    engine: Annotated[
        Engine,
        typer.Option(help="Run here (local) or on Apache Spark (needs PySpark: the spark extra)."),
    ] = Engine.local,
    master: Annotated[
        str | None,
        typer.Option(help="Spark master URL for --engine spark, e.g. local[2] (default: Spark's)."),
    ] = None,
) -> None:
    """Name the failure point of every turn, with probabilities and SHAP reasons.

    With `--engine spark`, `--out` is a directory of Parquet partitioned by ISO week
    (`week=2026-W48/`), which `fpi report` reads.
    """
    import time

    from rich.progress import Progress, SpinnerColumn, TextColumn
    from rich.table import Table

    from fpi.model import load_bundle
    from fpi.predict import REASONS_EXPLAIN_RAW_SCORE
    from fpi.schema import FAILURE_POINTS, UNCERTAIN
    from fpi.triage import TriageFilter, run_triage

    if owner and owners is None:
        raise typer.BadParameter("--owner needs --owners FILE", param_hint="--owner")
    if since is not None and until is not None and since > until:
        raise typer.BadParameter(
            f"{since:%Y-%m-%d %H:%M:%S} is after --until {until:%Y-%m-%d %H:%M:%S}",
            param_hint="--since",
        )
    keep = TriageFilter(
        components=tuple(component or ()),
        min_confidence=min_confidence,
        domains=tuple(domain or ()),
        intents=tuple(intent or ()),
        device_types=tuple(device_type or ()),
        since=since,
        until=until,
        owners=tuple(owner or ()),
    )
    if engine is Engine.spark:
        if out is None:
            raise typer.BadParameter("--engine spark needs --out DIR", param_hint="--out")
        if owners is not None or profile:
            raise typer.BadParameter(
                "--owners and --profile run with the local engine only", param_hint="--engine"
            )
        _triage_on_spark(
            dumps, out, model, keep, top_k, abstain_below, rejects, master, max_line_bytes
        )
        return
    started = time.perf_counter()
    with _rejects_to(rejects, dumps, out=out) as sink:
        bundle = load_bundle(model)
        transform = None
        if owners is not None:
            from fpi.owners import assign_owners, load_owners

            table = load_owners(owners)
            transform = lambda triaged: assign_owners(triaged, table)  # noqa: E731
        columns = (SpinnerColumn(), TextColumn("{task.description}"))
        with Progress(*columns, console=err_console, transient=True) as bar:
            task = bar.add_task("triaging", total=None)

            def show(run) -> None:
                rate = run.read / max(time.perf_counter() - started, 1e-9)
                bar.update(task, description=f"triaged {run.read:,} turns ({rate:,.0f} turns/s)")

            run = run_triage(
                dumps,
                bundle,
                out=out,
                keep=keep,
                top_k=top_k,
                abstain_below=abstain_below,
                rejects=sink,
                batch_turns=batch_turns,
                transform=transform,
                on_batch=show,
                max_line_bytes=max_line_bytes,
                shift=_shift_check(bundle, model),
            )
    elapsed = time.perf_counter() - started
    console.print(
        f"read {run.read:,} turns = {run.triaged:,} triaged + {run.rejected:,} rejected; "
        f"{run.kept:,} kept by the filters ({run.read / max(elapsed, 1e-9):,.0f} turns/s)"
    )
    _shift_line(run.shift)
    if profile:
        phases = Table("phase", "wall s", "CPU s", "share of wall", title="where the time went")
        for phase, wall, cpu, share in run.times.frame().iter_rows():
            phases.add_row(phase, f"{wall:.2f}", f"{cpu:.2f}", f"{share:.0%}")
        console.print(phases)
    if out is not None:
        console.print(f"written to {out}")
        return
    mix = Table("failure point", "turns", "share", title="failure points")
    for name in [*FAILURE_POINTS, UNCERTAIN]:
        if name in run.per_failure_point:
            count = run.per_failure_point[name]
            mix.add_row(name, f"{count:,}", f"{count / max(run.kept, 1):.1%}")
    console.print(mix)
    defects = Table(
        "turn",
        "failure point",
        "conf.",
        "ASR text",
        "domain / intent",
        "reasons",
        title="most confident defects of each failure point",
    )
    for row in run.top_defects.iter_rows(named=True):
        reasons = "\n".join(r["text"] for r in row["reasons"][:3])
        heard = row["asr_text"] if row["asr_text"] else "(nothing recognised)"
        understood = " / ".join(v for v in (row["domain"], row["intent"]) if v) or "-"
        defects.add_row(
            row["turn_id"],
            row["failure_point"],
            f"{row['confidence']:.2f}",
            heard,
            understood,
            reasons,
        )
    console.print(defects)
    console.print(REASONS_EXPLAIN_RAW_SCORE, style="dim", highlight=False)


def _triage_on_spark(
    dumps, out, model, keep, top_k, abstain_below, rejects, master, max_line_bytes
) -> None:
    """`fpi triage --engine spark`: the same triage, as a Spark job, into a week-partitioned
    Parquet directory."""
    import time

    from fpi.errors import InputError

    started = time.perf_counter()
    try:
        from fpi import spark
    except ImportError:
        raise InputError(
            "--engine spark needs PySpark and Java 17: pip install 'fpi[spark]'"
        ) from None
    with _rejects_to(rejects, dumps) as sink:
        session = spark.session(master)
        session.sparkContext.setLogLevel("ERROR")
        run = spark.run_triage(
            session,
            dumps,
            out,
            bundle=model,
            top_k=top_k,
            abstain_below=abstain_below,
            keep=keep,
            rejects_sink=sink,
            max_line_bytes=max_line_bytes,
        )
    elapsed = time.perf_counter() - started
    console.print(
        f"read {run.read:,} turns = {run.triaged:,} triaged + {run.rejected:,} rejected; "
        f"{run.kept:,} kept by the filters ({run.read / max(elapsed, 1e-9):,.0f} turns/s on Spark)"
    )
    console.print(f"written to {display_path(out)} (Parquet, one directory per ISO week)")


@app.command()
def explain(
    dump: Annotated[Path, typer.Argument(help="The dump holding the turn and its dialogue.")],
    turn_id: Annotated[str, typer.Argument(help="The turn to explain.")],
    model: ModelOption = None,
    png: Annotated[
        Path | None,
        typer.Option(
            "--png",
            dir_okay=False,
            callback=_image_path,
            help="Write a SHAP waterfall plot here (.png, .svg or .pdf).",
        ),
    ] = None,
    top: Annotated[int, typer.Option(min=1, help="Contributions to list.")] = 10,
) -> None:
    """Show one turn stage by stage, its class probabilities, and why the model said so."""
    from rich.table import Table

    from fpi.explain import describe_stages, explain_turn, find_dialogue, waterfall_frame
    from fpi.model import load_bundle
    from fpi.predict import REASONS_EXPLAIN_RAW_SCORE

    _refuse_outputs([dump], png=png)
    bundle = load_bundle(model)
    explanation = explain_turn(find_dialogue([dump], turn_id), turn_id, bundle)
    for label, turn in (("this turn", explanation.turn), ("next turn", explanation.next_turn)):
        title = f"{label}: {turn['turn_id']}" if turn else label
        stages = Table("stage", "output", title=title)
        for stage, text in describe_stages(turn) if turn else [("", "(none: the dialogue ended)")]:
            stages.add_row(stage, text)
        console.print(stages)
    proba = Table("class", "probability", title="class probabilities (calibrated)")
    for name, p in sorted(explanation.probabilities.items(), key=lambda kv: -kv[1]):
        style = "bold" if name == explanation.predicted else ""
        proba.add_row(name, f"{p:.3f}", style=style)
    console.print(proba)
    reasons = Table(
        "contribution",
        "feature",
        "value",
        "reason",
        title=f"why {explanation.predicted} (base value {explanation.base_value:+.2f})",
    )
    for row in explanation.contributions.head(top).iter_rows(named=True):
        reasons.add_row(
            f"{row['contribution']:+.3f}",
            row["feature"],
            row["value"] or "-",
            row["text"],
        )
    console.print(reasons)
    console.print(REASONS_EXPLAIN_RAW_SCORE, style="dim", highlight=False)
    if png is not None:
        import matplotlib.pyplot as plt

        from fpi.charts.waterfall import waterfall
        from fpi.io import atomic_output

        ax = waterfall(waterfall_frame(explanation))
        ax.figure.tight_layout()
        with atomic_output(png) as tmp:
            ax.figure.savefig(tmp, dpi=120, format=png.suffix.lstrip(".").lower() or "png")
        plt.close(ax.figure)
        console.print(f"waterfall written to {png}")


@app.command()
def route(
    triage_output: Annotated[
        Path, typer.Argument(help="Triage output: .parquet, .jsonl or .csv.", show_default=False)
    ],
    owners: Annotated[
        Path, typer.Option("--owners", help="Owners file (TOML).", show_default=False)
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            file_okay=False,
            callback=_output_path,
            help="Directory for one file per owner, plus unowned.",
        ),
    ],
) -> None:
    """Split the non-correct turns of a triage output into one file per owning team."""
    from rich.table import Table

    from fpi.owners import route_file

    routed = route_file(triage_output, owners, out)
    table = Table("owner", "turns", "file", title=f"routed to {out}")
    for row in routed.iter_rows(named=True):
        table.add_row(row["owner"], f"{row['turns']:,}", row["file"])
    console.print(table)


@app.command()
def report(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Triage output (.parquet, .jsonl) or trace dumps (triaged with the bundled "
            "model), files, directories or globs.",
            show_default=False,
        ),
    ],
    week: Annotated[
        str,
        typer.Option(
            "--week",
            callback=_iso_week,
            help="ISO week to report, e.g. 2026-W47.",
            show_default=False,
        ),
    ],
    weeks_back: Annotated[
        int,
        typer.Option(
            "--weeks-back", min=2, max=MAX_WEEKS, help="Weeks in the trend, this one included."
        ),
    ] = 8,
    owners: OwnersOption = None,
    owner: Annotated[
        str | None, typer.Option("--owner", help="Write only this team's report.")
    ] = None,
    redact: Annotated[
        bool, typer.Option("--redact", help="Mask utterances after their first word.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            file_okay=False,
            callback=_output_path,
            help="Output directory (default: reports/<week>).",
        ),
    ] = None,
) -> None:
    """Write the weekly defect-attribution report: report.html, report.md and charts."""
    from fpi.report import run_report

    with err_console.status("building the report"):
        built, written = run_report(
            inputs,
            week=week,
            weeks_back=weeks_back,
            owners_path=owners,
            owner=owner,
            redact=redact,
            out_dir=out,
        )
    console.print(built.summary)
    if built.shift is not None:
        from fpi.report.drift import THIS_WEEK
        from fpi.shift import ShiftReport

        _warn_shift(ShiftReport.from_dict(built.shift), THIS_WEEK)
    console.print(
        f"written: {written[0]}, {written[1]} "
        f"and {len(written) - 2} more file(s) in {written[0].parent}"
    )


@app.command()
def demo(
    out: Annotated[
        Path,
        typer.Option(file_okay=False, callback=_output_path, help="Where the weekly report goes."),
    ] = Path("reports/example"),
    data_dir: Annotated[
        Path,
        typer.Option(
            file_okay=False,
            callback=_output_path,
            help="Where the simulated traces and triage output go.",
        ),
    ] = Path(".fpi-demo"),
    weeks: Annotated[
        int, typer.Option(min=2, max=52, help="Weeks of traffic; the last is a drift week.")
    ] = 4,
    turns_per_week: Annotated[
        int, typer.Option(min=100, max=MAX_TURNS, help="Simulated turns per week.")
    ] = 25_000,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="Simulation seed.")] = 2026,
    owners: OwnersOption = None,
    model: ModelOption = None,
) -> None:
    """Simulate weeks of traffic, triage it with the bundled model, write the weekly report."""
    from fpi.demo import run_demo

    if weeks * turns_per_week > MAX_TURNS:
        raise typer.BadParameter(
            f"{weeks} weeks of {turns_per_week:,} turns exceed {MAX_TURNS:,} simulated turns",
            param_hint="--turns-per-week",
        )

    with console.status("simulating, validating, triaging, reporting..."):
        result = run_demo(
            out_dir=out,
            data_dir=data_dir,
            weeks=weeks,
            turns_per_week=turns_per_week,
            seed=seed,
            owners_path=owners,
            model_dir=model,
        )
    weeks_text = ", ".join(f"{week} {scenario}" for week, scenario in result.scenarios)
    v, t = result.validation, result.triage
    console.print(f"simulated {weeks_text} -> {result.traces_path}")
    console.print(f"validated: read {v.read:,} = {v.accepted:,} accepted + {v.rejected:,} rejected")
    console.print(
        f"triaged:   read {t.read:,} = {t.triaged:,} triaged + {t.rejected:,} rejected "
        f"-> {result.triage_path}"
    )
    console.print(
        Text.assemble("\n", (f"Weekly report {result.week}", "bold"), f"\n{result.summary}\n")
    )
    for path in result.report_files:
        if path.suffix in (".html", ".md"):
            console.print(f"wrote {path}")


import_app = typer.Typer(
    help="Convert assistant logs and public corpora into fpi-trace/1 dumps.", no_args_is_help=True
)
app.add_typer(import_app, name="import")

ImportRejectsOption = Annotated[
    Path | None,
    typer.Option(
        "--rejects",
        dir_okay=False,
        callback=_output_path,
        help="Write every skipped unit here (JSONL: unit and reason).",
    ),
]
LogArgs = Annotated[
    list[Path], typer.Argument(help="Log files or directories.", show_default=False)
]


@contextmanager
def _import_progress(kind: str) -> Iterator:
    """A progress bar on stderr; yields the `progress(done, total)` callback importers take."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    columns = (TextColumn(f"importing {kind}s"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task(kind, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _print_import_summary(summary, rejects: Path | None) -> None:
    from rich.table import Table

    kind = summary.unit_kind
    console.print(
        f"{kind}s read {summary.read} = {summary.imported} imported + {summary.skipped} skipped; "
        f"turns written {summary.turns} to {summary.out}",
        highlight=False,
    )
    for unit, reason in summary.reasons[:20]:
        console.print(Text.assemble(("skipped", "yellow"), f" {unit}: {reason}"))
    if summary.skipped > 20:
        where = f" (all in {rejects})" if rejects else " (list them with --rejects)"
        console.print(f"... and {summary.skipped - 20} more skipped{where}", highlight=False)
    for title, counts in (
        ("label mix", summary.label_counts),
        ("failures the system reported", summary.system_reported),
    ):
        if counts:
            table = Table("stage", "turns", "share", title=title)
            for name, count in sorted(counts.items(), key=lambda kv: -kv[1]):
                table.add_row(name, str(count), f"{count / max(summary.turns, 1):.1%}")
            console.print(table)


@import_app.command("dstc2")
def import_dstc2_command(
    root: Annotated[
        Path,
        typer.Argument(help="DSTC2 root: holds data/ and scripts/config/.", show_default=False),
    ],
    out: DumpOutOption,
    flist: Annotated[
        str,
        typer.Option("--flist", help="Calls to import: train, dev, or the path of an flist file."),
    ] = "train",
    rejects: ImportRejectsOption = None,
) -> None:
    """Import DSTC2 calls as fpi-trace/1 turns labelled from the gold annotation."""
    from fpi.importers.dstc2 import import_dstc2

    with _import_progress("call") as progress:
        summary = import_dstc2(root, flist, out, rejects=rejects, progress=progress)
    _print_import_summary(summary, rejects)


def _import_logs(source, paths: list[Path], out: Path, rejects: Path | None) -> None:
    with _import_progress(source.unit_kind) as progress:
        summary = source.import_paths(paths, out, rejects=rejects, progress=progress)
    _print_import_summary(summary, rejects)


@import_app.command("homeassistant")
def import_homeassistant_command(
    paths: LogArgs, out: DumpOutOption, rejects: ImportRejectsOption = None
) -> None:
    """Import Home Assistant Assist pipeline runs (pipeline_debug/get JSON, or runs JSONL)."""
    from fpi.importers.homeassistant import SOURCE_SPEC

    _import_logs(SOURCE_SPEC, paths, out, rejects)


@import_app.command("rasa")
def import_rasa_command(
    paths: LogArgs, out: DumpOutOption, rejects: ImportRejectsOption = None
) -> None:
    """Import Rasa conversations (tracker JSON, rasa_event.log, SQLite tracker store)."""
    from fpi.importers.rasa import SOURCE_SPEC

    _import_logs(SOURCE_SPEC, paths, out, rejects)


@import_app.command("lex")
def import_lex_command(
    paths: LogArgs, out: DumpOutOption, rejects: ImportRejectsOption = None
) -> None:
    """Import Amazon Lex V2 conversation text logs (JSON Lines or a JSON array)."""
    from fpi.importers.lex import SOURCE_SPEC

    _import_logs(SOURCE_SPEC, paths, out, rejects)


collect_app = typer.Typer(help="Collect logs from a running assistant.", no_args_is_help=True)
app.add_typer(collect_app, name="collect")


@collect_app.command("homeassistant")
def collect_homeassistant_command(
    url: Annotated[
        str,
        typer.Option(
            "--url", help="Websocket API, e.g. ws://HOST:8123/api/websocket.", show_default=False
        ),
    ],
    token_file: Annotated[
        Path,
        typer.Option(
            "--token-file",
            help="File holding a long-lived access token (admin).",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Runs JSONL to append to (fpi import homeassistant reads it).",
            show_default=False,
        ),
    ],
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, help="Seconds between polls.")
    ] = 5.0,
    once: Annotated[bool, typer.Option("--once", help="Poll once and exit.")] = False,
) -> None:
    """Append every Assist pipeline run Home Assistant still holds to a runs JSONL, until Ctrl-C."""
    from fpi.importers.ha_collect import collect_runs

    def report(new: int, total: int) -> None:
        err_console.print(f"{new} new run(s), {total} in {out}", highlight=False)

    result = collect_runs(url, token_file, out, interval=interval, once=once, report=report)
    console.print(
        f"collected {result.written} new run(s) in {result.polls} poll(s); "
        f"{result.total} run(s) in {out}",
        highlight=False,
    )


def _print_shift(report, *, top: int = 10) -> None:
    """The shift verdict, the most shifted features, and a warning when shifted."""
    from rich.table import Table

    colour = {"shifted": "bold red", "fits": "green"}.get(report.verdict, "yellow")
    score = "unknown" if report.score is None else f"{report.score:.3f}"
    console.print(
        Text.assemble(
            f"input shift against the {report.reference}: ",
            (report.verdict, colour),
            f" (separability AUC {score}, threshold {report.threshold:.2f}; "
            f"{report.turns:,} sampled turns)",
        )
    )
    if report.reference_components:
        console.print(f"reference: {report.reference_words}", highlight=False)
    if report.score is None:
        console.print(report.sentence(), highlight=False)
        return
    table = Table(
        "feature",
        "stage",
        "PSI",
        "missing (reference)",
        "missing (dump)",
        title="most shifted features (PSI on the reference's bins)",
    )
    for row in report.features.head(top).iter_rows(named=True):
        table.add_row(
            row["name"],
            row["stage"],
            f"{row['shift']:.3f}",
            f"{row['missing_rate_train']:.1%}",
            f"{row['missing_rate_dump']:.1%}",
        )
    console.print(table)
    if report.confidence is not None:
        seen, now = report.confidence["validation"], report.confidence["dump"]
        console.print(
            f"model confidence >= 0.99 on {now['share_at_least_0.99']:.1%} of these turns "
            f"({seen['share_at_least_0.99']:.1%} of its validation turns); median "
            f"{now['quantiles']['0.5']:.2f} ({seen['quantiles']['0.5']:.2f}); "
            f"PSI {report.confidence['psi']:.2f}",
            highlight=False,
        )
    _warn_shift(report)


def _shift_check(bundle, model: Path | None):
    """The streamed shift check triage and evaluate run beside their work."""
    from fpi.model import default_model_dir
    from fpi.shift import ShiftCheck

    return ShiftCheck(bundle.profile, source=str(model or default_model_dir()))


def _shift_line(report) -> None:
    """One line on the input shift, and the warning when shifted."""
    if report is None:
        return
    if report.shifted:
        _warn_shift(report)
    else:
        console.print(f"input shift: {report.sentence()}", highlight=False)


def _warn_shift(report, subject: str = "The traffic") -> None:
    """A yellow warning on stderr when the traffic does not look like the training data."""
    warning = report.warning(subject)
    if warning is not None:
        print_error(warning, label="warning")


@app.command("shift")
def shift_command(
    dumps: DumpArgs,
    model: ModelOption = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the shift report here (JSON).")
    ] = None,
    against: Annotated[
        list[Path] | None,
        typer.Option(
            "--against",
            help="Compare with these dumps (e.g. last week's) instead of the "
            "model's training profile (repeatable).",
        ),
    ] = None,
    rejects: RejectsOption = None,
) -> None:
    """How far dumps are from the model's training traffic (or from other dumps)."""
    import json
    from dataclasses import replace

    from fpi.model import default_model_dir, load_bundle
    from fpi.shift import assess, assess_against, confidence_shift, sample_dumps

    with (
        _rejects_to(rejects, [*dumps, *(against or [])], json=json_out) as sink,
        err_console.status("sampling and comparing"),
    ):
        sample = sample_dumps(dumps, rejects=sink)
        if against:
            report = assess_against(sample, sample_dumps(against, rejects=sink))
        else:
            bundle = load_bundle(model)
            report = assess(sample, bundle.profile, source=str(model or default_model_dir()))
            report = replace(report, confidence=confidence_shift(bundle, sample))
    _print_shift(report)
    if json_out is not None:
        from fpi.io import atomic_output

        with atomic_output(json_out) as tmp:
            tmp.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        console.print(f"shift report written to {json_out}")


# ---- labels, queue and adapt (issue 13) ------------------------------------------------------

labels_app = typer.Typer(
    help="The label store: human failure-point labels shared by several annotators.",
    no_args_is_help=True,
)
app.add_typer(labels_app, name="labels")
LabelsArg = Annotated[
    Path, typer.Argument(help="Label database (SQLite; created when missing).", show_default=False)
]
LabelsOption = Annotated[
    Path, typer.Option("--labels", help="Label database (SQLite; created when missing).")
]


def _table_of_counts(stats: dict, title: str):
    from rich.table import Table

    from fpi.schema import FAILURE_POINTS

    annotators = list(stats["per_annotator_class"])
    table = Table("failure point", *annotators, "all", title=title)
    for name in FAILURE_POINTS:
        cells = [str(stats["per_annotator_class"][a][name]) for a in annotators]
        table.add_row(name, *cells, str(stats["per_class"][name]))
    totals = [str(stats["per_annotator"][a]) for a in annotators]
    table.add_row("all", *totals, str(stats["labels"]), style="bold")
    return table


@labels_app.command("stats")
def labels_stats_command(db: LabelsArg) -> None:
    """Current labels per class and annotator."""
    from fpi.labels import LabelStore

    with LabelStore(db) as store:
        stats = store.stats()
    console.print(
        _table_of_counts(
            stats,
            f"{stats['labels']} label(s) on {stats['turns']} turn(s), "
            f"{stats['history_rows']} history row(s)",
        )
    )


@labels_app.command("export")
def labels_export_command(
    db: LabelsArg,
    out: Annotated[Path, typer.Option("--out", help="Label file to write: .jsonl or .csv.")],
    history: Annotated[
        bool, typer.Option("--history", help="Every row ever written, undos included.")
    ] = False,
) -> None:
    """Write the current labels (or the whole history) as JSON Lines or CSV."""
    from fpi.labels import LabelStore, export_labels

    with LabelStore(db) as store:
        rows = export_labels(store, out, history=history)
    console.print(f"{rows} row(s) written to {out}")


@labels_app.command("import")
def labels_import_command(
    db: LabelsArg,
    label_file: Annotated[
        Path, typer.Argument(help="Labels: .jsonl or .csv rows with turn_id, failure_point.")
    ],
    annotator: Annotated[
        str | None, typer.Option("--annotator", help="Annotator of every row (overrides theirs).")
    ] = None,
    dump: Annotated[
        list[Path] | None,
        typer.Option("--dump", help="Dumps holding the turns (else the turns `fpi queue` saw)."),
    ] = None,
    rejects: Annotated[
        Path | None, typer.Option("--rejects", help="Write rejected rows here (JSONL).")
    ] = None,
) -> None:
    """Import labels; unknown turns and classes are rejected with their line numbers."""
    import json

    from fpi.io import read_traces
    from fpi.labels import LabelStore, import_labels

    with LabelStore(db) as store:
        traces = read_traces(dump) if dump else None
        result = import_labels(store, label_file, annotator=annotator, traces=traces)
    for line, reason in result.rejected[:20]:
        console.print(f"{label_file}:{line}: {reason}", highlight=False, soft_wrap=True)
    if len(result.rejected) > 20:
        console.print(f"... and {len(result.rejected) - 20} more rejected row(s)")
    if rejects is not None:
        rejects.parent.mkdir(parents=True, exist_ok=True)
        rejects.write_text(
            "".join(
                json.dumps({"file": str(label_file), "line": line, "reason": reason}) + "\n"
                for line, reason in result.rejected
            )
        )
    console.print(
        f"read {result.read} row(s) = {result.imported} imported + {len(result.rejected)} rejected",
        highlight=False,
    )
    if result.rejected:
        raise typer.Exit(1)


@labels_app.command("agreement")
def labels_agreement_command(
    db: LabelsArg,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
) -> None:
    """Cohen's kappa per annotator pair (Fleiss' for more) and confusion on shared turns."""
    import json

    from rich.table import Table

    from fpi.labels import LabelStore, agreement

    with LabelStore(db) as store:
        report = agreement(store.current())
    console.print(
        f"{len(report['annotators'])} annotator(s); {report['shared_turns']} turn(s) "
        "labelled by more than one"
    )
    pairs = Table("annotators", "shared turns", "agreement", "Cohen's kappa", title="pairs")
    for pair in report["pairs"]:
        pairs.add_row(
            " / ".join(pair["annotators"]),
            str(pair["turns"]),
            f"{pair['agreement']:.3f}",
            f"{pair['kappa']:.3f}",
        )
    console.print(pairs)
    if "fleiss_kappa" in report:
        console.print(f"Fleiss' kappa over all annotators: {report['fleiss_kappa']:.3f}")
    for pair in report["pairs"]:
        if not pair["turns"]:
            continue
        first, second = pair["annotators"]
        labels = pair["confusion"]["labels"]
        confusion = Table(f"{first} \\ {second}", *labels, title=f"{first} vs {second}")
        for label, counts in zip(labels, pair["confusion"]["matrix"], strict=True):
            confusion.add_row(label, *map(str, counts))
        console.print(confusion)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=2) + "\n")


class QueueStrategy(StrEnum):
    active = "active"
    random = "random"
    dialogues = "dialogues"


@app.command("queue")
def queue_command(
    dumps: DumpArgs,
    labels: LabelsOption,
    out: Annotated[Path, typer.Option("--out", help="Queue to write (JSON Lines).")],
    n: Annotated[int, typer.Option("--n", min=1, help="Turns to queue.")] = 100,
    model: ModelOption = None,
    strategy: Annotated[
        QueueStrategy, typer.Option(help="active (uncertain, diverse, every class) or random.")
    ] = QueueStrategy.active,
    seed: Annotated[int, typer.Option(help="Seed (same seed, same queue).")] = 0,
) -> None:
    """The next N unlabelled turns to label, one JSON object a line."""
    from fpi.io import read_traces
    from fpi.labels import LabelStore, match_labels, turn_registry
    from fpi.model import load_bundle
    from fpi.queue import next_turns

    with LabelStore(labels) as store:
        bundle = load_bundle(model)
        traces = read_traces(dumps)
        store.register_turns(turn_registry(traces))
        matched = match_labels(store.current(), traces).matched
        labelled = matched.get_column("turn_id")
        classes = dict(matched.select("turn_id", "failure_point").iter_rows())
        queue = next_turns(
            traces, bundle, labelled=classes, n=n, strategy=strategy.value, seed=seed
        )
        store.record_seats(queue)  # adapt judges models on the seats the model did not choose
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(f".{out.name}.partial")
        queue.write_ndjson(partial)
        partial.replace(out)
    console.print(
        f"{queue.height} turn(s) queued ({strategy.value}) from {traces.height:,} "
        f"({labelled.n_unique():,} already labelled) -> {out}",
        highlight=False,
    )


class AdaptMethod(StrEnum):
    """`fpi.adapt.METHODS` (kept in step by a test)."""

    fresh = "fresh"
    continue_ = "continue"
    fresh_sim = "fresh+sim"
    fresh_self = "fresh+self"


@app.command("adapt")
def adapt_command(
    dumps: DumpArgs,
    labels: LabelsOption,
    out: Annotated[Path, typer.Option("--out", help="Model bundle directory to write.")],
    start: Annotated[
        Path | None,
        typer.Option("--from", help="Starting model bundle (default: the bundled model)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for LightGBM and the folds.")] = 0,
    method: Annotated[
        AdaptMethod, typer.Option(help="How to fit (see the README's label-efficiency table).")
    ] = AdaptMethod.fresh,
) -> None:
    """Fit a model of your own pipeline from the labelled turns of your dumps."""
    from fpi.adapt import adapt, adapt_summary
    from fpi.io import read_traces
    from fpi.labels import LabelStore, match_labels

    with LabelStore(labels) as store:
        traces = read_traces(dumps)
        current = store.seated()
        console.print(match_labels(current, traces).summary(), highlight=False)
        with err_console.status("fitting"):
            bundle = adapt(traces, current, start=start, seed=seed, method=method.value)
        _save_bundle(bundle, out)
    console.print(f"{adapt_summary(bundle.metadata)}; bundle in {out}")


def _save_bundle(bundle, out: Path) -> None:
    """Save next to `out` and move into place, so a failed run keeps an earlier bundle."""
    import shutil

    partial = out.with_name(f".{out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    bundle.save(partial)
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        out.replace(old)
        partial.replace(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        partial.replace(out)


def _with_store_labels(traces, db: Path):
    """Traces whose labels the store overrides (consensus of its matching labels)."""
    from fpi.labels import LabelStore, apply_labels, match_labels

    with LabelStore(db) as store:
        current = store.current()
    console.print(match_labels(current, traces).summary(), highlight=False)
    return apply_labels(traces, current, source="label store")


def _store_gold(db: Path | None):
    """For `evaluate --labels`: replace a scored batch's gold by the store's labels and add
    each annotator as a reference (identity without a store)."""
    if db is None:
        return lambda traces, scored: scored
    from fpi.labels import LabelStore, store_gold

    with LabelStore(db) as store:
        current = store.current()
    return lambda traces, scored: scored.drop("gold").hstack(store_gold(traces, current))


# ---- fpi review ------------------------------------------------------------------------


@app.command("review")
def review_command(
    dumps: DumpArgs,
    labels: LabelsOption,
    annotator: Annotated[
        str,
        typer.Option("--annotator", help="Your name, stored with every label.", show_default=False),
    ],
    model: ModelOption = None,
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port on 127.0.0.1 (0 picks a free one).")
    ] = 8765,
    no_browser: Annotated[
        bool, typer.Option("--no-browser", help="Print the URL without opening a browser.")
    ] = False,
    refit_every: Annotated[
        int, typer.Option("--refit-every", min=1, help="Refit the model every K labels.")
    ] = 50,
) -> None:
    """Label turns in a local web page, one at a time in queue order; the model learns as you go."""
    import webbrowser

    from fpi.review import ReviewServer, open_session, serve_until_interrupted

    err_console.print("fpi review: reading the dumps and ranking the first turns...", markup=False)
    session = open_session(
        dumps, labels, annotator=annotator, model_dir=model, refit_every=refit_every
    )
    server = ReviewServer(session, port=port)
    console.print(f"fpi review: {server.url}  (Ctrl-C to stop)", markup=False, highlight=False)
    if not no_browser:
        webbrowser.open(server.url)
    serve_until_interrupted(server)
    session.close()
    console.print(
        f"stopped; {session.labels_given} label(s) by {annotator} stored in {labels} this session",
        markup=False,
        highlight=False,
    )
