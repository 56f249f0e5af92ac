"""The data contract of a raw file, derived from a `UseCaseSpec`.

A raw file goes through two gates. The *schema* gate looks at the file as a whole (encoding,
delimiter, header, column types); a break there stops the graph with a `ContractViolation` that
names the file, the column and the rule. The *row* gate sends every data row to exactly one of two
tables: `validated` (typed, de-duplicated) or `quarantined` (the exact text of the line, its line
number and every rule it broke). Copies of a key are settled by the spec's duplicate policy; a copy
folded into another row is listed in `merged` with the line it went into. Nothing is dropped:
rows(raw) == rows(validated) + rows(quarantined) + rows(merged).

Header names are the spec's raw names (`Column.header`); validated columns carry the clean names.

Labels arrive late: a day's file first lands with the label columns (target and leakage) blank and
lands again, complete, days later. A row with all of them blank is validated with nulls there
("labels pending"); a row with some blank and some present is quarantined (`labels.partial`).

Lines are read as text first (polars, vectorised) so that a malformed line is quarantined with
its own words instead of aborting the parse. Files are plain CSV without quoted fields.
"""

from __future__ import annotations

import io
import operator
from dataclasses import dataclass

import polars as pl

from ml.spec import Column, UseCaseSpec

DELIMITER = ","
LINE_COLUMN = "line"  # each row's raw line, as read from the file (its number is `line_number`)
# Below this share of parseable values a column is treated as having the wrong type (a schema
# break) rather than as holding a few bad rows (quarantined).
MIN_PARSEABLE_SHARE = 0.5
_DTYPES = {"int": pl.Int64, "float": pl.Float64}
_OPERATORS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
              ">=": operator.ge}
_UNDECODABLE = "\ufffd"
CONFLICT = "unique_key.conflict"
_OTHER_DELIMITERS = (";", "\t", "|")
# Data lines split and judged at a time (see `split_lines`): bounds the text cells held in memory.
CHUNK_ROWS = 1_000_000


@dataclass(frozen=True)
class Violation:
    file: str
    column: str | None
    rule: str
    detail: str

    def __str__(self) -> str:
        where = f"column {self.column!r}" if self.column else "whole file"
        return f"{self.file}: {where}: rule '{self.rule}' broken: {self.detail}"


class ContractViolation(ValueError):
    """A schema break: the file cannot be read row by row, so nothing downstream may run."""

    def __init__(self, violations: list[Violation]):
        self.violations = violations
        super().__init__("; ".join(str(v) for v in violations))


@dataclass(frozen=True)
class SplitResult:
    validated: pl.DataFrame
    quarantined: pl.DataFrame  # file, line_number, raw_line, reason
    raw_rows: int
    merged: pl.DataFrame  # file, line_number, raw_line, reason: copies folded into a validated row

    @property
    def conserved(self) -> bool:
        return self.raw_rows == self.validated.height + self.quarantined.height + self.merged.height

    @property
    def conflict_rows(self) -> int:
        """Quarantined copies of a key that disagreed with another copy."""
        return conflict_rows(self.quarantined)


def conflict_rows(quarantined: pl.DataFrame) -> int:
    return quarantined.select(pl.col("reason").str.contains(f"[{CONFLICT}]", literal=True).sum()).item()


