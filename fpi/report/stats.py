"""Weekly rates with dialogue-level bootstrap intervals, and week-over-week changes.

Turns of one dialogue are not independent (a failing dialogue tends to fail again), so the
bootstrap resamples whole dialogues. Resampling n dialogues with replacement is a multinomial
draw over the distinct (defects, classified turns) pairs the dialogues take, so each replicate
costs the number of distinct pairs (a few hundred at most), not the number of dialogues.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl

from fpi.errors import FpiError

REPLICATES = 2000
SEED = 47
CONFIDENCE = 0.95
YEARS = range(1970, 3000)  # of report weeks and simulated days: far from date's limits
MAX_WEEKS_BACK = 520

RATES_SCHEMA = pl.Schema(
    {
        "week": pl.String,
        "metric": pl.String,
        "defects": pl.Int64,
        "classified": pl.Int64,
        "rate": pl.Float64,
        "low": pl.Float64,
        "high": pl.Float64,
        "replicates": pl.List(pl.Float64),
    }
)


def week_start(week: str) -> date:
    """Monday of an ISO week written `YYYY-Www` (e.g. `2026-W47`) of a year in `YEARS`."""
    try:
        year, number = week.split("-W")
        if len(year) != 4 or len(number) != 2 or int(year) not in YEARS:
            raise ValueError
        return date.fromisocalendar(int(year), int(number), 1)
    except ValueError:
        raise FpiError(
            f"week {week!r}: expected an ISO week such as 2026-W47, "
            f"in the years {YEARS.start} to {YEARS.stop - 1}"
        ) from None


def week_label(day: date) -> str:
    iso = day.isocalendar()
    return f"{iso.year}-W{iso.week:02d}"


def week_window(week: str, weeks_back: int) -> tuple[list[str], datetime, datetime]:
    """The `weeks_back` ISO weeks ending with `week` (oldest first) and their UTC bounds."""
    if not 2 <= weeks_back <= MAX_WEEKS_BACK:
        raise FpiError(
            f"--weeks-back {weeks_back}: need at least 2 weeks to compare, at most {MAX_WEEKS_BACK}"
        )
    monday = week_start(week)
    mondays = [monday - timedelta(weeks=n) for n in range(weeks_back - 1, -1, -1)]
    since = datetime.combine(mondays[0], datetime.min.time(), tzinfo=UTC)
    until = datetime.combine(monday + timedelta(weeks=1), datetime.min.time(), tzinfo=UTC)
    return [week_label(m) for m in mondays], since, until


def iso_week(column: str = "timestamp") -> pl.Expr:
    return pl.col(column).dt.strftime("%G-W%V")


def bootstrap_ratio(
    defects: np.ndarray,
    totals: np.ndarray,
    dialogues: np.ndarray,
    *,
    rng: np.random.Generator,
    replicates: int = REPLICATES,
) -> np.ndarray:
    """Replicates of sum(defects) / sum(totals) over dialogues resampled with replacement.

    The dialogues are given grouped: `dialogues[i]` of them have `defects[i]` defects among
    `totals[i]` classified turns. A replicate whose dialogues hold no classified turn is NaN.
    """
    count = int(dialogues.sum())
    if count == 0:
        return np.full(replicates, np.nan)
    draws = rng.multinomial(count, dialogues / count, size=replicates)
    sampled_defects = draws @ defects.astype(np.float64)
    sampled_totals = draws @ totals.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sampled_totals > 0, sampled_defects / sampled_totals, np.nan)


def _interval(replicates: np.ndarray) -> tuple[float | None, float | None]:
    if np.isnan(replicates).all():
        return None, None
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.nanpercentile(replicates, [tail, 100 - tail])
    return float(low), float(high)


def _rng(seed: int, week: str, metric: str) -> np.random.Generator:
    """One stream per (week, metric): the same numbers whatever else is in the report."""
    return np.random.default_rng([seed, zlib.crc32(week.encode()), zlib.crc32(metric.encode())])


def weekly_rates(
    turns: pl.DataFrame,
    metrics: Sequence[str],
    *,
    replicates: int = REPLICATES,
    seed: int = SEED,
) -> pl.DataFrame:
    """Per week and metric: defects, classified turns, rate and its bootstrap interval.

    `turns` has `week`, `dialogue_id`, a boolean `classified` (the denominator) and one boolean
    column per metric (the numerator). The result keeps the bootstrap `replicates` so that
    `week_over_week` can compare weeks.
    """
    per_dialogue = turns.group_by("week", "dialogue_id").agg(
        pl.col("classified").sum(), *(pl.col(m).sum() for m in metrics)
    )
    rows = []
    for metric in metrics:
        pairs = (
            per_dialogue.group_by("week", metric, "classified")
            .len()
            .sort("week", metric, "classified")
        )
        for (week,), group in pairs.group_by("week", maintain_order=True):
            defects = group.get_column(metric).to_numpy()
            totals = group.get_column("classified").to_numpy()
            dialogues = group.get_column("len").to_numpy()
            reps = bootstrap_ratio(
                defects, totals, dialogues, rng=_rng(seed, week, metric), replicates=replicates
            )
            n_defects, n_classified = int(defects @ dialogues), int(totals @ dialogues)
            rate = n_defects / n_classified if n_classified else None
            rows.append((week, metric, n_defects, n_classified, rate, *_interval(reps), reps))
    return pl.DataFrame(rows, schema=RATES_SCHEMA, orient="row").sort("week", "metric")


def week_over_week(rates: pl.DataFrame, week: str, previous: str) -> pl.DataFrame:
    """Per metric: this week's and the previous week's rate, the change, its interval and
    whether the interval excludes zero (weeks resampled independently)."""
    by_metric = {(row["week"], row["metric"]): row for row in rates.iter_rows(named=True)}
    rows = []
    for metric in rates.get_column("metric").unique(maintain_order=True):
        this, last = by_metric.get((week, metric)), by_metric.get((previous, metric))
        rate = this["rate"] if this else None
        last_rate = last["rate"] if last else None
        if rate is None or last_rate is None:
            rows.append((metric, rate, last_rate, None, None, None, None))
            continue
        diff = np.asarray(this["replicates"]) - np.asarray(last["replicates"])
        low, high = _interval(diff)
        significant = low is not None and (low > 0 or high < 0)
        rows.append((metric, rate, last_rate, rate - last_rate, low, high, significant))
    return pl.DataFrame(
        rows,
        schema={
            "metric": pl.String,
            "rate": pl.Float64,
            "last_rate": pl.Float64,
            "change": pl.Float64,
            "change_low": pl.Float64,
            "change_high": pl.Float64,
            "significant": pl.Boolean,
        },
        orient="row",
    )
