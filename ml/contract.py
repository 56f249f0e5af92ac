"""The data contract of a raw file, derived from a `UseCaseSpec`.

A raw file goes through two gates. The *schema* gate looks at the file as a whole (encoding,
delimiter, header, column types); a break there stops the graph with a `ContractViolation` that
names the file, the column and the rule. The *row* gate sends every data row to exactly one of two
tables: `validated` (typed, de-duplicated) or `quarantined` (the exact text of the line, its line
number and every rule it broke). Nothing is dropped: rows(raw) == rows(validated) + rows(quarantined).

Labels arrive late: a day's file first lands with the label columns (target and leakage) blank and
lands again, complete, days later. A row with all of them blank is validated with nulls there
("labels pending"); a row with some blank and some present is quarantined (`labels.partial`).

Lines are read as text first (polars, vectorised) so that a malformed line is quarantined with
its own words instead of aborting the parse. Files are plain CSV without quoted fields.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import polars as pl

from ml.spec import Column, UseCaseSpec

DELIMITER = ","
_LINE = "line"
# Below this share of parseable values a column is treated as having the wrong type (a schema
# break) rather than as holding a few bad rows (quarantined).
MIN_PARSEABLE_SHARE = 0.5
_DTYPES = {"int": pl.Int64, "float": pl.Float64, "date": pl.Date}
_OTHER_DELIMITERS = (";", "\t", "|")


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

    @property
    def conserved(self) -> bool:
        return self.raw_rows == self.validated.height + self.quarantined.height


def read_lines(content: bytes) -> pl.DataFrame:
    """Every line of the file as text with its 1-based line number; blank lines are not rows.

    Undecodable bytes become U+FFFD, so such a row fails a type rule and is quarantined with the
    rest of its text intact; the raw file itself is kept byte for byte upstream.
    """
    if not content.strip():
        return pl.DataFrame({"line_number": [], _LINE: []}, schema={"line_number": pl.Int64, _LINE: pl.String})
    lines = pl.read_csv(
        io.BytesIO(content),
        has_header=False,
        separator="\x1f",
        quote_char=None,
        infer_schema=False,
        encoding="utf8-lossy",
        new_columns=[_LINE],
    )
    return (
        lines.with_row_index("line_number", offset=1)
        .with_columns(pl.col("line_number").cast(pl.Int64), pl.col(_LINE).str.strip_chars_end("\r"))
        .filter(pl.col(_LINE).is_not_null() & (pl.col(_LINE).str.strip_chars() != ""))
    )


def count_rows(content: bytes) -> int:
    """Data rows in a raw file: non-blank lines after the header."""
    return max(read_lines(content).height - 1, 0)


def _header_names(text: str) -> list[str]:
    return [h.strip().lstrip("\ufeff") for h in text.split(DELIMITER)]


def _header(lines: pl.DataFrame) -> list[str]:
    return _header_names(lines[_LINE][0])


def schema_violations(spec: UseCaseSpec, content: bytes, file: str) -> list[Violation]:
    """File-level rules: not empty, comma-delimited, exactly the spec's columns, parseable types."""
    lines = read_lines(content)
    return _header_violations(spec, lines, file) or _type_violations(spec, _parsed(spec, lines), file)


def _header_violations(spec: UseCaseSpec, lines: pl.DataFrame, file: str) -> list[Violation]:
    if lines.height == 0:
        return [Violation(file, None, "file.not_empty", "the file has no header and no rows")]
    header = _header(lines)
    expected = spec.column_names
    if len(header) == 1 and len(expected) > 1:
        used = next((d for d in _OTHER_DELIMITERS if d in header[0]), None)
        hint = f"the header looks {used!r}-delimited" if used else "the header has a single field"
        return [Violation(file, None, "file.delimiter", f"expected {DELIMITER!r}-delimited columns; {hint}")]
    out = [
        Violation(file, c, "schema.required_column", f"column missing from header {header}")
        for c in expected if c not in header
    ]
    out += [
        Violation(file, c, "schema.unexpected_column", f"column not in the contract {list(expected)}")
        for c in header if c not in expected
    ]
    if len(set(header)) != len(header):
        out.append(Violation(file, None, "schema.unique_columns", f"duplicate column names in {header}"))
    return out


def _typed(name: str) -> str:
    return f"{name}__typed"


