"""The data contract of a raw file, derived from a `UseCaseSpec`.

A raw file goes through two gates. The *schema* gate looks at the file as a whole (encoding,
delimiter, header, column types); a break there stops the graph with a `ContractViolation` that
names the file, the column and the rule. The *row* gate sends every data row to exactly one of two
tables: `validated` (typed, de-duplicated) or `quarantined` (the exact text of the line, its line
number and every rule it broke). Nothing is dropped: rows(raw) == rows(validated) + rows(quarantined).

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


def _header(lines: pl.DataFrame) -> list[str]:
    return [h.strip().lstrip("\ufeff") for h in lines[_LINE][0].split(DELIMITER)]


def schema_violations(spec: UseCaseSpec, content: bytes, file: str) -> list[Violation]:
    """File-level rules: not empty, comma-delimited, exactly the spec's columns, parseable types."""
    lines = read_lines(content)
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
    if out:
        return out
    cells = _cells(lines.slice(1), header)
    for col in spec.columns:
        values = cells[col.name].drop_nulls()
        values = values.filter(values != "")
        if values.len() == 0:
            continue
        parsed = _parse(pl.col(col.name), col)
        share = cells.select(parsed.is_not_null().sum()).item() / values.len()
        if share < MIN_PARSEABLE_SHARE:
            example = values[0]
            out.append(Violation(
                file, col.name, f"type.{col.dtype}",
                f"only {share:.0%} of values parse as {col.dtype} (e.g. {example!r})",
            ))
    return out


def _cells(rows: pl.DataFrame, header: list[str]) -> pl.DataFrame:
    """Split text lines into string columns by position, plus the field count of each line."""
    n = len(header)
    return rows.with_columns(
        pl.col(_LINE).str.count_matches(DELIMITER, literal=True).add(1).alias("_fields"),
        pl.col(_LINE).str.split_exact(DELIMITER, n - 1).struct.rename_fields(header).alias("_s"),
    ).unnest("_s").with_columns(pl.col(header).str.strip_chars())


def _parse(expr: pl.Expr, col: Column) -> pl.Expr:
    if col.dtype == "date":
        return expr.str.to_date("%Y-%m-%d", strict=False)
    if col.dtype == "int":
        # "3.0" is an int written as a float; "3.5" is not an int.
        as_float = expr.cast(pl.Float64, strict=False)
        return pl.when(as_float == as_float.floor()).then(as_float).cast(pl.Int64, strict=False)
    return expr.cast(pl.Float64, strict=False)


def _reason(condition: pl.Expr, text: pl.Expr | str) -> pl.Expr:
    text = pl.lit(text) if isinstance(text, str) else text
    return pl.when(condition).then(text).otherwise(None)


def _column_reasons(col: Column, raw: pl.Expr, typed: pl.Expr) -> list[pl.Expr]:
    name = col.name
    missing = raw.is_null() | (raw == "")
    reasons = [
        _reason(missing & ~pl.lit(col.nullable), f"{name}: missing value [not_null]"),
        _reason(~missing & typed.is_null(),
                pl.format(f"{name}: '{{}}' is not a {col.dtype} [type.{col.dtype}]", raw)),
    ]
    if col.dtype == "float":
        reasons.append(_reason(typed.is_nan() | typed.is_infinite(),
                               pl.format(f"{name}: {{}} is not finite [finite]", raw)))
    if col.min is not None:
        reasons.append(_reason(typed < col.min, pl.format(f"{name}: {{}} below minimum {col.min:g} [range.min]", raw)))
    if col.max is not None:
        reasons.append(_reason(typed > col.max, pl.format(f"{name}: {{}} above maximum {col.max:g} [range.max]", raw)))
    if col.allowed is not None:
        reasons.append(_reason(typed.is_not_null() & ~typed.is_in(list(col.allowed)),
                               pl.format(f"{name}: {{}} not in {list(col.allowed)} [allowed_values]", raw)))
    return reasons


def split_rows(spec: UseCaseSpec, content: bytes, file: str, partition_day: str | None = None) -> SplitResult:
    """Send every data row of a file to `validated` or `quarantined`; raise on a schema break."""
    violations = schema_violations(spec, content, file)
    if violations:
        raise ContractViolation(violations)
    lines = read_lines(content)
    header = _header(lines)
    rows = _cells(lines.slice(1), header)
    n = len(header)
    typed = {c.name: _parse(pl.col(c.name), c).alias(c.name) for c in spec.columns}
    reasons = []
    for c in spec.columns:
        reasons += _column_reasons(c, pl.col(c.name), typed[c.name])
    for rule in spec.sum_rules:
        parts = sum((typed[p] for p in rule.parts[1:]), typed[rule.parts[0]])
        reasons.append(_reason(typed[rule.total] != parts, f"{rule.name} does not hold [sum_rule]"))
    if partition_day is not None:
        reasons.append(_reason(typed[spec.event_date] != pl.lit(partition_day).str.to_date(),
                               pl.format(f"{spec.event_date}: {{}} outside partition {partition_day} [partition]",
                                         pl.col(spec.event_date))))
    # A line with the wrong number of fields has one reason; its cells are not where we expect.
    checked = rows.with_columns(
        pl.when(pl.col("_fields") != n)
        .then(pl.format(f"line has {{}} fields, expected {n} [field_count]", pl.col("_fields")))
        .otherwise(pl.concat_str(reasons, separator="; ", ignore_nulls=True))
        .alias("reason"),
        *typed.values(),
    )
    # Among rows that pass every other rule, the first occurrence of a key wins; bad rows never
    # claim a key, so a malformed first copy cannot push a good second copy into quarantine.
    good = pl.col("reason") == ""
    first = pl.int_range(pl.len()).over(good, *spec.key) == 0
    checked = checked.with_columns(
        pl.when(good & ~first).then(pl.lit(f"duplicate key {spec.key} [unique_key]"))
        .otherwise(pl.col("reason")).alias("reason")
    )
    validated = checked.filter(pl.col("reason") == "").select(spec.column_names)
    quarantined = checked.filter(pl.col("reason") != "").select(
        pl.lit(file).alias("file"), "line_number", pl.col(_LINE).alias("raw_line"), "reason"
    )
    return SplitResult(validated=validated, quarantined=quarantined, raw_rows=rows.height)
