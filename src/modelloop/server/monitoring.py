"""Monitor routes under ``/api/v1`` and the server's ``/metrics``.

Monitors are declared (PUT, audited), run on demand (POST .../run; the server's scheduler runs
them anyway), and read back as time series of windows and as alerts. ``/metrics`` exposes, for
Prometheus, the newest value of each monitor's metrics and whether each alert rule is firing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from modelloop.clock import to_ms
from modelloop.errors import InvalidArgument, NotFound
from modelloop.monitoring import monitor as _monitor
from modelloop.monitoring import store as _store
from modelloop.server.registry import _ERRORS, Actor
from modelloop.server.schemas import JsonObject, OrjsonResponse
from modelloop.server.tracking import _OrjsonRoute
from modelloop.settings import Settings

MonitorName = Annotated[str, Path(description="Monitor name", examples=["fraud-online"])]


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    window: str | None = None  # an instant inside the window to (re)check; None: what is due


def monitoring_router(settings: Settings) -> APIRouter:
    from modelloop.monitoring.runner import run_monitor

    router = APIRouter(tags=["monitoring"], route_class=_OrjsonRoute, responses=_ERRORS)
    db = _monitor.monitor_database(settings)

    @router.get("/api/v1/monitors")
    def list_monitors() -> Response:
        stored = _monitor.list_monitors(settings=settings)
        return OrjsonResponse({"monitors": [_record(m) for m in stored]})

    @router.put("/api/v1/monitors/{name}")
    def apply_monitor(name: MonitorName, body: JsonObject, actor: Actor) -> Response:
        config = _monitor.parse_monitor({**body, "name": body.get("name", name)})
        if config.name != name:
            raise InvalidArgument(
                f"The body names monitor {config.name!r} but the URL {name!r}",
                [{"field": "name", "message": "must match the URL"}],
            )
        changed = _monitor.apply_monitor(config, settings=settings, actor=actor.name)
        stored = _monitor.get_monitor(name, settings=settings)
        return OrjsonResponse({"changed": changed, "monitor": _record(stored)})

    @router.get("/api/v1/monitors/{name}")
    def get_monitor(name: MonitorName) -> Response:
        return OrjsonResponse(_record(_monitor.get_monitor(name, settings=settings)))

    @router.delete("/api/v1/monitors/{name}", status_code=204, response_class=Response)
    def delete_monitor(name: MonitorName, actor: Actor) -> Response:
        if not _monitor.delete_monitor(name, settings=settings, actor=actor.name):
            raise NotFound(f"No monitor named {name!r}")
        return Response(status_code=204)

    @router.post("/api/v1/monitors/{name}/run")
    def run(name: MonitorName, body: RunRequest, actor: Actor) -> Response:
        results = run_monitor(name, window=body.window, settings=settings)
        return OrjsonResponse({"windows": [r.to_dict() for r in results]})

    @router.get("/api/v1/monitors/{name}/results")
    def results(
        name: MonitorName,
        kind: Annotated[str | None, Query(pattern="^(drift|performance)$")] = None,
        version: Annotated[
            int | None, Query(ge=0, description="0: the deployment as a whole (default)")
        ] = 0,
        start: Annotated[datetime | None, Query(description="Windows starting at or after")] = None,
        end: Annotated[datetime | None, Query(description="Windows starting before")] = None,
        limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
    ) -> Response:
        _monitor.get_monitor(name, settings=settings)  # 404 for an unknown monitor
        rows = _store.window_rows(
            db, name, kind=kind, model_version=version, start=_ms(start), end=_ms(end),
            limit=limit,
        )  # fmt: skip
        return OrjsonResponse({"windows": rows})

    @router.get("/api/v1/alerts")
    def alerts(
        monitor: str | None = None,
        state: Annotated[str | None, Query(pattern="^(firing|resolved)$")] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> Response:
        rows = _store.alert_rows(db, monitor=monitor, state=state, limit=limit)
        return OrjsonResponse({"alerts": [a.to_dict() for a in rows]})

    metrics = CollectorRegistry()
    metrics.register(_MonitorGauges(settings))

    @router.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        return Response(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    return router


class _MonitorGauges(Collector):
    """Read from the database at scrape time: every server answers the same."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[GaugeMetricFamily]:
        db = _monitor.monitor_database(self.settings)
        values = GaugeMetricFamily(
            "modelloop_monitor_value",
            "The newest window's value of a monitor metric, for the deployment as a whole.",
            labels=["monitor", "metric"],
        )
        for monitor, metric, value in _store.latest_values(db):
            values.add_metric([monitor, metric], value)
        firing = GaugeMetricFamily(
            "modelloop_alert_firing",
            "1 while an alert rule of a monitor is firing, else 0.",
            labels=["monitor", "rule", "severity"],
        )
        open_rules = {(a.monitor, a.rule): a for a in _store.alert_rows(db, state="firing")}
        for entry in _monitor.list_monitors(settings=self.settings):
            for rule in entry.monitor.alerts:
                key = (entry.monitor.name, rule.name)
                firing.add_metric([*key, rule.severity.value], float(key in open_rules))
        yield values
        yield firing


def _record(stored: _monitor.StoredMonitor) -> dict[str, Any]:
    return {
        **stored.monitor.model_dump(mode="json"),
        "updated_at": stored.updated_at,
        "updated_by": stored.updated_by,
    }


def _ms(moment: datetime | None) -> int | None:
    return None if moment is None else to_ms(moment)