def read_lines(content: bytes, encoding: str = "utf-8") -> pl.DataFrame:
    """Every line of the file as text with its 1-based line number; blank lines are not rows.

    Undecodable bytes become U+FFFD, so such a row is quarantined (rule `encoding`) with the rest of
    its text intact; the raw file itself is kept byte for byte upstream. A header or a majority of
    lines that do not decode is a schema break instead (see `_encoding_violations`).
    """
    if not content.strip():
        return pl.DataFrame({"line_number": [], LINE_COLUMN: []}, schema={"line_number": pl.Int64, LINE_COLUMN: pl.String})
    if encoding.replace("-", "").lower() != "utf8":  # polars reads UTF-8 only: transcode, replacing what fails
        content = content.decode(encoding, errors="replace").encode("utf-8")
    lines = pl.read_csv(
        io.BytesIO(content),
        has_header=False,
        separator="\x1f",
        quote_char=None,
        infer_schema=False,
        encoding="utf8-lossy",
        new_columns=[LINE_COLUMN],
    )
    return (
        lines.with_row_index("line_number", offset=1)
        .with_columns(pl.col("line_number").cast(pl.Int64), pl.col(LINE_COLUMN).str.strip_chars_end("\r"))
        .filter(pl.col(LINE_COLUMN).is_not_null() & (pl.col(LINE_COLUMN).str.strip_chars() != ""))
    )


def count_rows(content: bytes) -> int:
    """Data rows in a raw file: non-blank lines after the header (any ASCII-compatible encoding)."""
    return max(read_lines(content).height - 1, 0)


def _header_names(text: str) -> list[str]:
    return [h.strip().lstrip("\ufeff") for h in text.split(DELIMITER)]


def _header(lines: pl.DataFrame) -> list[str]:
    return _header_names(lines[LINE_COLUMN][0])


def schema_violations(spec: UseCaseSpec, content: bytes, file: str) -> list[Violation]:
    """File-level rules: not empty, decodable, comma-delimited, exactly the spec's columns, parseable types."""
    lines = read_lines(content, spec.encoding)
    return _header_violations(spec, lines, file) or _type_violations(spec, _parsed(spec, lines), file)


def _encoding_violations(spec: UseCaseSpec, lines: pl.DataFrame, file: str) -> list[Violation]:
    """An undecodable header, or most lines undecodable, means the file is not in the declared encoding."""
    bad = lines.filter(pl.col(LINE_COLUMN).str.contains(_UNDECODABLE, literal=True))["line_number"]
    data_lines = lines.height - 1
    if bad.len() and (bad[0] == lines["line_number"][0] or bad.len() > MIN_PARSEABLE_SHARE * data_lines):
        return [Violation(file, None, "file.encoding",
                          f"{bad.len()} of {lines.height} lines are not valid {spec.encoding} (first at line "
                          f"{bad[0]}); declare the file's encoding in the spec")]
    return []


def _header_violations(spec: UseCaseSpec, lines: pl.DataFrame, file: str) -> list[Violation]:
    if lines.height == 0:
        return [Violation(file, None, "file.not_empty", "the file has no header and no rows")]
    if encoding := _encoding_violations(spec, lines, file):
        return encoding
    header = _header(lines)
    expected = [c.header for c in spec.columns]
    if len(header) == 1 and len(expected) > 1:
        used = next((d for d in _OTHER_DELIMITERS if d in header[0]), None)
        hint = f"the header looks {used!r}-delimited" if used else "the header has a single field"
        return [Violation(file, None, "file.delimiter", f"expected {DELIMITER!r}-delimited columns; {hint}")]
    out = [
        Violation(file, c, "schema.required_column", f"column missing from header {header}")
        for c in expected if c not in header
    ]
    out += [
        Violation(file, c, "schema.unexpected_column", f"column not in the contract {expected}")
        for c in header if c not in expected
    ]
    if len(set(header)) != len(header):
        out.append(Violation(file, None, "schema.unique_columns", f"duplicate column names in {header}"))
    return out


def typed_column(name: str) -> str:
    """The column holding `name`'s typed values beside its raw text."""
    return f"{name}__typed"


def _event_day(spec: UseCaseSpec) -> pl.Expr:
    """The typed event column as a date: the day a row belongs to."""
    event = pl.col(typed_column(spec.event_date))
    return event.dt.date() if spec.event_column.dtype == "timestamp" else event


def _parsed(spec: UseCaseSpec, lines: pl.DataFrame) -> pl.DataFrame:
    """Data lines split into text cells (by header position), their field count and typed values."""
    data = lines.slice(1)
    parsed, _ = typed_cells(spec, _cells(data, _header(lines), _padded(data)), frozenset())
    return parsed.with_columns(filled_over_day(spec, spec.column(name)) for name in spec.fill_over_day)


