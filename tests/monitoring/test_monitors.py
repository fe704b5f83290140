"""Monitors over the prediction log: due windows, drift and delayed-label performance per scope,
stored as time series, idempotent, with alerts that fire once and resolve."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from modelloop.errors import InvalidArgument
from modelloop.monitoring import sql
from modelloop.monitoring.fluent import get_monitor
from modelloop.monitoring.monitor import load_monitor_file
from modelloop.monitoring.runner import check_windows
from modelloop.monitoring.sql import SqlMonitorStore, window_rows
from modelloop.store import open_database

from .conftest import ON_EVERY_DATABASE, Watched, day


def _series(watched: Watched, name: str, kind: str, metric: str) -> list[float | None]:
    rows = window_rows(open_database(watched.settings.database_url), name, kind=kind)
    return [row["values"].get(metric) for row in rows]


@ON_EVERY_DATABASE
def test_daily_windows_find_drift_and_score_matured_labels(watched: Watched) -> None:
    first = watched.log_predictions(day(1), 2000, seed=1)
    second = watched.log_predictions(day(2), 2000, seed=2, shift=1.5)
    watched.send_labels(first, at=day(3))
    watched.send_labels(second.iloc[:100], at=day(3))  # most labels of day 2 never come
    name = watched.monitor()

    results = check_windows(name, now=day(5) + timedelta(hours=1), settings=watched.settings)

    done = {(r.kind, r.window.start) for r in results if r.stored}
    ms = [int(day(i).timestamp() * 1000) for i in range(1, 5)]
    assert done == {("drift", m) for m in ms} | {("performance", m) for m in ms[:2]}
    share = _series(watched, name, "drift", "drift.share")
    assert share[0] == 0.0
    assert share[1] is not None
    assert share[1] >= 0.25
    assert share[2:] == [None, None]  # no traffic: no values, status says so
    statuses = [r["status"] for r in window_rows(open_database(watched.settings.database_url),
                                                  name, kind="drift")]  # fmt: skip
    assert statuses == ["ok", "ok", "no_data", "no_data"]
    drifted = window_rows(open_database(watched.settings.database_url), name, kind="drift")[1]
    assert "amount" in drifted["report"]["drifted_columns"]
    assert drifted["values"]["drift.score"] > 0

    perf = window_rows(open_database(watched.settings.database_url), name, kind="performance")
    assert perf[0]["status"] == "ok"
    assert perf[0]["values"]["performance.auc_roc"] > 0.8
    assert perf[0]["values"]["performance.label_coverage"] == 1.0
    assert perf[1]["status"] == "insufficient_labels"
    assert perf[1]["values"]["performance.label_coverage"] == pytest.approx(0.05)
    assert "performance.auc_roc" not in perf[1]["values"]

    again = check_windows(name, now=day(5) + timedelta(hours=1), settings=watched.settings)
    assert not any(r.stored for r in again)  # idempotent: nothing new is due


def test_each_model_version_gets_its_own_scope(watched: Watched) -> None:
    watched.log_predictions(day(1), 1500, seed=1)
    watched.log_predictions(day(1), 1500, seed=3, shift=2.0, role="shadow")
    name = watched.monitor(performance={"enabled": False})
    [result] = check_windows(name, window="2026-01-01T12:00", now=day(3), settings=watched.settings)
    assert [s.model_version for s in result.scopes] == [0, watched.version]
    whole, version = result.scopes
    assert whole.n_predictions == 1500  # the shadow's answers are not the deployment's
    assert version.n_predictions == 3000
    assert whole.values["drift.share"] < version.values["drift.share"]


def test_a_window_not_due_yet_is_refused(watched: Watched) -> None:
    name = watched.monitor()
    with pytest.raises(InvalidArgument, match="not due yet"):
        check_windows(name, window="2026-01-04", now=day(4) + timedelta(hours=1),
                    settings=watched.settings)  # fmt: skip
    stored = get_monitor(name, settings=watched.settings)
    assert stored.since is not None
    assert stored.since.isoformat().startswith("2026-01-01")


@ON_EVERY_DATABASE
def test_alerts_fire_after_consecutive_breaches_once_and_resolve(watched: Watched) -> None:
    watched.log_predictions(day(1), 3000, seed=1)  # large windows: distances, not p-values
    for i in (2, 3, 4):
        watched.log_predictions(day(i), 3000, seed=i, shift=1.5)
    watched.log_predictions(day(5), 3000, seed=5)
    rule = {"name": "inputs-drift", "metric": "drift.share", "above": 0.2, "consecutive": 2}
    name = watched.monitor(alerts=[rule], performance={"enabled": False})
    store = SqlMonitorStore(open_database(watched.settings.database_url))

    check_windows(name, now=day(3) + timedelta(hours=1), settings=watched.settings)
    assert store.alerts(name) == []  # one breaching day is not two
    check_windows(name, now=day(4) + timedelta(hours=1), settings=watched.settings)
    [alert] = store.alerts(name)
    assert (alert.state, alert.breaches, alert.first_window) == ("firing", 2, day(2))
    assert alert.notified == "firing"  # no webhooks: delivered by being logged
    check_windows(name, now=day(5) + timedelta(hours=1), settings=watched.settings)
    [alert] = store.alerts(name)
    assert (alert.state, alert.breaches) == ("firing", 3)  # deduplicated
    check_windows(name, now=day(6) + timedelta(hours=1), settings=watched.settings)
    [alert] = store.alerts(name)
    assert alert.state == "resolved"
    assert alert.resolved_at is not None


def test_a_crash_mid_window_stores_nothing_and_the_next_run_completes(
    watched: Watched, monkeypatch: pytest.MonkeyPatch
) -> None:
    watched.log_predictions(day(1), 3000, seed=1, shift=1.5)
    rule = {"name": "inputs-drift", "metric": "drift.share", "above": 0.2}
    name = watched.monitor(alerts=[rule], performance={"enabled": False})

    def crash(*args: object) -> None:
        raise RuntimeError("killed mid-check")

    # Alert rules run last inside the window's transaction, after every scope was inserted.
    monkeypatch.setattr(sql, "_apply_rule", crash)
    with pytest.raises(RuntimeError):
        check_windows(name, now=day(2) + timedelta(hours=1), settings=watched.settings)
    db = open_database(watched.settings.database_url)
    assert window_rows(db, name, model_version=None) == []
    with db.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM monitor_values").scalar() == 0

    monkeypatch.undo()
    [result] = check_windows(name, now=day(2) + timedelta(hours=1), settings=watched.settings)
    assert result.stored
    assert [a["state"] for a in result.alerts] == ["firing"]


def test_last_n_windows_follow_the_newest_predictions(watched: Watched) -> None:
    watched.log_predictions(day(1), 3000, seed=1)
    name = watched.monitor(window="last 2000", every="10m", performance={"enabled": False})
    [calm] = check_windows(name, now=day(2), settings=watched.settings)
    assert calm.stored
    assert calm.whole is not None
    assert calm.whole.n_predictions == 2000
    assert calm.whole.values["drift.share"] == 0.0
    assert not check_windows(name, now=day(2), settings=watched.settings)  # same window: nothing

    watched.log_predictions(day(2), 2000, seed=2, shift=1.5, spread=timedelta(hours=1))
    [shifted] = check_windows(name, now=day(3), settings=watched.settings)
    assert shifted.whole is not None
    assert shifted.whole.values["drift.share"] >= 0.25
    assert shifted.window.start == int(day(2).timestamp() * 1000)


def test_monitor_files_are_validated_whole(tmp_path: Path) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_text(
        "name: m\ndeployment: d\nwindow: 7m\nevery: 1h\n"
        "alerts:\n  - {name: a, metric: drift.nothing, above: 1}\n  - {name: a, metric: "
        "performance.auc_roc}\nperformance: {label_delay: soon}\n"
    )
    with pytest.raises(InvalidArgument) as caught:
        load_monitor_file(path)
    fields = {d["field"]: d["message"] for d in caught.value.details}
    assert "divides a day" in fields["window"]
    assert "unknown metric 'drift.nothing'" in fields["alerts.0.metric"]
    assert "exactly one of 'above' or 'below'" in fields["alerts.1"]
    assert "not a duration" in fields["performance.label_delay"]
