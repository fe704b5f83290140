"""The champion/challenger gate: promote a model only when it is better beyond noise.

Both models score the *same* labeled holdout. A point estimate alone ("AP 0.812 vs 0.809") cannot
tell skill from luck, so the gate draws ``n_bootstrap`` resamples of the holdout's rows and, on
each, computes the metric for both models on the very same rows (a *paired* bootstrap: the
noise of the sample cancels in the difference, which makes the interval far tighter than two
separate intervals). The challenger passes when the lower bound of the percentile interval of
``challenger - champion`` is above ``margin`` and every configured budget holds (single-row
latency, its ratio to the champion's, package size). Every failed check is a reason, in words,
with its numbers; a decision is recorded as an audit event carrying all of its evidence.

Resamples are drawn as ``rng.integers(0, n, size=n)`` per replicate from
``numpy.random.default_rng(seed)`` and turned into row counts, so the metrics are computed
vectorised (one sort per model, cumulative sums of the counts) yet equal, to rounding, what
scikit-learn computes on the resampled rows. Replicates on which the metric is undefined (no
positive, or one class for AUC) are dropped and counted.

This module imports only the standard library at import time (numpy, pandas and the model
libraries load on first use), so ``modelloop`` can export it without getting heavier.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from modelloop.errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from modelloop.flavors import LoadedModel
    from modelloop.registry.client import Registry
    from modelloop.registry.entities import ModelVersion

    FloatArray = np.ndarray[Any, np.dtype[np.float64]]

Decision = Literal["promote", "reject"]

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
LATENCY_ROWS = 200  # single-row predictions timed per model
BATCH_ROWS = 10_000  # rows per predict call when scoring the holdout
_CHUNK_CELLS = 4_000_000  # replicates x rows held in memory at once (~32 MB of float64)
MIN_DEFINED_SHARE = 0.9  # below this share of usable resamples the interval is not trusted


@dataclass(frozen=True)
class ModelEvidence:
    """What one side of the gate achieved on the holdout and what it costs to serve."""

    requested: str  # as asked, e.g. models:/fraud-detector@champion
    uri: str  # the version it resolved to, models:/fraud-detector/3
    name: str
    version: int
    package_digest: str
    value: float  # the metric on the whole holdout
    latency_ms: float  # median of single-row predictions (what one request pays)
    batch_latency_ms: float  # milliseconds per row when scoring the holdout in batches
    size_bytes: int  # the registered package (model files, manifest, references)


@dataclass(frozen=True)
class GateCheck:
    name: str  # metric, bootstrap, latency, latency_ratio, size
    passed: bool
    detail: str  # one sentence with the numbers, read as a reason when it failed


@dataclass(frozen=True)
class GateResult:
    """The decision and all of its evidence; :meth:`to_dict` is what the audit event stores."""

    decision: Decision
    metric: str
    k: int | None  # precision@k only
    challenger: ModelEvidence
    champion: ModelEvidence
    difference: float  # challenger - champion on the whole holdout
    ci_low: float
    ci_high: float
    confidence: float
    margin: float
    n_rows: int
    n_positive: int
    label: str
    data: str | None  # where the holdout came from (dataset ref or file), when known
    data_digest: str  # sha256 of the holdout's label and feature values
    n_bootstrap: int
    n_undefined: int  # resamples dropped because the metric was undefined on them
    seed: int
    budgets: dict[str, float | None]
    checks: list[GateCheck]
    reasons: list[str]  # the detail of every failed check
    seconds: float
    audit_seq: int | None = None  # the recorded event, when recorded
    note: str | None = field(default=None)  # the caller's reason, when given

    @property
    def promoted(self) -> bool:
        return self.decision == "promote"

    @property
    def metric_label(self) -> str:
        label = _LABELS[self.metric]
        return label.replace("k", str(self.k)) if self.metric == "precision_at_k" else label

    def summary(self) -> str:
        """One line: the decision, the difference with its interval, and the reasons."""
        pct = _pct(self.confidence)
        text = (
            f"{self.decision}: {self.metric_label} {self.challenger.value:.4f} vs "
            f"{self.champion.value:.4f}, difference {self.difference:+.4f} ({pct} interval "
            f"{self.ci_low:+.4f} to {self.ci_high:+.4f}, margin {self.margin:.4f})"
        )
        return text + ("; " + "; ".join(self.reasons) if self.reasons else "")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (no numpy scalars, no NaN)."""
        record = asdict(self)
        record["summary"] = self.summary()
        return record


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


