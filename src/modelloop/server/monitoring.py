"""Monitor routes under ``/api/v1`` and the server's ``/metrics``.

Monitors are declared (PUT, audited), run on demand (POST .../run; the server's scheduler runs
them anyway), and read back as time series of windows and as alerts. ``/metrics`` exposes, for
Prometheus, the newest value of each monitor's metrics and whether each alert rule is firing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema
from starlette.responses import Response

from modelloop.errors import InvalidArgument, NotFound
from modelloop.monitoring.client import LocalMonitorStore
from modelloop.monitoring.monitor import Monitor, parse_monitor
from modelloop.monitoring.store import FIRING, MAX_ALERTS, MAX_WINDOWS, StoredMonitor
from modelloop.server.registry import _ERRORS, Actor
from modelloop.server.schemas import (
    CONFIG_NAME,
    JsonObject,
    Pattern,
    config_body,
)
from modelloop.server.tracking import _OrjsonRoute
from modelloop.settings import Settings
from modelloop.web.responses import OrjsonResponse

_NAME_RULES = "1-128 letters, digits, '_', '.', '-', starting with a letter or digit"
MonitorName = Annotated[
    str,
    Path(description=f"Monitor name: {_NAME_RULES}", examples=["fraud-online"]),
    *Pattern(CONFIG_NAME, _NAME_RULES),
]


def _instant(value: object) -> datetime:
    """An ISO date or time, UTC unless it says otherwise (as the SDK reads one)."""
    try:
        moment = datetime.fromisoformat(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(
            "not an ISO date or time (e.g. 2026-01-31 or 2026-01-31T12:00:00Z)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


Instant = Annotated[
    datetime,
    PlainValidator(_instant),
    WithJsonSchema({"type": "string", "anyOf": [{"format": "date-time"}, {"format": "date"}]}),
]


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    window: Instant | None = Field(
        default=None,
        description="An instant inside the window to (re)check; absent: every window due",
    )


class MonitorOut(Monitor):
    updated_at: int = Field(description="ms since the epoch")
    updated_by: str


class MonitorList(BaseModel):
    monitors: list[MonitorOut]


class MonitorApplied(BaseModel):
    changed: bool = Field(description="False: the stored monitor was this one already")
    monitor: MonitorOut


class ScopeOut(BaseModel):
    model_version: int = Field(description="0: the deployment as a whole")
    status: str = Field(examples=["ok", "no_data", "insufficient_labels"])
    n_predictions: int
    values: dict[str, float | None]
    notes: list[str]


class CheckedWindow(BaseModel):
    kind: Literal["drift", "performance"]
    window_start: int = Field(description="ms since the epoch")
    window_end: int
    stored: bool = Field(description="True: found already stored, not computed again")
    scopes: list[ScopeOut]
    alerts: list[dict[str, Any]] = Field(description="Alert transitions this window caused")


class CheckedWindows(BaseModel):
    windows: list[CheckedWindow]


class StoredWindow(BaseModel):
    monitor: str
    kind: Literal["drift", "performance"]
    model_version: int
    window_start: datetime
    window_end: datetime
    status: str
    n_predictions: int
    values: dict[str, float | None]
    report: dict[str, Any]
    computed_at: datetime


class StoredWindows(BaseModel):
    windows: list[StoredWindow]


class AlertOut(BaseModel):
    alert_id: int
    monitor: str
    rule: str
    severity: Literal["info", "warning", "critical"]
    state: Literal["firing", "resolved"]
    metric: str
    condition: str = Field(examples=["> 0.3"])
    value: float | None
    first_window: datetime
    last_window: datetime
    breaches: int
    opened_at: datetime
    resolved_at: datetime | None
    notified: str | None
    deliveries: list[dict[str, Any]]


class AlertList(BaseModel):
    alerts: list[AlertOut]


def monitoring_router(settings: Settings) -> APIRouter:
    router = APIRouter(tags=["monitoring"], route_class=_OrjsonRoute, responses=_ERRORS)
    store = LocalMonitorStore(settings)

    @router.get("/api/v1/monitors", response_model=MonitorList)
    def list_monitors() -> Response:
        return OrjsonResponse({"monitors": [_record(m) for m in store.list()]})

    @router.put(
        "/api/v1/monitors/{name}",
        response_model=MonitorApplied,
        openapi_extra=config_body(Monitor, "monitor"),
    )
    def apply_monitor(name: MonitorName, body: JsonObject, actor: Actor) -> Response:
        """Create or replace the monitor (audited). Rules beyond the schema (a window that
        divides a day, one of ``above``/``below`` per alert rule, unique rule names, webhook
        URLs the server allows) are 422s naming the field."""
        config = parse_monitor({**body, "name": body.get("name", name)})
        if config.name != name:
            raise InvalidArgument(
                f"The body names monitor {config.name!r} but the URL {name!r}",
                [{"field": "name", "message": "must match the URL"}],
            )
        changed = store.apply(config, actor=actor.name)
        return OrjsonResponse({"changed": changed, "monitor": _record(store.get(name))})

    @router.get("/api/v1/monitors/{name}", response_model=MonitorOut)
    def get_monitor(name: MonitorName) -> Response:
        return OrjsonResponse(_record(store.get(name)))

    @router.delete("/api/v1/monitors/{name}", status_code=204, response_class=Response)
    def delete_monitor(name: MonitorName, actor: Actor) -> Response:
        if not store.delete(name, actor=actor.name):
            raise NotFound(f"No monitor named {name!r}")
        return Response(status_code=204)

    @router.post("/api/v1/monitors/{name}/run", response_model=CheckedWindows)
    def run(name: MonitorName, body: RunRequest, actor: Actor) -> Response:
        return OrjsonResponse({"windows": store.run(name, window=body.window)})

    @router.get("/api/v1/monitors/{name}/results", response_model=StoredWindows)
    def results(
        name: MonitorName,
        kind: Annotated[Literal["drift", "performance"] | None, Query()] = None,
        version: Annotated[
            int, Query(ge=0, lt=2**31, description="0: the deployment as a whole (default)")
        ] = 0,
        start: Annotated[Instant | None, Query(description="Windows starting at or after")] = None,
        end: Annotated[Instant | None, Query(description="Windows starting before")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_WINDOWS)] = 10_000,
    ) -> Response:
        rows = store.windows(name, kind, version=version, since=start, until=end, limit=limit)
        return OrjsonResponse({"windows": rows})

    @router.get("/api/v1/alerts", response_model=AlertList)
    def alerts(
        monitor: str | None = None,
        state: Annotated[Literal["firing", "resolved"] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_ALERTS)] = 1000,
    ) -> Response:
        found = store.alerts(monitor, state=state, limit=limit)
        return OrjsonResponse({"alerts": [a.to_dict() for a in found]})

    metrics = CollectorRegistry()
    metrics.register(_MonitorGauges(store))

    @router.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        return Response(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    return router


class _MonitorGauges(Collector):
    """Read from the database at scrape time: every server answers the same."""

    def __init__(self, store: LocalMonitorStore) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        values = GaugeMetricFamily(
            "modelloop_monitor_value",
            "The newest window's value of a monitor metric, for the deployment as a whole.",
            labels=["monitor", "metric"],
        )
        for window in self.store.newest_windows():
            for metric, value in window["values"].items():
                if not metric.startswith("drift.column."):  # one series per feature: too many
                    values.add_metric([window["monitor"], metric], value)
        firing = GaugeMetricFamily(
            "modelloop_alert_firing",
            "1 while an alert rule of a monitor is firing, else 0.",
            labels=["monitor", "rule", "severity"],
        )
        open_rules = {
            (a.monitor, a.rule) for a in self.store.alerts(state=FIRING, limit=MAX_ALERTS)
        }
        for entry in self.store.list():
            for rule in entry.monitor.alerts:
                key = (entry.monitor.name, rule.name)
                firing.add_metric([*key, rule.severity.value], float(key in open_rules))
        yield values
        yield firing


def _record(stored: StoredMonitor) -> dict[str, Any]:
    return {
        **stored.monitor.model_dump(mode="json"),
        "updated_at": stored.updated_at,
        "updated_by": stored.updated_by,
    }
