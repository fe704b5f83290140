"""An automation policy: when a deployment retrains itself, and how a new version earns traffic.

    name: fraud-loop
    deployment: fraud-online           # what is served (its champion alias is what gets replaced)
    model: fraud-detector
    monitor: fraud-watch               # whose stored windows trigger retraining
    triggers:
      drifted_features: 3              # a drift window with >= 3 drifted features
      score_drift: true                # or a drifted score
      performance: {metric: average_precision, below: 0.5}   # or a matured metric too low
      every: 30d                       # or simply this long since the last training
      cooldown: 7d                     # never train more often than this
      min_importance: 0.2              # drift alone retrains only if the drifted features carry
                                       #   this share of the champion's attention
      tolerance: 0.05                  # ...nor while the matured metric since the change stays
                                       #   within this (or the days' noise, when larger) of its
                                       #   level the week before
      change_labels: 1d                # ...and once this much of the change's labels matured
      budget: {trainings: 8, per: 56d} # at most this many trainings in any such period
      follow_up: {every: 7d, within: 42d, min_gain: 0.01}  # after a change that hurt or
                                       #   whose learning paid (gain's lower bound > 0.01),
                                       #   retrain weekly while it is young
    training:
      function: my_package.fraud:train # train(data, context) -> model (or ModelOutput)
      window: 21d                      # labelled predictions used, ending at the newest matured one
      holdout: 4d                      # the newest matured days the replay is judged on...
      holdout_share: 0.3               # ...for this share of the keys (the rest is trained on)
      holdout_key: card_id             # default: the rollout's sticky key (else rows at random)
    gate: {metric: average_precision, margin: 0.0, confidence: 0.95, bootstrap: 1000}
    rollout:
      shadow: 2h                       # scores every request, answers none
      canary_percent: 20               # then answers this share, sticky per key
      canary: 4h
      sticky_key: card_id
      max_score_shift: 0.2             # live scores moved from the replay's (KS, same hours) at
                                       #   most this much more than the champion's did
      min_agreement: 0.2               # optional: rank correlation with the champion's answers
      max_error_rate: 0.01             # failed requests in the canary period at most this share
      wait_for_labels: false           # true: also judge the canary on its matured labels
      rollback_margin: 0.0             # (wait_for_labels) worse than the champion by more: back

Training data is the deployment's own prediction log joined with the labels that came back: the
features exactly as they were served (no train/serve skew), labelled by the feedback API. The
gate judges the challenger on a replay of that log (:mod:`modelloop.automation.replay`), so
shadow and canary guard operations for hours instead of waiting days for labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import Field, field_serializer, field_validator
from pydantic.config import JsonDict

from modelloop import configs
from modelloop.errors import InvalidArgument, NotFound
from modelloop.monitoring.monitor import PERFORMANCE_METRICS, _check_name, _Config, parse_duration
from modelloop.monitoring.monitor import format_duration as _format

GATE_METRICS = ("average_precision", "auc_roc", "card_precision_at_k", "fraud_amount_at_k")


def _duration(value: Any) -> timedelta | None:
    return None if value is None else parse_duration(value)


class _Durations(_Config):
    """Durations are written back as they are read: ``90s``, ``15m``, ``1h``, ``7d``."""

    @field_serializer("*")
    def _dump(self, value: Any) -> Any:
        return _format(value) if isinstance(value, timedelta) else value


class PerformanceTrigger(_Config):
    metric: str = "average_precision"
    below: float

    @field_validator("metric")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in PERFORMANCE_METRICS:
            raise ValueError(f"unknown metric {value!r}: one of {', '.join(PERFORMANCE_METRICS)}")
        return value


class Budget(_Durations):
    """At most ``trainings`` trainings in any period of ``per``."""

    trainings: int = Field(ge=1)
    per: timedelta

    _parse = field_validator("per", mode="before")(_duration)


class FollowUp(_Durations):
    """After a training for a change, train again every ``every`` until ``within`` of the
    change's start: a change under way keeps moving, and models learn it as its labels grow.
    Only after a change that hurt (the matured performance fell beyond the tolerance and the
    noise) or whose learning paid: a challenger trained for it beat its champion on the replay
    by more than ``min_gain`` (the lower bound of the gate's primary interval), so a change
    that neither hurt nor new data improves on is not chased every week."""

    every: timedelta = timedelta(days=7)
    within: timedelta = timedelta(days=42)
    min_gain: float = Field(default=0.0, ge=0)

    _parse = field_validator("every", "within", mode="before")(_duration)


class Triggers(_Durations):
    drifted_features: int | None = Field(default=3, ge=1)
    score_drift: bool = True
    performance: PerformanceTrigger | None = None
    every: timedelta | None = None
    cooldown: timedelta = timedelta(days=7)
    min_importance: float = Field(default=0.2, ge=0, le=1)
    tolerance: float = Field(default=0.05, ge=0)
    change_labels: timedelta = timedelta(days=1)
    budget: Budget | None = None
    follow_up: FollowUp | None = None

    _parse = field_validator("every", "cooldown", "change_labels", mode="before")(_duration)


class Training(_Durations):
    function: str
    window: timedelta = timedelta(days=21)
    holdout: timedelta = timedelta(days=3)
    holdout_share: float = Field(default=0.3, gt=0, le=1)
    holdout_key: str | None = None
    min_rows: int = Field(default=1000, ge=1)

    _parse = field_validator("window", "holdout", mode="before")(_duration)

    @field_validator("function")
    @classmethod
    def _import_path(cls, value: str) -> str:
        module, _, attribute = value.partition(":")
        if not module or not attribute:
            raise ValueError("write the training function as 'package.module:function'")
        return value


class Gate(_Config):
    """``metric`` (or several, ``metrics``: each must pass, the first is the primary one) on
    the replay, with one ``margin`` or one per metric. The card metrics (card precision@k,
    fraud amount caught in the top ``k`` cards a day) group requests by the training's holdout
    key (the card) and read the fraud amount from the logged column ``amount``."""

    metric: str = "average_precision"
    metrics: list[str] | None = None
    margin: float | list[float] = 0.0
    k: int = Field(default=100, ge=1)
    amount: str | None = None
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    bootstrap: int = Field(default=1000, ge=100, le=100_000)
    max_latency_ms: float | None = Field(default=None, gt=0)
    max_size_mb: float | None = Field(default=None, gt=0)

    @field_validator("metric")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in GATE_METRICS:
            raise ValueError(f"the gate compares one of {', '.join(GATE_METRICS)}")
        return value

    @field_validator("metrics")
    @classmethod
    def _all_known(cls, value: list[str] | None) -> list[str] | None:
        for name in value or []:
            cls._known(name)
        if value is not None and not value:
            raise ValueError("give at least one metric (or leave metrics out)")
        return value

    @property
    def compared(self) -> list[str]:
        """The metrics compared, the primary one first."""
        return self.metrics or [self.metric]


class Rollout(_Durations):
    shadow: timedelta = timedelta(hours=2)
    canary_percent: float = Field(default=20, gt=0, lt=100)
    canary: timedelta = timedelta(hours=4)
    sticky_key: str | None = None
    min_requests: int = Field(default=20, ge=1)
    max_score_shift: float = Field(default=0.2, gt=0, le=1)
    min_agreement: float | None = Field(default=None, ge=-1, le=1)
    max_error_rate: float = Field(default=0.01, ge=0, le=1)
    max_latency_ms: float | None = Field(default=None, gt=0)
    wait_for_labels: bool = False
    rollback_margin: float = 0.0
    min_labels: int = Field(default=50, ge=1)

    _parse = field_validator("shadow", "canary", mode="before")(_duration)


_NAME: JsonDict = {
    "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
}  # monitor._check_name, documented


class Policy(_Config):
    name: str = Field(json_schema_extra=_NAME)
    deployment: str = Field(json_schema_extra=_NAME)
    model: str = Field(description="A registered model")
    monitor: str = Field(json_schema_extra=_NAME)
    triggers: Triggers = Triggers()
    training: Training
    gate: Gate = Gate()
    rollout: Rollout = Rollout()

    @field_validator("name", "deployment", "monitor")
    @classmethod
    def _names(cls, value: str) -> str:
        return _check_name(value, "a name")

    def to_record(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def parse_policy(data: Any, source: str = "policy") -> Policy:
    if isinstance(data, Policy):
        return data
    return configs.validate(Policy, data, source, "policy")


def load_policy_file(path: str | Path) -> Policy:
    return parse_policy(configs.read_yaml(path, "policy"), str(path))


@dataclass(frozen=True, slots=True)
class PolicyState:
    """Where a policy's loop stands."""

    stage: str  # idle | shadow | canary | awaiting_approval
    challenger_version: int | None = None
    champion_version: int | None = None
    stage_started_at: int | None = None  # ms
    last_trained_at: int | None = None
    last_checked_at: int | None = None
    trainings: int = 0
    request_id: str | None = None  # awaiting approval of this champion alias request

    def to_record(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in PolicyState.__slots__}


def check_policy_name(name: object) -> str:
    """``name`` if a policy can have it, else InvalidArgument naming the field ``name``."""
    try:
        if isinstance(name, str):
            return _check_name(name, "a policy name")
        raise ValueError("a policy name is a string")
    except ValueError as exc:
        raise InvalidArgument(
            f"Invalid policy name {name!r}: {exc}", [{"field": "name", "message": str(exc)}]
        ) from None


def is_policy_name(name: object) -> bool:
    try:
        check_policy_name(name)
    except InvalidArgument:
        return False
    return True


def policy_not_found(name: str) -> NotFound:
    """The answer for a policy that is not stored (or whose name no policy can have)."""
    return NotFound(f"No policy named {name!r}: create it with 'modelloop policy apply'")


def check_limit(limit: object) -> int | None:
    """``limit`` of a timeline: None (all of it) or a positive integer."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit < 2**31:
        rule = "a number of decisions from 1 to 2147483647"
        raise InvalidArgument(
            f"Invalid limit {limit!r}: {rule}", [{"field": "limit", "message": rule}]
        )
    return limit
