"""Drift tests with one shape: ``fit(reference) -> ColumnReference``, ``compare(ref, current)``.

A ``ColumnReference`` is computed once per model version and stored (``to_dict`` is plain JSON),
so checks never re-read the reference data. Every method reads the same reference, so the method
can be chosen per column at check time. For numbers it keeps a quantile sketch: edges at the
0, 1, ..., 100% quantiles plus 0.01/0.1/99.9/99.99% for the tails, and at every edge the exact
count of reference values below it and at-or-below it; the sorted values themselves are kept when
there are at most ``SAMPLE_LIMIT``, which makes KS and Wasserstein exact. For categories it keeps
the count of every category (key ``str(value)``), up to ``CATEGORY_LIMIT``: beyond, the rarest are
summed in one ``OTHER`` bucket, and current values outside the kept ones are counted there too
(new categories are then not told apart from rare ones). A numeric column with at most
``VALUE_COUNT_LIMIT`` (100) distinct values also keeps the count of each value.

Column types: a reference is typed numeric or categorical once, when it is fitted, and its type
chooses the default method and is stated in every result (``DriftResult.column_type``). Strings,
booleans and pandas categoricals are categorical; a numeric column is categorical when it has
few distinct values, as in Evidently 0.7 (``categorical_for_drift``: at most 5, or at most 10
whole numbers), e.g. a 0/1 flag or a -1/0/1 code, whose frequencies KS barely sees move. A
declared type wins (``fit_reference(values, kind)``, ``fit_references(frame, kinds)``), and so
does a method chosen for a column. Evidently counts the distinct values of reference and current
together at each check; here the reference decides, so a column keeps its tests from window to
window and a value it never held shows as a new category. References stored before column types
are typed when loaded from the value counts their kept sample or sketch holds exactly (the
sketch does when every value sits at one of its edges, as values of over 1% of the rows do);
otherwise they stay numeric, as they were tested before.

Methods (``threshold`` is alpha for the tests with a p-value, else the distance cut-off; a column
drifts when ``p_value < alpha`` or ``value >= threshold``, as in Evidently):

- ``PSI`` (0.2): over the reference deciles (numbers) or categories, shares clipped at 1e-4. Exact.
- ``KolmogorovSmirnov`` (0.05): ``scipy.stats.ks_2samp`` when the sample was kept; otherwise D is
  the largest CDF gap at the sketch edges (both one-sided limits, exact there) and the p-value is
  the asymptotic Kolmogorov distribution. Binned D is a lower bound and is off by at most the
  largest share of either sample strictly inside one sketch bin (about 1% for continuous data).
- ``ChiSquared`` (0.05, value counts): test of homogeneity of the 2 x K table of reference and
  current counts (``chi2_contingency`` without Yates), so unseen categories need no special case.
  Evidently's ``chisquare`` is a goodness-of-fit test of the current counts against the
  reference shares taken as exact; that ignores the reference's own sampling error, so with a
  reference as small as the current window its statistic is about twice this one and it raises
  false alarms far more often than its threshold says (measured in ``benchmarks/drift.py``).
  It is opt-in as ``ChiSquaredGoodnessOfFit`` (``chi_squared_gof``).
- ``ZTest`` (0.05, value counts): two-proportion z-test, the share of one value against the
  rest; with two values it is the chi-squared test above (``z**2`` is its statistic).
- ``JensenShannon`` (0.1): distance, base 2, over the same bins as PSI.
- ``Wasserstein`` (0.1, numbers): W1 divided by the reference standard deviation (Evidently's
  "normed" variant; a constant reference gives 0 if unchanged, else inf). Exact with the kept
  sample; otherwise both CDFs are taken linear inside sketch bins and the tails beyond the
  reference range are exact; for continuous data the error is below 0.01 (tested).

Current values: NaN/None are nulls, infinities are excluded and counted, neither is compared.

Chunks: once the reference is fixed, everything the methods read of the current values adds up
over chunks: per column the counts of values below and at-or-below each sketch edge (the decile
bin counts follow from them), the sums of the tails beyond the reference range (Wasserstein), the
category (and value) counts, nulls and infinities. ``check_drift`` and ``check_drift_chunks``
both reduce the current values to that tally and compute every statistic from it with the same
code, so the chunked check holds one chunk at a time and agrees with the in-memory one: exactly
for PSI, Jensen-Shannon, chi-squared, the z-test and binned KS, to rounding (the tail sums) for
binned Wasserstein. (One exception: values new to a numeric reference are summed in ``OTHER``
when a chunk holds more than ``CATEGORY_LIMIT`` distinct values, so a column that stopped being
discrete can show more new categories chunked than in memory.)
One difference: with a reference that kept its sample, ``check_drift`` makes KS and Wasserstein
exact from the current values, which the chunked check never holds all at once, so it uses the
binned versions (error bounds above; KS p-values from the asymptotic distribution).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from modelloop.datasets.reference import (
    KINDS,
    OTHER,
    VALUE_COUNT_LIMIT,
    Array,
    ColumnReference,
    category_counts,
    finite_numbers,
    fit_reference,
    value_counts,
)
from modelloop.errors import InvalidArgument

SMALL_SAMPLE = 1000
DECILES = tuple(i / 10 for i in range(1, 10))
PSI_FLOOR = 1e-4


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
    column_type: str = ""  # numeric | categorical: the reference's type, which chose the method


@dataclass(frozen=True, slots=True)
class DriftReport:
    results: dict[str, DriftResult]  # every checked column, including no_data ones
    share_drifted: float  # of the columns with data
    drifted_columns: tuple[str, ...]
    dataset_drifted: bool
    no_data: tuple[str, ...] = ()


@dataclass(slots=True)
class _Tally:
    """The current values of one column as far as any method reads them; it adds up, so a
    chunk's tally added to the tally of the chunks before gives the tally of their union."""

    count: int = 0  # compared values: finite numbers or non-null categories
    null_count: int = 0
    inf_count: int = 0
    below: Array = field(default_factory=lambda: np.zeros(0, np.int64))  # < each reference edge
    at_or_below: Array = field(default_factory=lambda: np.zeros(0, np.int64))  # <= each edge
    tail_low: float = 0.0  # sum of edges[0] - x over the values below the reference range
    tail_high: float = 0.0  # sum of x - edges[-1] over the values above it
    categories: dict[str, int] = field(default_factory=dict)

    def add(self, other: _Tally) -> None:
        self.count += other.count
        self.null_count += other.null_count
        self.inf_count += other.inf_count
        if other.below.size:
            self.below = self.below + other.below if self.below.size else other.below
            self.at_or_below = (
                self.at_or_below + other.at_or_below if self.at_or_below.size else other.at_or_below
            )
        self.tail_low += other.tail_low
        self.tail_high += other.tail_high
        for key, n in other.categories.items():
            self.categories[key] = self.categories.get(key, 0) + n


