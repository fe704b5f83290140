"""What a model takes and returns, and the validation of every request against it.

A :class:`Signature` is inferred from the training frame and stored in the model's manifest.
Serving turns JSON records into model input with :meth:`Signature.to_matrix` (the hot path: plain
Python type checks, no pandas) or :meth:`Signature.to_frame`. Every problem in a request is
reported at once in ``InvalidInput.details`` (``row``/``field`` are ``None`` when a problem is
about the whole request or a whole column), so a client fixes its payload in one round trip.
A DataFrame given to a loaded model (``ml.load_model(...).predict(frame)``) goes through
:meth:`Signature.conform`: the same type rules, checked per column in bulk, so a column of text
for a number is an InvalidInput naming it, never the model library's own error.

Choices: ``min``/``max`` are the ranges seen in training, recorded for monitoring and never
enforced (a larger amount than ever seen is a legitimate transaction, not a bad request).
``nullable`` is whether training had missing values: ``None``/NaN is refused for a feature that
never had one. Infinity is always refused. Categorical levels are strings, encoded as their index
in the training categories (the codes pandas, LightGBM and XGBoost used at fit time).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from modelloop.errors import InvalidArgument, InvalidInput

MAX_ROWS = 10_000
MAX_DETAILS = 100
Dtype = Literal["float", "int", "bool", "category", "string"]
OutputKind = Literal["probability", "score", "class"]
_DTYPES = ("float", "int", "bool", "category", "string")
_FLOAT, _INT, _BOOL, _CATEGORY, _STRING = range(5)
_BIG = 2.0**63
_NAN = math.nan
_MISSING: Any = object()
_COLUMN = (list, tuple, np.ndarray)
_UNEXPECTED = "unexpected field (not in the model signature)"
_Column = tuple[str, int, bool, dict[str, int], int]  # name, kind, nullable, codes, index


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    dtype: Dtype
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] | None = None


@dataclass(frozen=True)
class OutputSpec:
    """What the model answers: a probability of ``classes[1]`` (binary) or of each class, a
    class, or a score; ``classes`` are the labels it was trained on, as text (None when the
    model does not record them, e.g. a regressor)."""

    kind: OutputKind = "score"
    classes: tuple[str, ...] | None = None

    def read_label(self, value: bool | float | str) -> tuple[float | None, str | None]:
        """A ground-truth label (feedback) as stored: ``(number, text)``; ValueError saying
        which values this model allows.

        With classes, the label names one: as its text, or as its number (``1`` names class
        ``"1"``; true/false are 1/0 and also name ``"True"``/``"False"``). A binary
        classifier's label is stored as 1.0 for ``classes[1]`` (the class its score is the
        probability of) and 0.0 for the other, so performance monitoring uses it, with the
        class's text when that is not the same number; other classifiers store the class's
        number, else its text. Without classes, a probability takes 0 or 1 and a score any
        number: the values monitoring can use."""
        if self.classes:
            index = _class_index(self.classes, value)
            if index is None:
                allowed = ", ".join(_show_class(c) for c in self.classes[:20])
                more = f" (+{len(self.classes) - 20} more)" if len(self.classes) > 20 else ""
                raise ValueError(f"{value!r} is not a class of this model: allowed {allowed}{more}")
            name = self.classes[index]
            number = _class_number(name)
            if len(self.classes) == 2:
                return float(index), None if number == index else name
            return (number, None) if number is not None else (None, name)
        if isinstance(value, str):
            allowed = "0 or 1" if self.kind == "probability" else "a number"
            raise ValueError(
                f"{value[:50]!r} is not a label of this model: it records no classes, so its "
                f"labels are numbers ({allowed})"
            )
        number = float(value)
        if self.kind == "probability" and number not in (0.0, 1.0):
            raise ValueError(
                f"{value!r} is not a label of this model: its score is a probability, so its "
                "labels are 0 or 1 (true/false)"
            )
        return number, None


def _class_number(name: str) -> float | None:
    """The number a class's text stands for ("1", "-1", "2.0", "True"), if any."""
    if name.lower() in ("true", "false"):
        return float(name.lower() == "true")
    try:
        number = float(name)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _class_index(classes: tuple[str, ...], value: bool | float | str) -> int | None:
    if isinstance(value, str):
        return classes.index(value) if value in classes else None
    for i, name in enumerate(classes):
        if _class_number(name) == float(value):
            return i
    return None


def _show_class(name: str) -> str:
    return (
        name
        if _class_number(name) is not None and name.lower() not in ("true", "false")
        else repr(name)
    )


