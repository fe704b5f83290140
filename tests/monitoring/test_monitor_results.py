"""What a monitor's results say per column and per window: the test behind each drift statistic
(column type, method, p-value, threshold, drifted), since statistics of different tests are on
different scales, and the note of a window that could not be compared; through the SDK (local
and through a live server), the CLI table and its JSON."""

from __future__ import annotations

import json
import logging
import math
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import modelloop as ml
from modelloop.cli.app import app
from modelloop.monitoring.runner import check_windows
from modelloop.settings import load_settings

from ..live_server import live_server
from .conftest import MODEL, Watched, day, transactions


def _shifted(n: int, seed: int) -> pd.DataFrame:
    """Amounts shifted up, and most merchants now travel."""
    frame = transactions(n, seed, shift=1.5)
    rng = np.random.default_rng(seed + 100)
    travel = rng.choice(["fuel", "grocery", "travel"], n, p=[0.1, 0.1, 0.8])
    frame["merchant"] = pd.Categorical(travel, categories=frame["merchant"].cat.categories)
    return frame


def test_results_say_which_columns_drifted_and_by_which_test(
    watched: Watched, monkeypatch: pytest.MonkeyPatch
) -> None:
    watched.log_predictions(day(1), 800, seed=1)  # small windows: KS and chi-squared
    watched.log_predictions(day(2), 800, seed=2, frame=_shifted(800, 2))
    watched.log_predictions(day(3), 3000, seed=3, shift=1.5)  # large: Wasserstein, JS
    name = watched.monitor(performance={"enabled": False})
    check_windows(name, now=day(4) + timedelta(hours=1), settings=watched.settings)

    frame = ml.monitor_results(name)
    assert list(frame["status"]) == ["ok"] * 3
    assert list(frame["drift.column.amount.type"]) == ["numeric"] * 3
    assert list(frame["drift.column.merchant.type"]) == ["categorical"] * 3
    assert list(frame["drift.column.amount.method"]) == ["ks", "ks", "wasserstein"]
    assert list(frame["drift.column.merchant.method"]) == [
        "chi_squared",
        "chi_squared",
        "jensen_shannon",
    ]
    assert list(frame["drift.column.amount.threshold"]) == [0.05, 0.05, 0.1]
    first, second, third = (frame.iloc[i] for i in range(3))
    assert {"amount", "merchant"}.isdisjoint(first["drift.drifted_columns"])  # unshifted
    assert first["drift.column.merchant.p_value"] >= 0.05
    assert not first["drift.column.merchant.drifted"]
    assert {"amount", "merchant"} <= set(second["drift.drifted_columns"])
    assert second["drift.column.merchant.p_value"] < 1e-6
    assert second["drift.column.merchant.drifted"]
    assert second["drift.column.merchant"] > 10  # the chi-squared statistic itself
    assert math.isnan(third["drift.column.amount.p_value"])  # a distance has no p-value
    assert third["drift.column.amount"] >= 0.1
    assert third["drift.column.amount.drifted"]
    assert third["drift.score.method"] == "wasserstein"
    assert list(frame["notes"]) == [[], [], []]

    runner = CliRunner()
    table = runner.invoke(app, ["monitor", "results", name])
    assert table.exit_code == 0, table.output
    assert "drifted" in table.stdout.splitlines()[0]
    day_two = next(line for line in table.stdout.splitlines() if "2026-01-02" in line)
    assert "merchant (chi_squared p=" in day_two
    assert "amount (ks p=" in day_two
    day_three = next(line for line in table.stdout.splitlines() if "2026-01-03" in line)
    assert "amount (wasserstein " in day_three
    assert ">= 0.1" in day_three
    records = json.loads(runner.invoke(app, ["monitor", "results", name, "-o", "json"]).stdout)
    assert records[1]["drift.column.merchant.method"] == "chi_squared"
    assert records[1]["drift.column.merchant.type"] == "categorical"
    assert records[1]["drift.column.merchant.drifted"] is True
    assert records[1]["drift.column.merchant.p_value"] < 1e-6
    assert records[1]["drift.column.merchant.threshold"] == 0.05
    assert "drift.column.amount.p_value" not in records[2]  # Wasserstein: none

    with live_server(watched.settings) as url:
        monkeypatch.setenv("MODELLOOP_TRACKING_URI", url)
        remote = ml.monitor_results(name, settings=load_settings())
    pd.testing.assert_frame_equal(remote, frame)


def test_a_window_without_a_reference_says_why_wherever_its_status_shows(
    watched: Watched, caplog: pytest.LogCaptureFixture
) -> None:
    watched.log_predictions(day(1), 800, seed=1)
    watched.log_predictions(day(2), 800, seed=2)
    name = watched.monitor(name="blind", drift={"columns": ["card_age"]},
                           performance={"enabled": False})  # fmt: skip
    why = f"version {watched.version} of {MODEL} has no reference for the monitored columns"
    runner = CliRunner()
    ran = runner.invoke(app, ["monitor", "run", name, "--window", "2026-01-01T12:00"])
    assert ran.exit_code == 0, ran.output
    assert "no_reference" in ran.stdout
    assert f"note: {why}" in ran.stdout

    [row] = ml.monitor_results(name).to_dict(orient="records")
    assert row["status"] == "no_reference"
    assert row["notes"] == [why]
    table = runner.invoke(app, ["monitor", "results", name])
    assert table.exit_code == 0, table.output
    assert f"2026-01-01 00:00 no_reference: {why}" in table.stdout
    [record] = json.loads(runner.invoke(app, ["monitor", "results", name, "-o", "json"]).stdout)
    assert record["notes"] == [why]
    [window] = ml.run_monitor(name, window="2026-01-01T12:00")  # stored already: no scopes
    assert window["stored"] is False
    with caplog.at_level(logging.INFO, logger="modelloop.monitoring"):  # the scheduler's log
        [window] = ml.run_monitor(name, window="2026-01-02T12:00")
    assert window["scopes"][0]["notes"] == [why]
    assert f"no_reference; {why}" in caplog.text