def _tally(reference: ColumnReference, values: Any) -> tuple[_Tally, Array | None]:
    """The tally of ``values`` against ``reference`` and, for numbers, the sorted finite values."""
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    if reference.kind == "categorical":
        counts, nulls = category_counts(series)
        known = reference.categories or {}
        if OTHER in known:  # a capped reference: what it did not keep is compared as one
            folded: dict[str, int] = {}
            for key, n in counts.items():
                key = key if key in known else OTHER
                folded[key] = folded.get(key, 0) + n
            counts = folded
        return _Tally(sum(counts.values()), nulls, categories=counts), None
    finite, nulls, infs = finite_numbers(series)
    finite.sort()  # then the edge counts are binary searches and the tails are slices
    tally = _Tally(len(finite), nulls, infs)
    if reference.categories is not None:
        tally.categories = value_counts(finite, reference.categories)
    if reference.edges:
        edges = np.asarray(reference.edges)
        tally.below = np.searchsorted(finite, edges, "left")
        tally.at_or_below = np.searchsorted(finite, edges, "right")
        tally.tail_low = float(np.sum(edges[0] - finite[: tally.below[0]]))
        tally.tail_high = float(np.sum(finite[tally.at_or_below[-1] :] - edges[-1]))
    return tally, finite


@dataclass(frozen=True)
class _Method:
    """Shared shape: ``fit`` builds the common reference, ``compare`` tests current against it."""

    threshold: float
    name: ClassVar[str]
    kinds: ClassVar[tuple[str, ...]] = KINDS  # what the values must be
    counts: ClassVar[bool] = False  # compares counts per value (a categorical test)
    has_p_value: ClassVar[bool] = False

    def fit(self, values: Any) -> ColumnReference:
        return fit_reference(values)

    def compare(self, reference: ColumnReference, current: Any, column: str = "") -> DriftResult:
        tally, values = _tally(reference, current)
        return self._result(reference, tally, values, column)

    def _result(
        self, reference: ColumnReference, tally: _Tally, values: Array | None, column: str
    ) -> DriftResult:
        """The test from the tally; ``values`` (sorted finite numbers) only make it exact."""
        if reference.kind not in self.kinds:
            raise ValueError(f"{self.name} does not apply to {reference.kind} columns")
        if self.counts and reference.categories is None and reference.count:
            raise ValueError(
                f"{self.name} compares counts per value, which the reference of numeric column "
                f"{column!r} does not keep (more than {VALUE_COUNT_LIMIT} distinct values): "
                "declare it categorical when fitting, or choose ks, wasserstein, psi or "
                "jensen_shannon"
            )
        details: dict[str, Any] = {
            "n_reference": reference.count,
            "n_current": tally.count,
            "null_current": tally.null_count,
        }
        if reference.kind == "numeric":
            details["inf_current"] = tally.inf_count
        if reference.column_type == "categorical" or self.counts:
            new = set(tally.categories) - set(reference.categories or {})
            details["new_categories"] = sorted(new)
        if reference.count == 0 or tally.count == 0:
            return DriftResult(
                column,
                self.name,
                math.nan,
                None,
                self.threshold,
                False,
                details,
                "no_data",
                reference.column_type,
            )
        value, p_value = self._statistic(reference, tally, values, details)
        drifted = p_value < self.threshold if p_value is not None else value >= self.threshold
        return DriftResult(
            column,
            self.name,
            value,
            p_value,
            self.threshold,
            drifted,
            details,
            column_type=reference.column_type,
        )

    def _statistic(
        self,
        reference: ColumnReference,
        tally: _Tally,
        values: Array | None,
        details: dict[str, Any],
    ) -> tuple[float, float | None]:
        raise NotImplementedError