class _Problems:
    """Problems found so far: all counted, the first ``MAX_DETAILS`` kept."""

    __slots__ = ("count", "details", "rows")

    def __init__(self) -> None:
        self.count = 0
        self.details: list[dict[str, Any]] = []
        self.rows: set[int | None] = set()

    def add(self, row: int | None, name: str | None, message: str) -> None:
        self.count += 1
        self.rows.add(row)
        if len(self.details) < MAX_DETAILS:
            self.details.append({"row": row, "field": name, "message": message})

    def raise_if_any(self) -> None:
        if not self.count:
            return
        first = "; ".join(
            f"row {d['row']}, {d['field']!r}: {d['message']}" for d in self.details[:3]
        )
        more = f" (first {MAX_DETAILS} in details)" if self.count > MAX_DETAILS else ""
        raise InvalidInput(
            f"invalid input: {self.count} problem(s) in {len(self.rows)} row(s){more}: {first}",
            self.details,
        )


@dataclass(frozen=True)
class Signature:
    inputs: tuple[FeatureSpec, ...]
    output: OutputSpec = field(default_factory=OutputSpec)
    _plan: tuple[_Column, ...] = field(init=False, repr=False, compare=False)
    names: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = tuple(spec.name for spec in self.inputs)
        if len(set(names)) != len(names) or not names:
            raise InvalidArgument(f"a signature needs distinct feature names, got {names}")
        if self.output.kind not in ("probability", "score", "class"):
            raise InvalidArgument(f"unknown output kind {self.output.kind!r}")
        plan = []
        for j, spec in enumerate(self.inputs):
            if spec.dtype not in _DTYPES:
                raise InvalidArgument(f"feature {spec.name!r}: unknown dtype {spec.dtype!r}")
            if spec.dtype == "category" and not spec.categories:
                raise InvalidArgument(f"feature {spec.name!r}: a category needs its categories")
            codes = {c: i for i, c in enumerate(spec.categories or ())}
            plan.append((spec.name, _DTYPES.index(spec.dtype), spec.nullable, codes, j))
        object.__setattr__(self, "_plan", tuple(plan))
        object.__setattr__(self, "names", names)

    @property
    def matrix_ready(self) -> bool:
        """False when a free-text feature means the model can only be fed a DataFrame."""
        return all(spec.dtype != "string" for spec in self.inputs)

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": [asdict(s) for s in self.inputs], "output": asdict(self.output)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Signature:
        try:
            inputs = tuple(
                FeatureSpec(**{**f, "categories": _tuple(f.get("categories"))}) for f in d["inputs"]
            )
            out = d.get("output") or {}
            return cls(inputs, OutputSpec(**{**out, "classes": _tuple(out.get("classes"))}))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidArgument(f"malformed signature: {exc!r}") from exc

    def to_matrix(self, records: Any, *, max_rows: int = MAX_ROWS) -> np.ndarray:
        """Validated float64 matrix (rows x features, signature order); categories as codes."""
        if not self.matrix_ready:
            raise InvalidArgument("this signature has string features: use to_frame instead")
        return self._validate(records, max_rows, None)

    def to_frame(self, records: Any, *, max_rows: int = MAX_ROWS) -> pd.DataFrame:
        """Validated frame, columns in signature order, with the training dtypes."""
        strings: dict[int, list[Any]] = {
            j: [] for j, spec in enumerate(self.inputs) if spec.dtype == "string"
        }
        return self.matrix_to_frame(self._validate(records, max_rows, strings), strings)

    def matrix_to_frame(
        self, X: np.ndarray, strings: Mapping[int, Sequence[Any]] | None = None
    ) -> pd.DataFrame:
        """The frame a :meth:`to_matrix` result stands for (no validation), for models fit on
        DataFrames. ``strings`` holds the values of string features, by column index."""
        columns: dict[str, Any] = {}
        for spec, (name, kind, nullable, _, j) in zip(self.inputs, self._plan, strict=True):
            col = X[:, j]
            if kind == _STRING:
                columns[name] = np.array((strings or {}).get(j, [None] * len(X)), dtype=object)
            elif kind == _CATEGORY:
                codes = np.where(np.isnan(col), -1, col).astype(np.int64)
                dtype = pd.CategoricalDtype(list(spec.categories or ()))
                columns[name] = pd.Categorical.from_codes(codes, dtype=dtype)
            elif kind == _INT and not nullable:
                columns[name] = col.astype(np.int64)
            elif kind == _BOOL and not nullable:
                columns[name] = col.astype(bool)
            else:
                columns[name] = col
        return pd.DataFrame(columns, index=pd.RangeIndex(len(X)))

    def matrix_values(self, X: np.ndarray) -> np.ndarray:
        """``X`` as an object array of the values a client sends: category names, ints,
        bools, and None for missing (reason codes quote them)."""
        values = X.astype(object)
        values[np.isnan(X)] = None
        for j, spec in enumerate(self.inputs):
            if spec.dtype == "category":
                levels = spec.categories or ()
                values[:, j] = [None if v is None else levels[int(v)] for v in values[:, j]]
            elif spec.dtype in ("int", "bool"):
                cast = int if spec.dtype == "int" else bool
                values[:, j] = [None if v is None else cast(v) for v in values[:, j]]
        return values

    def select(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The frame's columns of this signature, in its order (InvalidInput if one lacks)."""
        problems = _Problems()
        for name in self.names:
            if name not in frame.columns:
                problems.add(None, name, "missing column")
        problems.raise_if_any()
        return frame[list(self.names)]

    def conform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The frame's columns of this signature, in its order, as the model takes them (batch
        and SDK use). Types follow the rules requests follow, checked per column: a column of
        the wrong type is an InvalidInput naming it, the type expected and a value it holds;
        numbers held as Python objects become float64 and text for a category becomes that
        categorical. Leniently, unlike requests: nulls are let through and categories unseen
        in training become missing (a batch may hold both)."""
        selected = self.select(frame)
        problems: list[dict[str, Any]] = []
        converted: dict[str, Any] = {}
        for j, spec in enumerate(self.inputs):
            column = selected.iloc[:, j]
            try:
                new = _conform_column(spec, column)
            except _Mismatch as exc:
                problems.append({"row": exc.row, "field": spec.name, "message": str(exc)})
                continue
            if new is not None:
                converted[spec.name] = new
        if problems:
            listed = "; ".join(f"{p['field']!r} {p['message']}" for p in problems)
            raise InvalidInput(
                f"invalid input: {len(problems)} column(s) do not match the model "
                f"signature: {listed}",
                problems,
            )
        if not converted:
            return selected
        out = selected.copy(deep=False)
        for name, values in converted.items():
            out[name] = values
        return out

    def frame_to_matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """A DataFrame as model matrix, leniently (batch/SDK use, see :meth:`conform`): types
        are checked, nulls and categories unseen in training become missing."""
        if not self.matrix_ready:
            raise InvalidArgument("this signature has string features: no matrix form")
        X = np.empty((len(frame), len(self.inputs)), dtype=np.float64)
        selected = self.conform(frame)
        for j, spec in enumerate(self.inputs):
            col = selected.iloc[:, j]
            if spec.dtype == "category":
                codes = pd.Categorical(col, categories=spec.categories).codes
                X[:, j] = np.where(codes < 0, np.nan, codes)
            else:  # numbers or booleans: conform refused anything else
                X[:, j] = col.to_numpy(dtype=np.float64, na_value=np.nan)
        return X

    # -- validation ---------------------------------------------------------------------------

    def _validate(
        self, records: Any, max_rows: int, strings: dict[int, list[Any]] | None
    ) -> np.ndarray:
        problems = _Problems()
        if isinstance(records, pd.DataFrame):
            records = {str(c): records[c].tolist() for c in records.columns}
        if isinstance(records, Mapping):
            _check_size(min(len(records), 1), max_rows)  # {} is empty, not a record missing all
            first = next(iter(records.values()))
            if isinstance(first, _COLUMN) and all(isinstance(v, _COLUMN) for v in records.values()):
                records = self._columns_to_records(records, max_rows)
            else:
                records = (records,)
        elif not isinstance(records, list | tuple):
            raise InvalidInput(
                "expected a record, a list of records or a mapping of columns",
                [{"row": None, "field": None, "message": f"got {_kind(records)}"}],
            )
        _check_size(len(records), max_rows)
        rows = []
        for i, rec in enumerate(records):
            if isinstance(rec, Mapping):
                rows.append(self._record(rec, i, problems, strings))
            else:
                problems.add(i, None, f"expected an object of field -> value, got {_kind(rec)}")
        problems.raise_if_any()
        return np.array(rows, dtype=np.float64).reshape(len(rows), len(self._plan))

    def _record(
        self,
        rec: Mapping[str, Any],
        row: int,
        problems: _Problems,
        strings: dict[int, list[Any]] | None,
    ) -> list[float]:
        out: list[float] = []
        append = out.append
        before = problems.count
        for col in self._plan:
            v = rec.get(col[0], _MISSING)
            t = type(v)
            # Fast paths: a finite float (v - v is NaN for NaN and inf) or a moderate int.
            if t is float and col[1] == _FLOAT and v - v == 0.0:
                append(v)
            elif t is int and col[1] <= _INT and -_BIG < v < _BIG:
                append(float(v))
            else:
                append(_convert(v, col, row, problems, strings))
        if len(rec) != len(self._plan) or problems.count != before:
            for key in rec:
                if key not in self.names:
                    problems.add(row, str(key), _UNEXPECTED)
        return out

    def _columns_to_records(
        self, columns: Mapping[str, Any], max_rows: int
    ) -> list[dict[str, Any]]:
        """Columnar input as records, once its columns are the signature's, of one length."""
        problems = _Problems()
        lengths = {name: len(values) for name, values in columns.items()}
        n = max(set(lengths.values()), key=list(lengths.values()).count)
        for name, length in lengths.items():
            if length != n:
                problems.add(None, name, f"ragged columns: {length} values where others have {n}")
            if name not in self.names:
                problems.add(None, name, _UNEXPECTED)
        for name in self.names:
            if name not in columns:
                problems.add(None, name, "missing field")
        problems.raise_if_any()
        _check_size(n, max_rows)
        return [
            dict(zip(self.names, row, strict=True))
            for row in zip(*map(columns.get, self.names), strict=True)
        ]


