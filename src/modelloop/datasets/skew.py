"""Train/serve skew: which statistics of a column moved between two profiles, beyond tolerances.

Both sides are :class:`~modelloop.datasets.profile.DatasetProfile` values, so a reference profile
computed once (when the training set was logged) is compared with any later sample without
touching the training data again. Per column:

- ``column``: a column missing from, or new in, the current profile; ``dtype``: its dtype changed;
- ``null_rate``: the null rate moved by more than ``null_rate`` (absolute);
- ``mean``: the mean moved by more than ``mean_shift`` reference standard deviations;
- ``psi``: population stability index above ``psi`` (0.2 is the usual "significant shift").
  Numbers: the current share in each reference histogram bin, estimated from the current
  profile's own quantile histogram (its CDF interpolated linearly at the reference edges).
  Categories: over the shares of the union of the top categories;
- ``new_categories``/``missing_categories``: values with at least ``category_share`` of the
  non-null rows on one side and absent on the other (only when that side's top list is complete).

A resample of the same distribution moves none of these beyond the defaults.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

from modelloop.datasets.profile import ColumnProfile, DatasetProfile

_EPSILON = 1e-4  # floor for empty bins, so PSI stays finite


@dataclass(frozen=True, slots=True)
class Tolerances:
    null_rate: float = 0.05
    mean_shift: float = 0.25
    psi: float = 0.2
    category_share: float = 0.01


@dataclass(frozen=True, slots=True)
class ColumnSkew:
    column: str
    statistic: str  # column, dtype, null_rate, mean, psi, new_categories, missing_categories
    reference: Any
    current: Any
    threshold: float | None
    message: str


@dataclass(frozen=True, slots=True)
class SkewReport:
    findings: list[ColumnSkew] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def skewed_columns(self) -> list[str]:
        return sorted({f.column for f in self.findings})

    def summary(self) -> str:
        if self.ok:
            return "No skew beyond the tolerances."
        lines = [f"Skew in {len(self.skewed_columns)} column(s):"]
        return "\n".join(lines + [f"  - {f.message}" for f in self.findings])


def compare_profiles(
    reference: DatasetProfile, current: DatasetProfile, *, tolerances: Tolerances | None = None
) -> SkewReport:
    """Every statistic that moved beyond ``tolerances`` (defaults: :class:`Tolerances`)."""
    tol = tolerances or Tolerances()
    findings: list[ColumnSkew] = []
    for name, ref in reference.columns.items():
        cur = current.columns.get(name)
        if cur is None:
            findings.append(ColumnSkew(name, "column", ref.dtype, None, None, f"{name}: missing"))
            continue
        findings.extend(_column_skew(ref, cur, tol))
    for name, cur in current.columns.items():
        if name not in reference.columns:
            message = f"{name}: not in the reference"
            findings.append(ColumnSkew(name, "column", None, cur.dtype, None, message))
    return SkewReport(findings)


def _column_skew(ref: ColumnProfile, cur: ColumnProfile, tol: Tolerances) -> list[ColumnSkew]:
    name = ref.name
    out: list[ColumnSkew] = []
    if ref.dtype != cur.dtype:
        message = f"{name}: dtype {ref.dtype} -> {cur.dtype}"
        out.append(ColumnSkew(name, "dtype", ref.dtype, cur.dtype, None, message))
    moved = abs(cur.null_rate - ref.null_rate)
    if moved > tol.null_rate:
        message = f"{name}: null rate {ref.null_rate:.4g} -> {cur.null_rate:.4g}"
        out.append(
            ColumnSkew(name, "null_rate", ref.null_rate, cur.null_rate, tol.null_rate, message)
        )
    if ref.kind == "numeric" and cur.kind == "numeric":
        out.extend(_numeric_skew(ref, cur, tol))
    elif ref.kind == "categorical" and cur.kind == "categorical":
        out.extend(_categorical_skew(ref, cur, tol))
    return out


def _numeric_skew(ref: ColumnProfile, cur: ColumnProfile, tol: Tolerances) -> list[ColumnSkew]:
    import numpy as np

    name = ref.name
    out: list[ColumnSkew] = []
    if ref.mean is not None and cur.mean is not None and ref.std:
        shift = (cur.mean - ref.mean) / ref.std
        if abs(shift) > tol.mean_shift:
            message = f"{name}: mean {ref.mean:.4g} -> {cur.mean:.4g} ({shift:+.2f} std)"
            out.append(ColumnSkew(name, "mean", ref.mean, cur.mean, tol.mean_shift, message))
    if ref.histogram is not None and cur.histogram is not None and len(ref.histogram.counts) > 1:
        expected = np.asarray(ref.histogram.counts, dtype=np.float64)
        expected /= expected.sum()
        actual = np.diff(_cdf(cur, np.asarray(ref.histogram.edges)))
        psi = _psi(expected, actual)
        if psi > tol.psi:
            message = f"{name}: population stability index {psi:.3f} > {tol.psi:g}"
            out.append(ColumnSkew(name, "psi", None, psi, tol.psi, message))
    return out


def _cdf(profile: ColumnProfile, at: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The share of ``profile``'s values below each point, with the reference's outer edges
    stretched to cover everything (values beyond them fall in the first/last bin)."""
    import numpy as np

    assert profile.histogram is not None
    edges = np.asarray(profile.histogram.edges, dtype=np.float64)
    counts = np.asarray(profile.histogram.counts, dtype=np.float64)
    cumulative = np.concatenate(([0.0], np.cumsum(counts) / counts.sum()))
    if edges[0] == edges[-1]:  # one distinct value: a step
        cdf = np.where(at >= edges[0], 1.0, 0.0)
    else:
        cdf = np.interp(at, edges, cumulative)
    cdf[0], cdf[-1] = 0.0, 1.0
    return np.asarray(cdf)


def _psi(expected: np.ndarray[Any, Any], actual: np.ndarray[Any, Any]) -> float:
    import numpy as np

    e = np.maximum(expected, _EPSILON)
    a = np.maximum(actual, _EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


def _categorical_skew(ref: ColumnProfile, cur: ColumnProfile, tol: Tolerances) -> list[ColumnSkew]:
    import numpy as np

    name = ref.name
    out: list[ColumnSkew] = []
    ref_top, cur_top = ref.top or {}, cur.top or {}
    if not ref_top or not cur_top:
        return out
    if not ref.other_share:
        new = sorted(k for k, s in cur_top.items() if k not in ref_top and s >= tol.category_share)
        if new:
            message = f"{name}: new categories {new[:20]}"
            out.append(ColumnSkew(name, "new_categories", None, new, tol.category_share, message))
    if not cur.other_share:
        gone = sorted(k for k, s in ref_top.items() if k not in cur_top and s >= tol.category_share)
        if gone:
            message = f"{name}: categories no longer seen {gone[:20]}"
            out.append(
                ColumnSkew(name, "missing_categories", gone, None, tol.category_share, message)
            )
    keys = sorted(set(ref_top) | set(cur_top))
    expected = np.array([ref_top.get(k, 0.0) for k in keys] + [ref.other_share or 0.0])
    actual = np.array([cur_top.get(k, 0.0) for k in keys] + [cur.other_share or 0.0])
    psi = _psi(expected, actual)
    if psi > tol.psi and math.isfinite(psi):
        message = f"{name}: population stability index {psi:.3f} > {tol.psi:g}"
        out.append(ColumnSkew(name, "psi", None, psi, tol.psi, message))
    return out
