"""Request rows through the spec's row contract, then the one feature definition.

A request carries the spec's raw columns (labels excepted), one V2 tensor per column. Each value is
turned into the text a raw file would hold and judged by the very rules `validated_<name>` applies
(`ml.contract`), so an online row is accepted exactly when a batch row with the same values would be,
and its features come from the expressions of `ml.features`, the one feature definition. The contract's
reasons name the request's fields (the spec's clean column names), e.g.
`temp: 1.5 above maximum 1 [range.max]`.

A polars pass costs some 3-5 ms whatever its rows (planning ~600 expression nodes), far more than a small
request may take. So the outcomes are memoized: with labels blank (never sent) and the line empty, every
rule and every feature depends on a few input columns only (their `meta.root_names()`, read at start-up);
columns tied by a rule or a feature form a group, and a group's outcome for a row — typed values, broken
rules with their reasons, feature values — depends on that group's cells alone. Each group keeps a bounded
memo of cells -> outcome; cells it has not seen go through the contract's own typing, the group's rules and
features in polars (`_passed`), once per distinct value, and a request of known values is scored without
polars. A spec with `fill_over_day`
(a value filled from other rows of the day) is not row-local and takes the polars pass every time.

Dagster-free: the server and the tests call it directly.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import polars as pl

from ml.contract import LINE_COLUMN, filled_over_day, row_rules, typed_column, typed_cells
from ml.features import feature_expressions
from ml.spec import Column, UseCaseSpec

# The V2 datatype each column type is served as, and the datatypes a request may declare for it.
DATATYPES = {"int": "INT64", "float": "FP64", "bool": "BOOL", "category": "BYTES", "date": "BYTES",
             "timestamp": "BYTES"}
_ACCEPTED = {
    "int": {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"},
    "float": {"FP16", "FP32", "FP64"},
    "bool": {"BOOL"},
    "category": {"BYTES"},
    "date": {"BYTES"},
    "timestamp": {"BYTES"},
}
# JSON types a column's values usually all have: then the text is the value's `str` (or the string itself).
_PLAIN = {"int": {int}, "float": {int, float}, "category": {str}, "date": {str}, "timestamp": {str}}
# The JSON type of a column's well-formed values (with blanks): a column whose values all have it keeps them
# as memo keys, spelled out as text only when the memo misses them (`_spelled`). One type per column, so
# no two keys of a column are equal across types (3 and 3.0, 1 and True) with different texts; -0.0 and 0.0
# are, so a float column holding -0.0 is spelled out (`_natural`).
_NATURAL = {"int": {int, type(None)}, "float": {float, type(None)}, "category": {str, type(None)},
            "date": {str, type(None)}, "timestamp": {str, type(None)}}
_REASON = re.compile(r"^(?P<field>[A-Za-z0-9_]+): .*\[(?P<rule>[^\]]+)\]$")
# Distinct cells (or cell tuples) remembered per group of columns; 0 turns the memo off.
MEMO_CELLS = 65_536
_FREE = object()  # a memo slot not used yet (None is a key: a blank cell)


@dataclass(frozen=True)
class FieldError:
    """One broken rule: the request row (None for the whole request), the field and the rule."""

    row: int | None
    field: str | None
    rule: str
    message: str

    def as_dict(self) -> dict:
        return {"row": self.row, "field": self.field, "rule": self.rule, "message": self.message}


class RequestError(ValueError):
    """A request that is not scored: every rule it broke, each naming its field and rule."""

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        shown = "; ".join((f"row {e.row}: " if e.row is not None else "") + e.message for e in errors[:10])
        super().__init__(shown + (f"; ... {len(errors) - 10} more" if len(errors) > 10 else ""))


def _cell(c: Column, value) -> str | None:
    """The text a raw file would hold for a JSON value; a value of the wrong JSON type keeps its JSON
    spelling (`"3"` with the quotes, `[1]`), which the contract then refuses as that column's type."""
    if value is None:
        return None
    if c.dtype == "bool":
        return c.true_false[0] if value is True else c.true_false[1] if value is False else json.dumps(value)
    if isinstance(value, bool):
        return json.dumps(value)
    if c.is_numeric:  # 3.0 in an int column is an int written as a float, as a file may have it
        return str(value) if isinstance(value, (int, float)) else json.dumps(value)
    return value if isinstance(value, str) else json.dumps(value)


