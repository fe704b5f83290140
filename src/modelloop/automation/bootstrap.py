"""The gate's metrics and their paired bootstrap: both models scored on the same resamples.

A point estimate alone ("AP 0.812 vs 0.809") cannot tell skill from luck, so the gate draws
``n_bootstrap`` resamples and, on each, computes the metric for both models on the very same
resample (a *paired* bootstrap: the noise of the sample cancels in the difference, which makes
the interval far tighter than two separate intervals).

Row metrics (AP, AUC, precision@k) resample rows: ``rng.integers(0, n, size=n)`` per replicate
from ``numpy.random.default_rng(seed)``, turned into row counts, so the metrics are computed
vectorised (one sort per model, cumulative sums of the counts) yet equal, to rounding, what
scikit-learn computes on the resampled rows. Replicates on which the metric is undefined (no
positive, or one class for AUC) are dropped and counted.

Card metrics (card precision@k, fraud amount caught) resample *cards* with all their rows
(:mod:`modelloop.automation.cards`): they need each row's card (``groups``) and day (``days``),
and the amount (``amounts``) for the money. Several metrics asked at once share their draws:
every row metric the same rows, every card metric the same cards.

Standard library only at import time; numpy loads on first use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelloop.automation import cards
from modelloop.errors import InvalidArgument

if TYPE_CHECKING:
    import numpy as np

    FloatArray = np.ndarray[Any, np.dtype[np.float64]]

#: Metric names and the short names the CLI and SDK also accept.
METRICS = (
    "average_precision",
    "auc_roc",
    "precision_at_k",
    "card_precision_at_k",
    "fraud_amount_at_k",
)
METRIC_ALIASES = {
    "ap": "average_precision",
    "pr_auc": "average_precision",
    "auc": "auc_roc",
    "roc_auc": "auc_roc",
    "p@k": "precision_at_k",
    "precision@k": "precision_at_k",
    "cp@k": "card_precision_at_k",
    "card_precision@k": "card_precision_at_k",
    "amount@k": "fraud_amount_at_k",
    "fraud_amount@k": "fraud_amount_at_k",
}
#: The per-row inputs a metric needs besides labels and scores.
METRIC_INPUTS: dict[str, tuple[str, ...]] = {
    "card_precision_at_k": ("groups", "days"),
    "fraud_amount_at_k": ("groups", "days", "amounts"),
}
_INPUT_MEANING = {"groups": "the card of each row", "days": "its day", "amounts": "its amount"}
_LABELS = {
    "average_precision": "AP",
    "auc_roc": "AUC",
    "precision_at_k": "precision",
    "card_precision_at_k": "card precision",
    "fraud_amount_at_k": "fraud amount",
}
_AT_K = ("precision_at_k", *cards.CARD_METRICS)
_CHUNK_CELLS = 4_000_000  # replicates x rows (or cards) held in memory at once (~32 MB)


def normalize_metric(metric: str) -> str:
    """``ap`` -> ``average_precision``...; InvalidArgument naming the choices otherwise."""
    name = METRIC_ALIASES.get(metric.strip().lower(), metric.strip().lower())
    if name not in METRICS:
        choices = ", ".join([*METRICS, *METRIC_ALIASES])
        raise InvalidArgument(f"Unknown gate metric {metric!r}: use one of {choices}")
    return name


def metric_label(metric: str, k: int | None = None) -> str:
    """The metric as messages name it: ``AP``, ``AUC``, ``precision@100``, ``card
    precision@100``, ``fraud amount@100`` (``@k`` without ``k``)."""
    label = _LABELS[metric]
    return f"{label}@{'k' if k is None else k}" if metric in _AT_K else label


def uses_k(metric: str) -> bool:
    """Whether ``k`` (rows or cards alerted) is part of ``metric``."""
    return metric in _AT_K


def missing_inputs(metric: str, **given: Any) -> list[str]:
    """The per-row inputs ``metric`` needs (``groups``, ``days``, ``amounts``) that are None
    in ``given``."""
    return [name for name in METRIC_INPUTS.get(metric, ()) if given.get(name) is None]


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
    groups: Any = None,
    days: Any = None,
    amounts: Any = None,
) -> Bootstrap:
    """Both models' ``metric`` on the same ``n_bootstrap`` resamples.

    A row metric's replicate ``b`` is the rows ``rng.integers(0, n, size=n)`` (the ``b``-th
    such draw of ``numpy.random.default_rng(seed)``), evaluated as integer row weights, which
    gives the same value as the metric on the resampled rows (ties included) without
    materialising them. A card metric (``card_precision_at_k``, ``fraud_amount_at_k``) resamples
    the cards of ``groups`` instead, as :mod:`modelloop.automation.cards` describes; it needs
    ``groups`` and ``days`` (and ``amounts`` for the money), one per row: InvalidArgument
    naming what is missing.
    """
    metric = normalize_metric(metric)
    return paired_bootstraps(
        labels,
        champion_scores,
        challenger_scores,
        metrics=(metric,),
        k=k,
        n_bootstrap=n_bootstrap,
        seed=seed,
        groups=groups,
        days=days,
        amounts=amounts,
    )[metric]


def paired_bootstraps(
    labels: Any,
    champion_scores: Any,
    challenger_scores: Any,
    *,
    metrics: Sequence[str],
    k: int = 100,
    n_bootstrap: int = 1000,
    seed: int = 0,
    groups: Any = None,
    days: Any = None,
    amounts: Any = None,
) -> dict[str, Bootstrap]:
    """:func:`paired_bootstrap` of each of ``metrics`` (by full name), computed together: the
    row metrics on one set of row draws, the card metrics in one pass over one set of card
    draws (each set the same as a single metric's from the same ``seed``)."""
    import numpy as np

    names = [normalize_metric(m) for m in metrics]
    for name in names:
        missing = missing_inputs(name, groups=groups, days=days, amounts=amounts)
        if missing:
            needs = ", ".join(f"{i} ({_INPUT_MEANING[i]})" for i in METRIC_INPUTS[name])
            raise InvalidArgument(
                f"{metric_label(name)} needs {needs}; missing: {', '.join(missing)}"
            )
    y = np.asarray(labels, dtype=np.float64)
    scores = [np.asarray(s, dtype=np.float64) for s in (champion_scores, challenger_scores)]
    if len(y) == 0 or any(s.shape != y.shape for s in scores):
        raise InvalidArgument("labels and both models' scores need the same, non-zero length")
    for s in scores:
        if not np.isfinite(s).all():
            raise InvalidArgument("a model returned NaN or infinite scores on the holdout")
    row_metrics = [m for m in names if m not in cards.CARD_METRICS]
    card_metrics = [m for m in names if m in cards.CARD_METRICS]
    out: dict[str, FloatArray] = {}
    points: dict[str, list[float]] = {}
    if row_metrics:
        values, point = _row_bootstrap(y, scores, row_metrics, k, n_bootstrap, seed)
        out.update(values)
        points.update(point)
    if card_metrics:
        uses_amounts = "fraud_amount_at_k" in card_metrics
        grouped = cards.card_days(y, groups, days, amounts if uses_amounts else None)
        values, point = _card_bootstrap(grouped, scores, card_metrics, k, n_bootstrap, seed)
        out.update(values)
        points.update(point)
    return {name: _summary(out[name], points[name]) for name in names}


def _summary(values: FloatArray, point: list[float]) -> Bootstrap:
    import numpy as np

    defined = ~np.isnan(values).any(axis=0)
    return Bootstrap(
        champion=values[0],
        challenger=values[1],
        differences=values[1, defined] - values[0, defined],
        n_undefined=int((~defined).sum()),
        champion_value=None if math.isnan(point[0]) else point[0],
        challenger_value=None if math.isnan(point[1]) else point[1],
    )


def _row_bootstrap(
    y: FloatArray,
    scores: list[FloatArray],
    metrics: list[str],
    k: int,
    n_bootstrap: int,
    seed: int,
) -> tuple[dict[str, FloatArray], dict[str, list[float]]]:
    """Each row metric on both sides: (2, n_bootstrap) values and the two whole-sample ones."""
    import numpy as np

    n = len(y)
    prepared = [_prepare(y, s) for s in scores]
    whole = np.ones((1, n))
    points = {m: [float(_weighted(p, whole, m, k)[0]) for p in prepared] for m in metrics}
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_bootstrap, _CHUNK_CELLS // n))
    out = {m: np.empty((2, n_bootstrap)) for m in metrics}
    for start in range(0, n_bootstrap, chunk):
        stop = min(start + chunk, n_bootstrap)
        counts = np.empty((stop - start, n))
        for row in range(stop - start):
            counts[row] = np.bincount(rng.integers(0, n, size=n), minlength=n)
        for side, p in enumerate(prepared):
            for m in metrics:
                out[m][side, start:stop] = _weighted(p, counts, m, k)
    return out, points


def _card_bootstrap(
    grouped: cards.CardDays,
    scores: list[FloatArray],
    metrics: list[str],
    k: int,
    n_bootstrap: int,
    seed: int,
) -> tuple[dict[str, FloatArray], dict[str, list[float]]]:
    """Each card metric on both sides, on the same card resamples."""
    import numpy as np

    orders = [cards.ranking(grouped, s) for s in scores]
    column = {"card_precision_at_k": 0, "fraud_amount_at_k": 1}
    whole = [cards.caught(grouped, o, np.ones((grouped.n_cards, 1)), k) for o in orders]
    points = {m: [float(w[column[m]][0]) for w in whole] for m in metrics}
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_bootstrap, _CHUNK_CELLS // grouped.n_cards))
    out = {m: np.empty((2, n_bootstrap)) for m in metrics}
    for start in range(0, n_bootstrap, chunk):
        stop = min(start + chunk, n_bootstrap)
        copies = cards.draw_cards(rng, grouped.n_cards, stop - start)
        for side, order in enumerate(orders):
            values = cards.caught(grouped, order, copies, k)
            for m in metrics:
                out[m][side, start:stop] = values[column[m]]
    return out, points


# -- the weighted metrics ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Sorted:
    order: Any  # rows by score descending (ties by row number)
    y: FloatArray  # labels in that order
    group_ends: Any  # the last position of each run of equal scores


def _prepare(y: FloatArray, s: FloatArray) -> _Sorted:
    import numpy as np

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