@dataclass(frozen=True)
class PSI(_Method):
    threshold: float = 0.2
    name: ClassVar[str] = "psi"

    def _statistic(
        self,
        reference: ColumnReference,
        tally: _Tally,
        values: Array | None,
        details: dict[str, Any],
    ) -> tuple[float, float | None]:
        p, q = (np.clip(s, PSI_FLOOR, None) for s in _shares(reference, tally))
        return float(np.sum((q - p) * np.log(q / p))), None


@dataclass(frozen=True)
class JensenShannon(_Method):
    threshold: float = 0.1
    name: ClassVar[str] = "jensen_shannon"

    def _statistic(
        self,
        reference: ColumnReference,
        tally: _Tally,
        values: Array | None,
        details: dict[str, Any],
    ) -> tuple[float, float | None]:
        p, q = _shares(reference, tally)
        m = (p + q) / 2
        kl = sum(float(np.sum(x[x > 0] * np.log2(x[x > 0] / m[x > 0]))) for x in (p, q))
        return math.sqrt(max(kl / 2, 0.0)), None


@dataclass(frozen=True)
class ChiSquared(_Method):
    threshold: float = 0.05
    name: ClassVar[str] = "chi_squared"
    counts: ClassVar[bool] = True

    def _statistic(
        self,
        reference: ColumnReference,
        tally: _Tally,
        values: Array | None,
        details: dict[str, Any],
    ) -> tuple[float, float | None]:
        from scipy.special import chdtrc

        table = np.vstack(_counts_per_value(reference, tally))
        expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
        dof = table.shape[1] - 1
        details["dof"] = dof
        if dof == 0:
            return 0.0, 1.0
        stat = float(np.sum((table - expected) ** 2 / expected))
        return stat, float(chdtrc(dof, stat))