def _padded(data: pl.DataFrame) -> bool:
    """Padding is rare: cells are stripped only when a data line of the file has some."""
    return bool(data[LINE_COLUMN].str.contains(r"\s").any())


def _cells(data: pl.DataFrame, header: list[str], strip: bool) -> pl.DataFrame:
    """Data lines with their field count and their text cells, one column per header name."""
    cells = data.with_columns(
        pl.col(LINE_COLUMN).str.count_matches(DELIMITER, literal=True).add(1).alias("_fields"),
        pl.col(LINE_COLUMN).str.split_exact(DELIMITER, len(header) - 1).struct.rename_fields(header).alias("_s"),
    ).unnest("_s")
    return cells.with_columns(pl.col(header).str.strip_chars()) if strip else cells


def typed_cells(spec: UseCaseSpec, cells: pl.DataFrame,
                 lenient: frozenset[str]) -> tuple[pl.DataFrame, frozenset[str]]:
    """Typed values beside the cells, and the int columns (outside `lenient`) found to need the lenient parse.

    Fast pass first; integers written as floats ("3.0") get the slower lenient parse, per column:
    the columns in `lenient` (known from an earlier slice of the file) and those where the fast
    parse leaves a value unparsed.
    """
    parsed = cells.with_columns(
        (_parse_int_lenient(pl.col(c.header)) if c.name in lenient else _parse(pl.col(c.header), c))
        .alias(typed_column(c.name)) for c in spec.columns)
    found = frozenset(c.name for c in spec.columns
                      if c.dtype == "int" and c.name not in lenient and parsed.select(_unparsed(c).any()).item())
    parsed = parsed.with_columns(_parse_int_lenient(pl.col(c.header)).alias(typed_column(c.name))
                                 for c in spec.columns if c.name in found)
    return parsed, found


def filled_over_day(spec: UseCaseSpec, c: Column) -> pl.Expr:
    """A blank cell of a day-level column takes the day's value (a day with two values breaks a rule)."""
    typed = pl.col(typed_column(c.name))
    return pl.when(_blank(c.header)).then(typed.max().over(_event_day(spec))).otherwise(typed).alias(typed_column(c.name))


def _unparsed(c: Column) -> pl.Expr:
    return pl.col(typed_column(c.name)).is_null() & ~_blank(c.header)


def _type_tally(spec: UseCaseSpec, parsed: pl.DataFrame) -> dict[str, tuple[int, int, str | None]]:
    """Per column: values present, values that do not parse, and the first of those (in line order)."""
    present = [(~_blank(c.header)).sum().alias(c.name) for c in spec.columns]
    failed = [_unparsed(c).sum().alias(c.name) for c in spec.columns]
    counts = parsed.select(present).row(0, named=True)
    failures = parsed.select(failed).row(0, named=True)
    examples = {}
    if any(failures.values()):
        examples = parsed.select(pl.col(c.header).filter(_unparsed(c)).first().alias(c.name)
                                 for c in spec.columns if failures[c.name]).row(0, named=True)
    return {c.name: (counts[c.name], failures[c.name], examples.get(c.name)) for c in spec.columns}


def _type_violations(spec: UseCaseSpec, parsed: pl.DataFrame, file: str) -> list[Violation]:
    return _tallied_type_violations(spec, [_type_tally(spec, parsed)], file)


def _tallied_type_violations(spec: UseCaseSpec, tallies: list[dict[str, tuple[int, int, str | None]]],
                             file: str) -> list[Violation]:
    """A column where most values do not parse has the wrong type: a schema break, not bad rows.

    `tallies` are `_type_tally` of consecutive slices of the file, in line order.
    """
    out = []
    for c in spec.columns:
        count = sum(t[c.name][0] for t in tallies)
        failures = sum(t[c.name][1] for t in tallies)
        if count and 1 - failures / count < MIN_PARSEABLE_SHARE:
            share = 1 - failures / count
            example = next(t[c.name][2] for t in tallies if t[c.name][1])
            out.append(Violation(file, c.header, f"type.{c.dtype}",
                                 f"only {share:.0%} of values parse as {_type_name(c)} (e.g. {example!r})"))
    return out


