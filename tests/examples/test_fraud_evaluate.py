"""``python -m modelloop.examples.fraud.evaluate``, small: the three arms run on one stream and the
report holds their weekly table and retraining counts."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from modelloop.examples.fraud import demo
from modelloop.examples.fraud.evaluate import ARMS, evaluate, main, render


def test_three_arms_on_one_stream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELLOOP_HOME", str(tmp_path / "mine"))
    config = demo.DemoConfig(days=20, drift_day=4, seed=0, customers=300, terminals=600)
    evaluation = evaluate([config], cache_dir=tmp_path / "cache")
    (result,) = evaluation.results

    assert os.environ["MODELLOOP_HOME"] == str(tmp_path / "mine")  # the loop's home is gone
    assert result.retrains["never"] == 0
    assert result.retrains["daily"] == config.days
    trained = [day for day, action, _ in result.events if action.startswith("trained")]
    assert result.retrains["policy"] == len(trained) >= 1  # the ring led to a training
    assert min(trained) > config.drift_day  # none before the change
    weekly = result.weekly
    assert weekly["week"].tolist() == [1, 2, 3]
    assert weekly["days"].tolist() == ["1-7", "8-14", "15-20"]
    assert weekly["after"].tolist() == [True, True, True]  # week 1 holds days 5-7 of the ring
    for arm in ARMS:
        assert weekly[f"ap_{arm}"].between(0, 1).all()
        assert weekly[f"cp_{arm}"].between(0, 1).all()
    assert result.v1_gap == 0.0  # never's batch scores are what the server answered with v1
    v1_weeks = weekly["models"] == "v1"  # where v1 served alone, the policy arm is never's
    assert v1_weeks.any()
    assert np.allclose(weekly.loc[v1_weeks, "ap_policy"], weekly.loc[v1_weeks, "ap_never"])
    assert (weekly["ap_daily"] > weekly["ap_never"]).all()  # retraining pays on this stream

    text = render(evaluation)
    assert "## Targets" in text
    assert "| (c) <= 10 days | fraud-ring |" in text
    assert "| seed | AP never | AP daily | AP policy |" in text
    row = next(line for line in text.splitlines() if line.startswith("| 0 | "))
    assert f"| {result.retrains['policy']} | {len(result.promotions)} (" in row
    rows = [line for line in text.splitlines() if line.startswith("| 1 * | 1-7 |")]
    assert len(rows) == 1
    assert rows[0].count("|") == 12
    assert "python -m modelloop.examples.fraud.evaluate" in text
    figures = result.to_dict()
    assert figures["scenario"] == "fraud-ring"
    assert set(figures["ap"]) == set(ARMS)
    assert set(figures["days_to"]) == {"trained", "partial", "full"}
    assert figures["trainings"] == result.retrains["policy"]


def test_the_command_line_writes_the_report_and_its_figures(tmp_path: Path) -> None:
    import json

    out, figures = tmp_path / "closed-loop.md", tmp_path / "closed-loop.json"
    main(["--days", "7", "--drift-day", "3", "--customers", "100", "--seeds", "1",
          "--scenarios", "volume-surge", "--jobs", "1", "--output", str(out),
          "--json", str(figures)])  # fmt: skip
    text = out.read_text()
    assert text.startswith("# The closed loop, evaluated")
    assert "--days 7 --drift-day 3 --customers 100 --scenarios volume-surge --seeds 1" in text
    assert "## volume-surge" in text
    written = json.loads(figures.read_text())
    (result,) = written["results"]
    assert (result["scenario"], result["seed"], result["trainings"]) == ("volume-surge", 1, 0)
    assert {t["target"] for t in written["targets"]} == {"<= 2 trainings", "<= 8 trainings"}
    assert all(t["met"] for t in written["targets"])