@dataclass(frozen=True)
class ChiSquaredGoodnessOfFit(_Method):
    """Evidently 0.7's ``chisquare``, opt-in: ``scipy.stats.chisquare`` of the current counts
    against the reference counts scaled to the current size, over the values of both.

    Not the default because it takes the reference shares as exact: the reference's own sampling
    noise is ignored, so with a reference not much larger than the window its false alarms far
    exceed its threshold (22% of drift-free splits at 0.05 on River's phishing table, where
    ``ChiSquared`` flags 4.4%; ``benchmarks/drift.py --discrete``). Fine when the reference is
    much larger than the window (then both tests agree), or to get Evidently's verdicts. As in
    Evidently, a current value absent from the reference is expected 0 times: ``inf``, p = 0;
    a column holding one value has p = 1 (SciPy's p-value is NaN there: not drifted either)."""

    threshold: float = 0.05
    name: ClassVar[str] = "chi_squared_gof"
    counts: ClassVar[bool] = True

    def _statistic(
        self,
        reference: ColumnReference,
        tally: _Tally,
        values: Array | None,
        details: dict[str, Any],
    ) -> tuple[float, float | None]:
        from scipy.special import chdtrc

        counts, observed = _counts_per_value(reference, tally)
        expected = counts * (observed.sum() / counts.sum())
        dof = len(counts) - 1
        details["dof"] = dof
        if dof == 0:
            return 0.0, 1.0
        if (expected == 0).any():  # a value the reference never held
            return math.inf, 0.0
        stat = float(np.sum((observed - expected) ** 2 / expected))
        return stat, float(chdtrc(dof, stat))


@dataclass(frozen=True)
class ZTest(_Method):
    """Two-proportion z-test with the pooled share: the share of the first value (in key order)
    against the rest, ``value`` is ``|z|``. Evidently's test for a column of two values; there
    ``z**2`` is the chi-squared statistic of the 2 x 2 table, so both give the same p-value."""

    threshold: float = 0.05
    name: ClassVar[str] = "z"
    counts: ClassVar[bool] = True

    def _statistic(
        self,
        reference: ColumnReference,
        tally: _Tally,
        values: Array | None,
        details: dict[str, Any],
    ) -> tuple[float, float | None]:
        from scipy.special import ndtr

        ref, cur = reference.categories or {}, tally.categories
        first = min(set(ref) | set(cur))
        n, m = reference.count, tally.count
        details.update(
            category=first,
            share_reference=ref.get(first, 0) / n,
            share_current=cur.get(first, 0) / m,
        )
        pooled = (ref.get(first, 0) + cur.get(first, 0)) / (n + m)
        if pooled in (0.0, 1.0):
            return 0.0, 1.0
        se = math.sqrt(pooled * (1 - pooled) * (1 / n + 1 / m))
        z = abs(details["share_current"] - details["share_reference"]) / se
        return z, float(2 * ndtr(-z))


@dataclass(frozen=True)
class KolmogorovSmirnov(_Method):
    threshold: float = 0.05
    name: ClassVar[str] = "ks"
    kinds: ClassVar[tuple[str, ...]] = ("numeric",)

    def _statistic(
        self,
        reference: ColumnReference,
        tally: _Tally,
        values: Array | None,
        details: dict[str, Any],
    ) -> tuple[float, float | None]:
        from scipy.special import kolmogorov
        from scipy.stats import ks_2samp

        details["exact"] = reference.sample is not None and values is not None
        if reference.sample is not None and values is not None:
            result = ks_2samp(np.asarray(reference.sample), values)
            return float(result.statistic), float(result.pvalue)
        n, m = reference.count, tally.count
        gaps = (
            np.asarray(reference.below) / n - tally.below / m,
            np.asarray(reference.at_or_below) / n - tally.at_or_below / m,
        )
        d = float(max(np.abs(g).max() for g in gaps))
        return d, float(kolmogorov(d * math.sqrt(n * m / (n + m))))


