"""The champion/challenger gate: promote a model only when it is better beyond noise.

Both models score the *same* labeled holdout, and a paired bootstrap
(:mod:`modelloop.automation.bootstrap`) gives a percentile interval of ``challenger - champion``
for each metric the gate requires (AP, AUC, precision@k on rows; card precision@k and the fraud
amount caught on cards, :mod:`modelloop.automation.cards`). The challenger passes when the lower
bound of *every* metric's interval is above that metric's ``margin`` and every configured budget
holds (single-row latency, its ratio to the champion's, package size). Every failed check is a
reason, in words, with its numbers; a decision is recorded as an audit event carrying all of its
evidence.

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
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from modelloop.automation.bootstrap import (
    METRIC_INPUTS,
    metric_label,
    missing_inputs,
    normalize_metric,
    paired_bootstraps,
    uses_k,
)
from modelloop.automation.cards import CARD_METRICS
from modelloop.automation.holdout import (
    holdout_amounts,
    holdout_days,
    holdout_digest,
    holdout_entities,
    holdout_labels,
    read_holdout,
)
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


@dataclass(frozen=True, init=False)
class GateOptions:
    """What the gate demands of a challenger, checked when made (InvalidArgument).

    ``metrics``: the metrics the challenger must all improve, the first being the *primary*
    one (:attr:`metric`, the one :class:`GateResult`'s top-level fields describe);
    ``metric="auc"`` is the shorthand for ``metrics=("auc",)`` (give one or the other). Each is
    ``average_precision`` (``ap``), ``auc_roc`` (``auc``), ``precision_at_k`` (``p@k``: rows),
    ``card_precision_at_k`` (``cp@k``: cards, mean over the days) or ``fraud_amount_at_k``
    (``amount@k``: the amount of the frauds of the top cards, summed over the days), stored by
    full name; ``k`` is the alert budget of every ``@k`` metric (rows for ``p@k``, cards a day
    for the card metrics). The card metrics need each row's card and day (and amount), passed
    to :func:`decide` or named to :func:`evaluate_gate` (:attr:`inputs` says which).

    Promote only when, for every metric, the lower bound of the ``confidence`` percentile
    interval of the paired-bootstrap difference (``n_bootstrap`` resamples drawn from ``seed``)
    is above its margin, and each given budget holds: ``max_latency_ms`` (median single-row
    latency), ``max_latency_ratio`` (challenger / champion latency), ``max_size_bytes``
    (package). ``margin`` is one number for every metric or a tuple of one per metric (in the
    order of ``metrics``; :attr:`margins` has them aligned): a fraud amount and a precision
    are not on the same scale.
    """

    metrics: tuple[str, ...]
    k: int
    margin: float | tuple[float, ...]
    confidence: float
    n_bootstrap: int
    seed: int
    max_latency_ms: float | None
    max_latency_ratio: float | None
    max_size_bytes: int | None

    def __init__(
        self,
        metric: str | None = None,
        *,
        metrics: Sequence[str] = (),
        k: int = 100,
        margin: float | Sequence[float] = 0.0,
        confidence: float = 0.95,
        n_bootstrap: int = 1000,
        seed: int = 0,
        max_latency_ms: float | None = None,
        max_latency_ratio: float | None = None,
        max_size_bytes: int | None = None,
    ) -> None:
        listed = (metrics,) if isinstance(metrics, str) else tuple(metrics)
        if metric is not None and listed:
            raise InvalidArgument(
                f"Give metric={metric!r} or metrics={listed!r}, not both: metric is the "
                "shorthand for a single one"
            )
        names = tuple(normalize_metric(m) for m in listed or (metric or "average_precision",))
        twice = sorted({m for m in names if names.count(m) > 1})
        if twice:
            raise InvalidArgument(f"metrics lists {', '.join(twice)} more than once")
        if isinstance(margin, str) or not isinstance(margin, Sequence):
            margin = float(margin)
        else:
            margins = tuple(float(m) for m in margin)
            if len(margins) not in (1, len(names)):
                raise InvalidArgument(
                    f"margin needs one number, or one per metric ({len(names)}), got {len(margins)}"
                )
            margin = margins[0] if len(margins) == 1 else margins
        values = {
            "metrics": names,
            "k": k,
            "margin": margin,
            "confidence": confidence,
            "n_bootstrap": n_bootstrap,
            "seed": seed,
            "max_latency_ms": max_latency_ms,
            "max_latency_ratio": max_latency_ratio,
            "max_size_bytes": max_size_bytes,
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)
        self._check()

    def _check(self) -> None:
        if not 0.0 < self.confidence < 1.0:
            raise InvalidArgument(f"confidence must be between 0 and 1, got {self.confidence}")
        if self.n_bootstrap < 100:
            raise InvalidArgument(
                f"n_bootstrap must be at least 100 for a usable interval, got {self.n_bootstrap}"
            )
        if self.k < 1:
            raise InvalidArgument(f"k must be at least 1, got {self.k}")
        if not all(math.isfinite(m) for m in self.margins):
            raise InvalidArgument(f"margin must be finite numbers, got {self.margin}")
        for name, budget in (
            ("max_latency_ms", self.max_latency_ms),
            ("max_latency_ratio", self.max_latency_ratio),
        ):
            if budget is not None and not budget > 0:
                raise InvalidArgument(f"{name} must be positive, got {budget}")
        if self.max_size_bytes is not None and self.max_size_bytes <= 0:
            raise InvalidArgument(f"max_size_bytes must be positive, got {self.max_size_bytes}")

    @property
    def metric(self) -> str:
        """The primary metric: the first of :attr:`metrics`."""
        return self.metrics[0]

    @property
    def margins(self) -> tuple[float, ...]:
        """The margin of each metric, in the order of :attr:`metrics`."""
        if isinstance(self.margin, tuple):
            return self.margin
        return (float(self.margin),) * len(self.metrics)

    @property
    def inputs(self) -> tuple[str, ...]:
        """The per-row inputs the metrics need besides labels and scores: ``groups`` (the
        card), ``days``, ``amounts``, as :func:`decide` names them."""
        return tuple(
            i
            for i in ("groups", "days", "amounts")
            if any(i in METRIC_INPUTS.get(m, ()) for m in self.metrics)
        )


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
    metric: str | None = None  # the metric a metric or bootstrap check is about


@dataclass(frozen=True)
class MetricComparison:
    """One metric of the gate: both models' values, the difference and its interval."""

    metric: str  # full name, e.g. card_precision_at_k
    label: str  # as messages name it, e.g. card precision@100
    k: int | None  # @k metrics only
    challenger: float  # on the whole holdout
    champion: float
    difference: float  # challenger - champion
    ci_low: float
    ci_high: float
    margin: float
    n_undefined: int  # resamples dropped because the metric was undefined on them
    resampled: Literal["rows", "cards"]  # what the bootstrap drew: rows, or cards with their rows
    passed: bool  # the lower bound is above the margin


@dataclass(frozen=True)
class GateResult:
    """The decision and all of its evidence; :meth:`to_dict` is what the audit event stores.

    The top-level ``metric`` ... ``n_undefined`` describe the primary (first) metric; ``metrics``
    has every metric's values and interval, the primary one first.
    """

    decision: Verdict
    metric: str
    k: int | None  # @k metrics only
    challenger: ModelEvidence
    champion: ModelEvidence
    difference: float  # challenger - champion on the whole holdout
    ci_low: float
    ci_high: float
    confidence: float
    margin: float
    metrics: list[MetricComparison]
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
        """One line: the decision, each metric's difference with its interval, the reasons."""
        pct = _pct(self.confidence)
        compared = "; ".join(
            f"{m.label} {m.challenger:.4f} vs {m.champion:.4f}, difference {m.difference:+.4f} "
            f"({pct} interval {m.ci_low:+.4f} to {m.ci_high:+.4f}, margin {m.margin:.4f})"
            for m in self.metrics
        )
        text = f"{self.decision}: {compared}"
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
    entity: str | None = None,
    day: str | None = None,
    amount: str | None = None,
    record: bool = True,
    reason: str | None = None,
    data: str | None = None,
) -> GateResult:
    """Compare ``challenger`` with ``champion`` (``models:/`` URIs, or ``name@alias`` /
    ``name/version``) on ``holdout`` and decide, as ``options`` demand, whether the challenger
    may be promoted.

    ``holdout`` is a DataFrame with the union of both models' signature features and ``label``
    (0/1), or a string read by :func:`read_holdout`. The card metrics also need column names:
    ``entity``, the card (e.g. ``CUSTOMER_ID``); ``day``, the day of each row: a date or
    timestamp column (datetimes, or text that parses as one) counts its UTC calendar date, a
    numeric one (e.g. ``TX_TIME_DAYS``) its values; ``amount``, the transaction amount (e.g.
    ``TX_AMOUNT``) for ``fraud_amount_at_k``. With ``record`` the decision is appended to the
    audit trail as ``gate.decision`` on the challenger's version (``reason`` becomes the
    event's reason); the decision is the same either way. ``data`` names the holdout in the
    evidence (set from the string for a dataset or file). Raises InvalidArgument for bad
    inputs, never for a failing challenger.
    """
    started = time.perf_counter()
    _require_columns(options, entity=entity, day=day, amount=amount)
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
    wanted = options.inputs
    groups = holdout_entities(holdout, entity) if entity and "groups" in wanted else None
    days = holdout_days(holdout, day) if day and "days" in wanted else None
    amounts = holdout_amounts(holdout, amount) if amount and "amounts" in wanted else None
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
    read = [
        c
        for c, given in ((entity, groups), (day, days), (amount, amounts))
        if c is not None and given is not None
    ]
    result = decide(
        y,
        champ_scores,
        ch_scores,
        options,
        challenger=ch,
        champion=champ,
        data_digest=holdout_digest(holdout, [*features, label, *read]),
        label=label,
        data=data,
        note=reason,
        groups=groups,
        days=days,
        amounts=amounts,
    )
    result = dataclasses.replace(result, seconds=round(time.perf_counter() - started, 3))
    if record:
        result = record_decision(registry, result, reason)
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
    groups: Any = None,
    days: Any = None,
    amounts: Any = None,
) -> GateResult:
    """The gate's decision from scores already computed: ``labels`` (0/1) and both models'
    scores on the same rows, ``challenger`` and ``champion`` naming the versions and what they
    cost to serve. ``data_digest``, ``label`` and ``data`` name the rows in the evidence;
    ``note`` is the caller's reason. Nothing is recorded.

    The card metrics need per-row arrays aligned with ``labels``: ``groups``, the card of each
    row (any sortable ids); ``days``, its day (any sortable values, e.g. ``'YYYY-MM-DD'``
    strings: the days are taken in sorted order); and, for ``fraud_amount_at_k``,
    ``amounts``. They are ignored by the row metrics.

    InvalidArgument when a metric's input is missing (named), or a metric is undefined on the
    rows (e.g. no positive).
    """
    import numpy as np

    started = time.perf_counter()
    y = np.asarray(labels, dtype=np.float64)
    boots = paired_bootstraps(
        y,
        champion_scores,
        challenger_scores,
        metrics=options.metrics,
        k=options.k,
        n_bootstrap=options.n_bootstrap,
        seed=options.seed,
        groups=groups,
        days=days,
        amounts=amounts,
    )
    alpha = 1.0 - options.confidence
    compared = []
    for metric, margin in zip(options.metrics, options.margins, strict=True):
        boot = boots[metric]
        if (
            boot.champion_value is None
            or boot.challenger_value is None
            or not boot.differences.size
        ):
            raise InvalidArgument(
                f"{metric_label(metric)} is undefined on this holdout ({int(y.sum())} positive "
                f"of {len(y)} rows): it needs more rows of both classes"
            )
        low, high = (float(q) for q in np.quantile(boot.differences, [alpha / 2, 1 - alpha / 2]))
        compared.append(
            MetricComparison(
                metric=metric,
                label=metric_label(metric, options.k),
                k=options.k if uses_k(metric) else None,
                challenger=boot.challenger_value,
                champion=boot.champion_value,
                difference=boot.challenger_value - boot.champion_value,
                ci_low=low,
                ci_high=high,
                margin=margin,
                n_undefined=boot.n_undefined,
                resampled="cards" if metric in CARD_METRICS else "rows",
                passed=low > margin,
            )
        )
    primary = compared[0]
    ch = _evidence(challenger, primary.challenger)
    champ = _evidence(champion, primary.champion)
    checks = _checks(options, ch, champ, compared)
    reasons = [c.detail for c in checks if not c.passed]
    return GateResult(
        decision="reject" if reasons else "promote",
        metric=primary.metric,
        k=primary.k,
        challenger=ch,
        champion=champ,
        difference=primary.difference,
        ci_low=primary.ci_low,
        ci_high=primary.ci_high,
        confidence=options.confidence,
        margin=primary.margin,
        metrics=compared,
        n_rows=len(y),
        n_positive=int(y.sum()),
        label=label,
        data=data,
        data_digest=data_digest,
        n_bootstrap=options.n_bootstrap,
        n_undefined=primary.n_undefined,
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


_COLUMNS = {"groups": ("entity", "card"), "days": ("day", "day"), "amounts": ("amount", "amount")}


def _require_columns(options: GateOptions, **columns: str | None) -> None:
    """InvalidArgument naming the columns ``options``' metrics need and were not given."""
    for metric in options.metrics:
        given = {i: columns[param] for i, (param, _) in _COLUMNS.items()}
        missing = missing_inputs(metric, **given)
        if missing:
            what = " and ".join(_COLUMNS[i][1] for i in missing)
            params = ", ".join(f"{_COLUMNS[i][0]}=" for i in missing)
            flags = ", ".join(f"--{_COLUMNS[i][0]}" for i in missing)
            raise InvalidArgument(
                f"{metric_label(metric, options.k)} needs the holdout's {what} column: name it "
                f"with {params} (CLI {flags})"
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
    options: GateOptions,
    ch: ModelEvidence,
    champ: ModelEvidence,
    compared: list[MetricComparison],
) -> list[GateCheck]:
    pct, n_bootstrap = _pct(options.confidence), options.n_bootstrap
    checks = []
    for m in compared:
        bound = f"lower bound of the {pct} interval of the {m.label} difference"
        checks.append(
            GateCheck(
                "metric",
                m.passed,
                f"{bound} is {m.ci_low:+.4f}, {'above' if m.passed else 'not above'} the margin "
                f"{m.margin:+.4f}",
                metric=m.metric,
            )
        )
    for m in compared:
        defined = n_bootstrap - m.n_undefined
        if defined < MIN_DEFINED_SHARE * n_bootstrap:
            checks.append(
                GateCheck(
                    "bootstrap",
                    False,
                    f"{m.label} was defined on only {defined} of {n_bootstrap} resamples: the "
                    "holdout has too few positives for a reliable interval",
                    metric=m.metric,
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


def record_decision(registry: Registry, result: GateResult, reason: str | None) -> GateResult:
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
