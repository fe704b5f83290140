"""``modelloop policy timeline`` on a store where the fraud loop ran for real: skipped triggers
with their reason, a scheduled retraining with its time, the gate's replay under its decision,
and the time it took to adapt to each change the triggers detected."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import Result

from modelloop.automation.adaptation import detected_changes, time_to_adapt
from modelloop.automation.decision import Decision
from modelloop.automation.loop import timeline
from modelloop.tracking import fluent
from tests import cli_helpers
from tests.conftest import STORE_VARIABLES, FraudLoop


@pytest.fixture
def decisions(fraud_loop: FraudLoop, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Decision]]:
    for name in STORE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODELLOOP_HOME", str(fraud_loop.home))
    yield timeline(fraud_loop.policy, settings=fraud_loop.settings)
    fluent.close_clients()


def invoke(*args: str) -> Result:
    result = cli_helpers.invoke(*args)
    assert result.exit_code == 0, result.output
    return result


def first(decisions: list[Decision], *actions: str) -> Decision:
    found = [d for d in decisions if d.action in actions]
    assert found, f"the loop recorded no {actions}: {[d.action for d in decisions]}"
    return found[0]


def test_the_timeline_says_why_a_trigger_was_skipped_and_when_a_retraining_is_due(
    fraud_loop: FraudLoop, decisions: list[Decision]
) -> None:
    out = invoke("policy", "timeline", fraud_loop.policy).stdout
    skipped = first(decisions, "policy.trigger_skipped").evidence
    assert f"trigger_skipped: {skipped['skipped']} (found: {skipped['reasons'][0]}" in out
    scheduled = first(decisions, "policy.retrain_scheduled").evidence
    due = scheduled["at"][:16].replace("T", " ")
    assert f"retrain_scheduled for {due} UTC (the change from " in out


def test_the_timeline_shows_the_replay_under_the_gate_and_the_time_to_adapt(
    fraud_loop: FraudLoop, decisions: list[Decision]
) -> None:
    out = invoke("policy", "timeline", fraud_loop.policy).stdout
    lines = out.splitlines()
    gate = first(decisions, "policy.shadow", "policy.rejected").evidence
    replay = gate["replay"]
    assert replay["data"].startswith("replay of ")
    at = next(i for i, line in enumerate(lines) if line.strip() == replay["data"])
    assert (
        lines[at - 1]
        .split("  ", 1)[1]
        .startswith(
            f"{'shadow' if gate['decision'] == 'promote' else 'rejected'} v{gate['version']}: "
        )
    )
    header = lines[at + 1].split()
    assert header[:5] == ["day", "rows", "positives", "champion", "challenger"]
    assert header[-2:] == ["per", "day)"]
    for offset, day in enumerate(replay["per_day"], start=2):
        assert lines[at + offset].split() == [
            day["day"],
            f"{day['rows']:,}",
            f"{day['positives']:,}",
            "-" if day["champion"] is None else f"{day['champion']:.4f}",
            "-" if day["challenger"] is None else f"{day['challenger']:.4f}",
        ]
    assert len(replay["per_day"]) >= 2

    changes = detected_changes(decisions)
    assert changes, "the triggers cited no change"
    section = out[out.index("\nTime to adapt") :]
    for start in changes:
        adapted = time_to_adapt(decisions, start)
        assert adapted.summary() in section
    trained = time_to_adapt(decisions, changes[0])
    assert trained.trained is not None  # the challenger above saw the change's labels
    assert f"trained on it after {trained.trained:.1f} days" in section


def test_the_timeline_as_json_has_the_decisions_and_the_time_to_adapt(
    fraud_loop: FraudLoop, decisions: list[Decision]
) -> None:
    data: dict[str, Any] = json.loads(
        invoke("policy", "timeline", fraud_loop.policy, "--output", "json").stdout
    )
    assert [d["action"] for d in data["decisions"]] == [d.action for d in decisions]
    expected = [time_to_adapt(decisions, s).to_dict() for s in detected_changes(decisions)]
    assert data["adaptation"] == expected
    assert data["adaptation"][0]["days_to_trained"] > 0
    assert set(data["adaptation"][0]) == {
        "change_start",
        "days_to_trained",
        "days_to_partial",
        "days_to_full",
        "version",
    }