def model_uri(text: str) -> str:
    """``fraud@champion`` or ``fraud/3`` (as deployments write them) as a ``models:/`` URI."""
    from modelloop.registry.entities import parse_model_uri

    uri = text.strip()
    if not uri.startswith("models:/"):
        uri = f"models:/{uri}"
    parse_model_uri(uri)  # InvalidArgument with the accepted forms
    return uri


def read_holdout(source: str) -> tuple[pd.DataFrame, str]:
    """A Parquet or CSV file, or a registered dataset ``NAME[@VERSION]``; with its description.

    An existing path wins; a name ending in ``.parquet``/``.pq``/``.csv`` that does not exist
    is NotFound rather than looked up as a dataset, so a typo says what it is.
    """
    import pandas as pd

    path = Path(source).expanduser()
    suffix = path.suffix.lower()
    if path.is_file():
        try:
            if suffix == ".csv":
                return pd.read_csv(path), f"file {path.resolve()}"
            return pd.read_parquet(path), f"file {path.resolve()}"
        except (OSError, ValueError) as exc:
            raise InvalidArgument(
                f"Cannot read {path} as {suffix[1:] or 'Parquet'}: {exc}"
            ) from None
    if suffix in (".parquet", ".pq", ".csv") or "/" in source:
        raise NotFound(f"No such file: {source}")
    from modelloop.datasets import get_dataset, load_dataset

    version = get_dataset(source)
    return load_dataset(version), f"dataset {version.ref}"


