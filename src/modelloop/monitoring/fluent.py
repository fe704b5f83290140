"""The monitoring SDK: ``ml.apply_monitor``, ``ml.run_monitor``, ``ml.monitor_results``,
``ml.alerts``, on the local store or through a server (``MODELLOOP_TRACKING_URI``) alike."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelloop.settings import Settings, load_settings

if TYPE_CHECKING:
    import pandas as pd

    from modelloop.monitoring.monitor import Monitor
    from modelloop.monitoring.store import Alert
    from modelloop.transport import Transport


def apply_monitor(
    monitor: Monitor | dict[str, Any] | str | Path, *, settings: Settings | None = None
) -> bool:
    """Create or replace a monitor from a :class:`Monitor`, a mapping or a YAML file; False
    when it was already stored like this. The server's scheduler picks it up at its next tick."""
    from modelloop.monitoring.monitor import apply_monitor as apply
    from modelloop.monitoring.monitor import load_monitor_file, parse_monitor

    config = (
        load_monitor_file(monitor) if isinstance(monitor, str | Path) else parse_monitor(monitor)
    )
    settings = settings or load_settings()
    if settings.is_remote:
        body = config.model_dump(mode="json", exclude_none=True)
        answer = _remote(settings, "PUT", f"/monitors/{_segment(config.name)}", body)
        return bool(answer["changed"])
    return apply(config, settings=settings)


def get_monitor(name: str, *, settings: Settings | None = None) -> Monitor:
    from modelloop.monitoring.monitor import get_monitor as get
    from modelloop.monitoring.monitor import parse_monitor

    settings = settings or load_settings()
    if settings.is_remote:
        record = _remote(settings, "GET", f"/monitors/{_segment(name)}")
        return parse_monitor({k: v for k, v in record.items() if not k.startswith("updated_")})
    return get(name, settings=settings).monitor


def list_monitors(*, settings: Settings | None = None) -> list[Monitor]:
    from modelloop.monitoring.monitor import list_monitors as stored
    from modelloop.monitoring.monitor import parse_monitor

    settings = settings or load_settings()
    if settings.is_remote:
        records = _remote(settings, "GET", "/monitors")["monitors"]
        return [
            parse_monitor({k: v for k, v in r.items() if not k.startswith("updated_")})
            for r in records
        ]
    return [s.monitor for s in stored(settings=settings)]


def delete_monitor(name: str, *, settings: Settings | None = None) -> None:
    """Delete a monitor with its stored windows and alerts (audited); NotFound if unknown."""
    from modelloop.errors import NotFound
    from modelloop.monitoring.monitor import delete_monitor as delete

    settings = settings or load_settings()
    if settings.is_remote:
        _remote(settings, "DELETE", f"/monitors/{_segment(name)}")
    elif not delete(name, settings=settings):
        raise NotFound(f"No monitor named {name!r}")


def run_monitor(
    name: str, *, window: datetime | str | None = None, settings: Settings | None = None
) -> list[dict[str, Any]]:
    """Check what is due now (or the window containing ``window``) and store it; one entry per
    window and kind: ``kind``, ``window_start``, ``stored`` (False: already stored), ``scopes``
    (``model_version`` 0 is the deployment as a whole) and the ``alerts`` it fired or resolved."""
    from modelloop.monitoring.runner import run_monitor as run

    settings = settings or load_settings()
    if settings.is_remote:
        moment = window.isoformat() if isinstance(window, datetime) else window
        path = f"/monitors/{_segment(name)}/run"
        return list(_remote(settings, "POST", path, {"window": moment})["windows"])
    return [r.to_dict() for r in run(name, window=window, settings=settings)]