def _type_name(c: Column) -> str:
    if c.is_temporal:
        return f"{c.dtype} {c.date_format!r}"
    return f"{c.dtype} {c.true_false[0]!r}/{c.true_false[1]!r}" if c.dtype == "bool" else c.dtype


def _parse(expr: pl.Expr, col: Column) -> pl.Expr:
    if col.dtype == "date":
        return expr.str.to_date(col.date_format, strict=False)
    if col.dtype == "timestamp":
        return expr.str.to_datetime(col.date_format, strict=False, time_unit="us")
    if col.dtype == "bool":
        text = expr.str.to_lowercase()
        true, false = (v.lower() for v in col.true_false)
        return pl.when(text == true).then(True).when(text == false).then(False)
    if col.dtype == "category":  # levels are judged by the allowed-values rule, blanks by not_null
        return pl.when(expr != "").then(expr)
    return expr.cast(_DTYPES[col.dtype], strict=False)


def _parse_int_lenient(expr: pl.Expr) -> pl.Expr:
    """"3.0" is an int written as a float; "3.5" is not an int."""
    as_float = expr.cast(pl.Float64, strict=False)
    return pl.when(as_float == as_float.floor()).then(as_float).cast(pl.Int64, strict=False)


def _blank(name: str) -> pl.Expr:
    return pl.col(name).is_null() | (pl.col(name) == "")


def _partial_labels(spec: UseCaseSpec) -> tuple[pl.Expr, pl.Expr]:
    """Label columns come as one outcome: some blank and some present is a broken row, not a late one."""
    headers = [spec.column(name).header for name in spec.label_columns]
    blank = {h: _blank(h) for h in headers}
    which = pl.concat_str([pl.when(b).then(pl.lit(h)) for h, b in blank.items()], separator=", ", ignore_nulls=True)
    return (pl.any_horizontal(*blank.values()) & ~pl.all_horizontal(*blank.values()),
            pl.format(f"labels ({', '.join(headers)}): {{}} blank while the others are present; "
                      "they arrive together or not at all [labels.partial]", which))


def _column_rules(spec: UseCaseSpec, c: Column) -> list[tuple[pl.Expr, pl.Expr]]:
    """Rules on one cell. A blank cell of a day-level column that the day filled is not missing."""
    raw, typed, name = pl.col(c.header), pl.col(typed_column(c.name)), c.header
    missing = _blank(c.header)
    rules = []
    if not c.nullable and c.name not in spec.label_columns:
        rules.append((missing & typed.is_null(), pl.lit(f"{name}: missing value [not_null]")))
    rules.append((~missing & typed.is_null(),
                  pl.format(f"{name}: '{{}}' is not a {_type_name(c)} [type.{c.dtype}]", raw)))
    if c.dtype == "float":
        rules.append((typed.is_nan() | typed.is_infinite(), pl.format(f"{name}: {{}} is not finite [finite]", raw)))
    if c.min is not None:
        rules.append((typed < c.min, pl.format(f"{name}: {{}} below minimum {c.min:g} [range.min]", raw)))
    if c.max is not None:
        rules.append((typed > c.max, pl.format(f"{name}: {{}} above maximum {c.max:g} [range.max]", raw)))
    if c.allowed is not None:
        rules.append((typed.is_not_null() & ~typed.is_in(list(c.allowed)),
                      pl.format(f"{name}: {{}} not in {list(c.allowed)} [allowed_values]", raw)))
    return rules


