"""The gate's metrics and their paired bootstrap: both models scored on the same resamples.

A point estimate alone ("AP 0.812 vs 0.809") cannot tell skill from luck, so the gate draws
``n_bootstrap`` resamples of the rows and, on each, computes the metric for both models on the
very same rows (a *paired* bootstrap: the noise of the sample cancels in the difference, which
makes the interval far tighter than two separate intervals).

Resamples are drawn as ``rng.integers(0, n, size=n)`` per replicate from
``numpy.random.default_rng(seed)`` and turned into row counts, so the metrics are computed
vectorised (one sort per model, cumulative sums of the counts) yet equal, to rounding, what
scikit-learn computes on the resampled rows. Replicates on which the metric is undefined (no
positive, or one class for AUC) are dropped and counted.

Standard library only at import time; numpy loads on first use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelloop.errors import InvalidArgument

if TYPE_CHECKING:
    import numpy as np

    FloatArray = np.ndarray[Any, np.dtype[np.float64]]

#: Metric names and the short names the CLI and SDK also accept.
METRICS = ("average_precision", "auc_roc", "precision_at_k")
METRIC_ALIASES = {
    "ap": "average_precision",
    "pr_auc": "average_precision",
    "auc": "auc_roc",
    "roc_auc": "auc_roc",
    "p@k": "precision_at_k",
    "precision@k": "precision_at_k",
}
_LABELS = {"average_precision": "AP", "auc_roc": "AUC", "precision_at_k": "precision@k"}
_CHUNK_CELLS = 4_000_000  # replicates x rows held in memory at once (~32 MB of float64)


def normalize_metric(metric: str) -> str:
    """``ap`` -> ``average_precision``...; InvalidArgument naming the choices otherwise."""
    name = METRIC_ALIASES.get(metric.strip().lower(), metric.strip().lower())
    if name not in METRICS:
        choices = ", ".join([*METRICS, *METRIC_ALIASES])
        raise InvalidArgument(
            f"Unknown gate metric {metric!r}: use one of {choices} (card precision@k is not "
            "supported by the gate yet)"
        )
    return name


def metric_label(metric: str, k: int | None = None) -> str:
    """The metric as messages name it: ``AP``, ``AUC``, ``precision@100`` (``precision@k``
    without ``k``)."""
    label = _LABELS[metric]
    return label.replace("k", str(k)) if metric == "precision_at_k" and k is not None else label


@dataclass(frozen=True)
class Bootstrap:
    """Per-replicate metric values (NaN where undefined) and the defined differences."""

    champion: FloatArray
    challenger: FloatArray
    differences: FloatArray  # challenger - champion, undefined replicates dropped
    n_undefined: int
    champion_value: float | None  # on the whole sample
    challenger_value: float | None


def paired_bootstrap(
    labels: Any,
    champion_scores: Any,
    challenger_scores: Any,
    *,
    metric: str = "average_precision",
    k: int = 100,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> Bootstrap:
    """Both models' metric on the same ``n_bootstrap`` resamples of the rows.

    Replicate ``b`` is the rows ``rng.integers(0, n, size=n)`` (the ``b``-th such draw of
    ``numpy.random.default_rng(seed)``); it is evaluated as integer row weights, which gives
    the same value as the metric on the resampled rows (ties included), without materialising
    them.
    """
    import numpy as np

    metric = normalize_metric(metric)
    y = np.asarray(labels, dtype=np.float64)
    scores = [np.asarray(s, dtype=np.float64) for s in (champion_scores, challenger_scores)]
    n = len(y)
    if n == 0 or any(s.shape != y.shape for s in scores):
        raise InvalidArgument("labels and both models' scores need the same, non-zero length")
    prepared = [_prepare(y, s) for s in scores]
    whole = np.ones((1, n))
    point = [float(_weighted(p, whole, metric, k)[0]) for p in prepared]
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_bootstrap, _CHUNK_CELLS // n))
    out = np.empty((2, n_bootstrap))
    for start in range(0, n_bootstrap, chunk):
        stop = min(start + chunk, n_bootstrap)
        counts = np.empty((stop - start, n))
        for row in range(stop - start):
            counts[row] = np.bincount(rng.integers(0, n, size=n), minlength=n)
        for side, p in enumerate(prepared):
            out[side, start:stop] = _weighted(p, counts, metric, k)
    defined = ~np.isnan(out).any(axis=0)
    return Bootstrap(
        champion=out[0],
        challenger=out[1],
        differences=out[1, defined] - out[0, defined],
        n_undefined=int((~defined).sum()),
        champion_value=None if math.isnan(point[0]) else point[0],
        challenger_value=None if math.isnan(point[1]) else point[1],
    )


# -- the weighted metrics ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Sorted:
    order: Any  # rows by score descending (ties by row number)
    y: FloatArray  # labels in that order
    group_ends: Any  # the last position of each run of equal scores


def _prepare(y: FloatArray, s: FloatArray) -> _Sorted:
    import numpy as np

    if not np.isfinite(s).all():
        raise InvalidArgument("a model returned NaN or infinite scores on the holdout")
    order = np.lexsort((np.arange(len(s)), -s))
    ends = np.r_[np.flatnonzero(np.diff(s[order])), len(s) - 1]
    return _Sorted(order, y[order], ends)


def _weighted(p: _Sorted, counts: FloatArray, metric: str, k: int) -> FloatArray:
    """The metric for each row of ``counts`` (rows: replicates; columns: row weights)."""
    import numpy as np

    w = counts[:, p.order]
    if metric == "precision_at_k":  # the first k resampled rows, copies of a row together
        before = np.cumsum(w, axis=1) - w
        taken = np.clip(np.minimum(w, k - before), 0.0, None)
        result: FloatArray = (taken * p.y).sum(axis=1) / k
        return result
    tp = np.cumsum(w * p.y, axis=1)[:, p.group_ends]  # positives at or above each threshold
    seen = np.cumsum(w, axis=1)[:, p.group_ends]
    positives, total = tp[:, -1], seen[:, -1]
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "average_precision":  # sum of (recall step) x precision, as scikit-learn
            precision = np.where(seen > 0, tp / np.where(seen > 0, seen, 1.0), 0.0)
            steps = np.diff(tp, axis=1, prepend=0.0)
            value = (steps * precision).sum(axis=1) / positives
            return np.where(positives > 0, value, np.nan)
        fp = seen - tp  # AUC: P(positive above negative) + half the ties
        negatives = total - positives
        pos_in = np.diff(tp, axis=1, prepend=0.0)
        neg_in = np.diff(fp, axis=1, prepend=0.0)
        below = negatives[:, None] - fp  # negatives strictly below each threshold
        pairs = (pos_in * (below + 0.5 * neg_in)).sum(axis=1)
        return np.where((positives > 0) & (negatives > 0), pairs / (positives * negatives), np.nan)