def evaluate_gate(
    challenger: str,
    champion: str,
    holdout: pd.DataFrame | str,
    *,
    label: str = "label",
    metric: str = "average_precision",
    k: int = 100,
    margin: float = 0.0,
    confidence: float = 0.95,
    n_bootstrap: int = 1000,
    seed: int = 0,
    max_latency_ms: float | None = None,
    max_latency_ratio: float | None = None,
    max_size_bytes: int | None = None,
    record: bool = True,
    reason: str | None = None,
    data: str | None = None,
) -> GateResult:
    """Compare ``challenger`` with ``champion`` (``models:/`` URIs, or ``name@alias`` /
    ``name/version``) on ``holdout`` and decide whether the challenger may be promoted.

    ``holdout`` is a DataFrame with the union of both models' signature features and ``label``
    (0/1), or a string read by :func:`read_holdout`. ``metric``: ``average_precision`` (``ap``),
    ``auc_roc`` (``auc``) or ``precision_at_k`` (``p@k``, with ``k``). Promote only when the
    lower bound of the ``confidence`` percentile interval of the paired-bootstrap difference is
    above ``margin`` and each given budget holds: ``max_latency_ms`` (median single-row
    latency), ``max_latency_ratio`` (challenger / champion latency), ``max_size_bytes``
    (package). With ``record`` the decision is appended to the audit trail as
    ``gate.decision`` on the challenger's version (``reason`` becomes the event's reason);
    the decision is the same either way. ``data`` names the holdout in the evidence (set from
    the string for a dataset or file). Raises InvalidArgument for bad inputs, never for a
    failing challenger.
    """
    started = time.perf_counter()
    metric = normalize_metric(metric)
    _check_options(k, margin, confidence, n_bootstrap, max_latency_ms, max_latency_ratio)
    if max_size_bytes is not None and max_size_bytes <= 0:
        raise InvalidArgument(f"max_size_bytes must be positive, got {max_size_bytes}")
    if isinstance(holdout, str):
        holdout, described = read_holdout(holdout)
        data = data or described
    from modelloop.registry.fluent import get_registry

    registry = get_registry()
    if record and registry.client.settings.is_remote:
        raise InvalidArgument(
            "Recording a gate decision needs the local store; through a tracking server it is "
            "not available yet: pass record=False (CLI: --no-record)"
        )
    y = _labels(holdout, label)
    scored = []
    for requested in (challenger, champion):
        uri = model_uri(requested)
        version = registry.resolve_model_uri(uri)  # once: an alias moving now changes nothing
        model = registry.load_model(version.uri)
        scores, batch_ms = _score(model, holdout, version)
        scored.append((uri, version, model, scores, batch_ms))
    (_, _, ch_model, ch_scores, _), (_, _, champ_model, champ_scores, _) = scored
    boot = paired_bootstrap(
        y, champ_scores, ch_scores, metric=metric, k=k, n_bootstrap=n_bootstrap, seed=seed
    )
    if boot.champion_value is None or boot.challenger_value is None or not boot.differences.size:
        raise InvalidArgument(
            f"{_LABELS[metric]} is undefined on this holdout ({int(y.sum())} positive of "
            f"{len(y)} rows): it needs more rows of both classes"
        )
    ch, champ = (
        _evidence(uri, version, model, batch_ms, value, holdout, registry)
        for (uri, version, model, _, batch_ms), value in zip(
            scored, (boot.challenger_value, boot.champion_value), strict=True
        )
    )
    import numpy as np

    alpha = 1.0 - confidence
    low, high = (float(q) for q in np.quantile(boot.differences, [alpha / 2, 1 - alpha / 2]))
    features = sorted(set(ch_model.signature.names) | set(champ_model.signature.names))
    difference = ch.value - champ.value
    checks = _checks(
        metric,
        k,
        ch,
        champ,
        low,
        confidence,
        margin,
        boot,
        n_bootstrap,
        max_latency_ms,
        max_latency_ratio,
        max_size_bytes,
    )
    reasons = [c.detail for c in checks if not c.passed]
    result = GateResult(
        decision="reject" if reasons else "promote",
        metric=metric,
        k=k if metric == "precision_at_k" else None,
        challenger=ch,
        champion=champ,
        difference=difference,
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        margin=margin,
        n_rows=len(y),
        n_positive=int(y.sum()),
        label=label,
        data=data,
        data_digest=_digest(holdout, [*features, label]),
        n_bootstrap=n_bootstrap,
        n_undefined=boot.n_undefined,
        seed=seed,
        budgets={
            "max_latency_ms": max_latency_ms,
            "max_latency_ratio": max_latency_ratio,
            "max_size_bytes": None if max_size_bytes is None else float(max_size_bytes),
        },
        checks=checks,
        reasons=reasons,
        seconds=round(time.perf_counter() - started, 3),
        note=reason,
    )
    if record:
        result = _record(registry, result, reason)
    return result


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


# -- pieces of evaluate_gate ------------------------------------------------------------------


def _check_options(
    k: int,
    margin: float,
    confidence: float,
    n_bootstrap: int,
    max_latency_ms: float | None,
    max_latency_ratio: float | None,
) -> None:
    if not 0.0 < confidence < 1.0:
        raise InvalidArgument(f"confidence must be between 0 and 1, got {confidence}")
    if n_bootstrap < 100:
        raise InvalidArgument(
            f"n_bootstrap must be at least 100 for a usable interval, got {n_bootstrap}"
        )
    if k < 1:
        raise InvalidArgument(f"k must be at least 1, got {k}")
    if not math.isfinite(margin):
        raise InvalidArgument(f"margin must be a finite number, got {margin}")
    for name, budget in (
        ("max_latency_ms", max_latency_ms),
        ("max_latency_ratio", max_latency_ratio),
    ):
        if budget is not None and not budget > 0:
            raise InvalidArgument(f"{name} must be positive, got {budget}")


