"""Deployments pages: what each stored deployment serves, and its live traffic from the log.

Traffic is computed from the prediction log of the chosen period only (the last hour or day,
``ml.load_predictions`` with start/end and no labels), read once per page: requests and predictions
per minute, latency percentiles and the share each role/version answered. ``latency_ms`` is
logged per batch (every row of a request carries it), so percentiles are over requests, not
rows. Errors are not in the log (a failed request logs nothing): the serving process counts
them in ``modelloop_errors`` on its ``/metrics``. A period ends, unless chosen, at the store's
clock: on a simulated store (the demo's), the simulated now, where its traffic is.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from fastapi import APIRouter
from starlette.responses import HTMLResponse, Response

from modelloop.clock import from_ms, iso, to_ms
from modelloop.errors import InvalidArgument, ModelloopError
from modelloop.settings import Settings
from modelloop.store_clock import store_clock
from modelloop.web.responses import OrjsonResponse

if TYPE_CHECKING:
    import pandas as pd

    from modelloop.serving.deployment import Deployment, ModelRef
    from modelloop.ui.app import Pages

#: period -> (its length, the chart's bucket), in ms
PERIODS = {"1h": (3_600_000, 60_000), "24h": (86_400_000, 600_000)}
PERCENTILES = (50, 95, 99)


def register(router: APIRouter, pages: Pages) -> None:
    """``/ui/deployments``, ``/ui/deployments/{name}`` and its traffic as JSON."""
    settings = pages.settings

    @router.get("/ui/deployments")
    def deployments() -> HTMLResponse:
        return pages.guarded(lambda: _list_page(pages))

    @router.get("/ui/deployments/{name}")
    def deployment_page(name: str, period: str = "1h", end: str = "") -> HTMLResponse:
        return pages.guarded(lambda: _deployment_page(pages, name, period, end))

    @router.get("/ui/api/deployments/{name}/traffic")
    def traffic_json(name: str, period: str = "1h", end: str = "") -> Response:
        from modelloop.serving.fluent import get_deployment

        deployment = get_deployment(name, settings=settings).deployment
        return OrjsonResponse(traffic(settings, deployment, period, _end_ms(end, settings)))


def _list_page(pages: Pages) -> HTMLResponse:
    from modelloop.serving.fluent import list_deployments

    stored = list_deployments(settings=pages.settings)
    with _registry(pages) as registry:
        rows = [
            {
                "stored": item,
                "model": _resolved(registry, item.deployment.model),
                "challenger": _resolved(registry, item.deployment.challenger),
            }
            for item in stored
        ]
    return pages.render(
        "deployments.html", section="deployments", title="Deployments", deployments=rows
    )


def _deployment_page(pages: Pages, name: str, period: str, end: str) -> HTMLResponse:
    from modelloop.serving.fluent import get_deployment

    stored = get_deployment(name, settings=pages.settings)
    deployment = stored.deployment
    with _registry(pages) as registry:
        model = _resolved(registry, deployment.model)
        challenger = _resolved(registry, deployment.challenger)
    data = traffic(pages.settings, deployment, period, _end_ms(end, pages.settings))
    return pages.render(
        "deployments_detail.html",
        section="deployments",
        title=f"Deployment {name}",
        stored=stored,
        deployment=deployment,
        model=model,
        challenger=challenger,
        traffic=data,
        period=period,
        end=end,
        periods=list(PERIODS),
        newest_end=next_day(data["newest_day"]) if data["newest_day"] else None,
    )


def traffic(settings: Settings, deployment: Deployment, period: str, end: int) -> dict[str, Any]:
    """The deployment's traffic over ``[end - period, end)``: per-minute rates per role and
    version, latency percentiles over time and per part, and the share each part answered."""
    import numpy as np
    import pandas as pd

    from modelloop.serving.predictions import load_predictions, logged_dates

    if period not in PERIODS:
        raise InvalidArgument(f"period is one of {', '.join(PERIODS)}, not {period!r}")
    span, bucket = PERIODS[period]
    start = end - span
    models = sorted(
        {deployment.model.name} | ({deployment.challenger.name} if deployment.challenger else set())
    )
    frames = [
        load_predictions(
            m,
            from_ms(start),
            from_ms(end),
            deployment=deployment.name,
            with_labels=False,
            settings=settings,
        )[["timestamp", "model_version", "role", "latency_ms"]]
        for m in models
    ]
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    n_buckets = span // bucket
    times = [iso(start + i * bucket) for i in range(n_buckets)]
    result: dict[str, Any] = {
        "deployment": deployment.name,
        "period": period,
        "start": iso(start),
        "end": iso(end),
        "bucket_minutes": bucket // 60_000,
        "buckets": times,
        "total": len(frame),
        "series": [],
        "requests_per_minute": [0.0] * n_buckets,
        "latency": {f"p{p}": [None] * n_buckets for p in PERCENTILES},
        "parts": [],
        "newest_day": None,
        "served": served_requests(settings, deployment.name, start, end, bucket),
    }
    if frame.empty:
        days = [d for m in models for d in logged_dates(m, settings)]
        result["newest_day"] = max(days) if days else None
        return result
    frame["ms"] = _epoch_ms(frame["timestamp"])
    frame["bucket"] = ((frame["ms"] - start) // bucket).clip(0, n_buckets - 1)
    frame["model_version"] = frame["model_version"].astype("int64")
    minutes = bucket / 60_000
    # One request = one logged batch: its rows share time, version, role and latency.
    batches = frame.groupby(
        ["ms", "model_version", "role", "latency_ms", "bucket"], as_index=False, sort=False
    ).size()
    answered = batches[batches["role"] != "shadow"]
    per_request = answered.groupby("ms", as_index=False).agg(
        bucket=("bucket", "first"), latency_ms=("latency_ms", "max")
    )  # a canary splits a request in two batches: the slower one is the request's latency
    counts = np.bincount(per_request["bucket"].to_numpy(), minlength=n_buckets)
    result["requests_per_minute"] = (counts / minutes).tolist()
    by_bucket = per_request.groupby("bucket")["latency_ms"]
    for p in PERCENTILES:
        values = by_bucket.quantile(p / 100)
        series: list[float | None] = [None] * n_buckets
        for index, value in zip(values.index, values.to_numpy(dtype=float), strict=True):
            series[int(index)] = float(value)
        result["latency"][f"p{p}"] = series
    n_answered = int((frame["role"] != "shadow").sum())
    for key, part in frame.groupby(["role", "model_version"], sort=True):
        role, version = str(key[0]), int(cast("int", key[1]))
        rows = np.bincount(part["bucket"].to_numpy(), minlength=n_buckets)
        part_batches = batches[(batches["role"] == role) & (batches["model_version"] == version)]
        latencies = part_batches["latency_ms"].to_numpy(dtype=float)
        label = f"{role} v{version}"
        result["series"].append(
            {
                "role": role,
                "version": int(version),
                "label": label,
                "per_minute": (rows / minutes).tolist(),
            }
        )
        result["parts"].append(
            {
                "role": role,
                "version": int(version),
                "predictions": len(part),
                "requests": len(part_batches),
                "share": None if role == "shadow" or not n_answered else len(part) / n_answered,
                **{
                    f"p{p}": float(np.percentile(latencies, p)) if len(latencies) else None
                    for p in PERCENTILES
                },
            }
        )
    all_latencies = per_request["latency_ms"].to_numpy(dtype=float)
    result["overall"] = {
        "requests": len(per_request),
        "answered": n_answered,
        **{
            f"p{p}": float(np.percentile(all_latencies, p)) if len(all_latencies) else None
            for p in PERCENTILES
        },
    }
    return result


# -- helpers -----------------------------------------------------------------------------------


class _registry:
    """A registry over the UI's store for the length of one page."""

    def __init__(self, pages: Pages) -> None:
        from modelloop.registry.client import Registry
        from modelloop.tracking.client import Client

        self.registry = Registry(Client(settings=pages.settings, store=pages.store))

    def __enter__(self) -> Any:
        return self.registry

    def __exit__(self, *exc: object) -> None:
        self.registry.close()


