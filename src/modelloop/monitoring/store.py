"""Where monitors, their windows and their alerts are stored: two small protocols.

:class:`MonitorStore` is what the SDK, the command line and the web UI need: declare monitors,
read them, run one, read its windows and the alerts. Implementations:
:class:`modelloop.monitoring.client.LocalMonitorStore` (the metadata database, run in this
process) and :class:`modelloop.monitoring.http.HttpMonitorStore` (a modelloop server, which runs
it). Which one is used is decided in :func:`modelloop.monitoring.client.open_monitor_store` and
nowhere else. One contract suite, ``tests/monitoring/test_monitor_store_contract.py``, runs
against all of them: the same answers, the same exception classes and messages.

:class:`ResultStore` is where the runner writes what it computed (a window with every scope and
the alert transitions it causes, in one transaction) and where notifications and the server's
bulk readers (Prometheus, the UI's list) read: only where the database is
(:class:`modelloop.monitoring.sql.SqlMonitorStore`). The runner computes; the store only stores.

Every change names its ``actor``: the SQL store records it as given; the HTTP store sends it as
``X-Modelloop-User``, which only a server without authentication believes (a server with
authentication records the user whose token the request carries). A name no monitor can have is
refused where a monitor is declared (``apply``: InvalidArgument on the field ``name``); asked
for, it is a monitor that is not stored like any other (NotFound; ``delete`` answers False).
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypedDict

from modelloop import configs
from modelloop.errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    from modelloop.monitoring.monitor import Monitor
    from modelloop.monitoring.windows import ScopeResult, Window, WindowResult
    from modelloop.settings import Settings
    from modelloop.store import Database

FIRING, RESOLVED = "firing", "resolved"
KINDS = ("drift", "performance")
MAX_WINDOWS = 100_000  # per read of windows
MAX_ALERTS = 10_000  # per read of alerts


@dataclass(frozen=True, slots=True)
class StoredMonitor:
    """A monitor as stored: its configuration, and when and by whom it was last applied."""

    monitor: Monitor
    updated_at: int  # ms since the epoch
    updated_by: str


class StoredWindow(TypedDict):
    """One stored window of one kind for one scope (``model_version`` 0: the deployment as a
    whole), with its values (``{metric: value}``; a value that could not be computed is absent)
    and its report (per column tests, notes saying why a status is not ``ok``)."""

    monitor: str
    kind: str  # drift | performance
    model_version: int
    window_start: datetime
    window_end: datetime
    status: str
    n_predictions: int
    values: dict[str, float]
    report: dict[str, Any]
    computed_at: datetime


@dataclass(frozen=True, slots=True)
class Alert:
    alert_id: int
    monitor: str
    rule: str
    severity: str
    state: str  # firing | resolved
    metric: str
    condition: str  # e.g. "> 0.3"
    value: float  # in the latest window seen
    first_window: datetime  # start of the first window of the breach
    last_window: datetime  # start of the latest window seen while firing
    breaches: int  # breaching windows so far
    opened_at: datetime
    resolved_at: datetime | None
    notified: str | None  # the last state delivered to the webhooks
    deliveries: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__slots__}
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in data.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        times = ("first_window", "last_window", "opened_at", "resolved_at")
        fields: dict[str, Any] = {
            k: datetime.fromisoformat(v) if k in times and v else v for k, v in data.items()
        }
        return cls(**fields)


class MonitorStore(Protocol):
    def apply(self, monitor: Monitor | Mapping[str, Any], *, actor: str) -> bool:
        """Create or replace the monitor of that name (validated whole, audited as
        ``monitor.apply``); False, and nothing recorded, if it is the one stored already.
        Webhook URLs that are private IP literals the server does not allow are refused
        (field ``webhooks.<i>``). A periodic monitor created without ``since`` starts at the
        window in which it was applied, on the store's clock."""
        ...

    def get(self, name: str) -> StoredMonitor:
        """NotFound (saying how to create it) when none has that name."""
        ...

    def list(self) -> builtins.list[StoredMonitor]:
        """Every stored monitor, by name."""
        ...

    def delete(self, name: str, *, actor: str) -> bool:
        """Delete the monitor with its stored windows and alerts (audited as ``monitor.delete``,
        with what it was); False if there was none."""
        ...

    def run(
        self, name: str, *, window: datetime | str | None = None
    ) -> builtins.list[dict[str, Any]]:
        """Check what is due now on the store's clock (or the window containing ``window``)
        where the data is, and store it: one entry per window and kind, as
        :meth:`modelloop.monitoring.windows.WindowResult.to_dict`."""
        ...

    def windows(
        self,
        name: str,
        kind: str | None = None,
        *,
        version: int = 0,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 10_000,
    ) -> builtins.list[StoredWindow]:
        """The monitor's newest ``limit`` stored windows starting in ``[since, until)``, oldest
        first; ``version`` 0 is the deployment as a whole, else one model version. NotFound for a
        monitor that is not stored."""
        ...

    def alerts(
        self, monitor: str | None = None, *, state: str | None = None, limit: int = 1000
    ) -> builtins.list[Alert]:
        """Alerts, newest first; ``state`` is ``firing`` or ``resolved``."""
        ...

    def close(self) -> None: ...


class ResultStore(Protocol):
    def get(self, name: str) -> StoredMonitor: ...
    def stored_windows(self, name: str, kind: str) -> set[tuple[int, int]]:
        """``(start, end)`` in ms of the monitor's windows of ``kind`` stored already."""
        ...

    def record_window(
        self, monitor: Monitor, kind: str, window: Window, scopes: Sequence[ScopeResult], now: int
    ) -> WindowResult:
        """Store one checked window with every scope and apply the monitor's alert rules to
        it, atomically; ``stored=False`` and nothing written when it is stored already. Alerts
        move only on the newest window of their kind."""
        ...

    def pending_alerts(self, monitor: str | None = None) -> builtins.list[Alert]:
        """Alerts whose current state was not delivered yet, oldest first."""
        ...

    def mark_notified(
        self, alert_id: int, state: str | None, deliveries: builtins.list[dict[str, Any]]
    ) -> None:
        """Record delivery attempts; ``state`` is what now counts as delivered (None: retry)."""
        ...

    def newest_windows(self) -> builtins.list[StoredWindow]:
        """Every monitor's newest window of each kind, for the deployment as a whole."""
        ...


def monitor_database(settings: Settings | None) -> Database:
    """The metadata database the settings name, where the SQL store keeps monitors
    (InvalidArgument when they name a server)."""
    return configs.local_database(settings, "Monitors")


# -- the rules both sides of the wire apply, so that both answer alike ---------------------------


def no_monitor(name: str) -> NotFound:
    return NotFound(f"No monitor named {name!r}: create it with 'modelloop monitor apply'")


def check_kind(kind: str | None) -> str:
    if kind not in KINDS:
        raise InvalidArgument(f"kind must be 'drift' or 'performance', not {kind!r}")
    return kind


def check_state(state: str | None) -> str | None:
    if state not in (None, FIRING, RESOLVED):
        raise InvalidArgument(f"state must be 'firing' or 'resolved', not {state!r}")
    return state


def check_version(version: int) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version < 2**31:
        raise InvalidArgument(
            f"version must be a model version (0 for the deployment as a whole), not {version!r}"
        )
    return version


def check_limit(limit: int, most: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= most:
        raise InvalidArgument(f"limit must be between 1 and {most:,}, not {limit!r}")
    return limit


def json_safe(value: Any) -> Any:
    """Reports as strict JSON: numpy scalars unwrapped, NaN and infinities as null."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