def _parsed(spec: UseCaseSpec, lines: pl.DataFrame) -> pl.DataFrame:
    """Data lines split into text cells (by header position), their field count and typed values."""
    header = _header(lines)
    n = len(header)
    cells = lines.slice(1).with_columns(
        pl.col(_LINE).str.count_matches(DELIMITER, literal=True).add(1).alias("_fields"),
        pl.col(_LINE).str.split_exact(DELIMITER, n - 1).struct.rename_fields(header).alias("_s"),
    ).unnest("_s")
    if cells[_LINE].str.contains(r"\s").any():  # padding is rare: strip only when a line has some
        cells = cells.with_columns(pl.col(header).str.strip_chars())
    parsed = cells.with_columns(_parse(pl.col(c.name), c).alias(_typed(c.name)) for c in spec.columns)
    # Fast pass first; integers written as floats ("3.0") get the slower lenient parse, per column.
    lenient = [c for c in spec.columns if c.dtype == "int" and parsed.select(_unparsed(c).any()).item()]
    return parsed.with_columns(_parse_int_lenient(pl.col(c.name)).alias(_typed(c.name)) for c in lenient)


def _unparsed(c: Column) -> pl.Expr:
    return pl.col(_typed(c.name)).is_null() & pl.col(c.name).is_not_null() & (pl.col(c.name) != "")


def _type_violations(spec: UseCaseSpec, parsed: pl.DataFrame, file: str) -> list[Violation]:
    """A column where most values do not parse has the wrong type: a schema break, not bad rows."""
    present = [(pl.col(c.name).is_not_null() & (pl.col(c.name) != "")).sum().alias(c.name) for c in spec.columns]
    failed = [_unparsed(c).sum().alias(c.name) for c in spec.columns]
    counts = parsed.select(present).row(0, named=True)
    failures = parsed.select(failed).row(0, named=True)
    out = []
    for c in spec.columns:
        if counts[c.name] and 1 - failures[c.name] / counts[c.name] < MIN_PARSEABLE_SHARE:
            share = 1 - failures[c.name] / counts[c.name]
            example = parsed.filter(_unparsed(c))[c.name][0]
            out.append(Violation(file, c.name, f"type.{c.dtype}",
                                 f"only {share:.0%} of values parse as {c.dtype} (e.g. {example!r})"))
    return out


def _parse(expr: pl.Expr, col: Column) -> pl.Expr:
    if col.dtype == "date":
        return expr.str.to_date("%Y-%m-%d", strict=False)
    return expr.cast(_DTYPES[col.dtype], strict=False)


def _parse_int_lenient(expr: pl.Expr) -> pl.Expr:
    """"3.0" is an int written as a float; "3.5" is not an int."""
    as_float = expr.cast(pl.Float64, strict=False)
    return pl.when(as_float == as_float.floor()).then(as_float).cast(pl.Int64, strict=False)


def _blank(name: str) -> pl.Expr:
    return pl.col(name).is_null() | (pl.col(name) == "")


def _partial_labels(spec: UseCaseSpec) -> tuple[pl.Expr, pl.Expr]:
    """Label columns come as one outcome: some blank and some present is a broken row, not a late one."""
    blank = {name: _blank(name) for name in spec.label_columns}
    which = pl.concat_str([pl.when(b).then(pl.lit(n)) for n, b in blank.items()], separator=", ", ignore_nulls=True)
    return (pl.any_horizontal(*blank.values()) & ~pl.all_horizontal(*blank.values()),
            pl.format(f"labels ({', '.join(spec.label_columns)}): {{}} blank while the others are present; "
                      "they arrive together or not at all [labels.partial]", which))


