"""One contract for every MonitorStore: SQLite, PostgreSQL, and the HTTP client to a live server;
then every public monitoring call with ``MODELLOOP_TRACKING_URI`` at a live server, answering
exactly as it does locally (the SDK and the command line)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

import modelloop as ml
from modelloop import audit
from modelloop.cli.app import app
from modelloop.clock import DAY_MS, to_ms
from modelloop.errors import InvalidArgument, ModelloopError, NotFound
from modelloop.monitoring import delete_monitor
from modelloop.monitoring.client import open_monitor_store
from modelloop.monitoring.monitor import Monitor
from modelloop.monitoring.sql import SqlMonitorStore
from modelloop.monitoring.store import MonitorStore
from modelloop.monitoring.windows import ScopeResult, Window, WindowResult
from modelloop.settings import Settings, load_settings
from modelloop.store import close_database
from modelloop.tracking import fluent

from ..conftest import postgres_schema, store_settings
from ..live_server import live_server
from .conftest import DEPLOYMENT, MODEL, Watched, _watched, day

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "http"]
RULE = {"name": "inputs", "metric": "drift.share", "above": 0.2, "severity": "critical"}
CONFIG: dict[str, Any] = {
    "name": "w",
    "deployment": "online",
    "model": "m",
    "since": "2026-01-01",
    "alerts": [RULE],
}


@dataclass
class Env:
    store: MonitorStore  # under test
    local: SqlMonitorStore  # the same database, always local: the runner's writes, the audit
    settings: Settings

    def events(self, name: str) -> list[audit.AuditEvent]:
        return audit.events(self.local.db, object_type="monitor", object_id=name)

    def record(
        self, name: str, kind: str, n: int, values: dict[str, float], *, version: int = 0
    ) -> WindowResult:
        """Day ``n`` of 2026-01 checked: ``values`` for the whole, and for ``version`` if any."""
        monitor = self.local.get(name).monitor
        start = to_ms(day(n))
        scopes = [ScopeResult(0, "ok", 100, dict(values), {"notes": []})]
        if version:
            scopes.append(ScopeResult(version, "ok", 40, {k: v / 2 for k, v in values.items()}))
        return self.local.record_window(
            monitor, kind, Window(start, start + DAY_MS), scopes, start + DAY_MS
        )


@pytest.fixture(params=BACKENDS)
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    backend = "sqlite" if request.param == "http" else request.param
    with store_settings(tmp_path, backend) as base:
        # The operator lets webhooks reach one private network (the server's setting).
        settings = dataclasses.replace(base, webhook_allowed_networks=("10.0.0.0/8",))
        local = SqlMonitorStore.local(settings)
        if request.param != "http":
            yield Env(open_monitor_store(settings), local, settings)
            return
        from modelloop.monitoring.http import HttpMonitorStore

        with live_server(settings) as url:
            remote = HttpMonitorStore(url)
            try:
                yield Env(remote, local, settings)
            finally:
                remote.close()


# -- declaring -----------------------------------------------------------------------------------


def test_monitors_round_trip(env: Env) -> None:
    assert env.store.apply(CONFIG, actor="alice") is True
    stored = env.store.get("w")
    assert stored.monitor == Monitor.model_validate(CONFIG)
    assert stored.updated_by == "alice"
    assert stored.updated_at > 0
    assert stored == env.local.get("w")
    env.store.apply({**CONFIG, "name": "a-first", "window": "1h"}, actor="bob")
    assert [s.monitor.name for s in env.store.list()] == ["a-first", "w"]
    assert env.store.list()[0].monitor.window == "1h"

    assert env.store.delete("w", actor="bob") is True
    with pytest.raises(NotFound, match="No monitor named 'w'"):
        env.store.get("w")
    assert env.store.delete("w", actor="bob") is False
    assert [s.monitor.name for s in env.store.list()] == ["a-first"]
    applied, deleted = env.events("w")
    assert (applied.action, applied.actor, applied.before) == ("monitor.apply", "alice", None)
    assert (deleted.action, deleted.actor, deleted.after) == ("monitor.delete", "bob", None)
    assert deleted.before is not None
    assert deleted.before["deployment"] == "online"


def test_applying_the_same_monitor_again_changes_and_records_nothing(env: Env) -> None:
    assert env.store.apply(CONFIG, actor="alice") is True
    first = env.store.get("w")
    assert env.store.apply(CONFIG, actor="bob") is False
    assert env.store.apply(Monitor.model_validate(CONFIG), actor="bob") is False
    assert env.store.get("w") == first  # not even its updated_by
    assert len(env.events("w")) == 1
    assert env.store.apply({**CONFIG, "window": "6h"}, actor="bob") is True
    [_, changed] = env.events("w")
    assert changed.actor == "bob"
    assert (changed.before or {}).get("window") is None  # the default, not stored
    assert (changed.after or {})["window"] == "6h"


def test_a_monitor_without_since_starts_when_it_was_applied_on_the_stores_clock(
    env: Env,
) -> None:
    ml.set_store_clock(day(9) + timedelta(hours=5), settings=env.settings)
    config = {k: v for k, v in CONFIG.items() if k != "since"}
    assert env.store.apply(config, actor="alice") is True
    assert env.store.get("w").monitor.since == day(9) + timedelta(hours=5)
    ml.set_store_clock(day(20), settings=env.settings)
    assert env.store.apply(config, actor="alice") is False  # keeps the start it was given
    assert env.store.get("w").monitor.since == day(9) + timedelta(hours=5)


def test_webhook_urls_are_checked(env: Env) -> None:
    allowed = {**CONFIG, "webhooks": ["https://hooks.example.com/a", "http://10.1.2.3/hook"]}
    assert env.store.apply(allowed, actor="alice") is True
    assert env.store.get("w").monitor.webhooks == tuple(allowed["webhooks"])
    for i, url in ((0, "http://169.254.169.254/latest/meta-data"), (1, "http://192.168.1.5/")):
        hooks = ["https://hooks.example.com/a"] * i + [url]
        with pytest.raises(InvalidArgument, match="MODELLOOP_WEBHOOK_ALLOWED_NETWORKS") as caught:
            env.store.apply({**CONFIG, "webhooks": hooks}, actor="alice")
        assert [d["field"] for d in caught.value.details] == [f"webhooks.{i}"]
    with pytest.raises(InvalidArgument) as caught:
        env.store.apply({**CONFIG, "webhooks": ["ftp://hooks.example.com/a"]}, actor="alice")
    assert [d["field"] for d in caught.value.details] == ["webhooks"]
    assert env.store.get("w").monitor.webhooks == tuple(allowed["webhooks"])  # unchanged
    assert len(env.events("w")) == 1


def test_bad_documents_are_refused_field_by_field(env: Env) -> None:
    bad = {
        "name": "w",
        "deployment": "online",
        "window": "7m",
        "alerts": [{"name": "x"}, {"name": "y", "metric": "drift.nothing", "above": 1}],
        "mistake": 1,
    }
    with pytest.raises(InvalidArgument) as caught:
        env.store.apply(bad, actor="alice")
    fields = {d["field"]: d["message"] for d in caught.value.details}
    assert "divides a day" in fields["window"]
    assert "Field required" in fields["alerts.0.metric"]
    assert "unknown metric 'drift.nothing'" in fields["alerts.1.metric"]
    assert "unknown setting" in fields["mistake"]
    assert caught.value.message.startswith("monitor is not a valid monitor: ")
    for name in ("a b", "-w", "x" * 129, "w/../x"):
        with pytest.raises(InvalidArgument) as caught:
            env.store.apply({**CONFIG, "name": name}, actor="alice")
        assert [d["field"] for d in caught.value.details] == ["name"]
    with pytest.raises(InvalidArgument, match="expected a mapping"):
        env.store.apply([CONFIG], actor="alice")  # type: ignore[arg-type]
    assert env.store.list() == []
    assert env.events("w") == []


@pytest.mark.parametrize("name", ["nope", "a b", "..", "x" * 200, "w%2Fx"])
def test_a_monitor_that_is_not_stored_is_not_found_everywhere(env: Env, name: str) -> None:
    env.store.apply(CONFIG, actor="alice")
    message = f"No monitor named {name!r}: create it with 'modelloop monitor apply'"
    calls: list[Callable[[], object]] = [
        lambda: env.store.get(name),
        lambda: env.store.windows(name),
        lambda: env.store.windows(name, "performance", version=2),
        lambda: env.store.run(name),
    ]
    for call in calls:
        with pytest.raises(NotFound) as caught:
            call()
        assert caught.value.message == message
    assert env.store.delete(name, actor="alice") is False
    assert env.store.alerts(name) == []
    assert [s.monitor.name for s in env.store.list()] == ["w"]


def test_reads_refuse_what_they_cannot_answer(env: Env) -> None:
    env.store.apply(CONFIG, actor="alice")
    refused: list[tuple[Callable[[], object], str]] = [
        (lambda: env.store.windows("w", "bogus"), "kind must be 'drift' or 'performance'"),
        (lambda: env.store.windows("w", version=-1), "version must be a model version"),
        (lambda: env.store.windows("w", limit=0), "limit must be between 1 and 100,000"),
        (lambda: env.store.alerts(state="open"), "state must be 'firing' or 'resolved'"),
        (lambda: env.store.alerts(limit=10_001), "limit must be between 1 and 10,000"),
        (lambda: env.store.run("w", window="someday"), "window='someday' is not an ISO date"),
    ]
    for call, message in refused:
        with pytest.raises(InvalidArgument) as caught:
            call()
        assert caught.value.message.startswith(message), caught.value.message


# -- windows and alerts --------------------------------------------------------------------------


def test_windows_and_alerts_read_back_with_their_filters(env: Env) -> None:
    env.store.apply(CONFIG, actor="alice")
    env.store.apply({**CONFIG, "name": "other"}, actor="alice")
    transitions = [
        env.record("w", "drift", n, {"drift.share": share, "predictions": 100.0}, version=3)
        for n, share in ((1, 0.1), (2, 0.5), (3, 0.6), (4, 0.1))
    ]
    assert [[(a["rule"], a["state"]) for a in r.alerts] for r in transitions] == [
        [],
        [("inputs", "firing")],
        [],  # still firing: deduplicated
        [("inputs", "resolved")],
    ]
    env.record("w", "performance", 1, {"performance.auc_roc": 0.9})
    env.record("other", "drift", 4, {"drift.share": 0.9})  # fires the other monitor's rule
    assert env.record("w", "drift", 2, {"drift.share": 0.9}).stored is False  # stored already

    drift = env.store.windows("w", "drift")
    assert [w["window_start"] for w in drift] == [day(n) for n in (1, 2, 3, 4)]
    assert [w["window_end"] for w in drift] == [day(n) for n in (2, 3, 4, 5)]
    assert [w["values"]["drift.share"] for w in drift] == [0.1, 0.5, 0.6, 0.1]
    assert {(w["monitor"], w["kind"], w["model_version"], w["status"]) for w in drift} == {
        ("w", "drift", 0, "ok")
    }
    assert drift[0]["n_predictions"] == 100
    assert drift[0]["report"] == {"notes": []}
    assert drift[0]["computed_at"] == day(2)
    assert drift == env.local.windows("w", "drift")  # the same answer on every backend
    every = env.store.windows("w")  # oldest first, then by kind
    assert [(w["kind"], w["window_start"]) for w in every] == [
        ("drift", day(1)),
        ("performance", day(1)),
        *(("drift", day(n)) for n in (2, 3, 4)),
    ]
    version = env.store.windows("w", "drift", version=3)
    assert [(w["model_version"], w["n_predictions"]) for w in version] == [(3, 40)] * 4
    assert [w["values"]["drift.share"] for w in version] == [0.05, 0.25, 0.3, 0.05]
    assert env.store.windows("w", "drift", version=4) == []
    between = env.store.windows("w", "drift", since=day(2), until=day(4))
    assert [w["window_start"] for w in between] == [day(2), day(3)]
    newest = env.store.windows("w", "drift", limit=2)
    assert [w["window_start"] for w in newest] == [day(3), day(4)]  # newest two, oldest first
    assert env.store.windows("other", "performance") == []

    [resolved] = env.store.alerts("w")
    assert (resolved.rule, resolved.severity, resolved.state) == ("inputs", "critical", "resolved")
    assert (resolved.first_window, resolved.last_window) == (day(2), day(4))
    assert (resolved.breaches, resolved.value, resolved.condition) == (2, 0.1, "> 0.2")
    assert resolved.opened_at == day(3)
    assert resolved.resolved_at == day(5)
    [firing] = env.store.alerts(state="firing")
    assert (firing.monitor, firing.state, firing.value) == ("other", "firing", 0.9)
    assert [a.monitor for a in env.store.alerts()] == ["other", "w"]  # newest first
    assert [a.monitor for a in env.store.alerts(limit=1)] == ["other"]
    assert env.store.alerts("w", state="firing") == []
    assert env.store.alerts(state="resolved") == [resolved]
    assert env.store.alerts() == env.local.alerts()

    assert env.store.delete("w", actor="bob") is True  # its windows and alerts go with it
    assert env.local.windows("other", "drift")[0]["values"] == {"drift.share": 0.9}
    assert [a.monitor for a in env.store.alerts()] == ["other"]
    env.store.apply(CONFIG, actor="alice")
    assert env.store.windows("w") == []


# -- running -------------------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def running(
    request: pytest.FixtureRequest, home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[MonitorStore, Watched]]:
    """A watched deployment (a model with its reference, its prediction log) and a store."""
    with contextlib.ExitStack() as stack:
        if request.param == "postgres":
            monkeypatch.setenv("MODELLOOP_DATABASE_URL", stack.enter_context(postgres_schema()))
        stack.callback(lambda: close_database(load_settings().database_url))  # before the drop
        stack.callback(fluent.close_clients)
        watched = stack.enter_context(contextlib.contextmanager(_watched)())
        if request.param == "http":
            from modelloop.monitoring.http import HttpMonitorStore

            url = stack.enter_context(live_server(watched.settings))
            store: MonitorStore = HttpMonitorStore(url)
        else:
            store = open_monitor_store(watched.settings)
        stack.callback(store.close)
        yield store, watched


def test_a_run_stores_due_windows_and_alerts_fire_then_resolve(
    running: tuple[MonitorStore, Watched],
) -> None:
    store, watched = running
    watched.log_predictions(day(1), 3000, seed=1)
    watched.log_predictions(day(2), 3000, seed=2, shift=1.5)
    watched.log_predictions(day(3), 3000, seed=3)
    config = {
        "name": "w",
        "deployment": DEPLOYMENT,
        "model": MODEL,
        "since": "2026-01-01",
        "alerts": [RULE],
        "performance": {"enabled": False},
    }
    store.apply(config, actor="alice")
    ml.set_store_clock(day(4) + timedelta(hours=1), settings=watched.settings)
    with pytest.raises(InvalidArgument, match="not due yet: it closes"):
        store.run("w", window="2026-01-04T12:00")  # due on the store's clock, not the wall's

    done = store.run("w")
    assert [(r["kind"], r["window_start"], r["stored"]) for r in done] == [
        ("drift", to_ms(day(n)), True) for n in (1, 2, 3)
    ]
    assert [[(a["rule"], a["state"]) for a in r["alerts"]] for r in done] == [
        [],
        [("inputs", "firing")],
        [("inputs", "resolved")],
    ]
    whole = [next(s for s in r["scopes"] if s["model_version"] == 0) for r in done]
    assert [s["n_predictions"] for s in whole] == [3000] * 3
    assert whole[1]["values"]["drift.share"] >= 0.25
    assert [s["model_version"] for s in done[0]["scopes"]] == [0, watched.version]

    windows = store.windows("w", "drift")
    assert [w["window_start"] for w in windows] == [day(1), day(2), day(3)]
    assert [w["status"] for w in windows] == ["ok"] * 3
    assert windows[1]["values"]["drift.share"] == whole[1]["values"]["drift.share"]
    assert "amount" in windows[1]["report"]["drifted_columns"]
    assert [w["model_version"] for w in store.windows("w", version=watched.version)] == [
        watched.version
    ] * 3
    [alert] = store.alerts("w")
    assert (alert.state, alert.first_window, alert.last_window) == ("resolved", day(2), day(3))
    assert alert.notified == "resolved"  # no webhooks: delivered by being logged

    assert store.run("w") == []  # nothing new is due
    [again] = store.run("w", window="2026-01-02T12:00")
    assert (again["window_start"], again["stored"], again["scopes"]) == (to_ms(day(2)), False, [])
    assert store.alerts("w") == [alert]


# -- the SDK and the command line through a server -----------------------------------------------


def _outcome(call: Callable[[], Any]) -> Any:
    """What a call answers, or the class, message and details of what it raised."""
    try:
        return call()
    except ModelloopError as exc:
        return (type(exc).__name__, exc.message, exc.details)


def test_every_public_monitoring_call_answers_through_a_server_as_locally(
    watched: Watched, monkeypatch: pytest.MonkeyPatch
) -> None:
    watched.log_predictions(day(1), 3000, seed=1)
    watched.send_labels(watched.log_predictions(day(2), 3000, seed=2, shift=1.5), at=day(3))
    ml.set_store_clock(day(5) + timedelta(hours=1), settings=watched.settings)
    local = watched.settings
    monkeypatch.setenv("MODELLOOP_USER", "carol")
    config = {
        "name": "w",
        "deployment": DEPLOYMENT,
        "model": MODEL,
        "since": "2026-01-01",
        "alerts": [RULE],
        "performance": {"label_delay": "1d", "min_labels": 20},
    }
    cli = CliRunner()

    def both(call: Callable[[], Any]) -> tuple[Any, Any]:
        """``call`` with MODELLOOP_TRACKING_URI at the server, then without it."""
        remote = _outcome(call)
        with monkeypatch.context() as patch:
            patch.delenv("MODELLOOP_TRACKING_URI")
            return remote, _outcome(call)

    def command(*args: str) -> Callable[[], tuple[int, str, str]]:
        def invoke() -> tuple[int, str, str]:
            done = cli.invoke(app, ["monitor", *args])
            return done.exit_code, done.stdout, done.stderr

        return invoke

    with live_server(local) as url:
        monkeypatch.setenv("MODELLOOP_TRACKING_URI", url)
        assert load_settings().is_remote
        assert ml.apply_monitor(config) is True
        assert ml.apply_monitor(config) is False
        [event] = audit.events(SqlMonitorStore.local(local).db, object_type="monitor")
        assert (event.action, event.actor) == ("monitor.apply", "carol")
        done = ml.run_monitor("w")  # the server checks what is due on the store's clock
        assert {(r["kind"], r["window_start"]) for r in done} == {
            *(("drift", to_ms(day(n))) for n in (1, 2, 3, 4)),
            *(("performance", to_ms(day(n))) for n in (1, 2, 3)),
        }
        assert all(r["stored"] for r in done)

        remote, here = both(ml.list_monitors)
        assert remote == here == [ml.get_monitor("w", settings=local)]
        for call in (
            lambda: ml.get_monitor("w"),
            lambda: ml.run_monitor("w", window="2026-01-02T10:00"),
            lambda: ml.list_alerts(),
            lambda: ml.list_alerts("w", state="firing"),
            lambda: ml.list_alerts("w", state="resolved"),
            lambda: ml.get_monitor("nope"),
            lambda: ml.run_monitor("nope"),
            lambda: ml.run_monitor("w", window="2026-01-09"),
            lambda: ml.run_monitor("w", window="soon"),
            lambda: ml.monitor_results("nope"),
            lambda: ml.monitor_results("w", kind="bogus"),
            lambda: ml.monitor_results("w", start="yesterday"),
            lambda: ml.list_alerts(state="open"),
            lambda: ml.apply_monitor({**config, "window": "7m", "mistake": 1}),
            lambda: ml.apply_monitor({**config, "webhooks": ["http://127.0.0.1:9/hook"]}),
            lambda: delete_monitor("nope"),
            command("list", "-o", "json"),
            command("show", "w"),
            command("results", "w", "--kind", "performance", "-o", "json"),
            command("alerts", "w", "-o", "json"),
            command("run", "w", "--window", "2026-01-01", "-o", "json"),
        ):
            remote, here = both(call)
            assert remote == here
        assert both(lambda: ml.run_monitor("w", window="2026-01-02"))[0][0]["stored"] is False
        [alert] = ml.list_alerts("w")  # no traffic after the shifted day: no value to resolve it
        assert (alert.state, alert.first_window) == ("firing", day(2))
        assert ml.list_alerts(state="firing") == [alert]
        assert both(lambda: ml.get_monitor("nope"))[0][0] == "NotFound"
        assert both(lambda: ml.list_alerts(state="open"))[0][0] == "InvalidArgument"

        scopes = (("drift", 0, 4), ("performance", 0, 3), ("drift", watched.version, 2))
        for kind, version, windows in scopes:  # the version answered on the two days of traffic
            remote, here = both(
                lambda k=kind, v=version: ml.monitor_results("w", kind=k, version=v)
            )
            assert len(remote) == windows
            pd.testing.assert_frame_equal(remote, here)
        remote, here = both(lambda: ml.monitor_results("w", start="2026-01-02", end="2026-01-04"))
        assert list(remote["window_start"]) == [pd.Timestamp(day(n)) for n in (2, 3)]
        pd.testing.assert_frame_equal(remote, here)
        shown = json.loads(command("results", "w", "-o", "json")()[1])
        assert shown[1]["drift.share"] >= 0.25

        delete_monitor("w")
        remote, here = both(ml.list_monitors)
        assert remote == here == []
        assert both(lambda: ml.list_alerts("w")) == ([], [])
        [_, deleted] = audit.events(SqlMonitorStore.local(local).db, object_type="monitor")
        assert (deleted.action, deleted.actor) == ("monitor.delete", "carol")
