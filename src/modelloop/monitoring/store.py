"""Monitor results and alerts in the metadata database.

``record_window`` is the only writer of results: under a per-monitor lock it checks the window
is not stored yet, writes every scope with its values, then moves the monitor's alerts, all in
one transaction. Alerts move only on the newest window of their kind, so re-checking an old
window (``monitor run --window``) adds history without flipping today's alerts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, insert, select, update

from modelloop.clock import from_ms
from modelloop.store import tables as t

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from modelloop.monitoring.monitor import AlertRule, Monitor
    from modelloop.monitoring.windows import ScopeResult, Window, WindowResult
    from modelloop.store import Database

FIRING, RESOLVED = "firing", "resolved"


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


def stored_windows(db: Database, monitor: str, kind: str) -> set[tuple[int, int]]:
    """``(start, end)`` of the windows of ``kind`` already stored for the monitor."""
    w = t.monitor_windows
    query = select(w.c.window_start, w.c.window_end).where(
        w.c.monitor == monitor, w.c.kind == kind, w.c.model_version == 0
    )
    with db.read() as conn:
        return {(row.window_start, row.window_end) for row in conn.execute(query)}


def record_window(
    db: Database,
    monitor: Monitor,
    kind: str,
    window: Window,
    scopes: Sequence[ScopeResult],
    now: int,
) -> WindowResult:
    """Store one checked window and apply its alert rules, atomically; no-op when stored."""
    from modelloop.monitoring.windows import WindowResult

    w = t.monitor_windows
    with db.write() as conn:
        _lock(conn, monitor.name)
        exists = conn.execute(
            select(w.c.window_id).where(
                w.c.monitor == monitor.name,
                w.c.kind == kind,
                w.c.model_version == 0,
                w.c.window_start == window.start,
                w.c.window_end == window.end,
            )
        ).first()
        if exists is not None:
            return WindowResult(monitor.name, kind, window, stored=False)
        for scope in scopes:
            window_id = conn.execute(
                insert(w).values(
                    monitor=monitor.name,
                    kind=kind,
                    model_version=scope.model_version,
                    window_start=window.start,
                    window_end=window.end,
                    status=scope.status,
                    n_predictions=scope.n_predictions,
                    report=json.dumps(json_safe(scope.report), allow_nan=False),
                    computed_at=now,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            rows = [
                {"window_id": window_id, "metric": metric, "value": value}
                for metric, value in scope.values.items()
                if math.isfinite(value)
            ]
            if rows:
                conn.execute(insert(t.monitor_values), rows)
        newest = conn.execute(
            select(func.max(w.c.window_start)).where(
                w.c.monitor == monitor.name, w.c.kind == kind, w.c.model_version == 0
            )
        ).scalar()
        changes = []
        if newest == window.start:
            rules = [rule for rule in monitor.alerts if rule.kind == kind]
            changes = [c for rule in rules if (c := _apply_rule(conn, monitor, rule, now))]
    return WindowResult(monitor.name, kind, window, True, tuple(scopes), tuple(changes))


def _apply_rule(
    conn: Connection, monitor: Monitor, rule: AlertRule, now: int
) -> dict[str, Any] | None:
    """Open, extend or resolve the rule's alert from the newest values of its metric."""
    w, v, a = t.monitor_windows, t.monitor_values, t.alerts
    recent = conn.execute(
        select(w.c.window_start, v.c.value)
        .join(v, v.c.window_id == w.c.window_id)
        .where(
            w.c.monitor == monitor.name,
            w.c.kind == rule.kind,
            w.c.model_version == 0,
            v.c.metric == rule.metric,
        )
        .order_by(w.c.window_start.desc())
        .limit(rule.consecutive)
    ).all()
    newest_window = conn.execute(
        select(func.max(w.c.window_start)).where(
            w.c.monitor == monitor.name, w.c.kind == rule.kind, w.c.model_version == 0
        )
    ).scalar()
    if not recent or recent[0].window_start != newest_window:
        return None  # the metric could not be computed in this window: nothing changes
    start, value = recent[0].window_start, recent[0].value
    firing = conn.execute(
        select(a).where(a.c.monitor == monitor.name, a.c.rule == rule.name, a.c.state == FIRING)
    ).first()
    breached = rule.breached(value)
    if firing is not None:
        if breached:
            conn.execute(
                update(a)
                .where(a.c.alert_id == firing.alert_id)
                .values(value=value, last_window=start, breaches=firing.breaches + 1)
            )
            return None  # deduplicated: the open alert stays the one notification
        conn.execute(
            update(a)
            .where(a.c.alert_id == firing.alert_id)
            .values(state=RESOLVED, value=value, last_window=start, resolved_at=now)
        )
        return _change(firing.alert_id, rule, RESOLVED, value)
    if len(recent) < rule.consecutive or not all(rule.breached(r.value) for r in recent):
        return None
    alert_id = conn.execute(
        insert(a).values(
            monitor=monitor.name,
            rule=rule.name,
            severity=rule.severity.value,
            state=FIRING,
            metric=rule.metric,
            condition=rule.condition,
            value=value,
            first_window=recent[-1].window_start,
            last_window=start,
            breaches=len(recent),
            opened_at=now,
        )
    ).inserted_primary_key[0]  # type: ignore[index]
    return _change(alert_id, rule, FIRING, value)