def _texts(c: Column, values: list) -> list[str | None]:
    plain = _PLAIN.get(c.dtype)
    if plain and set(map(type, values)) <= plain:  # type(True) is bool, never int: booleans go to `_cell`
        return values if plain == {str} else list(map(str, values))
    return [_cell(c, v) for v in values]


def _natural(c: Column, values: list) -> bool:
    """Whether a column's values can be their own memo keys: all of its natural JSON type, and no -0.0,
    which is the same key as 0.0 but not the same text (nor the same typed value)."""
    if not set(map(type, values)) <= _NATURAL.get(c.dtype, set()):
        return False
    return c.dtype != "float" or 0.0 not in values or not any(v == 0.0 and math.copysign(1.0, v) < 0 for v in values)


def _spelled(keys) -> list[str | None]:
    """Memo keys as texts: a string is a text already (`_texts`), a number kept as its key (`_NATURAL`) is
    spelled as `_cell` spells it."""
    return [k if k is None or type(k) is str else str(k) for k in keys]


class RequestRows:
    """The inputs a use case's model server takes and how a request's rows become a feature matrix."""

    def __init__(self, spec: UseCaseSpec, memo_cells: int = MEMO_CELLS):
        self.spec = spec
        # The same columns and rules, named as the request names them (the clean names, not file headers).
        self._contract = dataclasses.replace(
            spec, columns=tuple(dataclasses.replace(c, raw_name=None) for c in spec.columns))
        self.inputs: tuple[Column, ...] = tuple(c for c in self._contract.columns if c.name not in spec.label_columns)
        self._by_name = {c.name: c for c in self.inputs}
        # Every int column takes the lenient parse ("3.0" is 3): what the batch decides per file after a
        # first pass, decided once here, so a request is typed in one pass.
        self._lenient = frozenset(c.name for c in self._contract.columns if c.dtype == "int")
        self._rules = row_rules(self._contract, None)
        self._flags = [broken.alias(f"_rule{i}") for i, (broken, _) in enumerate(self._rules)]
        self._reasons = pl.concat_list([pl.when(b).then(r) for b, r in self._rules]).list.drop_nulls().alias("_reasons")
        self._schema = {c.name: pl.String for c in self._contract.columns} | {LINE_COLUMN: pl.String}
        self._validated = [pl.col(typed_column(c.name)).alias(c.name) for c in self.inputs]
        self._feature_expressions = feature_expressions(spec)  # in `feature_names` order
        self._rule_reasons = [pl.when(b).then(r).alias(f"_reason{i}") for i, (b, r) in enumerate(self._rules)]
        # The validated table's columns and types (for a table built from typed values, see `Judged`).
        self.schema = self._parsed({c.name: [] for c in self.inputs}).select(self._validated).schema
        self._memos = self._groups(memo_cells) if memo_cells and not spec.fill_over_day else None
        if self._memos:
            order = [f for m in self._memos for f in m.features]
            self._feature_order = np.argsort(order)  # the groups' feature blocks, side by side -> feature order

    def _groups(self, size: int) -> list[_Memo]:
        """The input columns tied together by a rule or a feature (union of their roots), each group with
        the rules and features it alone decides; rules reading no input (the line, the blank labels) form a
        group of no column, whose outcome is the same for every request row."""
        names = {c.name for c in self.inputs}

        def roots(*exprs: pl.Expr) -> set[str]:
            return {r.removesuffix(typed_column("")) for e in exprs for r in e.meta.root_names()}

        def inputs(*exprs: pl.Expr) -> set[str]:
            return roots(*exprs) & names  # labels are blank and the line empty in every request row: constants

        rule_roots = [inputs(b, r) for b, r in self._rules]
        rule_labels = [roots(b, r) & set(self.spec.label_columns) for b, r in self._rules]
        feature_roots = [inputs(e) for e in self._feature_expressions]
        group = {n: frozenset([n]) for n in names}
        for tied in rule_roots + feature_roots:
            merged = frozenset().union(*(group[n] for n in tied))
            group.update(dict.fromkeys(merged, merged))
        order = [c.name for c in self.inputs]
        groups = sorted(set(group.values()), key=lambda g: min(order.index(n) for n in g))

        def decided(r: set[str], g: frozenset[str]) -> bool:
            return r <= g if g else not r

        memos = []
        for g in [frozenset(), *groups]:
            rules = [i for i, r in enumerate(rule_roots) if decided(r, g)]
            read = set().union(*(rule_labels[i] for i in rules))  # the labels its rules read (blank)
            memos.append(_Memo(tuple(c for c in self.inputs if c.name in g),
                               tuple(c for c in self._contract.columns if c.name in read), rules,
                               [i for i, r in enumerate(feature_roots) if decided(r, g)], size))
        return memos

    def metadata(self) -> list[dict]:
        return [{"name": c.name, "datatype": DATATYPES[c.dtype], "shape": [-1]} for c in self.inputs]

    def request(self, frame: pl.DataFrame) -> dict:
        """The V2 request a client sends for `frame`'s rows (typed as the contract types them): one tensor
        per input, dates in the spec's format, booleans as JSON booleans."""
        return {"inputs": [{"name": name, "shape": [frame.height], "datatype": DATATYPES[self._by_name[name].dtype],
                            "data": data} for name, data in self._sent(frame).items()]}

    def _sent(self, frame: pl.DataFrame) -> dict[str, list]:
        """Each input's values as a client sends them."""
        return {c.name: (frame[c.name].dt.strftime(c.date_format) if c.is_temporal else frame[c.name]).to_list()
                for c in self.inputs}

    def warm(self, validated: pl.DataFrame) -> None:
        """Fill the memos from rows the batch validated (the lake's recent days): a server that starts
        cold pays a polars pass for every value it has not seen, and saturated its event loop for its
        first seconds under load. Rows without every input (an older table) are no use and are skipped."""
        if self._memos and validated.height and {c.name for c in self.inputs} <= set(validated.columns):
            self.judge(self.cells(self._sent(validated)))

    def columns(self, inputs: list) -> dict[str, list]:
        """The request's tensors (`name`, `datatype`, `shape`, `data`) as columns of equal length, checked
        against the spec's inputs: every input present once, nothing else, a datatype of its type, data
        matching its shape."""
        errors, seen = [], {}
        for tensor in inputs:
            name, datatype, shape, data = tensor.name, tensor.datatype, tensor.shape, tensor.data
            c = self._by_name.get(name)
            if name in seen:
                errors.append(FieldError(None, name, "input.unique", f"{name}: input given twice [input.unique]"))
            elif c is None:
                what = "a label, not an input" if name in self.spec.label_columns else "not an input of the model"
                errors.append(FieldError(None, name, "input.unexpected",
                                         f"{name}: {what}; inputs: {', '.join(self._by_name)} [input.unexpected]"))
            elif datatype not in _ACCEPTED[c.dtype]:
                errors.append(FieldError(None, name, "input.datatype", f"{name}: datatype {datatype!r}, expected "
                                         f"{DATATYPES[c.dtype]} for a {c.dtype} column [input.datatype]"))
            elif len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1) or shape[0] != len(data):
                errors.append(FieldError(None, name, "input.shape", f"{name}: shape {shape} with {len(data)} values; "
                                         f"expected [rows] or [rows, 1], flat data [input.shape]"))
            seen[name] = data
        errors += [FieldError(None, c.name, "input.required", f"{c.name}: missing input ({DATATYPES[c.dtype]}) "
                              "[input.required]") for c in self.inputs if c.name not in seen]
        lengths = {len(v) for v in seen.values()}
        if not errors and len(lengths) != 1:
            errors.append(FieldError(None, None, "input.rows", "inputs have different numbers of rows "
                                     f"({', '.join(f'{k}: {len(v)}' for k, v in seen.items())}) [input.rows]"))
        if errors:
            raise RequestError(errors)
        return seen

    def cells(self, columns: dict[str, list]) -> dict[str, list]:
        """What the contract reads, per input column: the text a raw file would hold (see `_cell`). With
        memos, a column whose values all have its natural JSON type keeps them as they are: they are its
        memo keys, and spelling a thousand numbers out cost more than judging them from the memo."""
        if not self._memos:
            return {c.name: _texts(c, columns[c.name]) for c in self.inputs}
        return {c.name: columns[c.name] if _natural(c, columns[c.name]) else _texts(c, columns[c.name])
                for c in self.inputs}

    def _parsed(self, cells: dict[str, list[str | None]]) -> pl.DataFrame:
        rows = len(next(iter(cells.values())))
        blank = [None] * rows
        frame = pl.DataFrame(cells | {name: blank for name in self.spec.label_columns} | {LINE_COLUMN: [""] * rows},
                             schema=self._schema)
        parsed, _ = typed_cells(self._contract, frame, self._lenient)
        if not self.spec.fill_over_day:
            return parsed
        return parsed.with_columns(filled_over_day(self._contract, self._contract.column(n))
                                   for n in self.spec.fill_over_day)

    def judge(self, cells: dict[str, list[str | None]]) -> Judged:
        """Every row typed and judged by the row contract; the features of the rows that pass. From the
        memo when there is one (a polars pass for the cells it has not seen), else in one polars pass,
        whose cost hardly depends on its rows: the server judges concurrent requests together."""
        if self._memos:
            typed, broken, X, _ = self._memoized(cells, reasons=False)
            return Judged(typed, self.schema, broken, X[~broken] if broken.any() else X)
        out = self._parsed(cells).select(*self._flags, *self._validated)
        broken = out.select(pl.col(f.meta.output_name() for f in self._flags)).to_numpy().any(axis=1)
        validated = out.select(c.name for c in self.inputs)
        good = validated.filter(pl.Series(~broken)) if broken.any() else validated
        return Judged(validated.to_dict(as_series=False), validated.schema, broken, self.features(good))

    def errors(self, cells: dict[str, list[str | None]]) -> list[FieldError]:
        """Every rule each row broke, naming the field and the rule, in the contract's order of rules."""
        if self._memos:
            found = self._memoized(cells, reasons=True)[3]
            return [_error(row, reason) for row, listed in enumerate(found) for _, reason in sorted(listed)]
        reasons = self._parsed(cells).with_row_index("_row").select("_row", self._reasons)
        return [_error(row, reason) for row, found in reasons.iter_rows() for reason in found]

    def features(self, validated: pl.DataFrame) -> np.ndarray:
        """The model's input matrix (float32, `feature_names` order) from the one feature definition, as
        `ml.features.feature_matrix(spec, ml.scoring.scoring_features(spec, validated))` gives it, with the
        expressions built once rather than on every call (half a millisecond each time). The inputs
        carry no label to drop."""
        return validated.select(self._feature_expressions).to_numpy().astype(np.float32, copy=False)

    def _passed(self, m: _Memo, keys: list) -> tuple[list[list], np.ndarray, list[tuple], np.ndarray]:
        """The outcomes of `keys` for group `m` (typed values per column; per key: some rule broken, the
        (rule, reason) pairs, the features), by the contract's own typing (`typed_cells`, given the
        group's columns and the blank labels) and its rules and features, in one polars pass over the
        distinct keys: a few expressions, not the whole contract. Features see a refused value as null
        (an unknown level of an ordinal category would raise) and are cast to float64 before float32, as
        the feature matrix of the whole table is."""
        rows = len(keys)
        cells = dict(zip(m.columns, zip(*keys))) if len(m.columns) != 1 else {m.columns[0]: keys}
        blank = dict.fromkeys(m.labels, [None] * rows)
        frame = pl.DataFrame({n: _spelled(v) for n, v in cells.items()} | blank | {LINE_COLUMN: [""] * rows},
                             schema=dict.fromkeys([*cells, *blank, LINE_COLUMN], pl.String))
        parsed, _ = typed_cells(m.part, frame, self._lenient)
        out = parsed.select(*(self._flags[j] for j in m.rules), *(pl.col(typed_column(n)).alias(n) for n in m.columns))
        flags = np.column_stack([out[f"_rule{j}"].to_numpy() for j in m.rules])
        bad = flags.any(axis=1)
        # The reasons' formatting is most of the expressions: rendered only when some value broke a rule.
        reasons = parsed.select(self._rule_reasons[j] for j in m.rules).to_dict(as_series=False) if bad.any() else {}
        typed = [out[n].to_list() for n in m.columns]
        X = np.zeros((rows, 0), dtype=np.float32)
        if m.features:
            clean = out.select(pl.when(pl.Series(bad)).then(None).otherwise(pl.col(n)).alias(n)
                               for n in m.columns) if bad.any() else out
            X = clean.select(self._feature_expressions[f].cast(pl.Float64) for f in m.features).to_numpy()
        why = [tuple((j, reasons[f"_reason{j}"][r]) for j, flag in zip(m.rules, flags[r])
                     if flag and reasons[f"_reason{j}"][r] is not None) if bad[r] else () for r in range(rows)]
        return typed, bad, why, X.astype(np.float32)

    def _memoized(self, cells: dict[str, list[str | None]], reasons: bool
                  ) -> tuple[dict[str, list], np.ndarray, np.ndarray, list[list[tuple[int, str]]]]:
        """(typed values per column, per row: some rule broken, the feature matrix of every row — a
        refused row's features are meaningless —, per row the (rule, reason) pairs when `reasons`).
        A group's outcomes are read from its memo before its misses are remembered: a remembered miss may
        push out an entry this batch still reads."""
        rows = len(next(iter(cells.values())))
        typed: dict[str, list] = {}
        broken = np.zeros(rows, dtype=bool)
        blocks, found = [], [[] for _ in range(rows)] if reasons else []
        for m in self._memos:
            keys = m.keys(cells, rows)
            slots = list(map(m.slot_of.get, keys))
            misses = [i for i, slot in enumerate(slots) if slot is None] if None in slots else []
            held = [0 if slot is None else slot for slot in slots] if misses else slots
            block, bad = m.X[held], m.bad[held]
            values = [list(map(column.__getitem__, held)) for column in m.typed]
            listed = list(map(m.reasons.__getitem__, held)) if reasons else []
            if misses:
                new = list(dict.fromkeys(keys[i] for i in misses))
                new_typed, new_bad, new_why, new_X = self._passed(m, new)
                at = dict(zip(new, range(len(new))))
                where = [at[keys[i]] for i in misses]
                block[misses], bad[misses] = new_X[where], new_bad[where]
                for column, new_column in zip(values, new_typed):
                    for i, k in zip(misses, where):
                        column[i] = new_column[k]
                if reasons:
                    for i, k in zip(misses, where):
                        listed[i] = new_why[k]
                m.remember(new, new_typed, new_bad, new_why, new_X)
            typed.update(zip(m.columns, values))
            broken |= bad
            blocks.append(block)
            for row, why in zip(found, listed):
                row.extend(why)
        X = np.ascontiguousarray(np.concatenate(blocks, axis=1)[:, self._feature_order])
        return {c.name: typed[c.name] for c in self.inputs}, broken, X, found


