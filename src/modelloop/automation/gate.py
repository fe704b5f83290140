"""The champion/challenger gate: promote a model only when it is better beyond noise.

Both models score the *same* labeled holdout, and a paired bootstrap
(:mod:`modelloop.automation.bootstrap`) gives a percentile interval of ``challenger - champion``.
The challenger passes when the lower bound of that interval is above ``margin`` and every
configured budget holds (single-row latency, its ratio to the champion's, package size). Every
failed check is a reason, in words, with its numbers; a decision is recorded as an audit event
carrying all of its evidence.

:func:`decide` reaches the decision from scores already computed (the labels, both models'
scores on the same rows, what each costs to serve); :func:`evaluate_gate` reads the holdout,
scores both registered models on it, and records what :func:`decide` returns.

This module imports only the standard library at import time (numpy, pandas and the model
libraries load on first use), so ``modelloop`` can export it without getting heavier.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from modelloop.automation.bootstrap import (
    Bootstrap,
    metric_label,
    normalize_metric,
    paired_bootstrap,
)
from modelloop.automation.holdout import holdout_digest, holdout_labels, read_holdout
from modelloop.automation.scoring import ModelCost, model_cost, score_frame
from modelloop.clock import now_ms
from modelloop.errors import InvalidArgument
from modelloop.registry.client import Registry
from modelloop.registry.entities import parse_model_uri
from modelloop.registry.fluent import get_registry

if TYPE_CHECKING:
    import pandas as pd

Verdict = Literal["promote", "reject"]

MIN_DEFINED_SHARE = 0.9  # below this share of usable resamples the interval is not trusted


@dataclass(frozen=True)
class GateOptions:
    """What the gate demands of a challenger, checked when made (InvalidArgument).

    ``metric``: ``average_precision`` (``ap``), ``auc_roc`` (``auc``) or ``precision_at_k``
    (``p@k``, with ``k``), stored by its full name. Promote only when the lower bound of the
    ``confidence`` percentile interval of the paired-bootstrap difference (``n_bootstrap``
    resamples drawn from ``seed``) is above ``margin`` and each given budget holds:
    ``max_latency_ms`` (median single-row latency), ``max_latency_ratio`` (challenger /
    champion latency), ``max_size_bytes`` (package).
    """

    metric: str = "average_precision"
    k: int = 100
    margin: float = 0.0
    confidence: float = 0.95
    n_bootstrap: int = 1000
    seed: int = 0
    max_latency_ms: float | None = None
    max_latency_ratio: float | None = None
    max_size_bytes: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "metric", normalize_metric(self.metric))
        if not 0.0 < self.confidence < 1.0:
            raise InvalidArgument(f"confidence must be between 0 and 1, got {self.confidence}")
        if self.n_bootstrap < 100:
            raise InvalidArgument(
                f"n_bootstrap must be at least 100 for a usable interval, got {self.n_bootstrap}"
            )
        if self.k < 1:
            raise InvalidArgument(f"k must be at least 1, got {self.k}")
        if not math.isfinite(self.margin):
            raise InvalidArgument(f"margin must be a finite number, got {self.margin}")
        for name, budget in (
            ("max_latency_ms", self.max_latency_ms),
            ("max_latency_ratio", self.max_latency_ratio),
        ):
            if budget is not None and not budget > 0:
                raise InvalidArgument(f"{name} must be positive, got {budget}")
        if self.max_size_bytes is not None and self.max_size_bytes <= 0:
            raise InvalidArgument(f"max_size_bytes must be positive, got {self.max_size_bytes}")


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

    decision: Verdict
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
        return metric_label(self.metric, self.k)

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


def model_uri(text: str) -> str:
    """``fraud@champion`` or ``fraud/3`` (as deployments write them) as a ``models:/`` URI."""
    uri = text.strip()
    if not uri.startswith("models:/"):
        uri = f"models:/{uri}"
    parse_model_uri(uri)  # InvalidArgument with the accepted forms
    return uri


def evaluate_gate(
    challenger: str,
    champion: str,
    holdout: pd.DataFrame | str,
    options: GateOptions = GateOptions(),
    *,
    label: str = "label",
    record: bool = True,
    reason: str | None = None,
    data: str | None = None,
) -> GateResult:
    """Compare ``challenger`` with ``champion`` (``models:/`` URIs, or ``name@alias`` /
    ``name/version``) on ``holdout`` and decide, as ``options`` demand, whether the challenger
    may be promoted.

    ``holdout`` is a DataFrame with the union of both models' signature features and ``label``
    (0/1), or a string read by :func:`read_holdout`. With ``record`` the decision is appended to
    the audit trail as ``gate.decision`` on the challenger's version (``reason`` becomes the
    event's reason); the decision is the same either way. ``data`` names the holdout in the
    evidence (set from the string for a dataset or file). Raises InvalidArgument for bad
    inputs, never for a failing challenger.
    """
    started = time.perf_counter()
    if isinstance(holdout, str):
        holdout, described = read_holdout(holdout)
        data = data or described
    registry = get_registry()
    if record and registry.client.settings.is_remote:
        raise InvalidArgument(
            "Recording a gate decision needs the local store; through a tracking server it is "
            "not available yet: pass record=False (CLI: --no-record)"
        )
    y = holdout_labels(holdout, label)
    scored = []
    for requested in (challenger, champion):
        uri = model_uri(requested)
        version = registry.resolve_model_uri(uri)  # once: an alias moving now changes nothing
        model = registry.load_model(version.uri)
        scores, batch_ms = score_frame(model, holdout, version)
        scored.append((uri, version, model, scores, batch_ms))
    ch, champ = (
        model_cost(uri, version, model, holdout, registry, batch_latency_ms=batch_ms)
        for uri, version, model, _, batch_ms in scored
    )
    (_, _, ch_model, ch_scores, _), (_, _, champ_model, champ_scores, _) = scored
    features = sorted(set(ch_model.signature.names) | set(champ_model.signature.names))
    result = decide(
        y,
        champ_scores,
        ch_scores,
        options,
        challenger=ch,
        champion=champ,
        data_digest=holdout_digest(holdout, [*features, label]),
        label=label,
        data=data,
        note=reason,
    )
    result = dataclasses.replace(result, seconds=round(time.perf_counter() - started, 3))
    if record:
        result = _record(registry, result, reason)
    return result


def decide(
    labels: Any,
    champion_scores: Any,
    challenger_scores: Any,
    options: GateOptions = GateOptions(),
    *,
    challenger: ModelCost,
    champion: ModelCost,
    data_digest: str,
    label: str = "label",
    data: str | None = None,
    note: str | None = None,
) -> GateResult:
    """The gate's decision from scores already computed: ``labels`` (0/1) and both models'
    scores on the same rows, ``challenger`` and ``champion`` naming the versions and what they
    cost to serve. ``data_digest``, ``label`` and ``data`` name the rows in the evidence;
    ``note`` is the caller's reason. Nothing is recorded.

    InvalidArgument when the metric is undefined on the rows (e.g. no positive).
    """
    import numpy as np

    started = time.perf_counter()
    y = np.asarray(labels, dtype=np.float64)
    metric = options.metric
    boot = paired_bootstrap(
        y,
        champion_scores,
        challenger_scores,
        metric=metric,
        k=options.k,
        n_bootstrap=options.n_bootstrap,
        seed=options.seed,
    )
    if boot.champion_value is None or boot.challenger_value is None or not boot.differences.size:
        raise InvalidArgument(
            f"{metric_label(metric)} is undefined on this holdout ({int(y.sum())} positive of "
            f"{len(y)} rows): it needs more rows of both classes"
        )
    ch = _evidence(challenger, boot.challenger_value)
    champ = _evidence(champion, boot.champion_value)
    alpha = 1.0 - options.confidence
    low, high = (float(q) for q in np.quantile(boot.differences, [alpha / 2, 1 - alpha / 2]))
    checks = _checks(options, ch, champ, low, boot)
    reasons = [c.detail for c in checks if not c.passed]
    return GateResult(
        decision="reject" if reasons else "promote",
        metric=metric,
        k=options.k if metric == "precision_at_k" else None,
        challenger=ch,
        champion=champ,
        difference=ch.value - champ.value,
        ci_low=low,
        ci_high=high,
        confidence=options.confidence,
        margin=options.margin,
        n_rows=len(y),
        n_positive=int(y.sum()),
        label=label,
        data=data,
        data_digest=data_digest,
        n_bootstrap=options.n_bootstrap,
        n_undefined=boot.n_undefined,
        seed=options.seed,
        budgets={
            "max_latency_ms": options.max_latency_ms,
            "max_latency_ratio": options.max_latency_ratio,
            "max_size_bytes": (
                None if options.max_size_bytes is None else float(options.max_size_bytes)
            ),
        },
        checks=checks,
        reasons=reasons,
        seconds=round(time.perf_counter() - started, 3),
        note=note,
    )


def _evidence(cost: ModelCost, value: float) -> ModelEvidence:
    return ModelEvidence(
        requested=cost.requested,
        uri=cost.uri,
        name=cost.name,
        version=cost.version,
        package_digest=cost.package_digest,
        value=value,
        latency_ms=cost.latency_ms,
        batch_latency_ms=cost.batch_latency_ms,
        size_bytes=cost.size_bytes,
    )


def _checks(
    options: GateOptions, ch: ModelEvidence, champ: ModelEvidence, low: float, boot: Bootstrap
) -> list[GateCheck]:
    margin, n_bootstrap = options.margin, options.n_bootstrap
    name = metric_label(options.metric, options.k)
    bound = f"lower bound of the {_pct(options.confidence)} interval of the {name} difference"
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
    if options.max_latency_ms is not None:
        ok = ch.latency_ms <= options.max_latency_ms
        checks.append(
            GateCheck(
                "latency",
                ok,
                f"challenger latency {ch.latency_ms:.3f} ms per row (median of single-row "
                f"predictions) is {'within' if ok else 'over'} the budget "
                f"{options.max_latency_ms:g} ms",
            )
        )
    if options.max_latency_ratio is not None:
        ratio = ch.latency_ms / champ.latency_ms if champ.latency_ms > 0 else math.inf
        ok = ratio <= options.max_latency_ratio
        checks.append(
            GateCheck(
                "latency_ratio",
                ok,
                f"challenger latency is {ratio:.2f}x the champion's ({ch.latency_ms:.3f} vs "
                f"{champ.latency_ms:.3f} ms), {'within' if ok else 'over'} the budget "
                f"{options.max_latency_ratio:g}x",
            )
        )
    if options.max_size_bytes is not None:
        ok = ch.size_bytes <= options.max_size_bytes
        checks.append(
            GateCheck(
                "size",
                ok,
                f"challenger package is {_bytes(ch.size_bytes)}, "
                f"{'within' if ok else 'over'} the budget {_bytes(options.max_size_bytes)}",
            )
        )
    return checks


def _record(registry: Registry, result: GateResult, reason: str | None) -> GateResult:
    """Append the decision to the audit trail (its own write transaction)."""
    from modelloop import audit
    from modelloop.registry.sql import SqlRegistryStore

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


def _pct(confidence: float) -> str:
    return f"{confidence * 100:g}%"


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover
