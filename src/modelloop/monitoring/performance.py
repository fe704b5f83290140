"""Model performance over a window of predictions whose labels arrive late.

Fraud labels come days or weeks after the prediction, and out of order. Scoring a window before
its labels have matured would count "no label yet" as "not fraud" and report a model that looks
better (or worse) than it is. So :func:`performance` first keeps only the *matured* rows
(predicted before ``as_of - label_delay``), ignores labels that arrived after ``as_of`` (so a
report can be reproduced later), and refuses to score a window whose labels are too few or
cover too little of it: such a window gets ``status="insufficient_labels"`` and ``None``
metrics, never a fake 0.5 AUC.

Metrics are computed with numpy to match scikit-learn's definitions exactly (the tests use
scikit-learn as the reference) without importing it at serving time. A metric that is undefined
on the data (AUC with one class, precision with no alert) is ``None`` with a reason in ``notes``.

Ties in the top-k rankings are broken by the key ascending (``prediction_id`` for
precision@k, the entity for card precision@k), so results do not depend on row order.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd

from modelloop.errors import InvalidArgument

Status = Literal["ok", "insufficient_labels", "no_data"]
FloatArray = np.ndarray[Any, np.dtype[np.float64]]

#: Number of equal-width score bins on [0, 1] for the expected calibration error.
ECE_BINS = 10


@dataclass(frozen=True)
class PerformanceReport:
    """What one window's predictions achieved, and how much of it could be judged.

    ``label_coverage`` is ``n_labelled / n_matured`` (None when nothing matured). Every metric is
    None unless ``status == "ok"``; ``notes`` says why a metric is missing.
    """

    status: Status
    n_predictions: int
    n_matured: int
    n_unmatured: int
    n_labelled: int
    n_positive: int
    label_coverage: float | None
    threshold: float
    k: int
    auc_roc: float | None = None
    average_precision: float | None = None
    precision: float | None = None
    recall: float | None = None
    precision_at_k: float | None = None
    card_precision_at_k: float | None = None
    card_precision_daily: dict[str, float] = field(default_factory=dict)
    expected_calibration_error: float | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable values (no numpy scalars)."""
        return asdict(self)


def performance(
    frame: pd.DataFrame,
    *,
    threshold: float = 0.5,
    k: int = 100,
    entity: str | None = None,
    time_column: str = "timestamp",
    score_column: str = "score",
    label_column: str = "label",
    min_labels: int = 50,
    min_coverage: float = 0.5,
    label_delay: timedelta | None = None,
    as_of: datetime | None = None,
) -> PerformanceReport:
    """Score one window of predictions joined with their labels (NaN = not labelled yet).

    Rows predicted at or after ``as_of - label_delay`` are unmatured: counted in
    ``n_unmatured`` and left out, since their missing labels say nothing yet. Without
    ``label_delay`` every row is matured. ``as_of`` defaults to now (UTC); naive datetimes are
    UTC. When the frame has ``labelled_at``, labels that arrived after ``as_of`` are ignored.
    ``entity`` (e.g. ``"card_id"``) enables card precision@k (fraud simulator spec, section 4).
    """
    if k < 1:
        raise InvalidArgument(f"k must be at least 1, got {k}")
    if not 0.0 <= min_coverage <= 1.0:
        raise InvalidArgument(f"min_coverage must be in [0, 1], got {min_coverage}")
    needed = [time_column, score_column, label_column] + ([entity] if entity else [])
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise InvalidArgument(f"frame lacks column(s) {missing}")

    cutoff = _utc(as_of) if as_of is not None else datetime.now(UTC)
    times = pd.to_datetime(frame[time_column], utc=True)
    labels = pd.to_numeric(frame[label_column], errors="coerce").to_numpy(dtype=np.float64)
    if "labelled_at" in frame.columns and as_of is not None:
        arrived = pd.to_datetime(frame["labelled_at"], utc=True)
        labels = np.where((arrived > cutoff).to_numpy(dtype=bool), np.nan, labels)
    if label_delay is None:
        matured = np.ones(len(frame), dtype=bool)
    else:
        matured = (times < cutoff - label_delay).to_numpy(dtype=bool)
    labelled = matured & ~np.isnan(labels)

    n = len(frame)
    n_matured, n_labelled = int(matured.sum()), int(labelled.sum())
    coverage = n_labelled / n_matured if n_matured else None
    y = labels[labelled]
    if not np.isin(y, (0.0, 1.0)).all():
        raise InvalidArgument("labels must be 0 or 1 (or NaN while unlabelled)")
    base: dict[str, Any] = {
        "n_predictions": n,
        "n_matured": n_matured,
        "n_unmatured": n - n_matured,
        "n_labelled": n_labelled,
        "n_positive": int(y.sum()),
        "label_coverage": coverage,
        "threshold": threshold,
        "k": k,
    }
    if n == 0:
        return PerformanceReport(status="no_data", notes=["no predictions in the window"], **base)
    if n_labelled < min_labels or coverage is None or coverage < min_coverage:
        note = (
            f"{n_labelled} labelled of {n_matured} matured predictions"
            f" (need {min_labels} labels and coverage {min_coverage:.0%})"
        )
        return PerformanceReport(status="insufficient_labels", notes=[note], **base)

    s = pd.to_numeric(frame[score_column]).to_numpy(dtype=np.float64)[labelled]
    notes: list[str] = []
    keys = (
        frame["prediction_id"].to_numpy()[labelled]
        if "prediction_id" in frame.columns
        else np.arange(n_labelled)
    )
    card: tuple[float | None, dict[str, float]] = (None, {})
    if entity is not None:
        sub = pd.DataFrame(
            {
                "day": times[labelled].dt.floor("D").dt.strftime("%Y-%m-%d").to_numpy(),
                "entity": frame[entity].to_numpy()[labelled],
                "score": s,
                "label": y,
            }
        )
        card = card_precision_at_k(sub, k=k)
    return PerformanceReport(
        status="ok",
        auc_roc=_auc(y, s, notes),
        average_precision=_average_precision(y, s, notes),
        precision=_ratio(
            y[s >= threshold].sum(), (s >= threshold).sum(), "precision (no alert)", notes
        ),
        recall=_ratio(y[s >= threshold].sum(), y.sum(), "recall (no positive)", notes),
        precision_at_k=precision_at_k(y, s, k=k, keys=keys),
        card_precision_at_k=card[0],
        card_precision_daily=card[1],
        expected_calibration_error=_ece(y, s, notes),
        notes=notes,
        **base,
    )


