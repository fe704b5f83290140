"""Serving fixtures: small real LightGBM models in a real registry, and a real uvicorn app.

The models are trained on generated card transactions with every kind of feature a signature
knows (float, int, bool, category), registered through the SDK, and served from the registry
exactly as ``modelloop serve`` does (``build_app``). Protected aliases are switched off so tests
can move ``champion`` without an approval round trip.
"""

from __future__ import annotations

import functools
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import uvicorn
from starlette.applications import Starlette

import modelloop as ml
from modelloop.serving.prediction_log import PredictionBatch, new_prediction_ids
from modelloop.serving.server import ServeSpec, build_app
from modelloop.settings import Settings, load_settings
from modelloop.store import close_database
from modelloop.tracking import fluent

STARTUP_TIMEOUT = 60.0
MERCHANTS = ("grocery", "travel", "online", "atm")


@functools.cache
def transactions(rows: int = 2000, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Generated card transactions and their fraud label (cached: do not modify them)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "amount": rng.gamma(2.0, 50.0, rows),
            "merchant": pd.Categorical(rng.choice(MERCHANTS, rows), categories=MERCHANTS),
            "hour": rng.integers(0, 24, rows),
            "foreign": rng.random(rows) < 0.1,
            "velocity": rng.normal(size=rows),
        }
    )
    risk = (frame["amount"] > 180) | frame["foreign"] | (frame["merchant"] == "online")
    noise = rng.random(rows) < 0.05
    return frame, (risk ^ noise).astype(int)


def record(i: int = 0, **changes: Any) -> dict[str, Any]:
    """A valid JSON record (row ``i`` of the training data)."""
    return {**_records()[i], **changes}


@functools.cache
def _records() -> list[dict[str, Any]]:
    frame, _ = transactions()
    return [
        {
            "amount": float(row.amount),
            "merchant": str(row.merchant),
            "hour": int(row.hour),
            "foreign": bool(row.foreign),
            "velocity": float(row.velocity),
        }
        for row in frame.itertuples()
    ]


def train(n_estimators: int = 20, seed: int = 0) -> Any:
    import lightgbm as lgb

    frame, label = transactions(seed=seed)
    return lgb.LGBMClassifier(
        n_estimators=n_estimators, num_leaves=7, verbose=-1, random_state=seed
    ).fit(frame, label)


@dataclass
class Registry:
    """Two registered versions of ``fraud`` with ``champion`` -> v1, ``challenger`` -> v2."""

    settings: Settings
    name: str = "fraud"

    def register(self, n_estimators: int, seed: int = 0) -> int:
        frame, _ = transactions(seed=seed)
        with ml.start_run(experiment="serving-tests") as run:
            version = ml.register_model(
                run, self.name, train(n_estimators, seed), training_data=frame
            )
        return version.version

    def alias(self, alias: str, version: int) -> None:
        ml.set_alias(self.name, alias, version, reason="test")

    def model(self, version: int) -> Any:
        return ml.load_model(f"models:/{self.name}/{version}")


def _registry() -> Registry:
    reg = Registry(load_settings())
    v1 = reg.register(20, seed=0)
    v2 = reg.register(40, seed=1)
    reg.alias("champion", v1)
    reg.alias("challenger", v2)
    return reg


@pytest.fixture
def registry(home: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    monkeypatch.setenv("MODELLOOP_PROTECTED_ALIASES", "")
    return _registry()


@pytest.fixture(scope="module")
def registry_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """Like ``registry``, shared by a module's tests (they must not move its aliases)."""
    path = tmp_path_factory.mktemp("serving")
    with pytest.MonkeyPatch.context() as patch:
        for name in ("MODELLOOP_DATABASE_URL", "MODELLOOP_ARTIFACT_URI", "MODELLOOP_TRACKING_URI"):
            patch.delenv(name, raising=False)
        patch.setenv("MODELLOOP_HOME", str(path / "home"))
        patch.setenv("MODELLOOP_PROTECTED_ALIASES", "")
        patch.chdir(path)
        yield _registry()
        fluent.close_clients()
        close_database(load_settings().database_url)


@dataclass
class Live:
    """A served app and an HTTP client on it."""

    client: httpx.Client
    app: Starlette

    @property
    def service(self) -> Any:
        return self.app.state.service

    def post(self, path: str, body: Any, **kwargs: Any) -> httpx.Response:
        return self.client.post(path, json=body, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, **kwargs)

    def flush(self) -> None:
        """Write the pending predictions now (as shutdown would)."""
        assert self.service.log.flush(timeout=30)


@contextmanager
def live_app(app: Starlette) -> Iterator[Live]:
    """Run ``app`` under uvicorn (lifespan on) on 127.0.0.1."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", ws="none", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the serving app did not start (see the log above)")
        time.sleep(0.01)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0) as client:
            yield Live(client, app)
    finally:
        server.should_exit = True
        thread.join(timeout=STARTUP_TIMEOUT)
        sock.close()


@contextmanager
def serving(
    settings: Settings, deployment: dict[str, Any] | None = None, **spec: Any
) -> Iterator[Live]:
    """``modelloop serve`` of ``deployment`` (default: fraud@champion), in this process."""
    config = deployment or {"name": "fraud-online", "model": "fraud@champion"}
    app = build_app(ServeSpec(deployment=config, stored=False, **spec), settings)
    with live_app(app) as live:
        yield live


class _Decoder:
    """Inputs of a one-feature model, as the log stores them."""

    def input_columns(self, matrix: np.ndarray) -> dict[str, Any]:
        return {"x": matrix[:, 0]}


def log_batch(ms: int, rows: int = 3, model: str = "m", version: int = 1) -> PredictionBatch:
    """``rows`` predictions of ``model`` made at unix time ``ms``, for the log directly."""
    return PredictionBatch(
        prediction_ids=new_prediction_ids(rows, ms),
        timestamp_ms=ms,
        deployment="d",
        model_name=model,
        model_version=version,
        role="champion",
        latency_ms=1.5,
        scores=np.full(rows, 0.25),
        inputs=np.arange(rows, dtype=np.float64).reshape(rows, 1),
        decoder=_Decoder(),
    )