def _cross_row_rules(spec: UseCaseSpec) -> list[tuple[pl.Expr, pl.Expr]]:
    """Rules that look at other columns or other rows of the day: sums, conditions, day-level values."""
    rules = []
    for rule in spec.sum_rules:
        parts = pl.sum_horizontal([pl.col(typed_column(p)) for p in rule.parts], ignore_nulls=False)
        rules.append((pl.col(typed_column(rule.total)) != parts, pl.lit(f"{rule.name} does not hold [sum_rule]")))
    for rule in spec.conditional_rules:
        (when, value), (then, op, bound) = rule.when, rule.then
        holds = _OPERATORS[op](pl.col(typed_column(then)), bound)
        rules.append(((pl.col(typed_column(when)) == value) & ~holds,
                      pl.format(f"{rule.description}: {spec.column(then).header} is {{}} [conditional.{rule.name}]",
                                pl.col(spec.column(then).header))))
    for name in spec.fill_over_day:
        values = pl.col(typed_column(name)).drop_nulls().n_unique().over(_event_day(spec))
        rules.append((values > 1, pl.format(
            f"{spec.column(name).header}: {{}} different values on {{}}; a day-level value holds for the whole day "
            "[fill_over_day]", values, _event_day(spec))))
    return rules


def row_rules(spec: UseCaseSpec, partition_day: str | None) -> list[tuple[pl.Expr, pl.Expr]]:
    """(broken?, reason) for every row rule. Reasons are only rendered for broken rows.

    A rule on a blank value does not fire (null fills to False): blank is judged by not_null, or,
    for label columns, by `labels.partial` alone.
    """
    rules: list[tuple[pl.Expr, pl.Expr]] = [
        (pl.col(LINE_COLUMN).str.contains(_UNDECODABLE, literal=True),
         pl.lit(f"line has bytes that are not valid {spec.encoding} [encoding]")),
        _partial_labels(spec),
    ]
    rules += [rule for c in spec.columns for rule in _column_rules(spec, c)]
    rules += _cross_row_rules(spec)
    if partition_day is not None:
        day = _event_day(spec)
        rules.append((day != pl.lit(partition_day).str.to_date(),
                      pl.format(f"{spec.event_column.header}: {{}} outside partition {partition_day} [partition]",
                                pl.col(spec.event_column.header))))
    return [(broken.fill_null(False), reason) for broken, reason in rules]


def split_rows(spec: UseCaseSpec, content: bytes, file: str, partition_day: str | None = None) -> SplitResult:
    """Send every data row of a file to `validated`, `quarantined` or `merged`; raise on a schema break."""
    return split_lines(spec, read_lines(content, spec.encoding), file, partition_day)


def _listed(file: str, frame: pl.DataFrame, reason: pl.Expr) -> pl.DataFrame:
    """Rows as they arrived, with why they are not in `validated`."""
    # rechunk: polars 2.1 panics ("i < self.len()") rendering format strings over a multi-chunk filter.
    return frame.rechunk().select(pl.lit(file).alias("file"), "line_number", pl.col(LINE_COLUMN).alias("raw_line"),
                                  reason.alias("reason"))


