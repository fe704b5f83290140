"""Drift tests with one shape: ``fit(reference) -> ColumnReference``, ``compare(ref, current)``.

A ``ColumnReference`` is computed once per model version and stored (``to_dict`` is plain JSON),
so checks never re-read the reference data. Every method reads the same reference, so the method
can be chosen per column at check time. For numbers it keeps a quantile sketch: edges at the
0, 1, ..., 100% quantiles plus 0.01/0.1/99.9/99.99% for the tails, and at every edge the exact
count of reference values below it and at-or-below it; the sorted values themselves are kept when
there are at most ``SAMPLE_LIMIT``, which makes KS and Wasserstein exact. For categories it keeps
the count of every category (key ``str(value)``).

Methods (``threshold`` is alpha for the tests with a p-value, else the distance cut-off; a column
drifts when ``p_value < alpha`` or ``value >= threshold``, as in Evidently):

- ``PSI`` (0.2): over the reference deciles (numbers) or categories, shares clipped at 1e-4. Exact.
- ``KolmogorovSmirnov`` (0.05): ``scipy.stats.ks_2samp`` when the sample was kept; otherwise D is
  the largest CDF gap at the sketch edges (both one-sided limits, exact there) and the p-value is
  the asymptotic Kolmogorov distribution. Binned D is a lower bound and is off by at most the
  largest share of either sample strictly inside one sketch bin (about 1% for continuous data).
- ``ChiSquared`` (0.05, categories): test of homogeneity of the 2 x K table of reference and
  current counts (``chi2_contingency`` without Yates), so unseen categories need no special case.
- ``JensenShannon`` (0.1): distance, base 2, over the same bins as PSI.
- ``Wasserstein`` (0.1, numbers): W1 divided by the reference standard deviation (Evidently's
  "normed" variant; a constant reference gives 0 if unchanged, else inf). Exact with the kept
  sample; otherwise both CDFs are taken linear inside sketch bins and the tails beyond the
  reference range are exact; for continuous data the error is below 0.01 (tested).

Current values: NaN/None are nulls, infinities are excluded and counted, neither is compared.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from modelloop.datasets.profile import column_kind

SAMPLE_LIMIT = 5000
SMALL_SAMPLE = 1000
LEVELS = tuple(
    sorted({*(i / 100 for i in range(101)), 0.0001, 0.001, 0.999, 0.9999})
)  # sketch quantile levels
DECILES = tuple(i / 10 for i in range(1, 10))
PSI_FLOOR = 1e-4

Array = np.ndarray[Any, np.dtype[Any]]


@dataclass(frozen=True, slots=True)
class ColumnReference:
    """What drift methods need of one reference column, without the data (JSON round trip)."""

    kind: str  # numeric | categorical
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
    categories: dict[str, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        values = {name: getattr(self, name) for name in self.__slots__}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnReference:
        fields: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items()
        }
        return cls(**fields)


@dataclass(frozen=True, slots=True)
class DriftResult:
    column: str
    method: str
    value: float  # nan when status is "no_data"
    p_value: float | None
    threshold: float
    drifted: bool
    details: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"  # ok | no_data (nothing to compare: empty, all-null current or reference)


@dataclass(frozen=True, slots=True)
class DriftReport:
    results: dict[str, DriftResult]  # every checked column, including no_data ones
    share_drifted: float  # of the columns with data
    drifted_columns: tuple[str, ...]
    dataset_drifted: bool
    no_data: tuple[str, ...] = ()


def fit_reference(values: Any, kind: str | None = None) -> ColumnReference:
    """The reference sketch of one column; ``kind`` defaults to what the dtype says."""
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    kind = kind or column_kind(series)
    if kind == "numeric":
        finite, nulls, infs = _numbers(series)
        finite.sort()
        n = len(finite)
        if n == 0:
            return ColumnReference("numeric", 0, nulls, infs)
        edges = np.quantile(finite, LEVELS)
        return ColumnReference(
            kind="numeric",
            count=n,
            null_count=nulls,
            inf_count=infs,
            mean=float(finite.mean()),
            std=float(finite.std(ddof=1)) if n > 1 else 0.0,
            levels=LEVELS,
            edges=tuple(edges.tolist()),
            below=tuple(np.searchsorted(finite, edges, "left").tolist()),
            at_or_below=tuple(np.searchsorted(finite, edges, "right").tolist()),
            sample=tuple(finite.tolist()) if n <= SAMPLE_LIMIT else None,
        )
    if kind == "categorical":
        counts, nulls = _categories(series)
        return ColumnReference("categorical", sum(counts.values()), nulls, categories=counts)
    raise ValueError(f"Cannot watch a {kind} column for drift: only numeric and categorical")


def fit_references(frame: pd.DataFrame) -> dict[str, ColumnReference]:
    """References for every numeric and categorical column of ``frame`` (others are skipped)."""
    return {
        str(name): fit_reference(frame[name])
        for name in frame.columns
        if column_kind(frame[name]) in ("numeric", "categorical")
    }


@dataclass(frozen=True)
class _Method:
    """Shared shape: ``fit`` builds the common reference, ``compare`` tests current against it."""

    threshold: float
    name: ClassVar[str]
    kinds: ClassVar[tuple[str, ...]] = ("numeric", "categorical")
    has_p_value: ClassVar[bool] = False

    def fit(self, values: Any) -> ColumnReference:
        return fit_reference(values)

    def compare(self, reference: ColumnReference, current: Any, column: str = "") -> DriftResult:
        if reference.kind not in self.kinds:
            raise ValueError(f"{self.name} does not apply to {reference.kind} columns")
        series = current if isinstance(current, pd.Series) else pd.Series(current)
        details: dict[str, Any] = {"n_reference": reference.count}
        if reference.kind == "numeric":
            values, nulls, infs = _numbers(series)
            details |= {"n_current": len(values), "null_current": nulls, "inf_current": infs}
            data: Any = values
        else:
            data, nulls = _categories(series)
            new = sorted(set(data) - set(reference.categories or {}))
            details |= {"n_current": sum(data.values()), "null_current": nulls}
            details["new_categories"] = new
        if reference.count == 0 or details["n_current"] == 0:
            return DriftResult(column, self.name, math.nan, None, self.threshold, False, details,
                               "no_data")  # fmt: skip
        value, p_value = self._statistic(reference, data, details)
        drifted = p_value < self.threshold if p_value is not None else value >= self.threshold
        return DriftResult(column, self.name, value, p_value, self.threshold, drifted, details)

    def _statistic(
        self, reference: ColumnReference, data: Any, details: dict[str, Any]
    ) -> tuple[float, float | None]:
        raise NotImplementedError


@dataclass(frozen=True)
class PSI(_Method):
    threshold: float = 0.2
    name: ClassVar[str] = "psi"

    def _statistic(
        self, reference: ColumnReference, data: Any, details: dict[str, Any]
    ) -> tuple[float, float | None]:
        p, q = (np.clip(s, PSI_FLOOR, None) for s in _shares(reference, data))
        return float(np.sum((q - p) * np.log(q / p))), None


@dataclass(frozen=True)
class JensenShannon(_Method):
    threshold: float = 0.1
    name: ClassVar[str] = "jensen_shannon"

    def _statistic(
        self, reference: ColumnReference, data: Any, details: dict[str, Any]
    ) -> tuple[float, float | None]:
        p, q = _shares(reference, data)
        m = (p + q) / 2
        kl = sum(float(np.sum(x[x > 0] * np.log2(x[x > 0] / m[x > 0]))) for x in (p, q))
        return math.sqrt(max(kl / 2, 0.0)), None


@dataclass(frozen=True)
class ChiSquared(_Method):
    threshold: float = 0.05
    name: ClassVar[str] = "chi_squared"
    kinds: ClassVar[tuple[str, ...]] = ("categorical",)

    def _statistic(
        self, reference: ColumnReference, data: Any, details: dict[str, Any]
    ) -> tuple[float, float | None]:
        from scipy.special import chdtrc

        keys = sorted(set(reference.categories or {}) | set(data))
        table = np.array([[(reference.categories or {}).get(k, 0) for k in keys],
                          [data.get(k, 0) for k in keys]], dtype=np.float64)  # fmt: skip
        expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
        dof = len(keys) - 1
        details["dof"] = dof
        if dof == 0:
            return 0.0, 1.0
        stat = float(np.sum((table - expected) ** 2 / expected))
        return stat, float(chdtrc(dof, stat))


@dataclass(frozen=True)
class KolmogorovSmirnov(_Method):
    threshold: float = 0.05
    name: ClassVar[str] = "ks"
    kinds: ClassVar[tuple[str, ...]] = ("numeric",)

    def _statistic(
        self, reference: ColumnReference, data: Any, details: dict[str, Any]
    ) -> tuple[float, float | None]:
        from scipy.special import kolmogorov
        from scipy.stats import ks_2samp

        details["exact"] = reference.sample is not None
        if reference.sample is not None:
            result = ks_2samp(np.asarray(reference.sample), data)
            return float(result.statistic), float(result.pvalue)
        n, m = reference.count, len(data)
        edges = np.asarray(reference.edges)
        current = np.sort(data)
        gaps = (
            np.asarray(reference.below) / n - np.searchsorted(current, edges, "left") / m,
            np.asarray(reference.at_or_below) / n - np.searchsorted(current, edges, "right") / m,
        )
        d = float(max(np.abs(g).max() for g in gaps))
        return d, float(kolmogorov(d * math.sqrt(n * m / (n + m))))


@dataclass(frozen=True)
class Wasserstein(_Method):
    threshold: float = 0.1
    name: ClassVar[str] = "wasserstein"
    kinds: ClassVar[tuple[str, ...]] = ("numeric",)

    def _statistic(
        self, reference: ColumnReference, data: Any, details: dict[str, Any]
    ) -> tuple[float, float | None]:
        details["exact"] = reference.sample is not None
        if reference.sample is not None:
            from scipy.stats import wasserstein_distance

            distance = float(wasserstein_distance(reference.sample, data))
        else:
            distance = _binned_wasserstein(reference, data)
        scale = reference.std or 0.0
        details["distance"] = distance
        if scale > 0:
            return distance / scale, None
        return (0.0 if distance == 0 else math.inf), None


METHODS: dict[str, type[_Method]] = {
    m.name: m for m in (PSI, KolmogorovSmirnov, ChiSquared, JensenShannon, Wasserstein)
}


def default_method(kind: str, n_reference: int, n_current: int) -> _Method:
    """Evidently's defaults, keyed on the smaller sample (a test's power is bounded by it):

    up to ``SMALL_SAMPLE`` (1000) values, KS for numbers and chi-squared for categories, whose
    p-values account for sample size; above, normalised Wasserstein and Jensen-Shannon, whose
    distances do not flag negligible shifts that huge samples make "significant"."""
    small = min(n_reference, n_current) <= SMALL_SAMPLE
    if kind == "numeric":
        return KolmogorovSmirnov() if small else Wasserstein()
    return ChiSquared() if small else JensenShannon()


def check_drift(
    reference: Mapping[str, ColumnReference],
    current: pd.DataFrame,
    *,
    methods: Mapping[str, _Method | str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    share_threshold: float = 0.5,
) -> DriftReport:
    """Compare every referenced column of ``current`` with its stored reference.

    A column missing from ``current`` counts as empty. The dataset drifts when the share of
    drifted columns among those with data reaches ``share_threshold``."""
    results: dict[str, DriftResult] = {}
    for column, ref in reference.items():
        values = current[column] if column in current.columns else pd.Series([], dtype=object)
        method = (methods or {}).get(column) or default_method(
            ref.kind, ref.count, int(values.notna().sum())
        )
        if isinstance(method, str):
            method = METHODS[method]()  # type: ignore[call-arg]  # every method has a default
        if thresholds and column in thresholds:
            method = replace(method, threshold=thresholds[column])
        results[column] = method.compare(ref, values, column)
    compared = [r for r in results.values() if r.status == "ok"]
    drifted = tuple(r.column for r in compared if r.drifted)
    share = len(drifted) / len(compared) if compared else 0.0
    no_data = tuple(r.column for r in results.values() if r.status == "no_data")
    return DriftReport(results, share, drifted, bool(compared) and share >= share_threshold,
                       no_data)  # fmt: skip


def _numbers(series: pd.Series[Any]) -> tuple[Array, int, int]:
    """Finite values (a fresh array), null count, infinity count."""
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    finite = np.isfinite(values)
    infs = int(np.isinf(values).sum())
    return values[finite], len(values) - int(finite.sum()) - infs, infs


def _categories(series: pd.Series[Any]) -> tuple[dict[str, int], int]:
    counts = series.value_counts(dropna=True)
    merged: dict[str, int] = {}
    for key, count in zip(counts.index, counts.to_numpy(), strict=True):
        merged[str(key)] = merged.get(str(key), 0) + int(count)
    return merged, int(series.isna().sum())


def _shares(reference: ColumnReference, data: Any) -> tuple[Array, Array]:
    """Reference and current shares over deciles of the reference or the union of categories."""
    if reference.kind == "categorical":
        ref = reference.categories or {}
        keys = sorted(set(ref) | set(data))
        p = np.array([ref.get(k, 0) for k in keys], dtype=np.float64)
        q = np.array([data.get(k, 0) for k in keys], dtype=np.float64)
    else:
        at = np.searchsorted(np.asarray(reference.levels), DECILES)
        cuts, first = np.unique(np.asarray(reference.edges)[at], return_index=True)
        ref_le = np.asarray(reference.at_or_below)[at][first]
        p = np.diff(np.concatenate(([0], ref_le, [reference.count]))).astype(np.float64)
        q = np.bincount(np.searchsorted(cuts, data, "left"), minlength=len(cuts) + 1).astype(
            np.float64
        )
    return p / p.sum(), q / q.sum()


def _binned_wasserstein(reference: ColumnReference, data: Array) -> float:
    """Integral of |F_ref - F_cur|: linear CDFs inside sketch bins, exact beyond the range."""
    edges = np.asarray(reference.edges)
    n, m = reference.count, len(data)
    low, high = edges[0], edges[-1]
    tails = float(np.sum(low - data[data < low]) + np.sum(data[data > high] - high)) / m
    f = np.asarray(reference.at_or_below) / n  # at each edge (right limit)
    current = np.sort(data)
    g = np.searchsorted(current, edges, "right") / m
    g_left = np.searchsorted(current, edges[1:], "left") / m
    start, end = f[:-1] - g[:-1], np.asarray(reference.below)[1:] / n - g_left
    width = np.diff(edges)
    same = start * end >= 0
    crossing = np.abs(start) + np.abs(end)
    area = np.where(
        same,
        width * np.abs(start + end) / 2,
        width * (start**2 + end**2) / (2 * np.where(crossing > 0, crossing, 1)),
    )
    return tails + float(area.sum())