def _check_size(n: int, max_rows: int) -> None:
    if n == 0:
        raise InvalidInput("empty input", [{"row": None, "field": None, "message": "no rows"}])
    if n > max_rows:
        raise InvalidInput(
            f"{n} rows is more than the limit of {max_rows} per request",
            [{"row": None, "field": None, "message": f"{n} rows > {max_rows}"}],
        )


def _convert(
    v: Any,
    col: _Column,
    row: int,
    problems: _Problems,
    strings: dict[int, list[Any]] | None,
) -> float:
    """The slow path of one value: anything but a plain finite float/int for a number."""
    name, kind, nullable, codes, j = col
    if v is _MISSING:
        problems.add(row, name, "missing field")
        return _NAN
    if v is None or (isinstance(v, float | np.floating) and math.isnan(v)):
        if not nullable:
            problems.add(row, name, "missing value (null/NaN) but training had none")
        elif strings is not None and kind == _STRING:
            strings[j].append(None)
        return _NAN
    if kind in (_STRING, _CATEGORY):
        if not isinstance(v, str):
            problems.add(row, name, f"expected a string, got {_kind(v)}")
        elif kind == _STRING:
            if strings is not None:
                strings[j].append(v)
        elif v in codes:
            return float(codes[v])
        else:
            allowed = ", ".join(repr(c) for c in list(codes)[:10])
            more = f" (+{len(codes) - 10} more)" if len(codes) > 10 else ""
            problems.add(row, name, f"unseen category {v[:50]!r}; allowed: {allowed}{more}")
        return _NAN
    if isinstance(v, bool | np.bool_):
        if kind == _BOOL:
            return float(v)
        problems.add(row, name, "expected a number, got a boolean")
    elif kind == _BOOL:
        problems.add(row, name, f"expected true or false, got {_kind(v)}")
    elif isinstance(v, int | np.integer):
        if -_BIG < v < _BIG:
            return float(v)
        problems.add(row, name, "integer out of range")
    elif isinstance(v, float | np.floating):
        if not math.isfinite(v):
            problems.add(row, name, "infinite value")
        elif kind == _INT and not float(v).is_integer():
            problems.add(row, name, f"expected an integer, got {float(v)!r}")
        else:
            return float(v)
    else:
        problems.add(row, name, f"expected a number, got {_kind(v)}")
    return _NAN


