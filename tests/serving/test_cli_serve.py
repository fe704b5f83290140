"""``modelloop serve`` as a real program, and ``modelloop deployments|predictions``.

A real subprocess shows what in-process tests cannot: the console script starts uvicorn (with
worker processes), answers /ready once the model is loaded, refuses unsafe starts with one
``Error:`` line and the error's exit code, and flushes the prediction log when stopped.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

import modelloop as ml
from modelloop.cli import app
from modelloop.serving.fluent import get_deployment
from modelloop.serving.server import ServeSpec, build_app
from modelloop.settings import load_settings
from tests.cli_helpers import invoke, runner
from tests.live_server import live_server
from tests.serving.conftest import Registry, live_app, record, transactions

SCRIPT = Path(sys.executable).parent / "modelloop"
REPO = Path(__file__).resolve().parents[2]


class Constant:
    """A model only pickle can store: the 'python' flavor."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.full(len(frame), 0.5)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MODELLOOP_TOKEN"}
    env["PYTHONPATH"] = f"{REPO}{os.pathsep}{env.get('PYTHONPATH', '')}"
    return {**env, **extra}


@contextmanager
def serve(*args: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``modelloop serve ARGS`` on a free port, once it answers /ready; SIGINT afterwards."""
    port = _free_port()
    output = Path(f"serve-{port}.log").open("wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [str(SCRIPT), "serve", *args, "--port", str(port)],
        env=_env(),
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, Path(output.name).read_text()
            assert time.monotonic() < deadline, "modelloop serve did not become ready"
            try:
                if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        output.close()


def test_serve_answers_ready_and_flushes_its_log_on_stop(registry: Registry) -> None:
    with serve("fraud@champion") as (url, proc):
        ready = httpx.get(f"{url}/ready").json()
        ids = [
            httpx.post(f"{url}/predict", json=record(i)).json()["prediction_id"] for i in range(5)
        ]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    assert ready["models"][0]["version"] == 1
    assert ready["deployment"] == "fraud"
    assert sorted(ml.load_predictions("fraud")["prediction_id"]) == sorted(ids)


def test_several_workers_each_log_their_own_predictions(registry: Registry) -> None:
    with serve("fraud@champion", "--workers", "2") as (url, proc):
        with httpx.Client(base_url=url) as client:
            ids = [
                client.post("/predict", json=record(i)).json()["prediction_id"] for i in range(40)
            ]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    logged = ml.load_predictions("fraud")
    assert sorted(logged["prediction_id"]) == sorted(ids)


def test_serve_refuses_a_public_address_without_a_token(registry: Registry) -> None:
    done = subprocess.run(
        [str(SCRIPT), "serve", "fraud@champion", "--host", "0.0.0.0", "--port", str(_free_port())],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("Error: Refusing to serve on '0.0.0.0'")
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("token", [" ", "x"])
def test_serve_refuses_a_blank_or_short_token(registry: Registry, token: str) -> None:
    # A missing deployment file is refused after the token: should it pass, nothing starts.
    result = runner.invoke(
        app,
        ["serve", "--deployment", "missing.yaml", "--host", "0.0.0.0"],
        env={"MODELLOOP_TOKEN": token},
    )
    assert result.exit_code == 2, result.output
    assert "MODELLOOP_TOKEN" in result.output
    assert "modelloop users token --generate" in result.output
    assert "Traceback" not in result.output


def test_serve_refuses_a_pickled_model_unless_allowed(registry: Registry) -> None:
    frame, _ = transactions()
    with ml.start_run(experiment="pickles") as run:
        ml.register_model(run, "pickled", Constant(), training_data=frame, allow_pickle=True)
    ml.set_alias("pickled", "champion", 1, reason="test")
    done = subprocess.run(
        [str(SCRIPT), "serve", "pickled@champion", "--port", str(_free_port())],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "pickle" in done.stderr.splitlines()[-1]
    assert "Traceback" not in done.stderr
    with serve("pickled@champion", "--allow-pickle") as (url, _):
        assert httpx.post(f"{url}/predict", json=record(0)).json()["prediction"] == 0.5


def test_serve_needs_a_model_or_a_deployment(registry: Registry) -> None:
    neither = invoke("serve")
    both = invoke("serve", "fraud@champion", "--deployment", "x")
    bad_ref = invoke("serve", "fraud")
    assert neither.exit_code == both.exit_code == bad_ref.exit_code == 2
    assert "Give a model" in neither.output
    assert "NAME@ALIAS" in bad_ref.output


def test_deployments_apply_list_show(registry: Registry, tmp_path: Path) -> None:
    file = tmp_path / "canary.yaml"
    file.write_text(
        "name: fraud-canary\nmodel: fraud@champion\nchallenger: fraud@challenger\n"
        "mode: canary\ncanary_percent: 10\nsticky_key: card_id\n"
    )
    applied = invoke("deployments", "apply", str(file))
    same = invoke("deployments", "apply", str(file))
    listed = invoke("deployments", "list")
    shown = invoke("deployments", "show", "fraud-canary")
    as_json = invoke("deployments", "show", "fraud-canary", "--output", "json")
    missing = invoke("deployments", "show", "nope")
    assert applied.exit_code == 0, applied.output
    assert "applied" in applied.output
    assert "unchanged" in same.output
    assert "fraud-canary" in listed.output
    assert "canary 10%" in listed.output
    assert "challenger: fraud@challenger" in shown.output
    assert '"canary_percent": 10.0' in as_json.output
    assert missing.exit_code == 3
    events = [e for e in ml.audit_log() if e.object_type == "deployment"]
    assert len(events) == 1
    assert (events[0].after or {}).get("mode") == "canary"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("name: x\nmodel: fraud@champion\nmode: canary\n", "needs a challenger"),
        ("name: x\nmodel: fraud\n", "not a model reference"),
        ("name: x\nmodel: a@b\nallow_pickle: true\n", "allow_pickle"),
        ("name: x\nmodel: a@b\nreplicas: 3\n", "unknown setting"),
        ("name: x\nmodel: a@b\nchallenger: a@c\nmode: canary\ncanary_percent: 120\n", "100"),
        ("- just\n- a list\n", "expected a mapping"),
        ("name: [unclosed\n", "not valid YAML"),
    ],
)
def test_invalid_deployment_files_are_explained(
    registry: Registry, tmp_path: Path, text: str, problem: str
) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text(text)
    result = invoke("deployments", "apply", str(file))
    assert result.exit_code == 2
    assert problem in result.output


def test_a_stored_deployment_is_followed_while_serving(registry: Registry, tmp_path: Path) -> None:
    file = tmp_path / "d.yaml"
    file.write_text("name: live\nmodel: fraud@champion\n")
    assert invoke("deployments", "apply", str(file)).exit_code == 0
    spec = ServeSpec(deployment={"name": "live", "model": "fraud@champion"}, stored=True)
    spec = ServeSpec(**{**spec.__dict__, "poll_interval": 0.1})
    with live_app(build_app(spec, registry.settings)) as live:
        before = live.post("/predict", record(0)).json()
        file.write_text(
            "name: live\nmodel: fraud@champion\nchallenger: fraud@challenger\n"
            "mode: canary\ncanary_percent: 100\n"
        )
        assert invoke("deployments", "apply", str(file)).exit_code == 0
        deadline = time.monotonic() + 30
        while live.get("/ready").json()["mode"] != "canary":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        after = live.post("/predict", record(0)).json()
    assert (before["role"], before["version"]) == ("champion", 1)
    assert (after["role"], after["version"]) == ("challenger", 2)


def test_a_deployment_stored_on_a_server_is_served_and_followed(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``modelloop serve --deployment NAME`` with ``MODELLOOP_TRACKING_URI`` set: the serving
    process reads the deployment and its models through the server, and follows a change
    applied to the server."""
    with live_server(registry.settings) as url:
        monkeypatch.setenv("MODELLOOP_TRACKING_URI", url)
        remote = load_settings()
        assert remote.tracking_uri == url
        ml.apply_deployment({"name": "live", "model": "fraud@champion"}, settings=remote)
        spec = ServeSpec(deployment={"name": "live", "model": "fraud@champion"}, stored=True)
        spec = ServeSpec(**{**spec.__dict__, "poll_interval": 0.1})
        with live_app(build_app(spec, remote)) as live:
            before = live.post("/predict", record(0)).json()
            changed = {"name": "live", "model": "fraud@champion", "mode": "canary"}
            changed |= {"challenger": "fraud@challenger", "canary_percent": 100}
            ml.apply_deployment(changed, settings=remote)
            deadline = time.monotonic() + 30
            while live.get("/ready").json()["mode"] != "canary":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            after = live.post("/predict", record(0)).json()
    assert (before["role"], before["version"]) == ("champion", 1)
    assert (after["role"], after["version"]) == ("challenger", 2)


def test_predictions_export_writes_one_parquet_file(registry: Registry, tmp_path: Path) -> None:
    with live_app(
        build_app(ServeSpec({"name": "x", "model": "fraud@champion"}, False), registry.settings)
    ) as live:
        pids = [live.post("/predict", record(i)).json()["prediction_id"] for i in range(4)]
        live.flush()
        live.post("/feedback", {"prediction_id": pids[0], "label": 1})
    out = tmp_path / "export" / "fraud.parquet"
    result = invoke("predictions", "export", "fraud", "--output", str(out))
    assert result.exit_code == 0, result.output
    assert "Wrote 4 predictions (1 labelled)" in result.output
    frame: Any = pd.read_parquet(out)
    assert sorted(frame["prediction_id"]) == sorted(pids)
    assert frame.set_index("prediction_id").loc[pids[0], "label"] == 1.0
    # A registered model without predictions in the range: an empty file, said so. A name
    # neither the registry nor the log knows: an error, and no file.
    empty = invoke("predictions", "export", "fraud", "--start", "2001-01-01",
                                "--end", "2001-01-02", "--output", str(out))  # fmt: skip
    assert empty.exit_code == 0, empty.output
    assert "Wrote 0 predictions" in empty.output
    typo = tmp_path / "typo.parquet"
    missing = invoke("predictions", "export", "fruad", "--output", str(typo))
    assert missing.exit_code == 3, missing.output
    assert "Registered model 'fruad' does not exist" in missing.output
    assert not typo.exists()


def test_deployments_apply_from_options_and_a_file_with_overrides(
    registry: Registry, tmp_path: Path
) -> None:
    from_options = invoke("deployments", "apply", "--name", "quick", "--model", "fraud@champion")
    file = tmp_path / "shadow.yaml"
    file.write_text("name: quick\nmodel: fraud@champion\nchallenger: fraud/2\nmode: shadow\n")
    overridden = invoke(
        "deployments", "apply", str(file), "--no-log-predictions", "--explain-top-k", "5"
    )
    nothing = invoke("deployments", "apply")
    assert from_options.exit_code == 0, from_options.output
    assert overridden.exit_code == 0, overridden.output
    assert nothing.exit_code == 2
    stored = get_deployment("quick").deployment
    assert stored.mode.value == "shadow"
    assert str(stored.challenger) == "fraud/2"
    assert stored.log_predictions is False
    assert stored.explain_top_k == 5
    assert stored.name == "quick"
