"""Monitors through every door: the REST API of a real server, the SDK pointed at it, the CLI,
the Prometheus gauges, webhooks that receive alerts, and the scheduler of `modelloop server`."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

import modelloop as ml
from modelloop.cli.app import app
from modelloop.clock import to_ms
from modelloop.errors import InvalidArgument
from modelloop.monitoring.runner import check_windows
from modelloop.settings import load_settings
from modelloop.store import open_database

from ..live_server import live_server
from .conftest import DEPLOYMENT, MODEL, Watched, day

DRIFT_RULE = {"name": "inputs", "metric": "drift.share", "above": 0.2, "severity": "critical"}


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]
    failures_left: int

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if type(self).failures_left > 0:
            type(self).failures_left -= 1
            self.send_response(503)
        else:
            type(self).received.append(body)
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[tuple[str, type[_Hook]]]:
    handler = type("Hook", (_Hook,), {"received": [], "failures_left": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/alerts", handler
    server.shutdown()
    server.server_close()


def _drifting_days(watched: Watched) -> None:
    watched.log_predictions(day(1), 3000, seed=1)
    watched.log_predictions(day(2), 3000, seed=2, shift=1.5)


def test_alerts_reach_a_webhook_and_a_down_webhook_loses_nothing(
    watched: Watched, hook: tuple[str, type[_Hook]]
) -> None:
    url, handler = hook
    settings = dataclasses.replace(watched.settings, webhook_allowed_networks=("127.0.0.1/32",))
    watched.settings = settings  # the operator allows the test's own webhook on loopback
    _drifting_days(watched)
    handler.failures_left = 100  # down for the first run (3 attempts per delivery)
    name = watched.monitor(alerts=[DRIFT_RULE], webhooks=[url], performance={"enabled": False})
    check_windows(name, now=day(3) + timedelta(hours=1), settings=settings)
    [alert] = ml.list_alerts(name)
    assert alert.state == "firing"
    assert alert.notified is None  # stored, not yet delivered
    assert alert.deliveries[0]["targets"][0]["status"] == 503
    assert handler.received == []

    handler.failures_left = 0
    check_windows(name, now=day(3) + timedelta(hours=1), settings=settings)  # nothing new: retry
    [payload] = handler.received
    assert payload["event"] == "alert.firing"
    assert payload["alert"]["rule"] == "inputs"
    assert payload["alert"]["severity"] == "critical"
    assert "drift.share" in payload["text"]
    assert ml.list_alerts(name)[0].notified == "firing"


def test_a_private_webhook_needs_the_operator(watched: Watched) -> None:
    with pytest.raises(InvalidArgument, match="MODELLOOP_WEBHOOK_ALLOWED_NETWORKS") as caught:
        watched.monitor(webhooks=["http://169.254.169.254/latest/meta-data"])
    assert caught.value.details[0]["field"] == "webhooks.0"
    # A name that resolves to loopback passes the config check but is refused at delivery.
    _drifting_days(watched)
    name = watched.monitor(alerts=[DRIFT_RULE], webhooks=["http://localhost:9/hook"],
                           performance={"enabled": False})  # fmt: skip
    check_windows(name, now=day(3) + timedelta(hours=1), settings=watched.settings)
    [alert] = ml.list_alerts(name)
    assert "loopback" in alert.deliveries[0]["targets"][0]["error"]


def test_rest_sdk_and_metrics_through_a_live_server(
    watched: Watched, monkeypatch: pytest.MonkeyPatch
) -> None:
    _drifting_days(watched)
    watched.send_labels(watched.log_predictions(day(3), 3000, seed=3), at=day(4))
    simulated_now = day(5) + timedelta(hours=1)
    ml.set_store_clock(simulated_now, settings=watched.settings)  # the store's data: January
    with live_server(watched.settings) as url:
        bad = httpx.put(f"{url}/api/v1/monitors/w", json={"deployment": DEPLOYMENT, "window": "7m",
                                                          "alerts": [{"name": "x"}]})  # fmt: skip
        assert bad.status_code == 422
        fields = {d["field"] for d in bad.json()["details"]}
        assert {"window", "alerts.0.metric"} <= fields
        assert httpx.get(f"{url}/api/v1/monitors/nope").status_code == 404

        monkeypatch.setenv("MODELLOOP_TRACKING_URI", url)
        remote = load_settings()
        config = {"name": "w", "deployment": DEPLOYMENT, "model": MODEL, "since": "2026-01-01",
                  "alerts": [DRIFT_RULE], "performance": {"label_delay": "1d"}}  # fmt: skip
        assert ml.apply_monitor(config, settings=remote) is True
        assert ml.apply_monitor(config, settings=remote) is False
        assert [m.name for m in ml.list_monitors(settings=remote)] == ["w"]
        assert ml.store_clock(settings=remote).now == simulated_now
        with pytest.raises(InvalidArgument, match="not due yet"):
            ml.run_monitor("w", window="2026-01-05", settings=remote)  # due on the store's clock
        done = ml.run_monitor("w", settings=remote)  # what is due at the store's clock
        assert {(r["kind"], r["window_start"]) for r in done} == {
            *(("drift", to_ms(day(d))) for d in (1, 2, 3, 4)),
            *(("performance", to_ms(day(d))) for d in (1, 2, 3)),
        }

        drift = ml.monitor_results("w", kind="drift", end="2026-01-04", settings=remote)
        assert list(drift["status"]) == ["ok", "ok", "ok"]
        assert drift["drift.share"].iloc[1] >= 0.25
        assert "drift.column.amount" in drift.columns
        perf = ml.monitor_results("w", kind="performance", end="2026-01-04", settings=remote)
        assert perf["performance.label_coverage"].tolist() == [0.0, 0.0, 1.0]
        assert list(perf["status"])[:2] == ["insufficient_labels"] * 2
        [alert] = ml.list_alerts("w", settings=remote)  # fired on day 2, resolved on day 3
        assert (alert.rule, alert.state, alert.first_window) == ("inputs", "resolved", day(2))
        assert ml.list_alerts("w", state="firing", settings=remote) == []

        metrics = httpx.get(f"{url}/metrics").text
        assert 'modelloop_alert_firing{monitor="w",rule="inputs",severity="critical"} 0.0' in (
            metrics
        )  # the newest windows (up to 168 a run, oldest first) had no traffic:
        assert 'modelloop_monitor_value{metric="predictions",monitor="w"} 0.0' in metrics


def test_the_cli_applies_runs_and_shows_a_monitor(watched: Watched, tmp_path: Path) -> None:
    _drifting_days(watched)
    config = {
        "name": "cli",
        "deployment": DEPLOYMENT,
        "model": MODEL,
        "since": "2026-01-01",
        "alerts": [DRIFT_RULE],
        "performance": {"enabled": False},
    }
    path = tmp_path / "monitor.yaml"
    path.write_text(yaml.safe_dump(config))
    runner = CliRunner()
    applied = runner.invoke(app, ["monitor", "apply", str(path)])
    assert applied.exit_code == 0, applied.output
    assert "Monitor cli applied" in applied.stdout
    ran = runner.invoke(app, ["monitor", "run", "cli", "--window", "2026-01-02T10:00"])
    assert ran.exit_code == 0, ran.output
    assert "alert firing: inputs" in ran.stdout
    results = runner.invoke(app, ["monitor", "results", "cli", "-o", "json"])
    [window] = json.loads(results.stdout)
    assert window["window_start"].startswith("2026-01-02")
    assert window["drift.share"] >= 0.25
    alerts = runner.invoke(app, ["monitor", "alerts", "--state", "firing"])
    assert "inputs" in alerts.stdout
    assert "critical" in alerts.stdout

    path.write_text("name: bad\ndeployment: x\nwindow: sometimes\nmistake: 1\n")
    bad = runner.invoke(app, ["monitor", "apply", str(path)])
    assert bad.exit_code != 0
    assert "window: 'sometimes' is not a duration" in bad.stderr
    assert "mistake: unknown setting" in bad.stderr
    assert "Traceback" not in bad.output


def test_the_server_runs_monitors_on_schedule(watched: Watched) -> None:
    _drifting_days(watched)
    watched.monitor(alerts=[DRIFT_RULE], performance={"enabled": False})
    ml.set_store_clock(day(3) + timedelta(hours=1), settings=watched.settings)
    env = {**os.environ, "MODELLOOP_HOME": str(watched.settings.home)}
    env.pop("MODELLOOP_TRACKING_URI", None)
    script = Path(sys.executable).parent / "modelloop"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    server = subprocess.Popen(
        [str(script), "server", "--port", port, "--monitor-interval", "0.5", "--log-level",
         "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    db = open_database(watched.settings.database_url)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not ml.list_alerts("fraud-watch"):
            assert server.poll() is None, server.communicate()[0]
            time.sleep(0.2)
        [alert] = ml.list_alerts("fraud-watch")
        assert alert.rule == "inputs"
        with db.read() as conn:
            ends = conn.exec_driver_sql("SELECT window_end FROM monitor_windows").scalars().all()
        assert sorted(set(ends)) == [to_ms(day(2)), to_ms(day(3))]  # none past the simulated now
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert "Traceback" not in output, output


def test_deleting_a_monitor_removes_its_windows_and_alerts(
    watched: Watched, tmp_path: Path
) -> None:
    _drifting_days(watched)
    name = watched.monitor(alerts=[DRIFT_RULE], performance={"enabled": False})
    check_windows(name, now=day(3) + timedelta(hours=1), settings=watched.settings)
    assert ml.list_alerts(name)
    runner = CliRunner()
    kept = runner.invoke(app, ["monitor", "delete", name], input="n\n")
    assert kept.exit_code == 1  # aborted: nothing deleted
    assert ml.get_monitor(name).name == name

    with live_server(watched.settings) as url:
        assert httpx.delete(f"{url}/api/v1/monitors/{name}").status_code == 204
        assert httpx.delete(f"{url}/api/v1/monitors/{name}").status_code == 404
    db = open_database(watched.settings.database_url)
    with db.read() as conn:
        for table in ("monitor_windows", "monitor_values", "alerts", "monitors"):
            assert conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar() == 0, table
    [event] = [e for e in ml.audit_log() if e.action == "monitor.delete"]
    assert event.before is not None
    assert event.before["name"] == name
    gone = runner.invoke(app, ["monitor", "delete", name, "--yes"])
    assert gone.exit_code == 3
    assert f"No monitor named {name!r}" in gone.stderr