def _labels(holdout: pd.DataFrame, label: str) -> FloatArray:
    import numpy as np
    import pandas as pd

    if label not in holdout.columns:
        raise InvalidArgument(
            f"The holdout has no label column {label!r} (columns: "
            f"{', '.join(map(str, holdout.columns[:20]))}); pass the right one with label="
        )
    if holdout.empty:
        raise InvalidArgument("The holdout is empty")
    y = pd.to_numeric(holdout[label], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    missing = int(np.isnan(y).sum())
    if missing:
        raise InvalidArgument(
            f"{missing} of {len(y)} holdout rows have no label in {label!r}: the gate needs a "
            "labeled holdout (drop the unlabeled rows first)"
        )
    if not np.isin(y, (0.0, 1.0)).all():
        raise InvalidArgument(f"Labels in {label!r} must be 0 or 1")
    return y


def _score(model: LoadedModel, holdout: pd.DataFrame, version: ModelVersion) -> tuple[Any, float]:
    """The model's scores on the holdout, and the milliseconds per row it took in batches."""
    import numpy as np

    features = model.signature.select(holdout)  # InvalidInput naming missing columns
    parts = []
    started = time.perf_counter()
    for start in range(0, len(features), BATCH_ROWS):
        parts.append(np.asarray(model.predict(features.iloc[start : start + BATCH_ROWS])))
    elapsed = time.perf_counter() - started
    scores = np.concatenate(parts)
    if scores.ndim != 1:
        raise InvalidArgument(
            f"{version.uri} returns {scores.shape[1]} values per row: the gate compares binary "
            "classifiers and scorers (one score per row)"
        )
    return scores.astype(np.float64), elapsed * 1000.0 / len(features)


def _single_row_latency(model: LoadedModel, holdout: pd.DataFrame) -> float:
    """Median milliseconds of one-row predictions through the serving hot path, on one thread
    as ``modelloop serve`` runs models (an OpenMP pool spinning for a single row would
    measure contention, not the model)."""
    import numpy as np

    rows = holdout.iloc[: min(LATENCY_ROWS, len(holdout))]
    timings = []
    with _one_thread():
        if model.signature.matrix_ready:
            X = model.signature.frame_to_matrix(rows)
            for i in range(min(3, len(X))):  # warm-up: first calls pay for lazy setup
                model.predict_matrix(X[i : i + 1])
            for i in range(len(X)):
                started = time.perf_counter()
                model.predict_matrix(X[i : i + 1])
                timings.append(time.perf_counter() - started)
        else:  # string features: only the DataFrame path exists
            frame = model.signature.select(rows)
            for i in range(len(frame)):
                started = time.perf_counter()
                model.predict(frame.iloc[i : i + 1])
                timings.append(time.perf_counter() - started)
    return float(np.median(timings)) * 1000.0


def _one_thread() -> contextlib.AbstractContextManager[object]:
    """Limit OpenMP/BLAS pools to one thread (threadpoolctl comes with scikit-learn; without
    it, the libraries' defaults stay)."""
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - scikit-learn not installed
        return contextlib.nullcontext()
    limits: contextlib.AbstractContextManager[object] = threadpool_limits(limits=1)
    return limits


def _evidence(
    requested: str,
    version: ModelVersion,
    model: LoadedModel,
    batch_ms: float,
    value: float,
    holdout: pd.DataFrame,
    registry: Registry,
) -> ModelEvidence:
    package = registry.download_model(version)  # cached by load_model already
    size = sum(f.stat().st_size for f in package.rglob("*") if f.is_file())
    return ModelEvidence(
        requested=requested,
        uri=version.uri,
        name=version.name,
        version=version.version,
        package_digest=version.package_digest,
        value=value,
        latency_ms=_single_row_latency(model, holdout),
        batch_latency_ms=batch_ms,
        size_bytes=size,
    )


def _checks(
    metric: str,
    k: int,
    ch: ModelEvidence,
    champ: ModelEvidence,
    low: float,
    confidence: float,
    margin: float,
    boot: Bootstrap,
    n_bootstrap: int,
    max_latency_ms: float | None,
    max_latency_ratio: float | None,
    max_size_bytes: int | None,
) -> list[GateCheck]:
    name = _LABELS[metric].replace("k", str(k)) if metric == "precision_at_k" else _LABELS[metric]
    bound = f"lower bound of the {_pct(confidence)} interval of the {name} difference"
    checks = [
        GateCheck(
            "metric",
            low > margin,
            f"{bound} is {low:+.4f}, {'above' if low > margin else 'not above'} the margin "
            f"{margin:+.4f}",
        )
    ]
    defined = n_bootstrap - boot.n_undefined
    if defined < MIN_DEFINED_SHARE * n_bootstrap:
        checks.append(
            GateCheck(
                "bootstrap",
                False,
                f"{name} was defined on only {defined} of {n_bootstrap} resamples: the holdout "
                "has too few positives for a reliable interval",
            )
        )
    if max_latency_ms is not None:
        ok = ch.latency_ms <= max_latency_ms
        checks.append(
            GateCheck(
                "latency",
                ok,
                f"challenger latency {ch.latency_ms:.3f} ms per row (median of single-row "
                f"predictions) is {'within' if ok else 'over'} the budget {max_latency_ms:g} ms",
            )
        )
    if max_latency_ratio is not None:
        ratio = ch.latency_ms / champ.latency_ms if champ.latency_ms > 0 else math.inf
        ok = ratio <= max_latency_ratio
        checks.append(
            GateCheck(
                "latency_ratio",
                ok,
                f"challenger latency is {ratio:.2f}x the champion's ({ch.latency_ms:.3f} vs "
                f"{champ.latency_ms:.3f} ms), {'within' if ok else 'over'} the budget "
                f"{max_latency_ratio:g}x",
            )
        )
    if max_size_bytes is not None:
        ok = ch.size_bytes <= max_size_bytes
        checks.append(
            GateCheck(
                "size",
                ok,
                f"challenger package is {_bytes(ch.size_bytes)}, "
                f"{'within' if ok else 'over'} the budget {_bytes(max_size_bytes)}",
            )
        )
    return checks


def _record(registry: Registry, result: GateResult, reason: str | None) -> GateResult:
    """Append the decision to the audit trail (its own write transaction)."""
    import dataclasses

    from modelloop import audit
    from modelloop.registry.sql import SqlRegistryStore
    from modelloop.tracking.entities import now_ms

    store = registry.store
    if not isinstance(store, SqlRegistryStore):  # pragma: no cover - remote is refused earlier
        raise InvalidArgument("Recording a gate decision needs the local store")
    actor = registry.actor
    ch = result.challenger
    with audit.recording(store.db, actor) as conn:
        event = audit.append(
            conn,
            time=now_ms(),
            actor=actor,
            action="gate.decision",
            object_type="model_version",
            object_id=f"{ch.name}/{ch.version}",
            before=None,
            after=result.to_dict(),
            reason=reason or result.summary(),
        )
    return dataclasses.replace(result, audit_seq=event.seq)


def _digest(holdout: pd.DataFrame, columns: list[str]) -> str:
    """sha256 of the values the gate read (row order included), to name the holdout exactly."""
    import pandas as pd

    hashed = pd.util.hash_pandas_object(holdout[columns], index=False)
    return hashlib.sha256(hashed.to_numpy().tobytes()).hexdigest()


def _pct(confidence: float) -> str:
    return f"{confidence * 100:g}%"


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover
