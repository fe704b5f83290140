"""A watched deployment: a registered fraud model, its prediction log written at chosen times,
labels sent back when chosen, and monitors on it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

import modelloop as ml
from modelloop.monitoring.fluent import apply_monitor
from modelloop.serving.feedback import Label, record_feedback
from modelloop.serving.prediction_log import PredictionBatch, PredictionLog, new_prediction_ids
from modelloop.settings import Settings, load_settings
from modelloop.store import close_database, open_database
from modelloop.tracking import fluent

from ..conftest import postgres_schema

MODEL = "fraud-detector"
DEPLOYMENT = "fraud-online"


def transactions(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 3)), columns=["amount", "hour", "velocity"])
    frame["amount"] += shift
    frame["merchant"] = pd.Categorical(rng.choice(["grocery", "travel", "fuel"], n))
    return frame


def fraud_labels(frame: pd.DataFrame, seed: int) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(seed)
    risk = frame["amount"] + frame["velocity"] + rng.normal(scale=0.5, size=len(frame))
    return (risk.to_numpy() > 1.0).astype(float)


class _Rows:
    """The log's decoder: inputs are row numbers into every frame logged so far."""

    def __init__(self) -> None:
        self.frames: list[pd.DataFrame] = []
        self.offset = 0

    def add(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        self.frames.append(frame.reset_index(drop=True))
        index = np.arange(self.offset, self.offset + len(frame), dtype=np.float64)
        self.offset += len(frame)
        return index.reshape(-1, 1)

    def input_columns(self, matrix: np.ndarray[Any, Any]) -> dict[str, Any]:
        every = pd.concat(self.frames, ignore_index=True)
        rows = every.iloc[matrix[:, 0].astype(int)]
        return {c: rows[c].astype(str if c == "merchant" else float).to_numpy() for c in rows}


@dataclass
class Watched:
    settings: Settings
    model: Any
    version: int
    log: PredictionLog
    rows: _Rows = field(default_factory=_Rows)

    def log_predictions(
        self,
        start: datetime,
        n: int,
        *,
        seed: int,
        shift: float = 0.0,
        spread: timedelta = timedelta(hours=23),
        role: str = "champion",
        version: int | None = None,
        frame: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        """``n`` predictions spread evenly over ``[start, start + spread)``; returns them with
        ``prediction_id``, ``score`` and the true ``label``."""
        frame = transactions(n, seed, shift) if frame is None else frame
        scores = self.model.predict(frame)
        stamps = start.timestamp() * 1000 + np.linspace(
            0, spread.total_seconds() * 1000, n, endpoint=False
        )
        index = self.rows.add(frame)
        ids: list[str] = []
        for chunk in np.array_split(np.arange(n), max(1, n // 50)):
            ms = int(stamps[chunk[0]])
            chunk_ids = new_prediction_ids(len(chunk), ms)
            ids += chunk_ids
            self.log.append(
                PredictionBatch(
                    prediction_ids=chunk_ids,
                    timestamp_ms=ms,
                    deployment=DEPLOYMENT,
                    model_name=MODEL,
                    model_version=version or self.version,
                    role=role,
                    latency_ms=1.0,
                    scores=np.asarray(scores[chunk], dtype=np.float64),
                    inputs=index[chunk],
                    decoder=self.rows,
                )
            )
        assert self.log.flush()
        out = frame.copy()
        out["prediction_id"] = ids
        out["score"] = scores
        out["label"] = fraud_labels(frame, seed)
        return out

    def send_labels(self, rows: pd.DataFrame, at: datetime) -> None:
        labels = [
            Label(pid, float(y), None)
            for pid, y in zip(rows["prediction_id"], rows["label"], strict=True)
        ]
        statuses = record_feedback(
            open_database(self.settings.database_url),
            labels,
            log_uri=self.settings.prediction_log_uri,
            received_by="labeller",
            now_ms=lambda: int(at.timestamp() * 1000),
        )
        assert {s["status"] for s in statuses} == {"stored"}

    def monitor(self, **config: Any) -> str:
        base: dict[str, Any] = {
            "name": "fraud-watch",
            "deployment": DEPLOYMENT,
            "model": MODEL,
            "window": "1d",
            "since": "2026-01-01",
            "performance": {"label_delay": "2d", "min_labels": 20},
        }
        apply_monitor(base | config, settings=self.settings)
        return str((base | config)["name"])


def day(n: int) -> datetime:
    """Midnight UTC of 2026-01-``n``."""
    return datetime.combine(date(2026, 1, n), datetime.min.time(), UTC)


@pytest.fixture
def watched(
    home: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Watched]:
    """On SQLite; parametrize indirectly with "postgres" for PostgreSQL."""
    with contextlib.ExitStack() as stack:
        if getattr(request, "param", "sqlite") == "postgres":
            monkeypatch.setenv("MODELLOOP_DATABASE_URL", stack.enter_context(postgres_schema()))
        yield from _watched()
        fluent.close_clients()
        close_database(load_settings().database_url)


ON_EVERY_DATABASE = pytest.mark.parametrize(
    "watched", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


def _watched() -> Iterator[Watched]:
    train = transactions(4000, seed=0)
    y = fraud_labels(train, seed=0)
    with ml.start_run(experiment="fraud") as run:
        model = lgb.LGBMClassifier(n_estimators=30, verbose=-1).fit(train, y)
        version = ml.register_model(run, MODEL, model, training_data=train)
    settings = load_settings()
    loaded = ml.load_model(f"models:/{MODEL}/{version.version}")
    log = PredictionLog(settings.prediction_log_uri, flush_interval=0.05)
    try:
        yield Watched(settings, loaded, version.version, log)
    finally:
        log.close()