def monitor_results(
    name: str,
    *,
    kind: str = "drift",
    version: int = 0,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """The monitor's stored windows of ``kind`` as a time series, oldest first: one row per
    window (``window_start``, ``window_end``, ``status``, ``n_predictions``, and ``notes``:
    why its status is what it is, e.g. how to give a ``no_reference`` window a reference) and
    one column per value (``drift.share``, ``performance.average_precision``, ...; NaN where a
    window could not compute it). ``version`` 0 is the deployment as a whole.

    Drift windows also list their ``drift.drifted_columns`` and, per column (and for the
    ``score``), the test that judged it, since statistics of different tests are on different
    scales (a chi-squared of 29 and a KS distance of 0.1): ``drift.column.amount`` is the
    statistic, ``drift.column.amount.type`` the column type the test was chosen for (numeric or
    categorical), then ``.method``, ``.p_value`` (NaN for distances), ``.threshold`` (alpha
    for a p-value, else the distance cut-off) and ``.drifted``."""
    import pandas as pd

    from modelloop.clock import to_ms
    from modelloop.serving.predictions import parse_instant

    if kind not in ("drift", "performance"):
        raise _invalid(f"kind must be 'drift' or 'performance', not {kind!r}")
    settings = settings or load_settings()
    lo, hi = parse_instant(start, "start"), parse_instant(end, "end")
    if settings.is_remote:
        params = {"kind": kind, "version": str(version)}
        params |= {k: v.isoformat() for k, v in (("start", lo), ("end", hi)) if v is not None}
        path = f"/monitors/{_segment(name)}/results"
        rows = _remote(settings, "GET", path, params=params)["windows"]
    else:
        from modelloop.monitoring.monitor import get_monitor, monitor_database
        from modelloop.monitoring.store import window_rows

        get_monitor(name, settings=settings)
        rows = window_rows(
            monitor_database(settings), name, kind=kind, model_version=version,
            start=None if lo is None else to_ms(lo), end=None if hi is None else to_ms(hi),
        )  # fmt: skip
    base = ["window_start", "window_end", "status", "n_predictions", "notes"]
    frame = pd.DataFrame(
        [_result_record(row) for row in rows],
        columns=None if rows else base,  # the columns of an empty series: the fixed ones
    )
    for column in ("window_start", "window_end"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def _result_record(row: dict[str, Any]) -> dict[str, Any]:
    """One stored window as a row of ``monitor_results``: its facts and values, and for drift
    the test behind each column's statistic, from the window's report."""
    report = row.get("report") or {}
    record: dict[str, Any] = {k: row[k] for k in ("window_start", "window_end", "status",
                                                   "n_predictions")}  # fmt: skip
    record["notes"] = list(report.get("notes") or [])
    values = dict(row["values"])
    tested = {f"drift.column.{c}": r for c, r in (report.get("columns") or {}).items()}
    if isinstance(report.get("score"), dict):
        tested["drift.score"] = report["score"]
    record.update((k, v) for k, v in values.items() if k not in tested)
    if "drifted_columns" in report:
        record["drift.drifted_columns"] = list(report["drifted_columns"])
    for key, result in tested.items():
        record[key] = values.get(key, result.get("value"))
        record[f"{key}.type"] = result.get("column_type")
        record[f"{key}.method"] = result.get("method")
        record[f"{key}.p_value"] = result.get("p_value")
        record[f"{key}.threshold"] = result.get("threshold")
        record[f"{key}.drifted"] = result.get("drifted")
    return record


def alerts(
    monitor: str | None = None, *, state: str | None = None, settings: Settings | None = None
) -> list[Alert]:
    """Alerts, newest first; ``state`` is ``firing`` or ``resolved``."""
    from modelloop.monitoring.store import Alert, alert_rows

    if state not in (None, "firing", "resolved"):
        raise _invalid(f"state must be 'firing' or 'resolved', not {state!r}")
    settings = settings or load_settings()
    if settings.is_remote:
        params = {k: v for k, v in (("monitor", monitor), ("state", state)) if v is not None}
        records = _remote(settings, "GET", "/alerts", params=params)["alerts"]
        return [Alert.from_dict(r) for r in records]
    from modelloop.monitoring.monitor import monitor_database

    return alert_rows(monitor_database(settings), monitor=monitor, state=state)


def _remote(
    settings: Settings,
    method: str,
    path: str,
    body: Any = None,
    *,
    params: dict[str, str] | None = None,
) -> Any:
    from modelloop.transport import Transport

    assert settings.tracking_uri is not None
    transport: Transport = Transport(settings.tracking_uri, token=settings.token)
    try:
        return transport.call(method, path, body, params=params)
    finally:
        transport.close()


def _segment(text: str) -> str:
    from modelloop.transport import segment

    return segment(text)


def _invalid(message: str) -> Exception:
    from modelloop.errors import InvalidArgument

    return InvalidArgument(message)