class _Mismatch(Exception):
    """A column whose type the signature does not take; ``row`` is the example's label."""

    def __init__(self, message: str, row: Any = None) -> None:
        super().__init__(message)
        self.row = row


_EXPECTED = {
    "float": "numbers (float)",
    "int": "whole numbers (int)",
    "bool": "true/false (bool, or 0/1)",
    "string": "text (string)",
}
_NUMBERS = frozenset({"integer", "floating", "mixed-integer-float", "decimal", "empty"})
_TEXT = frozenset({"string", "empty"})


def _conform_column(spec: FeatureSpec, column: pd.Series[Any]) -> Any:
    """``column`` as ``spec`` takes it: None if it already is, else the converted values;
    _Mismatch saying what was expected and what the column holds."""
    from pandas.api import types

    dtype: Any = column.dtype
    categorical = isinstance(dtype, pd.CategoricalDtype)
    stored_as_text = not categorical and (
        types.is_object_dtype(dtype) or types.is_string_dtype(dtype)
    )
    if spec.dtype == "category":
        levels = list(spec.categories or ())
        if categorical and list(dtype.categories) == levels:
            return None
        held = dtype.categories if categorical else column
        if (categorical or stored_as_text) and types.infer_dtype(held, skipna=True) in _TEXT:
            return pd.Categorical(column, categories=levels)
        allowed = ", ".join(repr(c) for c in levels[:10]) + (" ..." if len(levels) > 10 else "")
        raise _mismatch(f"one of {allowed} (category, as text)", column, _is_text)
    if spec.dtype == "string":
        if stored_as_text and types.infer_dtype(column, skipna=True) in _TEXT:
            return None
        raise _mismatch(_EXPECTED["string"], column, _is_text)
    # float, int, bool: numbers (a bool feature also takes booleans)
    boolean = types.is_bool_dtype(dtype) and not types.is_object_dtype(dtype)
    numeric = types.is_numeric_dtype(dtype) and not boolean and not categorical
    new = None
    if types.is_object_dtype(dtype):
        inferred = types.infer_dtype(column, skipna=True)
        if inferred in _NUMBERS or (inferred == "boolean" and spec.dtype == "bool"):
            new = pd.to_numeric(column, errors="coerce").astype(np.float64)
            numeric = True
    if spec.dtype == "bool":
        if boolean:
            return None
        if numeric:
            values = column.to_numpy(dtype=np.float64, na_value=np.nan)
            bad = ~(np.isnan(values) | (values == 0) | (values == 1))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise _Mismatch(
                    f"expected {_EXPECTED['bool']}, got {float(values[i])!r}", _label(column, i)
                )
            return new
        raise _mismatch(_EXPECTED["bool"], column, _is_bool)
    if not numeric:
        raise _mismatch(_EXPECTED[spec.dtype], column, _is_number)
    if spec.dtype == "int":
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isfinite(values) & (values != np.floor(values))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise _Mismatch(
                f"expected {_EXPECTED['int']}, got {float(values[i])!r}", _label(column, i)
            )
    return new


