"""Who owns a defect: an owners TOML maps failure points (optionally narrowed) to teams.

The format, like CODEOWNERS, is a list of rules tried in order; the first match owns the turn:

    [teams.asr-core]
    contact = "asr-oncall@example.com"

    [[rules]]
    failure_point = "asr"          # or a list: ["asr", "false_wake"]; absent = any
    device_type = "car"            # optional narrowing: domain, intent, device_type, locale
    team = "asr-automotive"

A rule matches every turn but `correct` ones on the keys it leaves out (so a rule with only
`team` is a catch-all, `uncertain` turns included). Values match exactly (case-sensitive).
"""

from __future__ import annotations

import difflib
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

import polars as pl

from fpi.errors import ConfigError
from fpi.io.files import check_output
from fpi.schema import DEFECT_STAGES, DEVICE_TYPES, OWNER, OWNER_CONTACT, UNCERTAIN, Stage

#: How turns no rule matched are reported (and the name of their routed file).
UNOWNED = "unowned"
#: Turn columns a rule can narrow on, besides `failure_point`.
NARROWING_KEYS = ("domain", "intent", "device_type", "locale")
RULE_KEYS = ("team", "failure_point", *NARROWING_KEYS)
TEAM_KEYS = ("contact",)
OWNED_FAILURE_POINTS = (*DEFECT_STAGES, UNCERTAIN)

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)


@dataclass(frozen=True, slots=True)
class Team:
    name: str
    contact: str


@dataclass(frozen=True, slots=True)
class Rule:
    """One `[[rules]]` entry: `team` owns turns whose columns take one of the listed values."""

    team: str
    conditions: tuple[tuple[str, tuple[str, ...]], ...]  # (column, allowed values), ANDed
    line: int

    def expr(self) -> pl.Expr:
        """True where the rule matches (nulls never match a condition)."""
        match = pl.col("failure_point") != Stage.CORRECT.value
        for column, values in self.conditions:
            match = match & pl.col(column).is_in(list(values)).fill_null(False)
        return match


@dataclass(frozen=True, slots=True)
class Owners:
    path: Path
    teams: dict[str, Team]
    rules: tuple[Rule, ...]


