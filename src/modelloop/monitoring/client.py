"""Which monitor store the SDK, the command line and the web UI talk to: decided here only.

With ``MODELLOOP_TRACKING_URI`` set, a :class:`~modelloop.monitoring.http.HttpMonitorStore` (the
server stores, and runs a monitor where its prediction log is); without it, a
:class:`LocalMonitorStore` on the metadata database, which runs a monitor in this process.
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

from modelloop.monitoring.runner import check_windows
from modelloop.monitoring.sql import SqlMonitorStore
from modelloop.monitoring.store import MonitorStore, monitor_database
from modelloop.settings import Settings


class LocalMonitorStore(SqlMonitorStore):
    """The monitors of the metadata database the settings name, run in this process by
    :func:`~modelloop.monitoring.runner.check_windows` (the HTTP store asks a server to)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(
            monitor_database(settings), allowed_networks=settings.webhook_allowed_networks
        )
        self.settings = settings

    def run(
        self, name: str, *, window: datetime | str | None = None
    ) -> builtins.list[dict[str, Any]]:
        return [r.to_dict() for r in check_windows(name, window=window, settings=self.settings)]


def open_monitor_store(settings: Settings) -> MonitorStore:
    """The monitors backend the settings name: the server at ``MODELLOOP_TRACKING_URI`` when it
    is set, else the local metadata database."""
    if settings.tracking_uri is not None:
        from modelloop.monitoring.http import HttpMonitorStore

        return HttpMonitorStore(settings.tracking_uri, token=settings.token)
    return LocalMonitorStore(settings)
