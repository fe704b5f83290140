"""Monitors, their windows and alerts in the metadata database (SQLite or PostgreSQL).

Monitors are declared configurations (:mod:`modelloop.configs`: a JSON document per name, every
change audited in its transaction). ``record_window`` is the only writer of results: under a
per-monitor lock it checks the window is not stored yet, writes every scope with its values,
then moves the monitor's alerts, all in one transaction. Alerts move only on the newest window
of their kind, so re-checking an old window (``monitor run --window``) adds history without
flipping today's alerts.
"""

from __future__ import annotations

import builtins
import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import and_, delete, func, insert, select, update

from modelloop import configs
from modelloop.clock import from_ms, to_ms
from modelloop.errors import InvalidArgument
from modelloop.monitoring.monitor import AlertRule, Monitor, parse_monitor
from modelloop.monitoring.store import (
    FIRING,
    MAX_ALERTS,
    MAX_WINDOWS,
    RESOLVED,
    Alert,
    StoredMonitor,
    StoredWindow,
    check_kind,
    check_limit,
    check_state,
    check_version,
    json_safe,
    monitor_database,
    no_monitor,
)
from modelloop.monitoring.windows import WHOLE, ScopeResult, Window, WindowResult
from modelloop.store import tables as t

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from modelloop.settings import Settings
    from modelloop.store import Database


class SqlMonitorStore:
    """Implements the storage of :class:`~modelloop.monitoring.store.MonitorStore` (all but
    ``run``, which is the runner's) and :class:`~modelloop.monitoring.store.ResultStore` on a
    :class:`Database`. ``allowed_networks`` are the private networks webhooks may reach
    (``MODELLOOP_WEBHOOK_ALLOWED_NETWORKS``)."""

    def __init__(self, db: Database, *, allowed_networks: Sequence[str] = ()) -> None:
        self.db = db
        self.allowed_networks = tuple(allowed_networks)

    @classmethod
    def local(cls, settings: Settings) -> SqlMonitorStore:
        """The store of the metadata database the settings name."""
        return cls(monitor_database(settings), allowed_networks=settings.webhook_allowed_networks)

    def close(self) -> None:
        """The database is shared process-wide (see ``open_database``); nothing to release."""

    # -- monitors ----------------------------------------------------------------------------

    def apply(self, monitor: Monitor | Mapping[str, Any], *, actor: str) -> bool:
        from modelloop.store_clock import read_clock

        config = parse_monitor(dict(monitor) if isinstance(monitor, Mapping) else monitor)
        self._check_webhooks(config)
        applied = read_clock(self.db).now.isoformat()

        def document(before: dict[str, Any] | None) -> dict[str, Any]:
            stored = config
            if stored.since is None and stored.last is None:  # keep the start it was given
                since = (before or {}).get("since") or applied
                stored = stored.model_copy(update={"since": datetime.fromisoformat(since)})
            return stored.to_record()

        return configs.save(self.db, t.monitors, config.name, document, actor=actor, kind="monitor")

    def get(self, name: str) -> StoredMonitor:
        rows = configs.stored(self.db, t.monitors, name)
        if not rows:
            raise no_monitor(name)
        return _stored(rows[0])

    def list(self) -> builtins.list[StoredMonitor]:
        return [_stored(row) for row in configs.stored(self.db, t.monitors)]

    def delete(self, name: str, *, actor: str) -> bool:
        def dependents(conn: Connection) -> None:
            w = t.monitor_windows
            ids = select(w.c.window_id).where(w.c.monitor == name).scalar_subquery()
            conn.execute(delete(t.monitor_values).where(t.monitor_values.c.window_id.in_(ids)))
            conn.execute(delete(w).where(w.c.monitor == name))
            conn.execute(delete(t.alerts).where(t.alerts.c.monitor == name))

        return configs.remove(
            self.db,
            t.monitors,
            name,
            actor=actor,
            kind="monitor",
            before_delete=dependents,
            named_by={"policy": (t.policies, "monitor")},
        )

    def _check_webhooks(self, monitor: Monitor) -> None:
        """Refuse webhook URLs that are private IP literals the server does not allow (names
        are checked once resolved, at every delivery)."""
        from modelloop.monitoring.webhooks import check_webhook_url, parse_networks

        networks = parse_networks(self.allowed_networks)
        for i, url in enumerate(monitor.webhooks):
            try:
                check_webhook_url(url, allowed_networks=networks)
            except InvalidArgument as exc:
                raise InvalidArgument(
                    exc.message, [{"field": f"webhooks.{i}", "message": exc.message}]
                ) from None

    # -- reading results ---------------------------------------------------------------------

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
        if kind is not None:
            check_kind(kind)
        check_version(version)
        check_limit(limit, MAX_WINDOWS)
        self.get(name)  # NotFound for a monitor that is not stored
        start = None if since is None else to_ms(since)
        end = None if until is None else to_ms(until)
        return _read_windows(self.db, name, kind, version, start, end, limit)

    def alerts(
        self, monitor: str | None = None, *, state: str | None = None, limit: int = 1000
    ) -> builtins.list[Alert]:
        check_state(state)
        check_limit(limit, MAX_ALERTS)
        a = t.alerts
        query = select(a).order_by(a.c.alert_id.desc()).limit(limit)
        if monitor is not None:
            query = query.where(a.c.monitor == monitor)
        if state is not None:
            query = query.where(a.c.state == state)
        with self.db.read() as conn:
            return [_alert(row) for row in conn.execute(query)]

    def newest_windows(self) -> builtins.list[StoredWindow]:
        w = t.monitor_windows
        newest = (
            select(w.c.monitor, w.c.kind, func.max(w.c.window_start).label("start"))
            .where(w.c.model_version == WHOLE)
            .group_by(w.c.monitor, w.c.kind)
            .subquery()
        )
        joined = and_(
            newest.c.monitor == w.c.monitor,
            newest.c.kind == w.c.kind,
            newest.c.start == w.c.window_start,
        )
        query = (
            select(w)
            .join(newest, joined)
            .where(w.c.model_version == WHOLE)
            .order_by(w.c.monitor, w.c.kind)
        )
        with self.db.read() as conn:
            return _with_values(conn, conn.execute(query).all())

    # -- the runner's writes -----------------------------------------------------------------

    def stored_windows(self, name: str, kind: str) -> set[tuple[int, int]]:
        w = t.monitor_windows
        query = select(w.c.window_start, w.c.window_end).where(
            w.c.monitor == name, w.c.kind == kind, w.c.model_version == WHOLE
        )
        with self.db.read() as conn:
            return {(row.window_start, row.window_end) for row in conn.execute(query)}

    def record_window(
        self, monitor: Monitor, kind: str, window: Window, scopes: Sequence[ScopeResult], now: int
    ) -> WindowResult:
        w = t.monitor_windows
        with self.db.write() as conn:
            _lock(conn, monitor.name)
            exists = conn.execute(
                select(w.c.window_id).where(
                    w.c.monitor == monitor.name,
                    w.c.kind == kind,
                    w.c.model_version == WHOLE,
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
                    w.c.monitor == monitor.name, w.c.kind == kind, w.c.model_version == WHOLE
                )
            ).scalar()
            changes = []
            if newest == window.start:
                rules = [rule for rule in monitor.alerts if rule.kind == kind]
                changes = [c for rule in rules if (c := _apply_rule(conn, monitor, rule, now))]
        return WindowResult(monitor.name, kind, window, True, tuple(scopes), tuple(changes))

    def pending_alerts(self, monitor: str | None = None) -> builtins.list[Alert]:
        a = t.alerts
        query = select(a).where((a.c.notified.is_(None)) | (a.c.notified != a.c.state))
        if monitor is not None:
            query = query.where(a.c.monitor == monitor)
        with self.db.read() as conn:
            return [_alert(row) for row in conn.execute(query.order_by(a.c.alert_id))]

    def mark_notified(
        self, alert_id: int, state: str | None, deliveries: builtins.list[dict[str, Any]]
    ) -> None:
        a = t.alerts
        with self.db.write() as conn:
            conn.execute(
                update(a)
                .where(a.c.alert_id == alert_id)
                .values(notified=state, deliveries=json.dumps(deliveries))
            )