@dataclass(frozen=True)
class Wasserstein(_Method):
    threshold: float = 0.1
    name: ClassVar[str] = "wasserstein"
    kinds: ClassVar[tuple[str, ...]] = ("numeric",)

    def _statistic(
        self,
        reference: ColumnReference,
        tally: _Tally,
        values: Array | None,
        details: dict[str, Any],
    ) -> tuple[float, float | None]:
        details["exact"] = reference.sample is not None and values is not None
        if reference.sample is not None and values is not None:
            from scipy.stats import wasserstein_distance

            distance = float(wasserstein_distance(reference.sample, values))
        else:
            distance = _binned_wasserstein(reference, tally)
        scale = reference.std or 0.0
        details["distance"] = distance
        if scale > 0:
            return distance / scale, None
        return (0.0 if distance == 0 else math.inf), None


METHODS: dict[str, type[_Method]] = {
    m.name: m
    for m in (
        PSI,
        KolmogorovSmirnov,
        ChiSquared,
        ChiSquaredGoodnessOfFit,
        ZTest,
        JensenShannon,
        Wasserstein,
    )
}


def default_method(
    column_type: str, n_reference: int, n_current: int, values: int | None = None
) -> _Method:
    """Evidently's defaults, keyed on the column type and the smaller sample (a test's power is
    bounded by it; Evidently looks at the reference alone):

    up to ``SMALL_SAMPLE`` (1000) values, KS for numbers and, for categories, the z-test when
    both samples together hold at most two ``values`` and chi-squared otherwise, whose p-values
    account for sample size; above, normalised Wasserstein and Jensen-Shannon, whose distances
    do not flag negligible shifts that huge samples make "significant"."""
    small = min(n_reference, n_current) <= SMALL_SAMPLE
    if column_type == "numeric":
        return KolmogorovSmirnov() if small else Wasserstein()
    if not small:
        return JensenShannon()
    return ZTest() if values is not None and values <= 2 else ChiSquared()


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
    _check_method_names(methods)
    tallies: dict[str, _Tally] = {}
    kept: dict[str, Array] = {}  # sorted current values, only where they make a method exact
    for column, ref in reference.items():
        values = current[column] if column in current.columns else pd.Series([], dtype=object)
        tallies[column], finite = _tally(ref, values)
        if ref.sample is not None and finite is not None:
            kept[column] = finite
    return _report(reference, tallies, kept, methods, thresholds, share_threshold)


