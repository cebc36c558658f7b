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


@contextmanager
def domain_errors() -> Iterator[None]:
    """Turn a domain error into its message and exit code, never a traceback."""
    try:
        yield
    except FpiError as exc:
        print_error(str(exc))
        raise typer.Exit(exc.exit_code) from None


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
            with domain_errors():
                return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):  # usage errors: typer prints them
            raise
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


def _finish_rejects(rejects: list | None, path: Path | None) -> None:
    """Write collected rejects (when `--rejects` was given) and say where they went."""
    if path is None or rejects is None:
        return
    from fpi.io import write_rejects

    write_rejects(rejects, path)
    console.print(f"{len(rejects)} rejected record(s) written to {path}")


class ScenarioChoice(StrEnum):
    """The simulator's scenarios (kept in step with `fpi.simulate.SCENARIOS` by a test)."""

    base = "base"
    farfield = "farfield"
    newdomain = "newdomain"
    drift = "drift"


@app.command("simulate")
def simulate_command(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            dir_okay=False,
            callback=_output_path,
            help="Output dump: .jsonl, .jsonl.gz, .jsonl.zst or .parquet.",
            show_default=False,
        ),
    ],
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
) -> None:
    """Simulate realistic voice-assistant traces with gold failure points."""
    from rich.table import Table

    from fpi.simulate import simulate_to_file

    with domain_errors(), console.status("simulating"):
        summary = simulate_to_file(
            out, turns, seed=seed, scenario=scenario.value, start=start.date(), weeks=weeks
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
def validate(dumps: DumpArgs, rejects: RejectsOption = None) -> None:
    """Check dumps against fpi-trace/1 and report every invalid record (exit 1 if any)."""
    from rich.table import Table

    from fpi.validate import validate_dumps

    with domain_errors():
        report = validate_dumps(dumps, rejects_path=rejects)
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
    collected: list | None = [] if rejects is not None else None
    with domain_errors():
        matrix = write_features(dumps, out, rejects=collected)
        _finish_rejects(collected, rejects)
    console.print(
        f"{matrix.height:,} turns x {matrix.width - 1} features written to {out}",
    )


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
        int, typer.Option(min=1, help="Maximum boosting rounds (early stopping).")
    ] = 400,
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
) -> None:
    """Train the six-class failure-point model on labelled traces."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from fpi.io import read_traces
    from fpi.model import train as train_model

    overrides = _param_overrides(param)
    collected: list | None = [] if rejects is not None else None
    with domain_errors():
        traces = read_traces(dumps, rejects=collected)
        _finish_rejects(collected, rejects)
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
            )
        bundle.save(out)
    summary = bundle.metadata["training"]
    console.print(
        f"trained on {summary['turns']} turns ({summary['dialogues']} dialogues), "
        f"{bundle.metadata['params']['best_iteration']} rounds; bundle in {out}"
    )
    for split, metrics in bundle.metadata["metrics"].items():
        console.print(
            f"  {split}: accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f} "
            f"(n={metrics['n']})"
        )


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
) -> None:
    """Score the model against gold labels, beside reference labels and a rule baseline."""
    import json

    from rich.table import Table

    from fpi.evaluate import evaluation_report, score_traces
    from fpi.io import iter_trace_batches
    from fpi.model import load_bundle
    from fpi.schema import FAILURE_POINTS

    collected: list | None = [] if rejects is not None else None
    with domain_errors():
        bundle = load_bundle(model)
        report = evaluation_report(
            score_traces(batch.traces, bundle)
            for batch in iter_trace_batches(dumps, rejects_sink=collected)
        )
        _finish_rejects(collected, rejects)
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
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"metrics written to {json_out}")


@app.command()
def triage(
    dumps: DumpArgs,
    model: ModelOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            dir_okay=False,
            callback=_output_path,
            help="Write every kept turn here: .parquet, .jsonl or .csv.",
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
    profile: Annotated[
        bool, typer.Option("--profile", help="Also print the seconds spent in each phase.")
    ] = False,
) -> None:
    """Name the failure point of every turn, with probabilities and SHAP reasons."""
    import time

    from rich.progress import Progress, SpinnerColumn, TextColumn
    from rich.table import Table

    from fpi.model import load_bundle
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
    collected: list | None = [] if rejects is not None else None
    started = time.perf_counter()
    with domain_errors():
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
                rejects=collected,
                batch_turns=batch_turns,
                transform=transform,
                on_batch=show,
            )
        _finish_rejects(collected, rejects)
    elapsed = time.perf_counter() - started
    console.print(
        f"read {run.read:,} turns = {run.triaged:,} triaged + {run.rejected:,} rejected; "
        f"{run.kept:,} kept by the filters ({run.read / max(elapsed, 1e-9):,.0f} turns/s)"
    )
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

    with domain_errors():
        bundle = load_bundle(model)
        explanation = explain_turn(find_dialogue([dump], turn_id), turn_id, bundle)
    for label, turn in (("this turn", explanation.turn), ("next turn", explanation.next_turn)):
        title = f"{label}: {turn['turn_id']}" if turn else label
        stages = Table("stage", "output", title=title)
        for stage, text in describe_stages(turn) if turn else [("", "(none: the dialogue ended)")]:
            stages.add_row(stage, text)
        console.print(stages)
    proba = Table("class", "probability", title="class probabilities")
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
    if png is not None:
        import matplotlib.pyplot as plt

        from fpi.charts.waterfall import waterfall

        ax = waterfall(waterfall_frame(explanation))
        ax.figure.tight_layout()
        ax.figure.savefig(png, dpi=120)
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

    with domain_errors():
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

    with domain_errors(), err_console.status("building the report"):
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

    with domain_errors(), console.status("simulating, validating, triaging, reporting..."):
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
    help="Convert public corpora into labelled fpi-trace/1 dumps.", no_args_is_help=True
)
app.add_typer(import_app, name="import")


@import_app.command("dstc2")
def import_dstc2_command(
    root: Annotated[
        Path,
        typer.Argument(help="DSTC2 root: holds data/ and scripts/config/.", show_default=False),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            dir_okay=False,
            callback=_output_path,
            help="Output dump: .jsonl, .jsonl.gz, .jsonl.zst or .parquet.",
            show_default=False,
        ),
    ],
    flist: Annotated[
        str,
        typer.Option("--flist", help="Calls to import: train, dev, or the path of an flist file."),
    ] = "train",
) -> None:
    """Import DSTC2 calls as fpi-trace/1 turns labelled from the gold annotation."""
    from rich.progress import Progress
    from rich.table import Table

    from fpi.dstc2 import import_dstc2

    with domain_errors(), Progress(console=err_console, transient=True) as bar:
        task = bar.add_task("importing calls", total=None)
        summary = import_dstc2(
            root,
            flist,
            out,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    console.print(
        f"calls read {summary.calls_listed}, imported {summary.calls_imported}, "
        f"skipped {len(summary.calls_skipped)}; "
        f"turns written {summary.turns} to {out}",
    )
    for call, reason in summary.calls_skipped:
        console.print(Text.assemble(("skipped", "yellow"), f" {call}: {reason}"))
    mix = Table("label", "turns", "share", title="label mix")
    for label, count in summary.label_counts.items():
        mix.add_row(label, str(count), f"{count / max(summary.turns, 1):.1%}")
    console.print(mix)