def _row_rules(spec: UseCaseSpec, partition_day: str | None) -> list[tuple[pl.Expr, pl.Expr]]:
    """(broken?, reason) for every row rule. Reasons are only rendered for broken rows.

    A rule on a blank value does not fire (null fills to False): blank is judged by not_null, or,
    for label columns, by `labels.partial` alone.
    """
    rules: list[tuple[pl.Expr, pl.Expr]] = [_partial_labels(spec)]
    for c in spec.columns:
        raw, typed, name = pl.col(c.name), pl.col(_typed(c.name)), c.name
        missing = _blank(name)
        if not c.nullable and name not in spec.label_columns:
            rules.append((missing, pl.lit(f"{name}: missing value [not_null]")))
        rules.append((~missing & typed.is_null(), pl.format(f"{name}: '{{}}' is not a {c.dtype} [type.{c.dtype}]", raw)))
        if c.dtype == "float":
            rules.append((typed.is_nan() | typed.is_infinite(), pl.format(f"{name}: {{}} is not finite [finite]", raw)))
        if c.min is not None:
            rules.append((typed < c.min, pl.format(f"{name}: {{}} below minimum {c.min:g} [range.min]", raw)))
        if c.max is not None:
            rules.append((typed > c.max, pl.format(f"{name}: {{}} above maximum {c.max:g} [range.max]", raw)))
        if c.allowed is not None:
            rules.append((typed.is_not_null() & ~typed.is_in(list(c.allowed)),
                          pl.format(f"{name}: {{}} not in {list(c.allowed)} [allowed_values]", raw)))
    for rule in spec.sum_rules:
        parts = pl.sum_horizontal([pl.col(_typed(p)) for p in rule.parts], ignore_nulls=False)
        rules.append((pl.col(_typed(rule.total)) != parts, pl.lit(f"{rule.name} does not hold [sum_rule]")))
    if partition_day is not None:
        event = pl.col(_typed(spec.event_date))
        rules.append((event != pl.lit(partition_day).str.to_date(),
                      pl.format(f"{spec.event_date}: {{}} outside partition {partition_day} [partition]", event)))
    return [(broken.fill_null(False), reason) for broken, reason in rules]


def split_rows(spec: UseCaseSpec, content: bytes, file: str, partition_day: str | None = None) -> SplitResult:
    """Send every data row of a file to `validated` or `quarantined`; raise on a schema break."""
    return split_lines(spec, read_lines(content), file, partition_day)


def split_lines(spec: UseCaseSpec, lines: pl.DataFrame, file: str, partition_day: str | None = None) -> SplitResult:
    """`split_rows` on lines already read by `read_lines` (the file is parsed once)."""
    violations = _header_violations(spec, lines, file)
    parsed = None if violations else _parsed(spec, lines)
    violations = violations or _type_violations(spec, parsed, file)
    if violations:
        raise ContractViolation(violations)
    n = len(spec.columns)
    rules = _row_rules(spec, partition_day)
    # Phase 1, every row: cheap boolean flags. Among rows that break nothing, the first occurrence
    # of a key wins; bad rows never claim a key, so a malformed first copy cannot push a good
    # second copy into quarantine.
    wrong_width = pl.col("_fields") != n
    flagged = parsed.with_columns(
        pl.any_horizontal(wrong_width, *(broken for broken, _ in rules)).alias("_bad"),
    ).with_columns(
        (~pl.col("_bad") & ~pl.when(~pl.col("_bad")).then(pl.struct([_typed(k) for k in spec.key]))
         .is_first_distinct()).alias("_duplicate")
    )
    validated = flagged.filter(~pl.col("_bad") & ~pl.col("_duplicate")).select(
        pl.col(_typed(c.name)).alias(c.name) for c in spec.columns)
    # Phase 2, bad rows only: render every broken rule as text. A line with the wrong number of
    # fields has that one reason: its cells are not where the header says.
    reason = (
        pl.when(wrong_width)
        .then(pl.format(f"line has {{}} fields, expected {n} [field_count]", pl.col("_fields")))
        .when(pl.col("_duplicate")).then(pl.lit(f"duplicate key {spec.key} [unique_key]"))
        .otherwise(pl.concat_str([pl.when(b).then(r) for b, r in rules], separator="; ", ignore_nulls=True))
    )
    # rechunk: polars 2.1 panics ("i < self.len()") rendering format strings over a multi-chunk filter.
    quarantined = flagged.filter(pl.col("_bad") | pl.col("_duplicate")).rechunk().select(
        pl.lit(file).alias("file"), "line_number", pl.col(_LINE).alias("raw_line"), reason.alias("reason"))
    return SplitResult(validated=validated, quarantined=quarantined, raw_rows=parsed.height)


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
    header = _header_names(lines[first].decode("utf-8", errors="replace"))
    absent = [c for c in spec.label_columns if c not in header]
    if absent:
        raise ValueError(f"withhold_labels: label columns {absent} not in header {header}")
    positions = [header.index(c) for c in spec.label_columns]
    sep = DELIMITER.encode()
    out = lines[: first + 1]
    for line in lines[first + 1:]:
        text = line.rstrip(b"\r\n")
        fields = text.split(sep)
        if text.strip():  # blank lines are not rows; a short line keeps what it has
            fields = [b"" if i in positions else f for i, f in enumerate(fields)]
        out.append(sep.join(fields) + line[len(text):])
    return b"".join(out)
