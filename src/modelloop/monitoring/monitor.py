"""A monitor: what to watch on a deployment, over which windows, and when to alert.

    name: fraud-online                  # one monitor per name; results and alerts hang off it
    deployment: fraud-online            # whose logged predictions are read
    model: fraud-detector               # default: the stored deployment's model
    window: 1d                          # 15m, 1h, 6h, 1d, 7d (UTC-aligned) or "last 10000"
    every: 1h                           # "last N" windows only: how often the scheduler looks
    grace: 5m                           # wait after a window closes for late log flushes
    since: 2026-11-01                   # first window to compute (default: when applied)
    catch_up: 7d                        # windows due longer ago than this are left alone
    drift:
      share_threshold: 0.5              # the window drifts when this share of features does
      methods: {amount: psi}            # default: by column type and sample size
      thresholds: {amount: 0.25}
      columns: [amount, merchant]       # default: every feature of the reference
    performance:
      label_delay: 7d                   # labels of a window are final this long after it
      threshold: 0.5                    # operating threshold for precision/recall
      k: 100
      entity: card_id                   # enables card precision@k
    alerts:
      - {name: feature-drift, metric: drift.share, above: 0.3, consecutive: 2}
      - {name: ap-drop, metric: performance.average_precision, below: 0.6, severity: critical}
    webhooks: [https://hooks.example.com/modelloop]

Like deployments, a monitor is validated whole, with one message per problem, and stored in the
metadata database (audited) so that the scheduler inside ``modelloop server`` finds it.

``catch_up`` bounds the backlog after a pause (a server down for weeks): a window that became
due longer ago than that and was never stored is not computed by the scheduler or by
``modelloop monitor run NAME``, which say once what they left out; ``--window`` still checks any
one of them on demand. Times are on the store's clock (:mod:`modelloop.store_clock`).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
    model_validator,
)

from modelloop import configs
from modelloop.errors import InvalidArgument

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_LAST = re.compile(r"^\s*last\s+(\d+)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_MAX_LAST = 10_000_000
PERFORMANCE_METRICS = (
    "auc_roc",
    "average_precision",
    "precision",
    "recall",
    "precision_at_k",
    "card_precision_at_k",
    "expected_calibration_error",
    "label_coverage",
    "n_labelled",
)
DRIFT_METRICS = ("share", "dataset", "score", "score_drifted")


def parse_duration(value: Any) -> timedelta:
    """``"90s"``, ``"15m"``, ``"1h"``, ``"7d"``, a number of seconds or a timedelta."""
    if isinstance(value, timedelta):
        return value
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return timedelta(seconds=value)
        match = _DURATION.match(str(value))
        if match is None:
            raise ValueError(f"{value!r} is not a duration: write e.g. 90s, 15m, 1h or 7d")
        return timedelta(seconds=int(match[1]) * _UNITS[match[2]])
    except OverflowError:  # beyond timedelta's 999,999,999 days
        raise ValueError(f"{value!r} is too long a duration") from None


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit in ("d", "h", "m"):
        if seconds and seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


class Severity(StrEnum):
    info = "info"
    warning = "warning"
    critical = "critical"


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AlertRule(_Config):
    """Fire when ``metric`` is above/below a bound in ``consecutive`` windows in a row
    (windows where the metric could not be computed neither count nor break the streak)."""

    name: str
    metric: str
    above: float | None = None
    below: float | None = None
    consecutive: int = Field(default=1, ge=1, le=1000)
    severity: Severity = Severity.warning

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return _check_name(value, "an alert rule name")

    @field_validator("metric")
    @classmethod
    def _check_metric(cls, value: str) -> str:
        kind, _, rest = value.partition(".")
        if kind == "drift" and (rest in DRIFT_METRICS or (rest.startswith("column.") and rest[7:])):
            return value
        if kind == "performance" and rest in PERFORMANCE_METRICS:
            return value
        if kind == "predictions" and not rest:
            return value
        raise ValueError(
            f"unknown metric {value!r}: use predictions, drift.share, drift.dataset, "
            "drift.score, drift.score_drifted, drift.column.<feature> or performance.<name> "
            f"with a name among {', '.join(PERFORMANCE_METRICS)}"
        )

    @model_validator(mode="after")
    def _check_bound(self) -> AlertRule:
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of 'above' or 'below'")
        return self

    @property
    def kind(self) -> str:
        """Which check produces the metric: drift or performance (``predictions``: drift)."""
        return "performance" if self.metric.startswith("performance.") else "drift"

    @property
    def condition(self) -> str:
        return f"> {self.above:g}" if self.above is not None else f"< {self.below:g}"

    def breached(self, value: float) -> bool:
        if self.above is not None:
            return value > self.above
        return self.below is not None and value < self.below


class DriftSettings(_Config):
    enabled: bool = True
    share_threshold: float = Field(default=0.5, gt=0, le=1)
    columns: tuple[str, ...] | None = None
    methods: dict[str, str] = Field(default_factory=dict)
    thresholds: dict[str, float] = Field(default_factory=dict)
    score: bool = True
    min_predictions: int = Field(default=1, ge=1)

    @field_validator("methods")
    @classmethod
    def _check_methods(cls, value: dict[str, str]) -> dict[str, str]:
        from modelloop.monitoring.drift import METHODS

        unknown = {column: m for column, m in value.items() if m not in METHODS}
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}: choose among {', '.join(METHODS)}")
        return value


class PerformanceSettings(_Config):
    enabled: bool = True
    label_delay: timedelta = timedelta(days=7)
    threshold: float = Field(default=0.5, ge=0, le=1)
    k: int = Field(default=100, ge=1)
    entity: str | None = None
    min_labels: int = Field(default=50, ge=1)
    min_coverage: float = Field(default=0.5, ge=0, le=1)

    @field_validator("label_delay", mode="before")
    @classmethod
    def _parse_delay(cls, value: Any) -> timedelta:
        return parse_duration(value)

    @field_serializer("label_delay")
    def _dump_delay(self, value: timedelta) -> str:
        return format_duration(value)


class Monitor(_Config):
    name: str
    deployment: str
    model: str | None = None
    window: str = "1d"
    every: timedelta | None = None
    grace: timedelta = timedelta(minutes=5)
    since: datetime | None = None
    catch_up: timedelta = timedelta(days=7)
    max_windows_per_run: int = Field(default=168, ge=1, le=100_000)
    drift: DriftSettings = DriftSettings()
    performance: PerformanceSettings = PerformanceSettings()
    alerts: tuple[AlertRule, ...] = ()
    webhooks: tuple[str, ...] = ()

    @field_validator("name", "deployment")
    @classmethod
    def _check_names(cls, value: str) -> str:
        return _check_name(value, "a name")

    @field_validator("window")
    @classmethod
    def _check_window(cls, value: str) -> str:
        if _LAST.match(value):
            count = int(_LAST.match(value)[1])  # type: ignore[index]
            if not 1 <= count <= _MAX_LAST:
                raise ValueError(f"'last N' needs 1 <= N <= {_MAX_LAST:,}")
            return f"last {count}"
        period = parse_duration(value)
        seconds = int(period.total_seconds())
        if seconds < 60 or (86400 % seconds and seconds % 86400):
            raise ValueError(
                "a window period is at least 1m and divides a day (15m, 1h, 6h) or is whole "
                "days (1d, 7d), so windows align on UTC midnight; or write 'last N'"
            )
        return format_duration(period)

    @field_validator("every", "grace", "catch_up", mode="before")
    @classmethod
    def _parse_durations(cls, value: Any) -> timedelta | None:
        return None if value is None else parse_duration(value)

    @field_validator("catch_up")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("catch_up is a positive duration, e.g. 7d")
        return value

    @field_validator("since", mode="before")
    @classmethod
    def _parse_since(cls, value: Any) -> Any:
        if isinstance(value, date) and not isinstance(value, datetime):
            return datetime(value.year, value.month, value.day, tzinfo=UTC)
        return value

    @field_validator("since")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @field_validator("webhooks")
    @classmethod
    def _check_webhooks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from modelloop.monitoring.webhooks import check_webhook_url

        try:  # syntax only: which private networks are allowed is the server's setting
            return tuple(check_webhook_url(url, allow_private=True) for url in value)
        except InvalidArgument as exc:
            raise ValueError(exc.message) from None

    @field_serializer("every", "grace", "catch_up")
    def _dump_durations(self, value: timedelta | None) -> str | None:
        return None if value is None else format_duration(value)

    @model_validator(mode="after")
    def _check_rules(self) -> Monitor:
        names = [rule.name for rule in self.alerts]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"alert rule names must be unique: {', '.join(repeated)} repeated")
        if self.every is not None and self.last is None:
            raise ValueError(
                "'every' applies to 'last N' windows; periodic windows run as they close"
            )
        return self

    @property
    def period(self) -> timedelta | None:
        """The window length, or None for 'last N' windows."""
        return None if self.last is not None else parse_duration(self.window)

    @property
    def last(self) -> int | None:
        match = _LAST.match(self.window)
        return int(match[1]) if match else None

    def to_record(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_defaults=True) | {"name": self.name}


def parse_monitor(data: Any, source: str = "monitor") -> Monitor:
    """Validate a config mapping; every problem becomes one line of an InvalidArgument."""
    if isinstance(data, Monitor):
        return data
    return configs.validate(Monitor, data, source, "monitor")


def load_monitor_file(path: str | Path) -> Monitor:
    """A monitor from a YAML (or JSON) file."""
    return parse_monitor(configs.read_yaml(path, "monitor"), str(path))


def _check_name(value: str, what: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"{what} is 1-128 letters, digits, '_', '.', '-', starting with a letter or digit"
        )
    return value


def is_monitor_name(text: object) -> bool:
    """Whether a monitor could have this name (one that cannot is simply not stored)."""
    return isinstance(text, str) and _NAME.fullmatch(text) is not None
