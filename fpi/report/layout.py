"""The report as a list of blocks (headings, paragraphs, tables, charts) with every number
formatted. Renderers (`html`, `markdown`) only escape and lay out: all text in a block is
plain text, user text included."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from fpi import __version__
from fpi.owners import OWNER
from fpi.predict import REASONS_EXPLAIN_RAW_SCORE
from fpi.report import stats, wording
from fpi.report.figures import ChartImage, owner_chart_keys
from fpi.report.sections import ALL, DIMENSIONS
from fpi.report.wording import count, interval, number, percent, points, stage_label

if TYPE_CHECKING:
    from fpi.report import Report


@dataclass(frozen=True, slots=True)
class Heading:
    text: str
    level: int
    anchor: str


@dataclass(frozen=True, slots=True)
class Paragraph:
    text: str
    muted: bool = False


@dataclass(frozen=True, slots=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...]  # right-aligned columns


@dataclass(frozen=True, slots=True)
class Chart:
    image: ChartImage
    caption: str


Block = Heading | Paragraph | Table | Chart


@dataclass(frozen=True, slots=True)
class Column:
    header: str
    field: str
    show: Callable[[Any], str] = str
    numeric: bool = False


def table(frame: pl.DataFrame, columns: Sequence[Column]) -> Table:
    rows = tuple(
        tuple("–" if row[c.field] is None else c.show(row[c.field]) for c in columns)
        for row in frame.iter_rows(named=True)
    )
    return Table(
        headers=tuple(c.header for c in columns),
        rows=rows,
        numeric=tuple(c.numeric for c in columns),
    )


def _headline(report: Report) -> list[Block]:
    head = report.headline
    total = {
        "failure_point": ALL,
        "turns": head["defects"],
        "rate": head["defect_rate"],
        "last_rate": head["last_rate"],
        "change": head["change"],
        "change_low": head["change_low"],
        "change_high": head["change_high"],
        "significant": head["significant"],
    }
    mix = report.tables["mix"]
    rows = pl.concat(
        [pl.DataFrame([total], schema={k: mix.schema[k] for k in total}), mix.select(list(total))]
    )
    return [
        Heading("Headline", 2, "headline"),
        Paragraph(report.summary),
        table(
            rows.with_columns(pl.struct("change_low", "change_high").alias("ci")),
            [
                Column("failure point", "failure_point", stage_label),
                Column("defect turns", "turns", count, True),
                Column("rate", "rate", percent, True),
                Column("last week", "last_rate", percent, True),
                Column("change", "change", points, True),
                Column(
                    "95% CI of change",
                    "ci",
                    lambda ci: interval(ci["change_low"], ci["change_high"], signed=True),
                    True,
                ),
                Column("significant", "significant", lambda v: "yes" if v else "no"),
            ],
        ),
        Paragraph(
            "Rates are shares of classified turns (turns the model did not leave to review). "
            f"Intervals: bootstrap over dialogues, {stats.REPLICATES:,} replicates, "
            f"seed {stats.SEED}; a change is significant when its 95% interval excludes zero.",
            muted=True,
        ),
    ]


def _trend(report: Report, charts: dict[str, ChartImage]) -> list[Block]:
    overall = report.tables["trend"].filter(pl.col("failure_point") == ALL)
    return [
        Heading("Trend", 2, "trend"),
        Chart(charts["trend"], f"Weekly defect rate, last {len(report.weeks)} weeks"),
        Chart(charts["mix"], "This week's failure-point mix against last week"),
        table(
            overall.with_columns(pl.struct("low", "high").alias("ci")),
            [
                Column("week", "week"),
                Column("classified turns", "classified", count, True),
                Column("defect turns", "defects", count, True),
                Column("defect rate", "rate", percent, True),
                Column("95% CI", "ci", lambda ci: interval(ci["low"], ci["high"]), True),
            ],
        ),
    ]


def _where(report: Report) -> list[Block]:
    carriers, movers = report.tables["carriers"], report.tables["movers"]
    blocks: list[Block] = [
        Heading("Where", 2, "where"),
        Paragraph(
            "Per failure point, the domains, intents, device types and locales that carry most "
            "of this week's defects (share of the failure point's turns; rate within the "
            "segment), then the segments that moved most against last week."
        ),
    ]
    for stage in report.tables["mix"].filter(pl.col("turns") > 0).get_column("failure_point"):
        blocks.append(Heading(stage_label(stage), 3, f"where-{stage}"))
        part = carriers.filter(pl.col("failure_point") == stage).sort(
            pl.col("dimension").replace_strict({d: i for i, d in enumerate(DIMENSIONS)}),
            maintain_order=True,
        )
        blocks.append(
            table(
                part,
                [
                    Column("dimension", "dimension"),
                    Column("value", "value"),
                    Column("turns", "turns", count, True),
                    Column("share", "share", lambda v: percent(v, 1), True),
                    Column("rate in segment", "rate", percent, True),
                    Column("last week turns", "last_turns", count, True),
                ],
            )
        )
        moved = movers.filter(pl.col("failure_point") == stage)
        if not moved.is_empty():
            blocks.append(Paragraph(f"Biggest {stage_label(stage)} movers against last week:"))
            blocks.append(
                table(
                    moved,
                    [
                        Column("dimension", "dimension"),
                        Column("value", "value"),
                        Column("last week", "last_turns", count, True),
                        Column("this week", "turns", count, True),
                        Column("change", "change_turns", lambda v: f"{v:+,}", True),
                        Column("rate last week", "last_rate", percent, True),
                        Column("rate this week", "rate", percent, True),
                    ],
                )
            )
    return blocks


def _psi_verdict(value: float) -> str:
    from fpi.shift import FEATURE_MOVED, FEATURE_MOVED_A_LOT

    return "a lot" if value >= FEATURE_MOVED_A_LOT else "yes" if value >= FEATURE_MOVED else "no"


def _input_drift(report: Report) -> list[Block]:
    from fpi.report.drift import THIS_WEEK
    from fpi.shift import ShiftReport

    blocks: list[Block] = [Heading("Input drift", 2, "input-drift")]
    if report.shift is not None:
        shift = ShiftReport.from_dict(report.shift)
        blocks.append(Paragraph(shift.warning(THIS_WEEK) or shift.sentence(THIS_WEEK)))
    drift = ShiftReport.from_dict(report.drift) if report.drift is not None else None
    if drift is None or drift.score is None:
        note = drift.note if drift is not None else "no input record"
        blocks.append(Paragraph(f"Input drift against last week unknown: {note}.", muted=True))
        return blocks
    blocks.append(
        Paragraph(
            f"Against last week ({report.weeks[-2]}) the input features separate with AUC "
            f"{number(drift.score)} (0.5 = the same traffic; {number(drift.threshold)} or more "
            "= shifted). The input features that moved most (PSI on the training profile's "
            "bins, sampled turns; from 0.1 moved, from 0.25 moved a lot), beside the defect "
            "movers above:"
        )
    )
    blocks.append(
        table(
            report.tables["input_drift"],
            [
                Column("feature", "feature"),
                Column("stage", "stage", stage_label),
                Column("description", "description"),
                Column("PSI", "psi", lambda v: number(v, 3), True),
                Column("moved", "psi", _psi_verdict),
                Column("missing last week", "missing_last_week", lambda v: percent(v, 1), True),
                Column("missing this week", "missing_this_week", lambda v: percent(v, 1), True),
            ],
        )
    )
    return blocks


def _why(report: Report, charts: dict[str, ChartImage]) -> list[Block]:
    drivers, utterances = report.tables["drivers"], report.tables["utterances"]
    blocks: list[Block] = [
        Heading("Why", 2, "why"),
        Paragraph(
            "Per failure point, the features behind this week's attributions (mean absolute "
            "SHAP contribution toward the predicted class, per turn) and the most frequent "
            "failing utterances, each with its most confident example turn and reasons. "
            + REASONS_EXPLAIN_RAW_SCORE
        ),
    ]
    for stage in report.tables["mix"].filter(pl.col("turns") > 0).get_column("failure_point"):
        blocks.append(Heading(stage_label(stage), 3, f"why-{stage}"))
        if f"drivers-{stage}" in charts:
            caption = f"Features behind this week's {stage_label(stage)} turns"
            blocks.append(Chart(charts[f"drivers-{stage}"], caption))
            blocks.append(
                table(
                    drivers.filter(pl.col("failure_point") == stage),
                    [
                        Column("feature", "feature"),
                        Column("description", "description"),
                        Column("mean |contribution|", "mean_abs_contribution", number, True),
                        Column("in reasons of", "share_of_turns", lambda v: percent(v, 0), True),
                    ],
                )
            )
        blocks.append(Paragraph(f"Most frequent {stage_label(stage)} utterances this week:"))
        blocks.append(_utterance_table(utterances.filter(pl.col("failure_point") == stage)))
    return blocks


def _utterance_table(frame: pl.DataFrame) -> Table:
    return table(
        frame.with_columns(pl.format("{} / {}", "domain", "intent").alias("domain_intent")),
        [
            Column("utterance", "utterance"),
            Column("turns", "turns", count, True),
            Column("example turn", "example_turn_id"),
            Column("domain / intent", "domain_intent"),
            Column("device", "device_type"),
            Column("reasons", "reasons"),
        ],
    )


def _uncertain(report: Report, charts: dict[str, ChartImage]) -> list[Block]:
    queue = report.uncertain
    blocks: list[Block] = [Heading("Uncertain queue", 2, "uncertain")]
    if not queue["turns"]:
        blocks.append(Paragraph("No turns were left to human review this week."))
        return blocks
    blocks.append(
        Paragraph(
            f"{count(queue['turns'])} turns ({percent(queue['share_of_turns'], 1)} of the week) "
            f"were left to human review because the model's confidence was below the abstain "
            f"threshold (median {number(queue['median_confidence'])}); last week "
            f"{count(queue['last_turns'])}. The pairs of classes that competed for them:"
        )
    )
    if "uncertain" in charts:
        blocks.append(Chart(charts["uncertain"], "Best class against runner-up, uncertain turns"))
    pairs = report.tables["uncertain_pairs"]
    blocks.append(
        table(
            pairs,
            [
                Column("best class", "predicted", stage_label),
                Column("runner-up", "runner_up", stage_label),
                Column("turns", "turns", count, True),
                Column("share", "share", lambda v: percent(v, 1), True),
                Column("median confidence", "median_confidence", number, True),
                Column("median margin", "median_margin", number, True),
                Column("example turn", "example_turn_id"),
                Column("example utterance", "utterance"),
            ],
        )
    )
    return blocks


def _who(report: Report, charts: dict[str, ChartImage]) -> list[Block]:
    owners = report.tables["owners"]
    blocks: list[Block] = [
        Heading("Who", 2, "who"),
        Paragraph(
            "Owned turns (defects, and uncertain turns an owners rule routes) per team this "
            "week against last week; turns no rule matched are unowned."
        ),
    ]
    if "owners" in charts:
        blocks.append(Chart(charts["owners"], "Turns per owner, this week against last week"))
    blocks.append(
        table(
            owners,
            [
                Column("owner", OWNER),
                Column("contact", "contact"),
                Column("turns", "turns", count, True),
                Column("defects", "defects", count, True),
                Column("uncertain", "uncertain", count, True),
                Column("last week", "last_turns", count, True),
                Column("change", "change", lambda v: f"{v:+,}", True),
                Column("main failure point", "top_failure_point", stage_label),
            ],
        )
    )
    keys = owner_chart_keys(owners.get_column(OWNER).to_list())
    examples = report.tables["owner_examples"]
    for row in owners.iter_rows(named=True):
        name = row[OWNER]
        blocks.append(Heading(name, 3, keys[name]))
        blocks.append(
            Paragraph(
                f"{count(row['turns'])} turns this week ({count(row['defects'])} defects, "
                f"{count(row['uncertain'])} uncertain), {count(row['last_turns'])} last week"
                + (f"; contact {row['contact']}." if row["contact"] else ".")
            )
        )
        blocks.append(Chart(charts[keys[name]], f"{name}: turns per week by failure point"))
        blocks.append(
            table(
                examples.filter(pl.col(OWNER) == name),
                [
                    Column("utterance", "utterance"),
                    Column("failure point", "failure_point", stage_label),
                    Column("turns", "turns", count, True),
                    Column("example turn", "example_turn_id"),
                    Column("reasons", "reasons"),
                ],
            )
        )
    return blocks


def title(report: Report) -> str:
    scope = f" — {report.owner}" if report.owner else ""
    return f"Defect review {report.week}{scope}"


def report_blocks(report: Report, charts: dict[str, ChartImage]) -> list[Block]:
    """The whole report, in reading order."""
    blocks: list[Block] = [
        *_headline(report),
        *_trend(report, charts),
        *_where(report),
        *_input_drift(report),
        *_why(report, charts),
        *_uncertain(report, charts),
    ]
    if "owners" in report.tables:
        blocks += _who(report, charts)
    notes = (
        f"Weeks {report.weeks[0]} to {report.weeks[-1]}; this week is "
        f"{wording.week_dates(report.week)}. Generated by fpi {__version__}."
    )
    if report.redacted:
        notes += " Utterances are redacted: only their first word is shown."
    blocks.append(Paragraph(notes, muted=True))
    return blocks