class _Memo:
    """A group's outcomes by its cells: typed values, some rule broken, the (rule, reason) pairs and the
    feature values, in `size` slots reused oldest first (a bounded memory whatever the traffic)."""

    def __init__(self, columns: tuple[Column, ...], labels: tuple[Column, ...], rules: list[int],
                 features: list[int], size: int):
        self.columns, self.labels = tuple(c.name for c in columns), tuple(c.name for c in labels)
        self.rules, self.features, self.size = rules, features, size
        self.part = SimpleNamespace(columns=columns + labels)  # what `typed_cells` reads of a spec: the columns
        self.slot_of: dict = {}
        self.key_at: list = [_FREE] * size
        self.typed: list[list] = [[None] * size for _ in columns]  # per column, per slot
        self.reasons: list[tuple] = [()] * size
        self.bad = np.zeros(size, dtype=bool)
        self.X = np.zeros((size, len(features)), dtype=np.float32)
        self._written = 0

    def keys(self, cells: dict[str, list[str | None]], rows: int) -> list:
        if len(self.columns) == 1:
            return cells[self.columns[0]]
        return list(zip(*(cells[n] for n in self.columns))) if self.columns else [()] * rows

    def remember(self, keys: list, typed: list[list], bad: np.ndarray, why: list[tuple], X: np.ndarray) -> None:
        """Hold the outcomes of `keys` (none of them held), pushing out the oldest (past `size`, the last
        `size` keys only)."""
        first = max(len(keys) - self.size, 0)
        slots = [(self._written + k) % self.size for k in range(len(keys) - first)]
        for slot in slots:
            if self.key_at[slot] is not _FREE:
                del self.slot_of[self.key_at[slot]]
        self._written += len(slots)
        for slot, key in zip(slots, keys[first:]):
            self.slot_of[key] = slot
            self.key_at[slot] = key
        for column, new in zip(self.typed, typed):
            for slot, value in zip(slots, new[first:]):
                column[slot] = value
        for slot, reasons in zip(slots, why[first:]):
            self.reasons[slot] = reasons
        self.bad[slots], self.X[slots] = bad[first:], X[first:]


@dataclass(frozen=True)
class Judged:
    typed: dict[str, list]  # every row as the contract typed it (a refused row: null where a value failed)
    schema: pl.Schema  # the validated table's columns and types
    broken: np.ndarray  # per row: some rule broken
    X: np.ndarray  # the feature matrix of the rows that broke nothing, in order

    @property
    def validated(self) -> pl.DataFrame:
        """The typed rows as a table: built only when read (the request log builds its own, off the
        request path, from `typed`)."""
        return pl.DataFrame(self.typed, schema=self.schema)


def _error(row: int, reason: str) -> FieldError:
    match = _REASON.match(reason)
    return FieldError(row, match["field"] if match else None, match["rule"] if match else "row", reason)