def precision_at_k(
    labels: FloatArray, scores: FloatArray, *, k: int, keys: np.ndarray[Any, Any] | None = None
) -> float:
    """Positives among the ``k`` highest scores, divided by ``k`` even when fewer rows exist.

    Dividing by ``k`` always (as the spec does for cards) measures the investigators' fixed
    budget: a window too small to fill it scores lower rather than looking perfect.
    """
    order = _rank_desc(scores, np.arange(len(scores)) if keys is None else keys)
    return float(labels[order[:k]].sum() / k)


def card_precision_at_k(frame: pd.DataFrame, *, k: int) -> tuple[float | None, dict[str, float]]:
    """Mean daily card precision@k with already-detected cards removed (spec section 4).

    ``frame`` has columns ``day`` (sortable), ``entity``, ``score`` and ``label``. Each day, a
    card's score and label are the max over its transactions; the top ``k`` cards are the day's
    alerts; frauds among them / ``k`` is the day's value. Cards caught (true positives in the top
    ``k``) are investigated and blocked, so they are not counted again on later days.
    """
    detected: set[Any] = set()
    daily: dict[str, float] = {}
    for day, rows in frame.groupby("day", sort=True):
        cards = rows.groupby("entity", sort=True).agg(
            score=("score", "max"), label=("label", "max")
        )
        cards = cards[~cards.index.isin(list(detected))]
        ids = cards.index.to_numpy()
        order = _rank_desc(cards["score"].to_numpy(dtype=np.float64), ids)[:k]
        top = cards["label"].to_numpy(dtype=np.float64)[order]
        daily[str(day)] = float(top.sum() / k)
        detected.update(ids[order][top == 1].tolist())
    mean = float(np.mean(list(daily.values()))) if daily else None
    return mean, daily


def windows(
    frame: pd.DataFrame, freq: str = "1D", *, time_column: str = "timestamp"
) -> list[tuple[pd.Timestamp, pd.Timestamp, pd.DataFrame]]:
    """Split ``frame`` into consecutive ``[start, end)`` windows of ``freq`` (UTC).

    Windows without predictions between the first and the last are kept (empty), so a gap in
    traffic shows up as ``no_data`` instead of silently disappearing.
    """
    if frame.empty:
        return []
    times = pd.to_datetime(frame[time_column], utc=True)
    starts = pd.date_range(times.min().floor(freq), times.max(), freq=freq)
    step = pd.Timedelta(freq)
    return [
        (start, start + step, frame[((times >= start) & (times < start + step)).to_numpy()])
        for start in starts
    ]


def _auc(y: FloatArray, s: FloatArray, notes: list[str]) -> float | None:
    """Mann-Whitney U with midranks for ties: the same value as the trapezoidal ROC area."""
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        notes.append("auc_roc undefined: only one class among the labels")
        return None
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    midranks = ends - (counts - 1) / 2.0
    rank_sum = float(midranks[inverse][y == 1].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def _average_precision(y: FloatArray, s: FloatArray, notes: list[str]) -> float | None:
    """Sum over distinct thresholds of (recall step) x precision, as scikit-learn defines it."""
    if y.sum() == 0:
        notes.append("average_precision undefined: no positive labels")
        return None
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s_sorted)), len(s_sorted) - 1]
    tps = np.cumsum(y_sorted)[last_of_tie]
    precision = tps / (last_of_tie + 1)
    recall_steps = np.diff(np.r_[0.0, tps / tps[-1]])
    return float(np.sum(recall_steps * precision))


def _ece(y: FloatArray, s: FloatArray, notes: list[str]) -> float | None:
    """Sum over 10 equal-width bins of (bin share) x |fraud rate - mean score|.

    Bins are ``[i/10, (i+1)/10)``, the last one closed. Equal widths (not equal counts) keep
    bins comparable between windows, at the cost of empty bins, which simply weigh nothing.
    """
    if s.min() < 0.0 or s.max() > 1.0:
        notes.append("expected_calibration_error undefined: scores outside [0, 1]")
        return None
    bins = np.minimum((s * ECE_BINS).astype(np.int64), ECE_BINS - 1)
    count = np.bincount(bins, minlength=ECE_BINS)
    gap = np.bincount(bins, weights=y, minlength=ECE_BINS) - np.bincount(
        bins, weights=s, minlength=ECE_BINS
    )
    return float(np.abs(gap).sum() / count.sum())


def _ratio(num: float, den: float, name: str, notes: list[str]) -> float | None:
    if den == 0:
        notes.append(f"{name} undefined")
        return None
    return float(num / den)


def _rank_desc(scores: FloatArray, keys: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Indices by score descending, ties by key ascending (deterministic under reordering)."""
    return np.lexsort((keys, -scores))


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