def split_lines(spec: UseCaseSpec, lines: pl.DataFrame, file: str, partition_day: str | None = None,
                chunk_rows: int | None = None) -> SplitResult:
    """`split_rows` on lines already read by `read_lines` (the file is parsed once).

    A file of more than `chunk_rows` (default `CHUNK_ROWS`) data lines is split, typed and judged
    that many lines at a time, so only one slice's text cells are in memory (a 10M-line day's would
    take ~3 GB); the good rows of all slices then settle duplicate keys together. Every rule is row-local, except
    the whole-file decisions (padding, lenient int parse, type breaks: taken over all slices, a
    slice parsed again if a later one changes the parse) and day-level values (a spec with
    `fill_over_day` is judged in one piece). The result is the same as in one piece.
    """
    violations = _header_violations(spec, lines, file)
    if violations:
        raise ContractViolation(violations)
    header, data = _header(lines), lines.slice(1)
    strip = _padded(data)
    n = len(spec.columns)
    rules = row_rules(spec, partition_day)
    # Phase 1, every row: cheap boolean flags. Only rows that break nothing take part in settling
    # duplicate keys, so a malformed copy cannot push a good one into quarantine.
    wrong_width = pl.col("_fields") != n
    bad = pl.any_horizontal(wrong_width, *(broken for broken, _ in rules)).alias("_bad")
    # Phase 2, bad rows only: render every broken rule as text. A line with the wrong number of
    # fields has that one reason: its cells are not where the header says.
    reason = (
        pl.when(wrong_width)
        .then(pl.format(f"line has {{}} fields, expected {n} [field_count]", pl.col("_fields")))
        .otherwise(pl.concat_str([pl.when(b).then(r) for b, r in rules], separator="; ", ignore_nulls=True))
    )
    # What settling duplicates reads of a good row: the typed values, the key's text, the line.
    kept_columns = ["line_number", LINE_COLUMN, *dict.fromkeys(spec.column(k).header for k in spec.key),
                    *(typed_column(c.name) for c in spec.columns)]
    step = max(data.height if spec.fill_over_day else chunk_rows or CHUNK_ROWS, 1)
    starts = range(0, max(data.height, 1), step)
    lenient: frozenset[str] = frozenset()
    while True:
        tallies, goods, bads, error, again = [], [], [], None, False
        for start in starts:
            parsed, found = typed_cells(spec, _cells(data.slice(start, step), header, strip), lenient)
            again, lenient = again or (bool(found) and start > 0), lenient | found
            parsed = parsed.with_columns(filled_over_day(spec, spec.column(name)) for name in spec.fill_over_day)
            tallies.append(_type_tally(spec, parsed))
            if len(starts) == 1 and (violations := _tallied_type_violations(spec, tallies, file)):
                raise ContractViolation(violations)
            if error is None and not again:
                try:  # a file with a type break raises that break, whatever else would fail on it
                    good, quarantined = _judged(parsed, bad, reason, kept_columns, file)
                    goods.append(good)
                    bads.append(quarantined)
                except (Exception, pl.exceptions.PanicException) as e:
                    error = e
            del parsed
        if not again:  # else an int column needs the lenient parse the earlier slices did not get
            break
    if violations := _tallied_type_violations(spec, tallies, file):
        raise ContractViolation(violations)
    if error is not None:
        raise error
    good = goods[0] if len(goods) == 1 else pl.concat(goods, rechunk=False)
    kept, duplicates, merged = _settle_duplicates(spec, good, file)
    validated = kept.select(pl.col(typed_column(c.name)).alias(c.name) for c in spec.columns)
    quarantined = bads[0] if len(bads) == 1 else pl.concat(bads)
    if duplicates.height:
        quarantined = pl.concat([quarantined, duplicates]).sort("line_number")
    return SplitResult(validated=validated, quarantined=quarantined, raw_rows=data.height, merged=merged)


