"""Contracts: declared expectations on a dataset, and the report of every rule it breaks.

A :class:`Contract` holds per-column :class:`Expect` rules, a key that must be unique, row-count
bounds and custom :class:`Check` functions. :meth:`Contract.validate` never stops at the first
problem: it evaluates every rule and returns a :class:`ValidationReport` listing each violation
with how many rows broke it and up to five examples (row index label and value);
:meth:`ValidationReport.raise_if_failed` turns a failed report into :class:`ContractViolation`,
which is what stops a pipeline.

Rules (``Violation.rule``): missing_column, extra_column, dtype, not_null, null_rate, finite,
min, max, allowed, unique, row_count, check. A value-level rule that cannot apply to a column of
the wrong type (a range on text) is skipped when ``dtype`` already reports the mismatch.

A contract is itself checked before any data is: a YAML or mapping contract is a configuration
(:mod:`modelloop.configs`: one ``field: message`` per problem, unknown keys answered with the
known ones), and a dtype that is neither a kind nor a pandas dtype (``flaot``) or an allowed
value that is itself a list or mapping (``allowed: [[a, b]]``) is a bad contract
(InvalidArgument saying what is expected), never a violation of the data nor a crash.

A contract and a report are stored with the dataset version they were checked on as JSON:
:meth:`Contract.to_dict` is the configuration :meth:`Contract.from_dict` reads (custom checks
exist only in Python, so only their names are kept, by the caller), and
:meth:`ValidationReport.to_dict` / :meth:`ValidationReport.from_dict` round-trip a report.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from modelloop import configs
from modelloop.errors import InvalidArgument

if TYPE_CHECKING:
    import pandas as pd

MAX_EXAMPLES = 5
DTYPE_KINDS = ("float", "int", "numeric", "bool", "category", "string", "datetime")


class ContractViolation(InvalidArgument):
    """A dataset broke its contract: ``message`` is the report's summary, ``details`` the
    violations as dicts."""

    error_code = "CONTRACT_VIOLATION"


@dataclass(frozen=True, slots=True)
class Expect:
    """What one column must satisfy. ``dtype`` is a kind (float, int, numeric, bool, category,
    string, datetime) or an exact pandas dtype (``int32``). NaN and None count as null;
    infinities are refused unless ``allow_inf``."""

    dtype: str | None = None
    min: float | None = None
    max: float | None = None
    nullable: bool = True
    max_null_rate: float | None = None
    allowed: frozenset[Any] | set[Any] | Sequence[Any] | None = None
    allow_inf: bool = False

    def __post_init__(self) -> None:
        """A misspelt dtype (``flaot``) or a list among the allowed values is refused where
        the Expect is written, not when a Contract holding it is built or data is checked."""
        problems = []
        if self.dtype is not None:
            try:
                check_dtype(self.dtype)
            except ValueError as exc:
                problems.append(("dtype", str(exc)))
        if self.allowed is not None:
            try:
                check_allowed(self.allowed)
            except ValueError as exc:
                problems.append(("allowed", str(exc)))
        if problems:
            details = [{"field": where, "message": m} for where, m in problems]
            lines = "; ".join(f"{d['field']}: {d['message']}" for d in details)
            raise InvalidArgument(f"Invalid Expect: {lines}", details)


@dataclass(frozen=True, slots=True)
class Check:
    """A custom rule: ``fn(frame)`` returns a boolean Series (rows where it is not True fail)
    or one boolean for the whole frame. A check that raises is reported, not propagated."""

    name: str
    fn: Callable[[pd.DataFrame], Any]


@dataclass(frozen=True, slots=True)
class Violation:
    rule: str
    column: str | None
    failed_count: int
    total: int
    examples: list[dict[str, Any]]  # {"row": index label, "value": value} (+ "count")
    message: str

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["examples"] = [{k: _plain(v) for k, v in e.items()} for e in self.examples]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Violation:
        return cls(
            rule=data["rule"],
            column=data["column"],
            failed_count=int(data["failed_count"]),
            total=int(data["total"]),
            examples=[dict(e) for e in data["examples"]],
            message=data["message"],
        )


@dataclass(frozen=True, slots=True)
class ValidationReport:
    num_rows: int
    violations: list[Violation]

    @property
    def ok(self) -> bool:
        return not self.violations

    def summary(self) -> str:
        if self.ok:
            return f"Contract satisfied ({self.num_rows} rows)."
        lines = [f"Contract violated: {len(self.violations)} rule(s) on {self.num_rows} rows"]
        for v in self.violations:
            shown = [f"row {e['row']}: {e['value']!r}" for e in v.examples[:3] if "row" in e]
            lines.append(f"  - {v.message}" + (f" (e.g. {'; '.join(shown)})" if shown else ""))
        return "\n".join(lines)

    def raise_if_failed(self) -> None:
        if not self.ok:
            raise ContractViolation(self.summary(), [v.to_dict() for v in self.violations])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``num_rows``, ``ok`` and each violation (examples as plain values)."""
        return {
            "num_rows": self.num_rows,
            "ok": self.ok,
            "violations": [v.to_dict() for v in self.violations],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ValidationReport:
        return cls(int(data["num_rows"]), [Violation.from_dict(v) for v in data["violations"]])


@dataclass(frozen=True)
class Contract:
    columns: Mapping[str, Expect] = field(default_factory=dict)
    unique: Sequence[str] = ()  # columns that together identify a row
    rows: tuple[int | None, int | None] = (None, None)
    checks: Sequence[Check] = ()
    allow_extra_columns: bool = True

    def __post_init__(self) -> None:
        problems = [  # an Expect checked its own settings when it was made
            (f"columns.{name}", "expected an Expect(...)")
            for name, expect in self.columns.items()
            if not isinstance(expect, Expect)
        ]
        if problems:
            details = [{"field": where, "message": m} for where, m in problems]
            lines = "; ".join(f"{d['field']}: {d['message']}" for d in details)
            raise InvalidArgument(f"Not a valid contract: {lines}", details)
        if isinstance(self.unique, str):
            object.__setattr__(self, "unique", (self.unique,))

    @classmethod
    def from_yaml(cls, path: str | Path) -> Contract:
        """A contract from YAML (``columns``, ``unique``, ``rows: [min, max]``,
        ``allow_extra_columns``); custom checks exist only in Python."""
        import yaml

        try:
            data = yaml.safe_load(Path(path).read_text())
        except OSError as exc:
            raise InvalidArgument(f"Cannot read contract {str(path)!r}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise InvalidArgument(f"Contract {str(path)!r} is not valid YAML: {exc}") from exc
        return cls.from_dict(data or {}, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str = "contract") -> Contract:
        """A contract from a mapping, validated whole: InvalidArgument with one detail per
        problem (an unknown key lists the known ones, an unknown dtype the kinds)."""
        config = configs.validate(_ContractConfig, data, source, "contract")
        return cls(
            columns={name: Expect(**spec.model_dump()) for name, spec in config.columns.items()},
            unique=list(config.unique),
            rows=config.rows,
            allow_extra_columns=config.allow_extra_columns,
        )

    def to_dict(self) -> dict[str, Any]:
        """The contract as the JSON-ready configuration :meth:`from_dict` reads back (every
        setting spelt out; a set of allowed values in a stable order). Custom checks are
        Python functions and are not part of it."""
        return {
            "columns": {str(n): _column_config(e) for n, e in self.columns.items()},
            "unique": [str(c) for c in self.unique],
            "rows": [_plain(bound) for bound in self.rows],
            "allow_extra_columns": bool(self.allow_extra_columns),
        }

    def validate(self, frame: pd.DataFrame) -> ValidationReport:
        """Every rule ``frame`` breaks (the frame is only read)."""
        import pandas as pd

        if not isinstance(frame, pd.DataFrame):
            raise InvalidArgument(f"Cannot validate a {type(frame).__name__}: need a DataFrame")
        total = len(frame)
        found: list[Violation] = []
        low, high = self.rows
        if (low is not None and total < low) or (high is not None and total > high):
            off = low - total if low is not None and total < low else total - (high or 0)
            bounds = f"[{'-' if low is None else low}, {'-' if high is None else high}]"
            found.append(
                Violation("row_count", None, off, total, [], f"{total} rows, expected {bounds}")
            )
        for name, expect in self.columns.items():
            if name not in frame.columns:
                found.append(
                    Violation("missing_column", name, total, total, [], f"{name}: column missing")
                )
                continue
            found.extend(_column_violations(name, frame[name], expect))
        if not self.allow_extra_columns:
            for name in frame.columns:
                if name not in self.columns:
                    message = f"{name}: column not in the contract"
                    found.append(Violation("extra_column", str(name), total, total, [], message))
        if self.unique:
            found.extend(_unique_violations(frame, list(self.unique)))
        for check in self.checks:
            found.extend(_check_violations(frame, check))
        return ValidationReport(total, found)


def check_dtype(dtype: str) -> str:
    """``dtype`` if it is a kind or a pandas dtype; else ValueError naming the kinds."""
    from pandas.api.types import pandas_dtype

    if not isinstance(dtype, str):
        raise ValueError(f"dtype must be text, got {type(dtype).__name__}")
    if dtype.lower() in DTYPE_KINDS:
        return dtype
    try:
        pandas_dtype(dtype)
    except (TypeError, ValueError):
        raise ValueError(
            f"unknown dtype {dtype!r}: use one of {', '.join(DTYPE_KINDS)}, or an exact pandas "
            "dtype such as int32 or float64"
        ) from None
    return dtype


def check_allowed(values: Any) -> None:
    """ValueError unless every allowed value is one value (text, a number, a boolean, null...):
    a list or mapping among them can never equal a cell, and cannot be looked up."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise ValueError(f"allowed must be a list of values, got {type(values).__name__}")
    for position, value in enumerate(values):
        try:
            hash(value)
        except TypeError:
            raise ValueError(
                f"allowed values must be single values (text, numbers, booleans, null), but "
                f"the one at position {position} is a {type(value).__name__} ({value!r}): list "
                "each allowed value on its own, e.g. allowed: [a, b]"
            ) from None


def _column_config(expect: Expect) -> dict[str, Any]:
    allowed = expect.allowed
    if isinstance(allowed, set | frozenset):
        allowed = sorted(allowed, key=lambda v: (type(v).__name__, repr(v)))
    return {
        "dtype": expect.dtype,
        "min": None if expect.min is None else float(expect.min),
        "max": None if expect.max is None else float(expect.max),
        "nullable": bool(expect.nullable),
        "max_null_rate": None if expect.max_null_rate is None else float(expect.max_null_rate),
        "allowed": None if allowed is None else [_plain(v) for v in allowed],
        "allow_inf": bool(expect.allow_inf),
    }


class _ColumnConfig(BaseModel):
    """An :class:`Expect` as a configuration (YAML, a mapping, the UI's text box)."""

    model_config = ConfigDict(extra="forbid")

    dtype: str | None = None
    min: float | None = None
    max: float | None = None
    nullable: bool = True
    max_null_rate: float | None = Field(default=None, ge=0, le=1)
    allowed: list[Any] | None = None
    allow_inf: bool = False

    @field_validator("dtype")
    @classmethod
    def _check_dtype(cls, value: str | None) -> str | None:
        return None if value is None else check_dtype(value)

    @field_validator("allowed")
    @classmethod
    def _check_allowed(cls, value: list[Any] | None) -> list[Any] | None:
        if value is not None:
            check_allowed(value)
        return value


class _ContractConfig(BaseModel):
    """A :class:`Contract` as a configuration; custom checks exist only in Python."""

    model_config = ConfigDict(extra="forbid")

    columns: dict[str, _ColumnConfig] = Field(default_factory=dict)
    unique: list[str] = Field(default_factory=list)
    rows: tuple[int | None, int | None] = (None, None)
    allow_extra_columns: bool = True

    @field_validator("columns", mode="before")
    @classmethod
    def _empty_columns(cls, value: Any) -> Any:
        if isinstance(value, dict):  # ``amount:`` with nothing under it expects nothing
            return {name: {} if spec is None else spec for name, spec in value.items()}
        return {} if value is None else value

    @field_validator("unique", mode="before")
    @classmethod
    def _one_key(cls, value: Any) -> Any:
        return [] if value is None else [value] if isinstance(value, str) else value

    @field_validator("rows", mode="before")
    @classmethod
    def _bounds(cls, value: Any) -> Any:
        if value is None:
            return (None, None)
        if isinstance(value, dict) and set(value) <= {"min", "max"}:
            return (value.get("min"), value.get("max"))
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise ValueError("rows must be [min, max] or {min: ..., max: ...} (null: no bound)")
        return value


def _column_violations(name: str, series: pd.Series[Any], expect: Expect) -> list[Violation]:
    import numpy as np
    from pandas.api import types

    total = len(series)
    out: list[Violation] = []
    dtype_ok = expect.dtype is None or _dtype_matches(series, expect.dtype)
    if not dtype_ok:
        message = f"{name}: dtype {series.dtype}, expected {expect.dtype}"
        out.append(Violation("dtype", name, total, total, [], message))
    nulls = series.isna()
    null_count = int(nulls.sum())
    if not expect.nullable and null_count:
        message = f"{name}: {null_count} of {total} values are null (NaN/None), none allowed"
        out.append(
            Violation("not_null", name, null_count, total, _examples(series, nulls), message)
        )
    if expect.max_null_rate is not None and total and null_count / total > expect.max_null_rate:
        rate = null_count / total
        message = f"{name}: null rate {rate:.4g} above {expect.max_null_rate:.4g}"
        out.append(
            Violation("null_rate", name, null_count, total, _examples(series, nulls), message)
        )
    numeric = types.is_numeric_dtype(series.dtype) and not types.is_bool_dtype(series.dtype)
    wants_range = expect.min is not None or expect.max is not None
    if numeric:
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        if not expect.allow_inf:
            bad = np.isinf(values)
            if bad.any():
                message = f"{name}: {int(bad.sum())} of {total} values are infinite"
                out.append(
                    Violation(
                        "finite", name, int(bad.sum()), total, _examples(series, bad), message
                    )
                )
        for rule, bound, bad in (
            ("min", expect.min, values < (expect.min if expect.min is not None else 0)),
            ("max", expect.max, values > (expect.max if expect.max is not None else 0)),
        ):
            if bound is not None and bad.any():
                word = "below" if rule == "min" else "above"
                message = f"{name}: {int(bad.sum())} of {total} values {word} {rule} {bound:g}"
                out.append(
                    Violation(rule, name, int(bad.sum()), total, _examples(series, bad), message)
                )
    elif wants_range and dtype_ok:
        message = f"{name}: dtype {series.dtype} is not numeric, cannot check min/max"
        out.append(Violation("dtype", name, total, total, [], message))
    if expect.allowed is not None:
        out.extend(_allowed_violations(name, series, nulls, expect.allowed))
    return out


def _allowed_violations(
    name: str, series: pd.Series[Any], nulls: pd.Series[bool], allowed: Any
) -> list[Violation]:
    permitted = set(allowed)
    bad = ~(series.isin(permitted) | nulls)
    count = int(bad.sum())
    if not count:
        return []
    unseen = series[bad].astype(object).value_counts()
    listed = ", ".join(f"{v!r} ({n})" for v, n in list(unseen.items())[:20])
    more = f" and {len(unseen) - 20} more" if len(unseen) > 20 else ""
    message = f"{name}: {count} of {len(series)} values not allowed: {listed}{more}"
    return [Violation("allowed", name, count, len(series), _examples(series, bad), message)]


def _unique_violations(frame: pd.DataFrame, key: list[str]) -> list[Violation]:
    import numpy as np
    import pandas as pd

    missing = [c for c in key if c not in frame.columns]
    label = "+".join(key)
    if missing:
        message = f"{label}: cannot check uniqueness, missing column(s) {missing}"
        return [Violation("unique", label, len(frame), len(frame), [], message)]
    dupes = frame.duplicated(subset=key, keep=False)
    count = int(dupes.sum())
    if not count:
        return []
    keyed = frame.loc[dupes, key]
    positions = pd.Series(np.arange(len(keyed)))
    groups = positions.groupby([keyed[c].to_numpy() for c in key], sort=False, dropna=False)
    stats = groups.agg(["size", "first"]).sort_values("size", ascending=False, kind="stable")
    examples = [
        {"row": _plain(keyed.index[first]), "value": _plain(value), "count": int(size)}
        for value, size, first in zip(stats.index, stats["size"], stats["first"], strict=True)
    ][:MAX_EXAMPLES]
    message = f"{label}: {count} rows share {len(stats)} duplicated key(s)"
    return [Violation("unique", label, count, len(frame), examples, message)]


def _check_violations(frame: pd.DataFrame, check: Check) -> list[Violation]:
    import numpy as np
    import pandas as pd

    total = len(frame)
    try:
        result = check.fn(frame)
    except Exception as exc:  # a broken check is a finding about the data or the check
        message = f"check {check.name!r} raised {type(exc).__name__}: {exc}"
        return [Violation("check", check.name, total, total, [], message)]
    if isinstance(result, np.ndarray) and result.shape == (total,):
        result = pd.Series(result, index=frame.index)
    if isinstance(result, pd.Series):
        passed = result.astype(object).eq(True)
        failed = ~passed
        count = int(failed.sum())
        if not count:
            return []
        rows = frame.loc[failed.to_numpy()].head(MAX_EXAMPLES)
        examples = [
            {"row": _plain(label), "value": {str(k): _plain(v) for k, v in row.items()}}
            for label, row in rows.iterrows()
        ]
        message = f"check {check.name!r}: {count} of {total} rows fail"
        return [Violation("check", check.name, count, total, examples, message)]
    if isinstance(result, bool | np.bool_) and bool(result):
        return []
    message = f"check {check.name!r} failed (returned {result!r})"
    return [Violation("check", check.name, total, total, [], message)]


def _dtype_matches(series: pd.Series[Any], expected: str) -> bool:
    import pandas as pd
    from pandas.api import types

    dtype = series.dtype
    kind = expected.lower()
    if kind == "float":
        return types.is_float_dtype(dtype)
    if kind == "int":
        return types.is_integer_dtype(dtype)
    if kind == "numeric":
        return types.is_numeric_dtype(dtype) and not types.is_bool_dtype(dtype)
    if kind == "bool":
        return types.is_bool_dtype(dtype)
    if kind == "category":
        return isinstance(dtype, pd.CategoricalDtype)
    if kind == "string":
        if types.is_object_dtype(dtype):
            return types.infer_dtype(series, skipna=True) in ("string", "empty")
        return types.is_string_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype)
    if kind == "datetime":
        return types.is_datetime64_any_dtype(dtype)
    return str(dtype) == expected


def _examples(series: pd.Series[Any], mask: Any) -> list[dict[str, Any]]:
    import numpy as np

    hits = np.flatnonzero(np.asarray(mask, dtype=bool))[:MAX_EXAMPLES]
    return [{"row": _plain(series.index[i]), "value": _plain(series.iloc[i])} for i in hits]


def _plain(value: Any) -> Any:
    """A JSON-ready value: numpy scalars as Python ones, NaN/inf as text, timestamps as ISO."""
    import numpy as np

    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is not None and not isinstance(value, bool | int | float | str):
        try:
            import pandas as pd

            if pd.isna(value):
                return None
        except (TypeError, ValueError):
            pass
        return str(value)
    return value