class _Locator:
    """Finds the line of a rule, a team, or one of their keys in the TOML text."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        headers = [(i, line) for i, line in enumerate(self.lines) if re.match(r"\s*\[", line)]
        self.header_lines = [i for i, _ in headers]
        self.rule_headers = [i for i, line in headers if re.match(r"\s*\[\[\s*rules\s*\]\]", line)]
        self.team_headers: dict[str, int] = {}
        for i, line in headers:
            found = re.match(r"\s*\[\s*teams\s*\.(.+?)\]\s*(#.*)?$", line)
            if found:
                try:
                    (name,) = tomllib.loads(f"{found.group(1)} = 0")
                except (tomllib.TOMLDecodeError, ValueError):
                    continue
                self.team_headers.setdefault(name, i)

    def _block_end(self, start: int) -> int:
        return next((i for i in self.header_lines if i > start), len(self.lines))

    def _key_line(self, start: int, key: str | None) -> int:
        if key is not None:
            pattern = re.compile(rf"""\s*(["']?){re.escape(key)}\1\s*=""")
            for i in range(start, self._block_end(start)):
                if pattern.match(self.lines[i]):
                    return i + 1
        return start + 1

    def _fallback(self, word: str) -> int:
        pattern = re.compile(rf"""(^|[\s"'.]){re.escape(word)}($|[\s"'.=\]])""")
        return next((i + 1 for i, line in enumerate(self.lines) if pattern.search(line)), 1)

    def rule(self, index: int, key: str | None = None) -> int:
        if index < len(self.rule_headers):
            return self._key_line(self.rule_headers[index], key)
        return self._fallback("rules")

    def team(self, name: str, key: str | None = None) -> int:
        if name in self.team_headers:
            return self._key_line(self.team_headers[name], key)
        return self._fallback(name)


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _strings(value: object) -> tuple[str, ...] | None:
    """A string or a non-empty list of strings as a tuple; None for anything else."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def _check_keys(table: dict, allowed: Sequence[str], label: str, line_of, fail) -> None:
    """Fail at the first key of `table` not in `allowed`, naming the closest allowed one."""
    for key in table:
        if key not in allowed:
            fail(
                line_of(key),
                f"{label}: unknown key {key!r}{_suggest(key, allowed)}; "
                f"allowed: {', '.join(allowed)}",
            )


def _parse_teams(raw: object, fail, locate: _Locator) -> dict[str, Team]:
    if not isinstance(raw, dict) or not raw:
        fail(locate._fallback("teams"), "expected [teams.<name>] tables with a contact")
    teams = {}
    for name, table in raw.items():
        if not isinstance(table, dict):
            fail(locate.team(name), f"team {name!r}: expected a table with a contact")
        _check_keys(table, TEAM_KEYS, f"team {name!r}", partial(locate.team, name), fail)
        contact = table.get("contact")
        if not isinstance(contact, str) or not contact.strip():
            fail(locate.team(name, "contact"), f"team {name!r}: needs a non-empty contact")
        teams[name] = Team(name=name, contact=contact)
    return teams


def _parse_rule(index: int, raw: object, teams, fail, locate: _Locator) -> Rule:
    label = f"rule {index + 1}"
    if not isinstance(raw, dict):
        fail(locate.rule(index), f"{label}: expected a [[rules]] table")
    _check_keys(raw, RULE_KEYS, label, partial(locate.rule, index), fail)
    team = raw.get("team")
    if not isinstance(team, str):
        fail(locate.rule(index, "team"), f'{label}: needs team = "<name>"')
    if team not in teams:
        fail(
            locate.rule(index, "team"),
            f"{label}: unknown team {team!r}{_suggest(team, teams)}; "
            f"declare it as [teams.{team}] with a contact",
        )
    conditions = []
    for key in ("failure_point", *NARROWING_KEYS):
        if key not in raw:
            continue
        values = _strings(raw[key])
        if values is None:
            fail(locate.rule(index, key), f"{label}: {key} must be a string or a list of strings")
        allowed = {"failure_point": OWNED_FAILURE_POINTS, "device_type": DEVICE_TYPES}.get(key)
        for value in values if allowed else ():
            if value not in allowed:
                why = "correct turns have no owner" if value == Stage.CORRECT else "unknown"
                fail(
                    locate.rule(index, key),
                    f"{label}: {key} {value!r}: {why}{_suggest(value, allowed)}; "
                    f"allowed: {', '.join(allowed)}",
                )
        conditions.append((key, values))
    return Rule(team=team, conditions=tuple(conditions), line=locate.rule(index))


def parse_owners(text: str, path: Path | str = "<owners>") -> Owners:
    """Owners from TOML text; any mistake is a ConfigError naming `path` and the line."""
    path = Path(path)

    def fail(line: int, message: str):
        raise ConfigError(f"{path}:{line}: {message}")

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        at = re.search(r"at line (\d+)", str(exc))
        fail(int(at.group(1)) if at else 1, f"invalid TOML: {exc}")
    locate = _Locator(text)
    for key in data:
        if key not in ("teams", "rules"):
            fail(locate._fallback(key), f"unknown top-level key {key!r}; allowed: teams, rules")
    teams = _parse_teams(data.get("teams"), fail, locate)
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        fail(locate._fallback("rules"), "expected at least one [[rules]] table")
    rules = tuple(_parse_rule(i, raw, teams, fail, locate) for i, raw in enumerate(raw_rules))
    return Owners(path=path, teams=teams, rules=rules)


def load_owners(path: Path | str) -> Owners:
    """Read and check an owners TOML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read owners file: {exc}") from None
    return parse_owners(text, path)


def assign_owners(triaged: Frame, owners: Owners) -> Frame:
    """Add `owner` (first matching rule's team; null if none or a correct turn) and its
    contact, to an eager or a lazy frame."""
    chain = None
    for rule in owners.rules:
        step = pl.when(rule.expr()) if chain is None else chain.when(rule.expr())
        chain = step.then(pl.lit(rule.team))
    owner = chain.otherwise(pl.lit(None, dtype=pl.String)).alias(OWNER)
    contacts = {name: team.contact for name, team in owners.teams.items()}
    return triaged.with_columns(owner).with_columns(
        pl.col(OWNER)
        .replace_strict(contacts, default=None, return_dtype=pl.String)
        .alias(OWNER_CONTACT)
    )


# ---- routing -------------------------------------------------------------------------

_WINDOWS_RESERVED = re.compile(r"(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?", re.IGNORECASE)
_UNSAFE = re.compile(r"""[\x00-\x1f\x7f/\\:*?"<>|\s]+""")
_MAX_STEM_BYTES = 120


def safe_file_stem(name: str) -> str:
    """A file-name stem for any team name: NFKC-normalised, no separators, control
    characters, `..`, leading dots or Windows-reserved names; never empty."""
    stem = _UNSAFE.sub("_", unicodedata.normalize("NFKC", name))
    stem = re.sub(r"\.{2,}", ".", stem).strip(" ._")
    stem = re.sub(r"_{2,}", "_", stem)
    while len(stem.encode()) > _MAX_STEM_BYTES:
        stem = stem[:-1]
    if not stem:
        return "team"
    return f"_{stem}" if _WINDOWS_RESERVED.fullmatch(stem) else stem


def owner_file_stems(names: Sequence[str]) -> list[str]:
    """A distinct safe stem per name, in order, unique even on case-insensitive file
    systems (later names get `-2`, `-3`...)."""
    taken: set[str] = set()
    stems = []
    for name in names:
        base = safe_file_stem(name)
        stem, n = base, 1
        while stem.casefold() in taken:
            n += 1
            stem = f"{base}-{n}"
        taken.add(stem.casefold())
        stems.append(stem)
    return stems


def route(
    triaged: pl.DataFrame,
    owners: Owners,
    out_dir: Path | str,
    *,
    suffix: str = ".parquet",
    inputs: Sequence[Path] = (),
) -> pl.DataFrame:
    """Write every non-correct turn to `<out_dir>/<team><suffix>`, unmatched ones to `unowned`.

    Every declared team gets a file (empty when it owns nothing), each written atomically;
    a file that would replace one of `inputs` is refused first. Returns one row per file:
    owner, file, turns.
    """
    from fpi.io.triagefile import write_triage_frame

    out_dir = Path(out_dir)
    check_output(out_dir, option="--out", directory=True)
    owned = assign_owners(triaged, owners).filter(pl.col("failure_point") != Stage.CORRECT.value)
    buckets = [(UNOWNED, pl.col(OWNER).is_null())]
    buckets += [(name, pl.col(OWNER) == name) for name in owners.teams]
    stems = owner_file_stems([name for name, _ in buckets])
    for stem in stems:
        check_output(out_dir / f"{stem}{suffix}", inputs, option="--out")
    rows = []
    for (name, mask), stem in zip(buckets, stems, strict=True):
        part = owned.filter(mask)
        path = write_triage_frame(part, out_dir / f"{stem}{suffix}")
        rows.append((name, str(path), len(part)))
    return pl.DataFrame(rows, schema=["owner", "file", "turns"], orient="row")


def route_file(
    input_path: Path | str, owners_path: Path | str, out_dir: Path | str
) -> pl.DataFrame:
    """`route` for a triage output file, writing the routed files in the input's format."""
    from fpi.io.triagefile import read_triage_file

    input_path = Path(input_path)
    check_output(out_dir, [input_path], option="--out", directory=True)
    owners = load_owners(owners_path)
    triaged = read_triage_file(input_path)
    return route(triaged, owners, out_dir, suffix=input_path.suffix.lower(), inputs=[input_path])
