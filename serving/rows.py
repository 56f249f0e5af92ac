"""Request rows through the spec's row contract, then the one feature definition.

A request carries the spec's raw columns (labels excepted), one V2 tensor per column. Each value is
turned into the text a raw file would hold and judged by the very rules `validated_<name>` applies
(`ml.contract`), so an online row is accepted exactly when a batch row with the same values would be,
and its features come from the expressions of `ml.features`, the one feature definition. The contract's
reasons name the request's fields (the spec's clean column names), e.g.
`temp: 1.5 above maximum 1 [range.max]`.

Dagster-free: the server and the tests call it directly.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass

import numpy as np
import polars as pl

from ml.contract import _LINE, _filled_over_day, _row_rules, _typed, _typed_cells
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
_REASON = re.compile(r"^(?P<field>[A-Za-z0-9_]+): .*\[(?P<rule>[^\]]+)\]$")


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


class RequestRows:
    """The inputs a use case's model server takes and how a request's rows become a feature matrix."""

    def __init__(self, spec: UseCaseSpec):
        self.spec = spec
        # The same columns and rules, named as the request names them (the clean names, not file headers).
        self._contract = dataclasses.replace(
            spec, columns=tuple(dataclasses.replace(c, raw_name=None) for c in spec.columns))
        self.inputs: tuple[Column, ...] = tuple(c for c in self._contract.columns if c.name not in spec.label_columns)
        self._by_name = {c.name: c for c in self.inputs}
        # Every int column takes the lenient parse ("3.0" is 3): what the batch decides per file after a
        # first pass, decided once here, so a request is typed in one pass.
        self._lenient = frozenset(c.name for c in self._contract.columns if c.dtype == "int")
        self._rules = _row_rules(self._contract, None)
        self._flags = [broken.alias(f"_rule{i}") for i, (broken, _) in enumerate(self._rules)]
        self._reasons = pl.concat_list([pl.when(b).then(r) for b, r in self._rules]).list.drop_nulls().alias("_reasons")
        self._schema = {c.name: pl.String for c in self._contract.columns} | {_LINE: pl.String}
        self._validated = [pl.col(_typed(c.name)).alias(c.name) for c in self.inputs]
        self._feature_expressions = feature_expressions(spec)  # in `feature_names` order

    def metadata(self) -> list[dict]:
        return [{"name": c.name, "datatype": DATATYPES[c.dtype], "shape": [-1]} for c in self.inputs]

    def request(self, frame: pl.DataFrame) -> dict:
        """The V2 request a client sends for `frame`'s rows (typed as the contract types them): one tensor
        per input, dates in the spec's format, booleans as JSON booleans."""
        return {"inputs": [{"name": c.name, "shape": [frame.height], "datatype": DATATYPES[c.dtype],
                            "data": (frame[c.name].dt.strftime(c.date_format) if c.is_temporal
                                     else frame[c.name]).to_list()} for c in self.inputs]}

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

    def cells(self, columns: dict[str, list]) -> dict[str, list[str | None]]:
        """The text a raw file would hold, per input column (see `_cell`)."""
        return {c.name: _texts(c, columns[c.name]) for c in self.inputs}

    def _parsed(self, cells: dict[str, list[str | None]]) -> pl.DataFrame:
        rows = len(next(iter(cells.values())))
        blank = [None] * rows
        frame = pl.DataFrame(cells | {name: blank for name in self.spec.label_columns} | {_LINE: [""] * rows},
                             schema=self._schema)
        parsed, _ = _typed_cells(self._contract, frame, self._lenient)
        if not self.spec.fill_over_day:
            return parsed
        return parsed.with_columns(_filled_over_day(self._contract, self._contract.column(n))
                                   for n in self.spec.fill_over_day)

    def judge(self, cells: dict[str, list[str | None]]) -> Judged:
        """Every row typed and judged by the row contract in one pass; the features of the rows that pass.
        The cost of a pass hardly depends on its rows, so the server judges concurrent requests together."""
        out = self._parsed(cells).select(*self._flags, *self._validated)
        broken = out.select(pl.col(f.meta.output_name() for f in self._flags)).to_numpy().any(axis=1)
        validated = out.select(c.name for c in self.inputs)
        good = validated.filter(pl.Series(~broken)) if broken.any() else validated
        return Judged(validated, broken, self.features(good))

    def errors(self, cells: dict[str, list[str | None]]) -> list[FieldError]:
        """Every rule each row broke, naming the field and the rule (the slow path, for refused rows)."""
        reasons = self._parsed(cells).with_row_index("_row").select("_row", self._reasons)
        return [_error(row, reason) for row, found in reasons.iter_rows() for reason in found]

    def features(self, validated: pl.DataFrame) -> np.ndarray:
        """The model's input matrix (float32, `feature_names` order) from the one feature definition, as
        `ml.features.feature_matrix(spec, ml.scoring.scoring_features(spec, validated))` gives it, with the
        expressions built once rather than on every call (half a millisecond each time). The inputs
        carry no label to drop."""
        return validated.select(self._feature_expressions).to_numpy().astype(np.float32, copy=False)


@dataclass(frozen=True)
class Judged:
    validated: pl.DataFrame  # every row as the contract typed it (a refused row: null where a value failed)
    broken: np.ndarray  # per row: some rule broken
    X: np.ndarray  # the feature matrix of the rows that broke nothing, in order


def _error(row: int, reason: str) -> FieldError:
    match = _REASON.match(reason)
    return FieldError(row, match["field"] if match else None, match["rule"] if match else "row", reason)