def _change(alert_id: int, rule: AlertRule, state: str, value: float) -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "rule": rule.name,
        "state": state,
        "severity": rule.severity.value,
        "metric": rule.metric,
        "condition": rule.condition,
        "value": value,
    }


def _lock(conn: Connection, monitor: str) -> None:
    """Serialise writers of one monitor (PostgreSQL; SQLite writers already are)."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            select(t.monitors.c.name).where(t.monitors.c.name == monitor).with_for_update()
        )


# -- reading -------------------------------------------------------------------------------------


def window_rows(
    db: Database,
    monitor: str,
    *,
    kind: str | None = None,
    model_version: int | None = 0,
    start: int | None = None,
    end: int | None = None,
    limit: int = 10_000,
) -> list[dict[str, Any]]:
    """Stored windows, oldest first, each with its values (``{metric: value}``) and report."""
    w, v = t.monitor_windows, t.monitor_values
    where = [w.c.monitor == monitor]
    if kind is not None:
        where.append(w.c.kind == kind)
    if model_version is not None:
        where.append(w.c.model_version == model_version)
    if start is not None:
        where.append(w.c.window_start >= start)
    if end is not None:
        where.append(w.c.window_start < end)
    query = select(w).where(and_(*where)).order_by(w.c.window_start.desc(), w.c.kind,
                                                   w.c.model_version).limit(limit)  # fmt: skip
    with db.read() as conn:
        rows = conn.execute(query).all()
        ids = [row.window_id for row in rows]
        values: dict[int, dict[str, float]] = {i: {} for i in ids}
        for chunk in range(0, len(ids), 500):
            part = ids[chunk : chunk + 500]
            for value in conn.execute(select(v).where(v.c.window_id.in_(part))):
                values[value.window_id][value.metric] = value.value
    return [
        {
            "kind": row.kind,
            "model_version": row.model_version,
            "window_start": from_ms(row.window_start),
            "window_end": from_ms(row.window_end),
            "status": row.status,
            "n_predictions": row.n_predictions,
            "values": values[row.window_id],
            "report": json.loads(row.report),
            "computed_at": from_ms(row.computed_at),
        }
        for row in reversed(rows)
    ]


def alert_rows(
    db: Database,
    *,
    monitor: str | None = None,
    state: str | None = None,
    limit: int = 1000,
) -> list[Alert]:
    """Alerts, newest first."""
    a = t.alerts
    query = select(a).order_by(a.c.alert_id.desc()).limit(limit)
    if monitor is not None:
        query = query.where(a.c.monitor == monitor)
    if state is not None:
        query = query.where(a.c.state == state)
    with db.read() as conn:
        return [_alert(row) for row in conn.execute(query)]


def pending_alerts(db: Database, monitor: str | None = None) -> list[Alert]:
    """Alerts whose current state was not delivered yet."""
    a = t.alerts
    query = select(a).where((a.c.notified.is_(None)) | (a.c.notified != a.c.state))
    if monitor is not None:
        query = query.where(a.c.monitor == monitor)
    with db.read() as conn:
        return [_alert(row) for row in conn.execute(query.order_by(a.c.alert_id))]


def mark_notified(
    db: Database, alert_id: int, state: str | None, deliveries: list[dict[str, Any]]
) -> None:
    """Record delivery attempts; ``state`` is what now counts as delivered (None: retry)."""
    a = t.alerts
    with db.write() as conn:
        conn.execute(
            update(a)
            .where(a.c.alert_id == alert_id)
            .values(notified=state, deliveries=json.dumps(deliveries))
        )


def latest_values(db: Database) -> list[tuple[str, str, float]]:
    """``(monitor, metric, value)`` of each monitor's newest window per kind, as a whole."""
    w, v = t.monitor_windows, t.monitor_values
    newest = (
        select(w.c.monitor, w.c.kind, func.max(w.c.window_start).label("start"))
        .where(w.c.model_version == 0)
        .group_by(w.c.monitor, w.c.kind)
        .subquery()
    )
    query = (
        select(w.c.monitor, v.c.metric, v.c.value)
        .join(v, v.c.window_id == w.c.window_id)
        .join(
            newest,
            and_(
                newest.c.monitor == w.c.monitor,
                newest.c.kind == w.c.kind,
                newest.c.start == w.c.window_start,
            ),
        )
        .where(w.c.model_version == 0, ~v.c.metric.like("drift.column.%"))
    )
    with db.read() as conn:
        return [(row.monitor, row.metric, row.value) for row in conn.execute(query)]


def _alert(row: Any) -> Alert:
    return Alert(
        alert_id=row.alert_id,
        monitor=row.monitor,
        rule=row.rule,
        severity=row.severity,
        state=row.state,
        metric=row.metric,
        condition=row.condition,
        value=row.value,
        first_window=from_ms(row.first_window),
        last_window=from_ms(row.last_window),
        breaches=row.breaches,
        opened_at=from_ms(row.opened_at),
        resolved_at=None if row.resolved_at is None else from_ms(row.resolved_at),
        notified=row.notified,
        deliveries=json.loads(row.deliveries) if row.deliveries else [],
    )


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