def _mismatch(expected: str, column: pd.Series[Any], fits: Any) -> _Mismatch:
    """The complaint about a column: its first value that does not fit when it holds Python
    objects (text, mixed), else its dtype."""
    from pandas.api import types

    if types.is_object_dtype(column.dtype) or types.is_string_dtype(column.dtype):
        for i, value in enumerate(column):
            if value is None or (isinstance(value, float) and math.isnan(value)) or fits(value):
                continue
            return _Mismatch(f"expected {expected}, got {_kind(value)}", _label(column, i))
    return _Mismatch(f"expected {expected}, got a {column.dtype} column")


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool | np.bool_)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not _is_bool(value)


def _label(column: pd.Series[Any], i: int) -> Any:
    label = column.index[i]
    return label.item() if isinstance(label, np.generic) else label


def _tuple(values: Any) -> tuple[Any, ...] | None:
    return None if values is None else tuple(values)


def _kind(v: Any) -> str:
    if isinstance(v, str):
        return f"a string ({v[:30]!r})"
    if isinstance(v, Mapping):
        return "an object"
    if isinstance(v, list | tuple):
        return "a list"
    return type(v).__name__


def infer_signature(training_data: pd.DataFrame, output: OutputSpec | None = None) -> Signature:
    """The signature of a model trained on ``training_data`` (every column is a feature)."""
    specs = []
    for name in training_data.columns:
        if not isinstance(name, str):
            raise InvalidArgument(f"feature names must be strings, got {name!r}")
        col = training_data[name]
        dtype, nullable = col.dtype, bool(col.isna().any())
        lo = hi = None
        categories = None
        kind: Dtype
        if isinstance(dtype, pd.CategoricalDtype):
            levels = list(dtype.categories)
            if not all(isinstance(c, str) for c in levels):
                raise InvalidArgument(
                    f"categorical {name!r} has non-string levels; convert them with .astype(str)"
                    " before training so requests can name them"
                )
            kind, categories = "category", tuple(levels)
        elif pd.api.types.is_bool_dtype(dtype):
            kind = "bool"
        elif pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_float_dtype(dtype):
            kind = "int" if pd.api.types.is_integer_dtype(dtype) else "float"
            values = col.to_numpy(dtype=np.float64, na_value=np.nan)
            finite = values[np.isfinite(values)]
            if finite.size:
                lo, hi = float(finite.min()), float(finite.max())
        elif pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
            kind = "string"
        else:
            raise InvalidArgument(f"feature {name!r}: unsupported dtype {dtype}")
        specs.append(FeatureSpec(name, kind, nullable, lo, hi, categories))
    return Signature(tuple(specs), output or OutputSpec())
