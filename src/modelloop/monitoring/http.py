"""Monitors through a modelloop server: :class:`MonitorStore` over the REST API.

Requests go through :class:`modelloop.transport.Transport`, so errors come back as the same
:mod:`modelloop.errors` classes as from the local store, with the same messages: what the local
store refuses before touching the database (a document that is not a monitor, a kind, state,
version or limit out of range, a time that is not one) is refused here before anything is sent,
by the same rules; the rest is the server's answer. ``run`` asks the server to compute the due
windows where the prediction log is. Each change sends its ``actor`` as ``X-Modelloop-User``: a
server without authentication (loopback development) records that name, trusting whoever can
reach it; a server with authentication records the user whose token the request carries.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from modelloop.errors import NotFound
from modelloop.monitoring.monitor import Monitor, is_monitor_name, parse_monitor
from modelloop.monitoring.store import (
    MAX_ALERTS,
    MAX_WINDOWS,
    Alert,
    StoredMonitor,
    StoredWindow,
    check_kind,
    check_limit,
    check_state,
    check_version,
    no_monitor,
)
from modelloop.transport import HttpStore, segment


class HttpMonitorStore(HttpStore):
    """Implements :class:`~modelloop.monitoring.store.MonitorStore` against a server."""

    def apply(self, monitor: Monitor | Mapping[str, Any], *, actor: str) -> bool:
        config = parse_monitor(dict(monitor) if isinstance(monitor, Mapping) else monitor)
        body = config.model_dump(mode="json", exclude_none=True)
        answer = self._call("PUT", f"/monitors/{segment(config.name)}", body, actor=actor)
        return bool(answer["changed"])

    def get(self, name: str) -> StoredMonitor:
        return _stored(self._call("GET", _path(name)))

    def list(self) -> builtins.list[StoredMonitor]:
        return [_stored(record) for record in self._call("GET", "/monitors")["monitors"]]

    def delete(self, name: str, *, actor: str) -> bool:
        try:
            self._call("DELETE", _path(name), actor=actor)
        except NotFound:
            return False
        return True

    def run(
        self, name: str, *, window: datetime | str | None = None
    ) -> builtins.list[dict[str, Any]]:
        from modelloop.serving.predictions import parse_instant

        moment = parse_instant(window, "window")
        body = {"window": None if moment is None else moment.isoformat()}
        return list(self._call("POST", f"{_path(name)}/run", body)["windows"])

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
        params = {
            "kind": kind,
            "version": str(version),
            "start": None if since is None else since.isoformat(),
            "end": None if until is None else until.isoformat(),
            "limit": str(limit),
        }
        rows = self._call("GET", f"{_path(name)}/results", params=params)["windows"]
        return [_window(row) for row in rows]

    def alerts(
        self, monitor: str | None = None, *, state: str | None = None, limit: int = 1000
    ) -> builtins.list[Alert]:
        check_state(state)
        check_limit(limit, MAX_ALERTS)
        params = {"monitor": monitor, "state": state, "limit": str(limit)}
        return [Alert.from_dict(a) for a in self._call("GET", "/alerts", params=params)["alerts"]]


def _path(name: str) -> str:
    """The monitor's route; a name no monitor can have is not stored (as locally): NotFound."""
    if not is_monitor_name(name):
        raise no_monitor(name)
    return f"/monitors/{segment(name)}"


def _stored(record: dict[str, Any]) -> StoredMonitor:
    config = {k: v for k, v in record.items() if k not in ("updated_at", "updated_by")}
    return StoredMonitor(parse_monitor(config), record["updated_at"], record["updated_by"])


def _window(row: dict[str, Any]) -> StoredWindow:
    times = {
        k: datetime.fromisoformat(row[k]) for k in ("window_start", "window_end", "computed_at")
    }
    return StoredWindow(**{**row, **times})  # type: ignore[typeddict-item]
