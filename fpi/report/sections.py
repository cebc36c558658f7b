"""The report's numbers as polars frames: headline, trend, where, why, uncertain queue, owners.

Everything starts from `prepare`, which splits the triage rows of the report's weeks in two:
`turns`, narrow (ids, `week`, dimensions, owner and flags) for every rate and count, and
`details`, every column but only for this week's in-scope turns that are not correct (the
examples, reasons and utterances). The flags: `classified` (the denominator of every rate:
turns the model did not abstain on), `in_scope`, and one numerator per defect stage plus `all`.
With an owner filter, defects of other owners stay in the denominator but are not counted, so
a team's rate is its share of the overall defect rate.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from fpi.features import CATALOG
from fpi.owners import OWNER, OWNER_CONTACT, UNOWNED
from fpi.report.stats import week_over_week, week_start, weekly_rates
from fpi.schema import DEFECT_STAGES, FAILURE_POINTS, UNCERTAIN, Stage

#: Metric name of all defect stages together.
ALL = "all"
METRICS = (ALL, *DEFECT_STAGES)
DIMENSIONS = ("domain", "intent", "device_type", "locale")
TOP_SEGMENTS = 3
TOP_MOVERS = 5
TOP_FEATURES = 8
TOP_UTTERANCES = 5
TOP_PAIRS = 8
TOP_OWNER_EXAMPLES = 3
REASONS_SHOWN = 3
MISSING_VALUE = "(unknown)"
NO_ASR = "(no ASR text)"
NOTHING_RECOGNISED = "(nothing recognised)"


def _flags(owner: str | None) -> list[pl.Expr]:
    in_scope = pl.lit(True) if owner is None else (pl.col(OWNER) == owner).fill_null(False)
    stage = pl.col("failure_point")
    return [
        (stage != UNCERTAIN).fill_null(False).alias("classified"),
        in_scope.alias("in_scope"),
        (stage.is_in(DEFECT_STAGES).fill_null(False) & in_scope).alias(ALL),
        *(((stage == s).fill_null(False) & in_scope).alias(s) for s in DEFECT_STAGES),
    ]


def prepare(
    triaged: pl.LazyFrame, weeks: list[str], *, owner: str | None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(`turns`, `details`) for the report's `weeks` (consecutive, oldest first)."""
    since = datetime.combine(week_start(weeks[0]), datetime.min.time(), tzinfo=UTC)
    this_week = since + timedelta(weeks=len(weeks) - 1)
    until = this_week + timedelta(weeks=1)
    timestamp = pl.col("timestamp")
    week = (
        ((timestamp - since).dt.total_days() // 7)
        .replace_strict(dict(enumerate(weeks)), return_dtype=pl.Enum(weeks))
        .alias("week")
    )
    owner_columns = [c for c in (OWNER, OWNER_CONTACT) if c in triaged.collect_schema()]
    narrow = (
        triaged.select("timestamp", "dialogue_id", "failure_point", *DIMENSIONS, *owner_columns)
        .filter((timestamp >= since) & (timestamp < until))
        .with_columns(week, *_flags(owner))
        .drop("timestamp")
    )
    detailed = (
        triaged.filter(
            (timestamp >= this_week)
            & (timestamp < until)
            & (pl.col("failure_point") != Stage.CORRECT.value)
        )
        .with_columns(week, *_flags(owner))
        .filter(pl.col("in_scope"))
    )
    turns, details = pl.collect_all([narrow, detailed])
    return turns, details


def _count(name: str) -> pl.Expr:
    return pl.len().cast(pl.Int64).alias(name)


def normalised_utterance(column: str = "asr_text") -> pl.Expr:
    return pl.col(column).str.to_lowercase().str.strip_chars().str.replace_all(r"\s+", " ")


def shown_utterance(column: str, *, redact: bool) -> pl.Expr:
    """An utterance for display: masked after its first word with `redact`, placeholders for
    no text. Escaping is the renderer's job."""
    text = pl.col(column)
    if redact:
        first = text.str.extract(r"^\s*(\S+)", 1)
        text = pl.when(text.str.contains(r"\S\s+\S")).then(first + " ***").otherwise(text)
    return (
        pl.when(pl.col(column).is_null())
        .then(pl.lit(NO_ASR))
        .when(pl.col(column).str.strip_chars() == "")
        .then(pl.lit(NOTHING_RECOGNISED))
        .otherwise(text)
        .alias(column)
    )


def reasons_text(column: str = "reasons") -> pl.Expr:
    """The first reasons of a turn as one line: "text (+0.42); ..."."""
    return (
        pl.col(column)
        .list.head(REASONS_SHOWN)
        .list.eval(
            pl.format(
                "{} (+{})",
                pl.element().struct.field("text"),
                pl.element().struct.field("contribution").round(2).cast(pl.String),
            )
        )
        .list.join("; ")
        .alias(column)
    )


def rates(turns: pl.DataFrame) -> pl.DataFrame:
    """Per week and metric: defects, classified, rate, bootstrap interval and replicates."""
    return weekly_rates(turns, METRICS)


def trend(rates_frame: pl.DataFrame, weeks: list[str]) -> pl.DataFrame:
    """Weekly rate per failure point (and `all`) with intervals; weeks without data are null."""
    grid = pl.DataFrame({"week": weeks}).join(
        pl.DataFrame({"failure_point": list(METRICS)}), how="cross"
    )
    return grid.join(
        rates_frame.drop("replicates").rename({"metric": "failure_point"}),
        on=["week", "failure_point"],
        how="left",
    )


def headline(turns: pl.DataFrame, rates_frame: pl.DataFrame, week: str, previous: str) -> dict:
    """This week's totals, defect rate with interval, and the change against last week."""
    this = turns.filter(pl.col("week") == week)
    change = week_over_week(rates_frame, week, previous).filter(pl.col("metric") == ALL)
    this_rate = rates_frame.filter((pl.col("week") == week) & (pl.col("metric") == ALL))
    return {
        "week": week,
        "previous_week": previous,
        "turns": this.height,
        "classified": int(this.get_column("classified").sum()),
        "uncertain": this.filter(
            (pl.col("failure_point") == UNCERTAIN) & pl.col("in_scope")
        ).height,
        "defects": int(this.get_column(ALL).sum()),
        "defect_rate": this_rate.get_column("rate").first(),
        "defect_rate_low": this_rate.get_column("low").first(),
        "defect_rate_high": this_rate.get_column("high").first(),
        **change.drop("metric", "rate").row(0, named=True),
    }


def mix(turns: pl.DataFrame, rates_frame: pl.DataFrame, week: str, previous: str) -> pl.DataFrame:
    """Per defect stage this week: turns, rate, share of defects, and the change against last
    week with its interval and significance."""
    counts = (
        rates_frame.filter(pl.col("week").is_in([week, previous]))
        .pivot("week", index="metric", values="defects")
        .rename({week: "turns", previous: "last_turns"}, strict=False)
    )
    for column in ("turns", "last_turns"):
        if column not in counts.columns:
            counts = counts.with_columns(pl.lit(None, dtype=pl.Int64).alias(column))
    total = max(int(turns.filter(pl.col("week") == week).get_column(ALL).sum()), 1)
    return (
        pl.DataFrame({"failure_point": list(DEFECT_STAGES)})
        .join(counts.rename({"metric": "failure_point"}), on="failure_point", how="left")
        .join(
            week_over_week(rates_frame, week, previous).rename({"metric": "failure_point"}),
            on="failure_point",
            how="left",
        )
        .with_columns(
            pl.col("turns", "last_turns").fill_null(0),
            (pl.col("turns").fill_null(0) / total).alias("share_of_defects"),
        )
        .select(
            "failure_point",
            "turns",
            "rate",
            "share_of_defects",
            "last_turns",
            "last_rate",
            "change",
            "change_low",
            "change_high",
            "significant",
        )
    )


def _ratio(numerator: str, denominator: str) -> pl.Expr:
    """numerator / denominator, null (not NaN) where the denominator is zero."""
    return pl.when(pl.col(denominator) > 0).then(pl.col(numerator) / pl.col(denominator))


def segments(turns: pl.DataFrame, week: str, previous: str) -> pl.DataFrame:
    """Every (failure point, dimension, value): defect turns and rate this week and last."""
    two_weeks = turns.filter(pl.col("week").is_in([week, previous]))
    parts = []
    for dimension in DIMENSIONS:
        counts = (
            two_weeks.group_by("week", pl.col(dimension).fill_null(MISSING_VALUE).alias("value"))
            .agg(*(pl.col(c).sum().cast(pl.Int64) for c in ("classified", *DEFECT_STAGES)))
            .unpivot(
                index=["week", "value", "classified"],
                on=list(DEFECT_STAGES),
                variable_name="failure_point",
                value_name="turns",
            )
        )
        this = counts.filter(pl.col("week") == week).drop("week")
        last = (
            counts.filter(pl.col("week") == previous)
            .drop("week")
            .rename({"classified": "last_classified", "turns": "last_turns"})
        )
        parts.append(
            this.join(last, on=["value", "failure_point"], how="full", coalesce=True).with_columns(
                pl.lit(dimension).alias("dimension")
            )
        )
    frame = pl.concat(parts).with_columns(
        pl.col("turns", "last_turns", "classified", "last_classified").fill_null(0)
    )
    stage_totals = pl.col("turns").sum().over("failure_point", "dimension")
    return frame.with_columns(
        (pl.col("turns") / stage_totals).alias("share"),
        _ratio("turns", "classified").alias("rate"),
        _ratio("last_turns", "last_classified").alias("last_rate"),
        (pl.col("turns") - pl.col("last_turns")).alias("change_turns"),
    ).select(
        "failure_point",
        "dimension",
        "value",
        "turns",
        "share",
        "rate",
        "last_turns",
        "last_rate",
        "change_turns",
    )


def _top(
    frame: pl.DataFrame, key: str | pl.Expr, n: int, over: list[str], then: list[str]
) -> pl.DataFrame:
    """The `n` largest rows by `key` (ties by `then`) within each `over` group; groups in
    pipeline order when grouped by failure point."""
    ranked = frame.sort([key, *then], descending=[True] + [False] * len(then))
    kept = ranked.filter(pl.int_range(pl.len()).over(over) < n)
    stage_order = {s: i for i, s in enumerate((*FAILURE_POINTS, UNCERTAIN))}
    group_order = [
        pl.col(c).replace_strict(stage_order, default=len(stage_order))
        if c == "failure_point"
        else pl.col(c)
        for c in over
    ]
    return kept.sort(group_order, maintain_order=True)


def carriers(segment_frame: pl.DataFrame) -> pl.DataFrame:
    """Per failure point and dimension, the values carrying most of this week's defects."""
    return _top(
        segment_frame.filter(pl.col("turns") > 0),
        "turns",
        TOP_SEGMENTS,
        ["failure_point", "dimension"],
        ["value"],
    )


def movers(segment_frame: pl.DataFrame) -> pl.DataFrame:
    """Per failure point, the values whose defect turns moved most against last week."""
    return _top(
        segment_frame.filter(pl.col("change_turns") != 0),
        pl.col("change_turns").abs(),
        TOP_MOVERS,
        ["failure_point"],
        ["dimension", "value"],
    )


def drivers(details: pl.DataFrame) -> pl.DataFrame:
    """Per failure point, the features that drove this week's attributions: mean |SHAP
    contribution| per turn (0 where a feature is not among a turn's reasons) and the share of
    turns listing it."""
    defects = details.filter(pl.col(ALL))
    stage_turns = defects.group_by("failure_point").len("stage_turns")
    descriptions = pl.DataFrame(
        {"feature": [f.name for f in CATALOG], "description": [f.description for f in CATALOG]}
    )
    per_feature = (
        defects.select("failure_point", "reasons")
        .explode("reasons")
        .drop_nulls("reasons")
        .unnest("reasons")
        .group_by("failure_point", "feature")
        .agg(pl.col("contribution").abs().sum().alias("abs_sum"), _count("turns"))
        .join(stage_turns, on="failure_point")
        .join(descriptions, on="feature", how="left")
        .with_columns(
            (pl.col("abs_sum") / pl.col("stage_turns")).alias("mean_abs_contribution"),
            (pl.col("turns") / pl.col("stage_turns")).alias("share_of_turns"),
        )
    )
    top = _top(per_feature, "mean_abs_contribution", TOP_FEATURES, ["failure_point"], ["feature"])
    return top.select(
        "failure_point", "feature", "description", "mean_abs_contribution", "share_of_turns"
    )


def _examples(frame: pl.DataFrame, by: list[str], n: int, *, redact: bool) -> pl.DataFrame:
    """The `n` most frequent utterances per `by` group, each with its most confident turn."""
    confident_first = pl.col("confidence").fill_null(0.0)
    grouped = (
        frame.with_columns(normalised_utterance().alias("utterance"))
        .group_by(*by, "utterance")
        .agg(
            _count("turns"),
            *(
                pl.col(c).sort_by(confident_first, descending=True).first()
                for c in ("turn_id", "failure_point", "domain", "intent", "device_type", "reasons")
                if c not in by
            ),
        )
        .with_columns(
            (pl.col("turns") / pl.col("turns").sum().over(by)).alias("share"),
            reasons_text(),
            shown_utterance("utterance", redact=redact),
        )
        .rename({"turn_id": "example_turn_id"})
    )
    return _top(grouped, "turns", n, by, ["utterance"])


def utterances(details: pl.DataFrame, *, redact: bool) -> pl.DataFrame:
    """Per failure point, this week's most frequent failing utterances with an example turn."""
    defects = details.filter(pl.col(ALL))
    return _examples(defects, ["failure_point"], TOP_UTTERANCES, redact=redact).select(
        "failure_point",
        "utterance",
        "turns",
        "share",
        "example_turn_id",
        "domain",
        "intent",
        "device_type",
        "reasons",
    )


def runner_up() -> tuple[pl.Expr, pl.Expr]:
    """The most probable class other than `predicted`, and its probability."""
    others = pl.concat_list(
        pl.when(pl.col("predicted") == c).then(pl.lit(-1.0)).otherwise(pl.col(f"p_{c}"))
        for c in FAILURE_POINTS
    )
    name = others.list.arg_max().replace_strict(
        dict(enumerate(FAILURE_POINTS)), return_dtype=pl.String
    )
    return name.alias("runner_up"), others.list.max().alias("p_runner")


def uncertain_queue(
    turns: pl.DataFrame, details: pl.DataFrame, week: str, previous: str, *, redact: bool
) -> tuple[dict, pl.DataFrame]:
    """How many turns went to human review, and which classes competed for them."""
    this = details.filter(pl.col("failure_point") == UNCERTAIN)
    week_turns = turns.filter(pl.col("week") == week).height
    last_week = turns.filter(
        (pl.col("week") == previous) & (pl.col("failure_point") == UNCERTAIN) & pl.col("in_scope")
    )
    summary = {
        "turns": this.height,
        "share_of_turns": this.height / week_turns if week_turns else None,
        "last_turns": last_week.height,
        "median_confidence": this.get_column("confidence").median(),
    }
    margin = pl.col("confidence") - pl.col("p_runner")
    pairs = (
        this.with_columns(*runner_up(), normalised_utterance().alias("utterance"))
        .group_by("predicted", "runner_up")
        .agg(
            _count("turns"),
            pl.col("confidence").median().alias("median_confidence"),
            margin.median().alias("median_margin"),
            pl.col("turn_id").sort_by("confidence").first().alias("example_turn_id"),
            pl.col("utterance").sort_by("confidence").first(),
        )
        .with_columns(
            (pl.col("turns") / max(this.height, 1)).alias("share"),
            shown_utterance("utterance", redact=redact),
        )
        .sort("turns", "predicted", "runner_up", descending=[True, False, False])
        .head(TOP_PAIRS)
    )
    return summary, pairs.select(
        "predicted",
        "runner_up",
        "turns",
        "share",
        "median_confidence",
        "median_margin",
        "example_turn_id",
        "utterance",
    )


def owned_turns(turns: pl.DataFrame) -> pl.DataFrame:
    """In-scope turns that get an owner (all but correct), `owner` null shown as unowned."""
    return turns.filter(
        (pl.col("failure_point") != Stage.CORRECT.value) & pl.col("in_scope")
    ).with_columns(pl.col(OWNER).fill_null(UNOWNED))


def owner_table(turns: pl.DataFrame, week: str, previous: str) -> pl.DataFrame:
    """Per owner: turns this week (defects and uncertain), last week, the change and the main
    failure point."""
    owned = owned_turns(turns)
    this = owned.filter(pl.col("week") == week)
    counts = this.group_by(OWNER).agg(
        _count("turns"),
        pl.col(ALL).sum().cast(pl.Int64).alias("defects"),
        (pl.col("failure_point") == UNCERTAIN).sum().cast(pl.Int64).alias("uncertain"),
        pl.col(OWNER_CONTACT).drop_nulls().first().alias("contact"),
        pl.col("failure_point").mode().sort().first().alias("top_failure_point"),
    )
    last = owned.filter(pl.col("week") == previous).group_by(OWNER).agg(_count("last_turns"))
    return (
        counts.join(last, on=OWNER, how="full", coalesce=True)
        .with_columns(pl.col("turns", "defects", "uncertain", "last_turns").fill_null(0))
        .with_columns((pl.col("turns") - pl.col("last_turns")).alias("change"))
        .sort("turns", OWNER, descending=[True, False])
        .select(
            OWNER,
            "contact",
            "turns",
            "defects",
            "uncertain",
            "last_turns",
            "change",
            "top_failure_point",
        )
    )


def owner_trend(turns: pl.DataFrame, weeks: list[str]) -> pl.DataFrame:
    """Per owner, week and failure point: owned turns (zero-filled over the weeks)."""
    owned = owned_turns(turns)
    counts = owned.group_by(OWNER, pl.col("week").cast(pl.String), "failure_point").agg(
        _count("turns")
    )
    grid = (
        owned.select(OWNER)
        .unique()
        .join(pl.DataFrame({"week": weeks}), how="cross")
        .join(pl.DataFrame({"failure_point": [*DEFECT_STAGES, UNCERTAIN]}), how="cross")
    )
    return (
        grid.join(counts, on=[OWNER, "week", "failure_point"], how="left")
        .with_columns(pl.col("turns").fill_null(0).cast(pl.Int64))
        .sort(OWNER, "week", "failure_point")
    )


def owner_examples(details: pl.DataFrame, *, redact: bool) -> pl.DataFrame:
    """Per owner, this week's most frequent utterances with an example turn."""
    owned = owned_turns(details)
    return _examples(owned, [OWNER], TOP_OWNER_EXAMPLES, redact=redact).select(
        OWNER, "utterance", "failure_point", "turns", "example_turn_id", "reasons"
    )
