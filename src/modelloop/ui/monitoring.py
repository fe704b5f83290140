"""Monitoring pages: monitors with their newest windows and alerts, and one monitor's drift
heatmap, dataset drift, performance with label coverage, and reference-vs-current overlays.

Everything is read through the monitor store of the server's database
(:class:`~modelloop.monitoring.sql.SqlMonitorStore`). The page itself renders only facts and
alerts; its charts come from JSON endpoints under ``/ui/api/monitoring/`` (drawn by
``monitoring.js``), each reading the stored windows of one kind in one read (windows and their
values together), so a page costs a few queries whatever the number of windows. Distributions
are the one place that reads the prediction log, and only the chosen window of it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query
from starlette.responses import HTMLResponse, Response

from modelloop.clock import from_ms, to_ms
from modelloop.errors import InvalidArgument, NotFound
from modelloop.monitoring.sql import SqlMonitorStore
from modelloop.settings import Settings
from modelloop.web.responses import OrjsonResponse

if TYPE_CHECKING:
    from modelloop.datasets.reference import ColumnReference
    from modelloop.monitoring.monitor import Monitor
    from modelloop.monitoring.store import StoredWindow
    from modelloop.ui.app import Pages

DEFAULT_WINDOWS = 60
MAX_WINDOWS = 2000
MAX_CATEGORIES = 30  # bars of a categorical overlay; the rest are summed as "(other)"
PERFORMANCE_SHOWN = (
    ("average_precision", "AP"),
    ("auc_roc", "AUC"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("precision_at_k", "precision@k"),
    ("card_precision_at_k", "card precision@k"),
)
_OTHER_LABEL = "(other)"


def register(router: APIRouter, pages: Pages) -> None:
    """``/ui/monitoring``, ``/ui/monitoring/{name}`` and their JSON under ``/ui/api``."""
    settings = pages.settings

    @router.get("/ui/monitoring")
    def monitors() -> HTMLResponse:
        return pages.guarded(lambda: _list_page(pages))

    @router.get("/ui/monitoring/{name}")
    def monitor_page(
        name: str, windows: Annotated[int, Query(ge=1, le=MAX_WINDOWS)] = DEFAULT_WINDOWS
    ) -> HTMLResponse:
        return pages.guarded(lambda: _monitor_page(pages, name, windows))

    @router.get("/ui/api/monitoring/{name}/drift")
    def drift(
        name: str, windows: Annotated[int, Query(ge=1, le=MAX_WINDOWS)] = DEFAULT_WINDOWS
    ) -> Response:
        return OrjsonResponse(drift_series(settings, name, windows))

    @router.get("/ui/api/monitoring/{name}/performance")
    def performance(
        name: str, windows: Annotated[int, Query(ge=1, le=MAX_WINDOWS)] = DEFAULT_WINDOWS
    ) -> Response:
        return OrjsonResponse(performance_series(settings, name, windows))

    @router.get("/ui/api/monitoring/{name}/distribution")
    def distribution(name: str, feature: str, window: str, bins: str = "deciles") -> Response:
        return OrjsonResponse(distribution_overlay(settings, name, feature, window, bins))


# -- pages -------------------------------------------------------------------------------------


def _list_page(pages: Pages) -> HTMLResponse:
    from modelloop.monitoring.store import FIRING

    store = SqlMonitorStore.local(pages.settings)
    newest = newest_windows(store)
    firing: dict[str, list[Any]] = {}
    for alert in store.alerts(state=FIRING):
        firing.setdefault(alert.monitor, []).append(alert)
    rows = []
    for item in store.list():
        m = item.monitor
        rows.append(
            {
                "name": m.name,
                "deployment": m.deployment,
                "model": m.model or "",
                "window": m.window,
                "drift": newest.get((m.name, "drift")),
                "performance": newest.get((m.name, "performance")),
                "firing": firing.get(m.name, []),
            }
        )
    return pages.render("monitoring.html", section="monitoring", title="Monitoring", monitors=rows)


def _monitor_page(pages: Pages, name: str, windows: int) -> HTMLResponse:
    from modelloop.monitoring.monitor import format_duration

    store = SqlMonitorStore.local(pages.settings)
    stored = store.get(name)
    config = stored.monitor
    alerts = store.alerts(name, limit=200)
    return pages.render(
        "monitoring_monitor.html",
        section="monitoring",
        title=f"Monitor {name}",
        monitor=config,
        model=config.model or "",
        updated_at=stored.updated_at,
        updated_by=stored.updated_by,
        alerts=alerts,
        rules=[
            (r.name, r.metric, r.condition, r.consecutive, r.severity.value) for r in config.alerts
        ],
        label_delay=format_duration(config.performance.label_delay),
        windows=windows,
        chart_config={"name": name, "windows": windows},
    )


def newest_windows(store: SqlMonitorStore) -> dict[tuple[str, str], dict[str, Any]]:
    """Every monitor's newest window per kind (as a whole) with its headline values (the
    per-column statistics left out), in one read however many monitors there are."""
    return {
        (w["monitor"], w["kind"]): {
            "start": w["window_start"],
            "status": w["status"],
            "n": w["n_predictions"],
            "values": {k: v for k, v in w["values"].items() if not k.startswith("drift.column.")},
            "notes": _notes(w) if w["status"] != "ok" else [],
        }
        for w in store.newest_windows()
    }


# -- chart data --------------------------------------------------------------------------------


def drift_series(settings: Settings, name: str, limit: int) -> dict[str, Any]:
    """The heatmap (features x windows of ``drift.column.<feature>``, drifted cells flagged)
    and the dataset-level lines, from one read of the stored drift windows.

    Each cell carries the test that judged it (``methods``, ``column_types``, ``thresholds``,
    ``p_values``: features x windows, as the method can change from window to window with the
    sample size), since a statistic means nothing without it: a p-value test is judged by its
    p-value against alpha, a distance by its value against the threshold. ``notes`` says per
    window why its status is not ok (e.g. how to give a ``no_reference`` window a reference)."""
    store = SqlMonitorStore.local(settings)
    config = store.get(name).monitor
    rows = store.windows(name, "drift", limit=limit)
    names = sorted({f for row in rows for f in row["report"].get("columns") or {}})
    values, drifted, p_values, methods, types, thresholds = [], [], [], [], [], []
    for feature in names:
        values.append([_finite(r["values"].get(f"drift.column.{feature}")) for r in rows])
        results = [(r["report"].get("columns") or {}).get(feature) or {} for r in rows]
        drifted.append([bool(x.get("drifted")) for x in results])
        p_values.append([_finite(x.get("p_value")) for x in results])
        methods.append([x.get("method") for x in results])
        types.append([x.get("column_type") for x in results])
        thresholds.append([_finite(x.get("threshold")) for x in results])
    return {
        "monitor": name,
        "windows": [r["window_start"].isoformat() for r in rows],
        "window_ends": [r["window_end"].isoformat() for r in rows],
        "status": [r["status"] for r in rows],
        "notes": [[str(n) for n in r["report"].get("notes") or []] for r in rows],
        "predictions": [r["n_predictions"] for r in rows],
        "reference_version": [r["report"].get("reference_version") for r in rows],
        "features": names,
        "methods": methods,
        "column_types": types,
        "thresholds": thresholds,
        "values": values,
        "drifted": drifted,
        "p_values": p_values,
        "share": [_finite(r["values"].get("drift.share")) for r in rows],
        "dataset_drifted": [_finite(r["values"].get("drift.dataset")) for r in rows],
        "score": [_finite(r["values"].get("drift.score")) for r in rows],
        "score_drifted": [_finite(r["values"].get("drift.score_drifted")) for r in rows],
        "share_threshold": config.drift.share_threshold,
    }


def performance_series(settings: Settings, name: str, limit: int) -> dict[str, Any]:
    """Metrics per matured window with label coverage; windows with too few labels flagged
    (their metrics are null, never a made-up value)."""
    store = SqlMonitorStore.local(settings)
    config = store.get(name).monitor
    rows = store.windows(name, "performance", limit=limit)
    return {
        "monitor": name,
        "windows": [r["window_start"].isoformat() for r in rows],
        "status": [r["status"] for r in rows],
        "insufficient": [r["status"] == "insufficient_labels" for r in rows],
        "predictions": [r["n_predictions"] for r in rows],
        "label_coverage": [_finite(r["values"].get("performance.label_coverage")) for r in rows],
        "labelled": [_finite(r["values"].get("performance.n_labelled")) for r in rows],
        "metrics": {
            key: {
                "label": label,
                "values": [_finite(r["values"].get(f"performance.{key}")) for r in rows],
            }
            for key, label in PERFORMANCE_SHOWN
        },
        "notes": [list(r["report"].get("notes") or []) for r in rows],
        "min_labels": config.performance.min_labels,
        "min_coverage": config.performance.min_coverage,
        "k": config.performance.k,
    }


def distribution_overlay(
    settings: Settings, name: str, feature: str, window: str, bins: str
) -> dict[str, Any]:
    """One feature in one drift window: the reference stored with the version that answered
    it (``reference.json``) against the window's logged values, over the same bins; per value
    for a numeric column the reference types categorical (a 0/1 flag, a -1/0/1 code), as its
    test compares them. The window's ``status`` and ``notes`` come along (a window without a
    reference says why)."""
    if bins not in ("deciles", "percentiles"):
        raise InvalidArgument(f"bins is deciles or percentiles, not {bins!r}")
    store = SqlMonitorStore.local(settings)
    config = store.get(name).monitor
    start = _parse_time(window)
    rows = store.windows(name, "drift", since=from_ms(start), until=from_ms(start + 1), limit=1)
    if not rows:
        raise NotFound(f"Monitor {name!r} has no drift window starting at {window}")
    row = rows[0]
    version = row["report"].get("reference_version")
    model = _monitored_model(config, settings)
    result: dict[str, Any] = {
        "monitor": name,
        "feature": feature,
        "model": model,
        "reference_version": version,
        "window": [row["window_start"].isoformat(), row["window_end"].isoformat()],
        "drift": (row["report"].get("columns") or {}).get(feature),
        "status": row["status"],
        "notes": [str(n) for n in row["report"].get("notes") or []],
    }
    if version is None:
        return result | {"kind": None, "note": "no reference for this window (no predictions)"}
    try:
        reference = _reference(settings, model, int(version)).get(feature)
    except NotFound as missing:  # a version registered without a reference: say so, and how
        return result | {"kind": None, "note": missing.message}
    if reference is None:
        note = f"v{version} of {model} has no stored reference for {feature}"
        return result | {"kind": None, "note": note}
    current = _current_values(settings, config, model, row, feature)
    per_value = reference.column_type == "categorical" and reference.categories
    if reference.kind == "numeric" and per_value:  # tested per value: drawn per value
        return result | _value_overlay(reference, current)
    if reference.kind == "numeric":
        return result | _numeric_overlay(reference, current, bins)
    return result | _categorical_overlay(reference, current)


def _reference(settings: Settings, model: str, version: int) -> dict[str, ColumnReference]:
    from modelloop.registry.client import Registry
    from modelloop.tracking.client import Client

    registry = Registry(Client(settings=settings))
    try:
        return registry.reference_profile(f"models:/{model}/{version}")
    finally:
        registry.close()


def _current_values(
    settings: Settings, config: Monitor, model: str, row: StoredWindow, feature: str
) -> Any:
    """The feature's logged values in the window, as the monitor compared them (the answered
    predictions, shadow rows left out); only this window of the log is read."""
    from modelloop.monitoring.runner import logged_column
    from modelloop.serving.predictions import load_predictions

    frame = load_predictions(
        model,
        row["window_start"],
        row["window_end"],
        deployment=config.deployment,
        with_labels=False,
        settings=settings,
    )
    answered = frame[frame["role"] != "shadow"]
    return logged_column(answered, feature)


def _numeric_overlay(reference: ColumnReference, current: Any, bins: str) -> dict[str, Any]:
    """Densities over the reference's decile (or percentile) bins: the reference's from the
    exact counts at its sketch edges, the current one from the logged values."""
    import numpy as np
    import pandas as pd

    step = 10 if bins == "deciles" else 100
    chosen = [
        i
        for i, level in enumerate(reference.levels)
        if abs(level * step - round(level * step)) < 1e-9
    ]
    edges: list[float] = []
    below: list[int] = []
    at_or_below: list[int] = []
    for i in chosen:  # tied edges (many equal values) become one edge
        if edges and reference.edges[i] == edges[-1]:
            at_or_below[-1] = reference.at_or_below[i]
            continue
        edges.append(reference.edges[i])
        below.append(reference.below[i])
        at_or_below.append(reference.at_or_below[i])
    numbers = pd.to_numeric(pd.Series(current), errors="coerce").to_numpy(dtype=float)
    nulls = int(np.isnan(numbers).sum())
    finite = np.sort(numbers[np.isfinite(numbers)])
    n_ref, n_cur = max(reference.count, 1), max(len(finite), 1)
    if len(edges) < 2:  # a constant reference: one bin, at its value
        ref_counts = [reference.count]
        cur_counts = [int(((finite >= edges[0]) & (finite <= edges[0])).sum())] if edges else [0]
        lefts, rights = edges[:1] or [0.0], edges[:1] or [0.0]
    else:
        cur_at = np.searchsorted(finite, edges, "right")
        cur_below0 = int(np.searchsorted(finite, edges[0], "left"))
        ref_counts = [at_or_below[1] - below[0]]
        ref_counts += [at_or_below[j + 1] - at_or_below[j] for j in range(1, len(edges) - 1)]
        cur_counts = [int(cur_at[1]) - cur_below0]
        cur_counts += [int(cur_at[j + 1] - cur_at[j]) for j in range(1, len(edges) - 1)]
        lefts, rights = edges[:-1], edges[1:]
    widths = [(r - lo) or 1.0 for lo, r in zip(lefts, rights, strict=True)]
    low = int(np.searchsorted(finite, edges[0], "left")) if edges else 0
    high = len(finite) - int(np.searchsorted(finite, edges[-1], "right")) if edges else 0
    return {
        "kind": "numeric",
        "bins": bins,
        "edges": edges,
        "centers": [(lo + r) / 2 for lo, r in zip(lefts, rights, strict=True)],
        "widths": widths,
        "reference": {
            "count": reference.count,
            "counts": ref_counts,
            "density": [c / n_ref / w for c, w in zip(ref_counts, widths, strict=True)],
            "share": [c / n_ref for c in ref_counts],
            "mean": reference.mean,
        },
        "current": {
            "count": len(finite),
            "counts": cur_counts,
            "density": [c / n_cur / w for c, w in zip(cur_counts, widths, strict=True)],
            "share": [c / n_cur for c in cur_counts],
            "below_range": low,
            "above_range": high,
            "nulls": nulls,
            "mean": float(finite.mean()) if len(finite) else None,
        },
    }


def _value_overlay(reference: ColumnReference, current: Any) -> dict[str, Any]:
    """A numeric column tested as categorical: the share of each value, in value order (deciles
    would merge them: a 0/1 column is one bin "0 to 1"). Values the reference did not count
    (new ones, or beyond its cap) get their own bars while there is room, the rest are summed
    as ``(other)``."""
    import numpy as np
    import pandas as pd

    from modelloop.datasets.profile import number_label
    from modelloop.datasets.reference import OTHER

    known = {float(k): c for k, c in (reference.categories or {}).items() if k != OTHER}
    numbers = pd.to_numeric(pd.Series(current), errors="coerce").to_numpy(dtype=float)
    finite = numbers[np.isfinite(numbers)]
    distinct, sizes = np.unique(finite, return_counts=True)
    counts = {float(v): int(c) for v, c in zip(distinct.tolist(), sizes.tolist(), strict=True)}
    kept = sorted(known, key=lambda v: (-known[v], v))[:MAX_CATEGORIES]
    new = sorted((v for v in counts if v not in known), key=lambda v: (-counts[v], v))
    shown = sorted([*kept, *new[: max(0, MAX_CATEGORIES - len(kept))]])
    n_cur = len(finite)
    ref_counts = [known.get(v, 0) for v in shown]
    cur_counts = [counts.get(v, 0) for v in shown]
    labels = [number_label(v) for v in shown]
    ref_other, cur_other = reference.count - sum(ref_counts), n_cur - sum(cur_counts)
    if ref_other or cur_other:
        labels.append(_OTHER_LABEL)
        ref_counts.append(ref_other)
        cur_counts.append(cur_other)
    return {
        "kind": "categorical",
        "per_value": True,  # a numeric column's values, as its categorical test counts them
        "categories": labels,
        "new_categories": [number_label(v) for v in new],
        "reference": {
            "count": reference.count,
            "counts": ref_counts,
            "share": [c / max(reference.count, 1) for c in ref_counts],
            "mean": reference.mean,
        },
        "current": {
            "count": n_cur,
            "counts": cur_counts,
            "share": [c / max(n_cur, 1) for c in cur_counts],
            "nulls": int(np.isnan(numbers).sum()),
            "mean": float(finite.mean()) if n_cur else None,
        },
    }


def _categorical_overlay(reference: ColumnReference, current: Any) -> dict[str, Any]:
    """Category shares, the reference's most frequent first; categories the reference did not
    keep (or never saw) and the long tail are summed as ``(other)``."""
    import pandas as pd

    from modelloop.datasets.reference import OTHER

    series = pd.Series(current).dropna()
    counts: dict[str, int] = (
        {str(k): int(v) for k, v in series.astype(str).value_counts().items()}
        if len(series)
        else {}
    )
    known = reference.categories or {}
    ranked = sorted((k for k in known if k != OTHER), key=lambda k: (-known[k], k))
    shown = ranked[:MAX_CATEGORIES]
    new = sorted((k for k in counts if k not in known), key=lambda k: (-counts[k], k))
    shown += new[: max(0, MAX_CATEGORIES - len(shown))]
    n_ref, n_cur = max(reference.count, 1), max(int(sum(counts.values())), 1)
    ref_other = reference.count - sum(known.get(k, 0) for k in shown)
    cur_other = int(sum(counts.values())) - sum(int(counts.get(k, 0)) for k in shown)
    labels = [*shown, _OTHER_LABEL] if ref_other or cur_other else list(shown)
    ref_counts = [known.get(k, 0) for k in shown] + (
        [ref_other] if len(labels) > len(shown) else []
    )
    cur_counts = [int(counts.get(k, 0)) for k in shown]
    cur_counts += [cur_other] if len(labels) > len(shown) else []
    return {
        "kind": "categorical",
        "categories": labels,
        "new_categories": new,
        "reference": {
            "count": reference.count,
            "counts": ref_counts,
            "share": [c / n_ref for c in ref_counts],
        },
        "current": {
            "count": int(sum(counts.values())),
            "counts": cur_counts,
            "share": [c / n_cur for c in cur_counts],
            "nulls": int(pd.Series(current).isna().sum()),
        },
    }


# -- helpers -----------------------------------------------------------------------------------


def _monitored_model(config: Monitor, settings: Settings) -> str:
    if config.model:
        return config.model
    from modelloop.serving.fluent import get_deployment

    return get_deployment(config.deployment, settings=settings).deployment.model.name


def _parse_time(text: str) -> int:
    """Milliseconds of an ISO time (naive = UTC), as the chart's windows name them."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(f"window={text!r} is not an ISO time") from None
    return to_ms(moment)


def _notes(window: StoredWindow) -> list[str]:
    """A stored window's notes: why its status is what it is."""
    return [str(n) for n in window["report"].get("notes") or []]


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def fmt_value(value: float | None, digits: int = 4) -> str:
    """A metric for a table cell: blank when missing."""
    return "" if value is None else f"{value:.{digits}g}"


def plain_items(data: dict[str, Any]) -> Sequence[tuple[str, str]]:
    """Evidence as key/text pairs for a table: strings as they are, the rest as compact JSON,
    so every value reaches the page as escaped text."""
    import json

    return [
        (str(k), v if isinstance(v, str) else json.dumps(v, default=str, ensure_ascii=False))
        for k, v in data.items()
    ]
