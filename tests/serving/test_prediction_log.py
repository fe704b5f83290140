"""The prediction log: partitioned Parquet that pandas and DuckDB read as they are, written off
the request path, flushed on shutdown, shared safely by several writers."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from modelloop.errors import InvalidArgument
from modelloop.serving.prediction_log import (
    PredictionLog,
    new_prediction_ids,
    prediction_time_ms,
)
from modelloop.serving.predictions import load_predictions
from tests.serving.conftest import Registry, log_batch, record, serving


def test_served_predictions_land_in_their_partition(registry: Registry) -> None:
    with serving(registry.settings) as live:
        answers = [live.post("/predict", record(i)).json() for i in range(12)]
        columns = {key: [record(i)[key] for i in range(12, 20)] for key in record(0)}
        body = live.post("/predict", columns).json()
    answers += [
        {"prediction_id": p, "prediction": s}
        for p, s in zip(body["prediction_id"], body["prediction"], strict=True)
    ]
    # Shutdown flushed the log: no explicit flush here.
    root = Path(registry.settings.prediction_log_uri)
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    files = sorted(root.glob("model=fraud/date=*/part-*.parquet"))
    assert files
    assert {f.parent.name for f in files} == {f"date={today}"}

    frame = pd.read_parquet(root / "model=fraud")  # pandas, reading the folder as a dataset
    assert len(frame) == 20
    by_id = frame.set_index("prediction_id")
    for i, answer in enumerate(answers):
        row = by_id.loc[answer["prediction_id"]]
        assert row["score"] == pytest.approx(answer["prediction"])
        assert row["model_version"] == 1
        assert row["model_name"] == "fraud"
        assert row["role"] == "champion"
        assert row["deployment"] == "fraud-online"
        assert row["latency_ms"] > 0
        assert row["merchant"] == record(i)["merchant"]  # the category's name, not its code
        assert row["amount"] == pytest.approx(record(i)["amount"])
        assert row["hour"] == record(i)["hour"]
        assert bool(row["foreign"]) is record(i)["foreign"]
    schema = pq.read_schema(files[0])
    assert str(schema.field("timestamp").type) == "timestamp[ms, tz=UTC]"
    assert str(schema.field("hour").type) == "int64"

    glob = f"{root}/*/*/*.parquet"
    counted = duckdb.sql(
        f"SELECT model, date, count(*) FROM read_parquet('{glob}', hive_partitioning = true) "
        "GROUP BY ALL"
    ).fetchall()
    assert counted == [("fraud", today, 20)] or counted == [("fraud", datetime.now(UTC).date(), 20)]


def test_prediction_ids_carry_their_time() -> None:
    ms = 1_767_225_600_123  # 2026-01-01T00:00:00.123Z
    ids = new_prediction_ids(1000, ms)
    assert len(set(ids)) == 1000
    assert all(prediction_time_ms(i) == ms for i in ids)
    assert all(i[14] == "7" and i[19] in "89ab" for i in ids)  # UUID version 7, RFC variant
    with pytest.raises(ValueError, match="not a prediction id"):
        prediction_time_ms("not-an-id")


def test_rows_go_to_the_day_they_were_predicted(tmp_path: Path) -> None:
    before_midnight = int(datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC).timestamp() * 1000)
    after = before_midnight + 2000
    log = PredictionLog(str(tmp_path), flush_interval=60)
    log.append(log_batch(before_midnight))
    log.append(log_batch(after, rows=2))
    log.append(log_batch(after, rows=4, model="other"))
    log.close()
    days = {p.parent.name: len(pd.read_parquet(p)) for p in tmp_path.glob("model=m/*/*.parquet")}
    assert days == {"date=2026-03-01": 3, "date=2026-03-02": 2}
    assert len(pd.read_parquet(tmp_path / "model=other")) == 4
    assert log.rows_written == 9
    assert log.pending_rows == 0


def test_several_writers_share_a_folder(tmp_path: Path) -> None:
    ms = int(datetime.now(UTC).timestamp() * 1000)
    logs = [PredictionLog(str(tmp_path), flush_interval=0.05) for _ in range(4)]

    def write(log: PredictionLog) -> None:
        for _ in range(50):
            log.append(log_batch(ms, rows=2))

    threads = [threading.Thread(target=write, args=(log,)) for log in logs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for log in logs:
        log.close()
    frame = pd.read_parquet(tmp_path)
    assert len(frame) == 4 * 50 * 2
    assert frame["prediction_id"].is_unique
    assert not list(tmp_path.rglob(".*"))  # no half-written files left behind


def test_the_queue_is_bounded(tmp_path: Path) -> None:
    log = PredictionLog(str(tmp_path), flush_interval=60, max_pending_rows=5)
    log.append(log_batch(1_767_225_600_000, rows=4))
    log.append(log_batch(1_767_225_600_000, rows=4))  # would exceed: dropped, counted
    assert log.pending_rows == 4
    assert log.rows_dropped == 4
    log.close()
    assert log.rows_written == 4


def test_unwritable_rows_are_dropped_after_retries_not_forever(tmp_path: Path) -> None:
    class Broken:
        def input_columns(self, matrix: np.ndarray) -> dict[str, Any]:
            raise ValueError("cannot decode")

    log = PredictionLog(str(tmp_path), flush_interval=0.01)
    bad = log_batch(1_767_225_600_000)
    bad.decoder = Broken()
    log.append(bad)
    log.append(log_batch(1_767_225_600_000, model="fine"))
    assert log.flush(timeout=30)
    log.close()
    assert log.rows_dropped == 3
    assert log.rows_written == 3
    assert len(pd.read_parquet(tmp_path / "model=fine")) == 3


def test_predictions_reads_a_time_window(registry: Registry) -> None:
    settings = registry.settings
    log = PredictionLog(settings.prediction_log_uri, flush_interval=60)
    day = datetime(2026, 2, 10, tzinfo=UTC)
    for hours in (0, 12, 36, 60):
        log.append(log_batch(int((day + timedelta(hours=hours)).timestamp() * 1000), model="fraud"))
    log.close()
    everything = load_predictions("fraud", settings=settings)
    assert len(everything) == 12
    assert everything["timestamp"].is_monotonic_increasing
    window = load_predictions(
        "fraud", "2026-02-10T06:00:00", day + timedelta(days=2), settings=settings
    )
    assert len(window) == 6  # the 12:00 and the next day's 12:00 batches
    one_day = load_predictions("fraud", day.date(), "2026-02-11", settings=settings)
    assert len(one_day) == 6
    assert load_predictions("fraud", "2026-02-12", settings=settings).shape[0] == 3
    assert load_predictions("nobody", settings=settings).empty
    assert load_predictions("fraud", settings=settings, deployment="elsewhere").empty
    with pytest.raises(InvalidArgument, match="not an ISO date"):
        load_predictions("fraud", "yesterday", settings=settings)