def _judged(parsed: pl.DataFrame, bad: pl.Expr, reason: pl.Expr, kept_columns: list[str],
            file: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(good rows, the columns settling duplicates reads; bad rows, listed with their reasons)."""
    flagged = parsed.with_columns(bad)
    return (flagged.select(*kept_columns, "_bad").filter(~pl.col("_bad")).drop("_bad"),
            _listed(file, flagged.filter(pl.col("_bad")), reason))


def _settle_duplicates(spec: UseCaseSpec, good: pl.DataFrame,
                       file: str) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(kept rows, quarantined copies, merged copies) of the good rows under the spec's duplicate policy.

    Copies that disagree on a column no rule settles are all quarantined as a conflict: file order
    never picks a winner silently. Only rows whose key repeats take the slow path.
    """
    keys = [typed_column(k) for k in spec.key]
    copies = good.with_columns(pl.len().over(keys).alias("_copies"))
    multi = copies.filter(pl.col("_copies") > 1)
    nothing = _listed(file, good.clear(), pl.lit(""))
    if multi.height == 0:
        return good, nothing, nothing
    single = copies.filter(pl.col("_copies") == 1)
    settled = dict(spec.aggregate)
    agree = [] if spec.duplicates == "keep_last" else [
        c for c in spec.columns if c.name not in spec.key and c.name not in settled]
    differs = {c.header: pl.col(typed_column(c.name)).n_unique().over(keys) > 1 for c in agree}
    key_text = pl.concat_str([pl.col(spec.column(k).header) for k in spec.key], separator=", ")
    multi = multi.with_columns(
        pl.any_horizontal(pl.lit(False), *differs.values()).alias("_conflict"),
        pl.concat_str([pl.when(d).then(pl.lit(h)) for h, d in differs.items()] or [pl.lit("")],
                      separator=", ", ignore_nulls=True).alias("_differs"),
        pl.col("line_number").first().over(keys).alias("_first"),
        pl.col("line_number").last().over(keys).alias("_last"),
    )
    conflicts = _listed(file, multi.filter("_conflict"), pl.format(
        f"key ({', '.join(spec.key)}) = ({{}}): {{}} copies disagree on {{}}; none is taken [{CONFLICT}]",
        key_text, pl.col("_copies"), pl.col("_differs")))
    agreeing = multi.filter(~pl.col("_conflict"))
    winner_line = "_last" if spec.duplicates == "keep_last" else "_first"
    is_winner = pl.col("line_number") == pl.col(winner_line)
    if spec.duplicates == "aggregate":
        aggregations = {"mean": pl.Expr.mean, "sum": pl.Expr.sum, "first": pl.Expr.first}
        winners = agreeing.group_by(keys, maintain_order=True).agg(
            pl.col("line_number").first(),
            *(aggregations[settled.get(c.name, "first")](pl.col(typed_column(c.name)))
              for c in spec.columns if c.name not in spec.key))
    else:
        winners = agreeing.filter(is_winner)
    typed = ["line_number", *(typed_column(c.name) for c in spec.columns)]
    kept = pl.concat([single.select(typed), winners.select(typed)], how="vertical_relaxed").sort("line_number")
    extra = agreeing.filter(~is_winner)
    if spec.duplicates == "quarantine":
        same = pl.format(f"duplicate key {spec.key}: same as line {{}} [unique_key]", pl.col(winner_line))
        return kept, pl.concat([conflicts, _listed(file, extra, same)]), nothing
    folded = pl.format(f"folded into line {{}} [duplicate.{spec.duplicates}]", pl.col(winner_line))
    return kept, conflicts, _listed(file, extra, folded)


def labels_pending_rows(spec: UseCaseSpec, frame: pl.DataFrame) -> int:
    """Rows whose outcome has not arrived: every label column the frame carries is null."""
    return frame.select(pl.all_horizontal(pl.col(c).is_null() for c in spec.label_columns
                                          if c in frame.columns).sum()).item()


def withhold_labels(spec: UseCaseSpec, content: bytes) -> bytes:
    """The file as it lands before its labels: label fields blank, every other byte (header, line
    endings, undecodable bytes) as it was. Simulates the first of a day's two arrivals."""
    lines = content.splitlines(keepends=True)
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        return content
    header = _header_names(lines[first].decode(spec.encoding, errors="replace"))
    labels = [spec.column(c).header for c in spec.label_columns]
    absent = [c for c in labels if c not in header]
    if absent:
        raise ValueError(f"withhold_labels: label columns {absent} not in header {header}")
    positions = [header.index(c) for c in labels]
    sep = DELIMITER.encode()
    out = lines[: first + 1]
    for line in lines[first + 1:]:
        text = line.rstrip(b"\r\n")
        fields = text.split(sep)
        if text.strip():  # blank lines are not rows; a short line keeps what it has
            fields = [b"" if i in positions else f for i, f in enumerate(fields)]
        out.append(sep.join(fields) + line[len(text):])
    return b"".join(out)