def window_rows(
    db: Database,
    monitor: str,
    *,
    kind: str | None = None,
    model_version: int | None = WHOLE,
    start: int | None = None,
    end: int | None = None,
    limit: int = 10_000,
) -> list[dict[str, Any]]:
    """The rows :meth:`SqlMonitorStore.windows` answers, as plain mappings and unchecked, with
    ``start``/``end`` in ms and ``model_version`` None for every scope: for readers on the
    server's own database (automation's triggers)."""
    found = _read_windows(db, monitor, kind, model_version, start, end, limit)
    return cast("list[dict[str, Any]]", found)


def _read_windows(
    db: Database,
    monitor: str,
    kind: str | None,
    model_version: int | None,
    start: int | None,
    end: int | None,
    limit: int,
) -> list[StoredWindow]:
    """The newest ``limit`` windows starting in ``[start, end)``, oldest first (then by kind
    and scope), each with its values and report, in two queries."""
    w = t.monitor_windows
    where = [w.c.monitor == monitor]
    if kind is not None:
        where.append(w.c.kind == kind)
    if model_version is not None:
        where.append(w.c.model_version == model_version)
    if start is not None:
        where.append(w.c.window_start >= start)
    if end is not None:
        where.append(w.c.window_start < end)
    newest_first = w.c.window_start.desc(), w.c.kind.desc(), w.c.model_version.desc()
    query = select(w).where(and_(*where)).order_by(*newest_first).limit(limit)
    with db.read() as conn:
        return _with_values(conn, list(reversed(conn.execute(query).all())))


def _with_values(conn: Connection, rows: Sequence[Any]) -> list[StoredWindow]:
    v = t.monitor_values
    ids = [row.window_id for row in rows]
    values: dict[int, dict[str, float]] = {i: {} for i in ids}
    for chunk in range(0, len(ids), 500):
        part = ids[chunk : chunk + 500]
        for value in conn.execute(select(v).where(v.c.window_id.in_(part))):
            values[value.window_id][value.metric] = value.value
    return [
        StoredWindow(
            monitor=row.monitor,
            kind=row.kind,
            model_version=row.model_version,
            window_start=from_ms(row.window_start),
            window_end=from_ms(row.window_end),
            status=row.status,
            n_predictions=row.n_predictions,
            values=values[row.window_id],
            report=json.loads(row.report),
            computed_at=from_ms(row.computed_at),
        )
        for row in rows
    ]


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
            w.c.model_version == WHOLE,
            v.c.metric == rule.metric,
        )
        .order_by(w.c.window_start.desc())
        .limit(rule.consecutive)
    ).all()
    newest_window = conn.execute(
        select(func.max(w.c.window_start)).where(
            w.c.monitor == monitor.name, w.c.kind == rule.kind, w.c.model_version == WHOLE
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


def _stored(row: Any) -> StoredMonitor:
    config = parse_monitor(json.loads(row.config), f"stored monitor {row.name!r}")
    return StoredMonitor(config, row.updated_at, row.updated_by)


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
