"""A column's reference: what drift tests need of the data a model was trained on, without it.

A ``ColumnReference`` is computed once (per model version, or per dataset version) and stored as
plain JSON (``to_dict``), so checks never re-read the reference data. For numbers it keeps a
quantile sketch: edges at the 0, 1, ..., 100% quantiles plus 0.01/0.1/99.9/99.99% for the tails,
and at every edge the exact count of reference values below it and at-or-below it; the sorted
values themselves are kept when there are at most ``SAMPLE_LIMIT``. For categories it keeps the
count of every category (key ``str(value)``), up to ``CATEGORY_LIMIT``: beyond, the rarest are
summed in one ``OTHER`` bucket. A numeric column with at most ``VALUE_COUNT_LIMIT`` (100)
distinct values also keeps the count of each value. How the tests read a reference is in
:mod:`modelloop.monitoring.drift`; the reference lives with datasets because the registry fits
one for every version it registers, below monitoring.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from modelloop.datasets.profile import categorical_for_drift, column_kind, moments
from modelloop.errors import InvalidArgument

SAMPLE_LIMIT = 5000
LEVELS = tuple(
    sorted({*(i / 100 for i in range(101)), 0.0001, 0.001, 0.999, 0.9999})
)  # sketch quantile levels
CATEGORY_LIMIT = 1000  # categories a reference keeps; the rarest beyond are summed in OTHER
VALUE_COUNT_LIMIT = 100  # a numeric reference counts each value when it has at most this many
KINDS = ("numeric", "categorical")  # the column types a test can be chosen for
OTHER = "\x00other"  # not a str(value) a column would hold

Array = np.ndarray[Any, np.dtype[Any]]


@dataclass(frozen=True, slots=True)
class ColumnReference:
    """What drift methods need of one reference column, without the data (JSON round trip)."""

    kind: str  # numeric | categorical: what the values are
    count: int  # compared values: finite numbers or non-null categories
    null_count: int
    inf_count: int = 0
    mean: float | None = None
    std: float | None = None  # ddof=1; 0.0 for a single value
    levels: tuple[float, ...] = ()
    edges: tuple[float, ...] = ()
    below: tuple[int, ...] = ()  # values < edges[i]
    at_or_below: tuple[int, ...] = ()  # values <= edges[i]
    sample: tuple[float, ...] | None = None  # sorted finite values, if count <= SAMPLE_LIMIT
    # Count per category; for numbers per value (key ``value_key``) when there are at most
    # VALUE_COUNT_LIMIT distinct ones (any number if declared categorical, capped like categories).
    categories: dict[str, int] | None = None
    column_type: str = ""  # numeric | categorical: how tests treat it; "" means ``kind``

    def __post_init__(self) -> None:
        if not self.column_type:
            object.__setattr__(self, "column_type", self.kind)

    def to_dict(self) -> dict[str, Any]:
        values = {name: getattr(self, name) for name in self.__slots__}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnReference:
        """Also reads references stored before column types: a numeric one gets the value
        counts its kept sample or its sketch hold exactly, and the column type they imply."""
        fields: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items()
        }
        if "column_type" not in fields and fields.get("kind") == "numeric":
            counts = recovered_counts(fields)
            fields["categories"] = counts
            fields["column_type"] = inferred_type(counts)
        return cls(**fields)


def fit_reference(values: Any, kind: str | None = None) -> ColumnReference:
    """The reference sketch of one column.

    ``kind`` declares the column's type for the tests and wins over what the values suggest:
    ``"numeric"`` keeps a few-valued numeric column on KS/Wasserstein, ``"categorical"`` makes a
    numeric column's values categories (all of them counted, up to ``CATEGORY_LIMIT``).
    Undeclared, the dtype says numeric or categorical, and a numeric column with few distinct
    values is typed categorical (``categorical_for_drift``: 5 values, or 10 whole numbers)."""
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    inferred = column_kind(series)
    if kind is not None and kind not in KINDS:
        raise ValueError(f"Unknown column type {kind!r}: choose among {', '.join(KINDS)}")
    if inferred == "numeric" or kind == "numeric":
        if (
            inferred != "numeric"
            and series.notna().sum() > pd.to_numeric(series, errors="coerce").notna().sum()
        ):
            raise ValueError(f"Cannot test a {series.dtype} column as numeric: not all numbers")
        return _fit_numbers(series, kind)
    if inferred == "categorical" or kind == "categorical":
        counts, nulls = category_counts(series)
        return ColumnReference(
            "categorical", sum(counts.values()), nulls, categories=capped(counts)
        )
    raise ValueError(f"Cannot watch a {inferred} column for drift: only numeric and categorical")


def _fit_numbers(series: pd.Series[Any], declared: str | None) -> ColumnReference:
    finite, nulls, infs = finite_numbers(series)
    finite.sort()
    n = len(finite)
    if n == 0:
        return ColumnReference("numeric", 0, nulls, infs, column_type=declared or "numeric")
    edges = np.quantile(finite, LEVELS)
    starts = np.flatnonzero(np.diff(finite, prepend=np.nan) != 0)  # first index of each value
    counts = None
    if len(starts) <= VALUE_COUNT_LIMIT or declared == "categorical":
        distinct = finite[starts].tolist()
        sizes = np.diff(np.append(starts, n)).tolist()
        counts = capped({value_key(v): c for v, c in zip(distinct, sizes, strict=True)})
    mean, std = moments(finite)
    return ColumnReference(
        kind="numeric",
        count=n,
        null_count=nulls,
        inf_count=infs,
        mean=mean,
        std=std,
        levels=LEVELS,
        edges=tuple(edges.tolist()),
        below=tuple(np.searchsorted(finite, edges, "left").tolist()),
        at_or_below=tuple(np.searchsorted(finite, edges, "right").tolist()),
        sample=tuple(finite.tolist()) if n <= SAMPLE_LIMIT else None,
        categories=counts,
        column_type=declared or inferred_type(counts),
    )


def fit_references(
    frame: pd.DataFrame, kinds: Mapping[str, str] | None = None
) -> dict[str, ColumnReference]:
    """References for every numeric and categorical column of ``frame`` (others are skipped);
    ``kinds`` declares column types by name (see ``fit_reference``)."""
    kinds = dict(kinds or {})
    problems = [
        {"field": f"kinds.{name}", "message": f"no column {name!r} in the frame"}
        for name in kinds
        if name not in frame.columns
    ] + [
        {"field": f"kinds.{name}", "message": f"unknown column type {kind!r}"}
        for name, kind in kinds.items()
        if kind not in KINDS
    ]
    if problems:
        raise InvalidArgument(
            f"Cannot declare column types {kinds}: name columns of the frame, each numeric or "
            "categorical",
            problems,
        )
    references = {}
    for name in frame.columns:
        declared = kinds.get(name)
        if declared is None and column_kind(frame[name]) not in KINDS:
            continue
        try:
            references[str(name)] = fit_reference(frame[name], declared)
        except ValueError as exc:
            problem = [{"field": f"kinds.{name}", "message": str(exc)}]
            raise InvalidArgument(str(exc), problem) from exc
    return references


def finite_numbers(series: pd.Series[Any]) -> tuple[Array, int, int]:
    """Finite values (a fresh array), null count, infinity count."""
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    finite = np.isfinite(values)
    infs = int(np.isinf(values).sum())
    return values[finite], len(values) - int(finite.sum()) - infs, infs


def value_key(value: float) -> str:
    """The category key of a number: the same for 1, 1.0 and np.float32(1), whatever the dtype
    of the reference and of the current values (a log often turns integers into floats)."""
    return repr(float(value))


def value_counts(finite: Array, known: Mapping[str, int]) -> dict[str, int]:
    """Count per value of sorted finite numbers, values the reference did not count included;
    summed in ``OTHER`` when the reference was capped or they are more than ``CATEGORY_LIMIT``
    (a number column that is no longer discrete)."""
    if not len(finite):
        return {}
    starts = np.flatnonzero(np.diff(finite, prepend=np.nan) != 0)
    sizes = np.diff(np.append(starts, len(finite)))
    if OTHER not in known and len(starts) <= CATEGORY_LIMIT:
        distinct = finite[starts].tolist()
        return {value_key(v): int(c) for v, c in zip(distinct, sizes.tolist(), strict=True)}
    numbers = np.array([float(k) for k in known if k != OTHER])
    kept = np.isin(finite[starts], numbers)
    counts = {
        value_key(v): int(c)
        for v, c in zip(finite[starts][kept].tolist(), sizes[kept].tolist(), strict=True)
    }
    if (~kept).any():
        counts[OTHER] = int(sizes[~kept].sum())
    return counts


def recovered_counts(stored: Mapping[str, Any]) -> dict[str, int] | None:
    """The value counts of a numeric reference stored before they were kept, when its data
    holds them exactly: the kept sample, or a sketch whose edges carry every value (the count
    at an edge is ``at_or_below - below``; they add up to ``count`` only if no value lies
    strictly between edges). ``None`` when neither does, or past ``VALUE_COUNT_LIMIT``."""
    counts: dict[str, int] = {}
    if stored.get("sample") is not None:
        for value in stored["sample"]:
            key = value_key(value)
            counts[key] = counts.get(key, 0) + 1
    else:
        for edge, below, at in zip(
            stored.get("edges") or (),
            stored.get("below") or (),
            stored.get("at_or_below") or (),
            strict=True,
        ):
            if at > below:
                counts[value_key(edge)] = at - below
        if sum(counts.values()) != stored.get("count"):
            return None
    return counts if 0 < len(counts) <= VALUE_COUNT_LIMIT else None


def inferred_type(counts: Mapping[str, int] | None) -> str:
    """A numeric column's type for the tests from its value counts (``categorical_for_drift``)."""
    if not counts or OTHER in counts:
        return "numeric"
    return "categorical" if categorical_for_drift([float(k) for k in counts]) else "numeric"


def capped(counts: dict[str, int]) -> dict[str, int]:
    """At most ``CATEGORY_LIMIT`` categories: the most frequent, the rest summed in ``OTHER``,
    so an id-like column cannot make a stored reference as large as its data."""
    if len(counts) <= CATEGORY_LIMIT:
        return counts
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    kept = dict(ranked[: CATEGORY_LIMIT - 1])
    kept[OTHER] = sum(n for _, n in ranked[CATEGORY_LIMIT - 1 :])
    return kept


def category_counts(series: pd.Series[Any]) -> tuple[dict[str, int], int]:
    """Count per ``str(value)``; unused categories of a categorical dtype are left out."""
    counts = series.value_counts(dropna=True)
    merged: dict[str, int] = {}
    for key, count in zip(counts.index, counts.to_numpy(), strict=True):
        if count:
            merged[str(key)] = merged.get(str(key), 0) + int(count)
    return merged, int(series.isna().sum())