def check_drift_chunks(
    reference: Mapping[str, ColumnReference],
    chunks: Iterable[Any],
    *,
    methods: Mapping[str, _Method | str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    share_threshold: float = 0.5,
) -> DriftReport:
    """``check_drift`` of the concatenated ``chunks``, holding only one chunk at a time.

    For current data larger than memory: chunks are DataFrames or Arrow tables/record batches
    (anything with ``to_pandas()``, e.g. ``pyarrow.parquet.ParquetFile(path).iter_batches()``).
    A column absent from a chunk adds nothing for it. Default methods are chosen on the total
    count; KS and Wasserstein are always binned (see the module docstring)."""
    _check_method_names(methods)
    tallies = {column: _Tally() for column in reference}
    for chunk in chunks:
        frame = chunk
        if not isinstance(chunk, pd.DataFrame):  # Arrow: convert the referenced columns only
            names = set(chunk.schema.names)
            frame = chunk.select([c for c in reference if c in names]).to_pandas()
        for column, ref in reference.items():
            if column in frame.columns:
                tallies[column].add(_tally(ref, frame[column])[0])
    return _report(reference, tallies, {}, methods, thresholds, share_threshold)


def _check_method_names(methods: Mapping[str, _Method | str] | None) -> None:
    """Method names are checked before any data is read, naming the ones that exist."""
    unknown = {
        column: method
        for column, method in (methods or {}).items()
        if isinstance(method, str) and method not in METHODS
    }
    if unknown:
        raise InvalidArgument(
            f"unknown drift method(s) {unknown}: choose among {', '.join(METHODS)}",
            [
                {"field": f"methods.{column}", "message": f"unknown drift method {method!r}"}
                for column, method in unknown.items()
            ],
        )


def _report(
    reference: Mapping[str, ColumnReference],
    tallies: Mapping[str, _Tally],
    kept: Mapping[str, Array],
    methods: Mapping[str, _Method | str] | None,
    thresholds: Mapping[str, float] | None,
    share_threshold: float,
) -> DriftReport:
    """The per-column tests and the dataset verdict, from the tallies of the current data."""
    results: dict[str, DriftResult] = {}
    for column, ref in reference.items():
        tally = tallies[column]
        method = (methods or {}).get(column) or default_method(
            ref.column_type,
            ref.count,
            tally.count + tally.inf_count,  # the non-null values
            len(set(ref.categories or {}) | set(tally.categories)),
        )
        if isinstance(method, str):
            method = METHODS[method]()  # type: ignore[call-arg]  # every method has a default
        if thresholds and column in thresholds:
            method = replace(method, threshold=thresholds[column])
        results[column] = method._result(ref, tally, kept.get(column), column)
    compared = [r for r in results.values() if r.status == "ok"]
    drifted = tuple(r.column for r in compared if r.drifted)
    share = len(drifted) / len(compared) if compared else 0.0
    no_data = tuple(r.column for r in results.values() if r.status == "no_data")
    return DriftReport(
        results, share, drifted, bool(compared) and share >= share_threshold, no_data
    )


def _counts_per_value(reference: ColumnReference, tally: _Tally) -> tuple[Array, Array]:
    """Reference and current counts per value, over the sorted union of their values."""
    ref, cur = reference.categories or {}, tally.categories
    keys = sorted(set(ref) | set(cur))
    counts = [[ref.get(k, 0) for k in keys], [cur.get(k, 0) for k in keys]]
    return np.array(counts[0], dtype=np.float64), np.array(counts[1], dtype=np.float64)


def _shares(reference: ColumnReference, tally: _Tally) -> tuple[Array, Array]:
    """Reference and current shares over deciles of the reference or the union of categories.

    Decile bins are ``(cut[i-1], cut[i]]``, so their counts are differences of the at-or-below
    counts at the decile edges. A numeric column typed categorical is compared per value."""
    if reference.column_type == "categorical":
        p, q = _counts_per_value(reference, tally)
    else:
        at = np.searchsorted(np.asarray(reference.levels), DECILES)
        _, first = np.unique(np.asarray(reference.edges)[at], return_index=True)
        ref_le = np.asarray(reference.at_or_below)[at][first]
        cur_le = tally.at_or_below[at][first]
        p = np.diff(np.concatenate(([0], ref_le, [reference.count]))).astype(np.float64)
        q = np.diff(np.concatenate(([0], cur_le, [tally.count]))).astype(np.float64)
    return p / p.sum(), q / q.sum()


def _binned_wasserstein(reference: ColumnReference, tally: _Tally) -> float:
    """Integral of |F_ref - F_cur|: linear CDFs inside sketch bins, exact beyond the range."""
    edges = np.asarray(reference.edges)
    n, m = reference.count, tally.count
    tails = (tally.tail_low + tally.tail_high) / m
    f = np.asarray(reference.at_or_below) / n  # at each edge (right limit)
    g = tally.at_or_below / m
    start, end = f[:-1] - g[:-1], np.asarray(reference.below)[1:] / n - tally.below[1:] / m
    width = np.diff(edges)
    same = start * end >= 0
    crossing = np.abs(start) + np.abs(end)
    area = np.where(
        same,
        width * np.abs(start + end) / 2,
        width * (start**2 + end**2) / (2 * np.where(crossing > 0, crossing, 1)),
    )
    return tails + float(area.sum())
