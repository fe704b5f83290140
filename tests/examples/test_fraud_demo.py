"""``modelloop demo fraud`` (what ``make demo`` runs), small: the loop reacts to the fraud ring
over real HTTP, and every decision is in the store for the commands the demo suggests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelloop.cli.app import app
from modelloop.tracking import fluent


def test_the_demo_runs_the_loop_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "demo"
    monkeypatch.setenv("MODELLOOP_HOME", str(tmp_path / "elsewhere"))
    for name in ("MODELLOOP_DATABASE_URL", "MODELLOOP_ARTIFACT_URI", "MODELLOOP_TRACKING_URI",
                 "MODELLOOP_PREDICTION_LOG"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)  # the demo unsets them: restore them after
    args = ["demo", "fraud", "--days", "28", "--drift-day", "4", "--customers", "300",
            "--home", str(home)]  # fmt: skip
    try:
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        out = result.stdout
        assert "trigger:" in out
        assert "trained v2" in out
        assert "gate v2 passed, in shadow" in out  # the ring made v1 worse than a retrained v2
        assert "canary: v2 answers 20% of traffic" in out
        assert "What was served, week by week" in out
        assert "fraud-ring under way (from day 5)" in out
        assert "on the replay of" in out  # judged on the logged traffic at training time
        assert "Time to adapt to the fraud-ring (from day 5" in out
        assert "on all of it after " in out
        assert "on all of it after not yet" not in out
        assert "had the first champion never been replaced" in out
        suggested = [line for line in out.splitlines() if f"MODELLOOP_HOME={home} " in line]
        assert any(line.endswith(" policy timeline fraud-loop") for line in suggested)

        assert os.environ["MODELLOOP_HOME"] == str(home)  # the suggested commands see it all
        timeline = CliRunner().invoke(app, ["policy", "timeline", "fraud-loop"])
        assert "shadow v2: promote: AP" in timeline.stdout
        audit = CliRunner().invoke(app, ["audit", "verify"])
        assert audit.exit_code == 0, audit.output
    finally:
        fluent.close_clients()
