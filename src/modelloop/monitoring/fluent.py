"""The monitoring SDK: ``ml.apply_monitor``, ``ml.run_monitor``, ``ml.monitor_results``,
``ml.list_alerts``, on the local store or through a server (``MODELLOOP_TRACKING_URI``) alike: each
function is one call on the store :func:`~modelloop.monitoring.client.open_monitor_store` picks.
Changes are recorded as ``MODELLOOP_USER`` or the OS user; through a server with authentication,
as the user whose token is configured."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelloop.settings import Settings, load_settings

if TYPE_CHECKING:
    import pandas as pd

    from modelloop.monitoring.monitor import Monitor
    from modelloop.monitoring.store import Alert, MonitorStore, StoredWindow


def apply_monitor(
    monitor: Monitor | dict[str, Any] | str | Path,
    *,
    settings: Settings | None = None,
    actor: str | None = None,
) -> bool:
    """Create or replace a monitor from a :class:`Monitor`, a mapping or a YAML file (audited,
    as ``actor``: default ``MODELLOOP_USER`` or the OS user); False when it was already stored
    like this. The server's scheduler picks it up at its next tick."""
    from modelloop.monitoring.monitor import load_monitor_file, parse_monitor
    from modelloop.tracking.source import current_user

    config = (
        load_monitor_file(monitor) if isinstance(monitor, str | Path) else parse_monitor(monitor)
    )
    with _store(settings) as store:
        return store.apply(config, actor=actor or current_user())


def get_monitor(name: str, *, settings: Settings | None = None) -> Monitor:
    with _store(settings) as store:
        return store.get(name).monitor


def list_monitors(*, settings: Settings | None = None) -> list[Monitor]:
    with _store(settings) as store:
        return [stored.monitor for stored in store.list()]


def delete_monitor(
    name: str, *, settings: Settings | None = None, actor: str | None = None
) -> None:
    """Delete a monitor with its stored windows and alerts (audited, as ``actor``: default
    ``MODELLOOP_USER`` or the OS user); NotFound if unknown."""
    from modelloop.errors import NotFound
    from modelloop.tracking.source import current_user

    with _store(settings) as store:
        if not store.delete(name, actor=actor or current_user()):
            raise NotFound(f"No monitor named {name!r}")


def run_monitor(
    name: str, *, window: datetime | str | None = None, settings: Settings | None = None
) -> list[dict[str, Any]]:
    """Check what is due now (or the window containing ``window``) and store it; one entry per
    window and kind: ``kind``, ``window_start``, ``stored`` (False: already stored), ``scopes``
    (``model_version`` 0 is the deployment as a whole) and the ``alerts`` it fired or resolved.
    Through a server, the server checks them (where the prediction log is)."""
    with _store(settings) as store:
        return store.run(name, window=window)


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

    from modelloop.monitoring.store import check_kind
    from modelloop.serving.predictions import parse_instant

    check_kind(kind)
    since, until = parse_instant(start, "start"), parse_instant(end, "end")
    with _store(settings) as store:
        rows = store.windows(name, kind, version=version, since=since, until=until)
    base = ["window_start", "window_end", "status", "n_predictions", "notes"]
    frame = pd.DataFrame(
        [_result_record(row) for row in rows],
        columns=None if rows else base,  # the columns of an empty series: the fixed ones
    )
    for column in ("window_start", "window_end"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def _result_record(row: StoredWindow) -> dict[str, Any]:
    """One stored window as a row of ``monitor_results``: its facts and values, and for drift
    the test behind each column's statistic, from the window's report."""
    report = row["report"]
    record: dict[str, Any] = {
        "window_start": row["window_start"],
        "window_end": row["window_end"],
        "status": row["status"],
        "n_predictions": row["n_predictions"],
    }
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


def list_alerts(
    monitor: str | None = None, *, state: str | None = None, settings: Settings | None = None
) -> list[Alert]:
    """Alerts, newest first; ``state`` is ``firing`` or ``resolved``."""
    with _store(settings) as store:
        return store.alerts(monitor, state=state)


@contextmanager
def _store(settings: Settings | None) -> Iterator[MonitorStore]:
    from modelloop.monitoring.client import open_monitor_store

    store = open_monitor_store(settings or load_settings())
    try:
        yield store
    finally:
        store.close()