def _resolved(registry: Any, ref: ModelRef | None) -> dict[str, Any] | None:
    """A reference with the version it resolves to now (or why it does not)."""
    if ref is None:
        return None
    try:
        version = registry.resolve_model_uri(ref.uri)
    except ModelloopError as exc:
        return {"ref": str(ref), "name": ref.name, "version": None, "problem": exc.message}
    return {
        "ref": str(ref),
        "name": ref.name,
        "version": version.version,
        "problem": None,
        "description": version.description or "",
    }


def _end_ms(text: str, settings: Settings) -> int:
    """The period's end: now on the store's clock, or an ISO time (a past incident)."""
    if not text.strip():
        return store_clock(settings).now_ms
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(f"end={text!r} is not an ISO time (e.g. 2026-01-31T12:00)") from None
    return to_ms(moment)


def _epoch_ms(series: pd.Series[Any]) -> Any:
    import pandas as pd

    stamps = pd.to_datetime(series, utc=True)
    return (stamps - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)


def next_day(day: str) -> str:
    """The end of a logged day (``YYYY-MM-DD``), to look at its last hours."""
    return (datetime.fromisoformat(day) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def served_requests(
    settings: Settings, deployment: str, start: int, end: int, bucket: int
) -> dict[str, Any]:
    """Requests and errors the serving processes counted in ``[start, end)`` (``serving_stats``:
    failed requests log no prediction, so the error rate comes from there)."""
    from modelloop.serving.stats import counted_by_minute
    from modelloop.store import open_database

    rows = counted_by_minute(open_database(settings.database_url), deployment, start, end)
    n = max(1, (end - start) // bucket)
    errors = [0] * n
    routes: dict[str, list[int]] = {}
    for minute, route, requests, failed in rows:
        errors[min(n - 1, (minute - start) // bucket)] += int(failed)
        totals = routes.setdefault(route, [0, 0])
        totals[0] += int(requests)
        totals[1] += int(failed)
    requests = sum(r for r, _ in routes.values())
    failed = sum(f for _, f in routes.values())
    return {
        "requests": requests,
        "errors": failed,
        "error_rate": failed / requests if requests else None,
        "errors_per_bucket": errors,
        "routes": {route: {"requests": r, "errors": f} for route, (r, f) in sorted(routes.items())},
    }
