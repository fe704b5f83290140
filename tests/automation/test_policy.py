"""Policies are validated whole, from YAML or Python, with one precise message per problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelloop.automation.policy import apply_policy, get_policy, parse_policy
from modelloop.cli.app import app
from modelloop.errors import InvalidArgument, NotFound
from modelloop.settings import load_settings
from tests.server.test_policy_references import seed_references

GOOD = {
    "name": "fraud-loop",
    "deployment": "fraud-online",
    "model": "fraud-detector",
    "monitor": "fraud-watch",
    "training": {"function": "my_package.fraud:train", "window": "14d"},
}


def test_a_malformed_policy_file_names_every_problem(home: Path) -> None:
    path = home.parent / "policy.yaml"
    path.write_text(
        "name: fraud loop\ndeployment: fraud-online\nmodel: fraud-detector\n"
        "triggers: {drifted_features: 0, performance: {metric: f1, below: 0.5}, every: weekly}\n"
        "training: {function: train_fraud}\ngate: {metric: accuracy, confidence: 1.5}\n"
        "rollout: {canary_percent: 120}\nretries: 3\n"
    )
    result = CliRunner().invoke(app, ["policy", "apply", str(path)])
    assert result.exit_code == 2
    message = result.stderr
    assert message.startswith(f"Error: {path} is not a valid policy:")
    for expected in (
        "name: a name is 1-128 letters",
        "monitor: Field required",
        "triggers.drifted_features: Input should be greater than or equal to 1",
        "triggers.performance.metric: unknown metric 'f1'",
        "triggers.every: 'weekly' is not a duration",
        "training.function: write the training function as 'package.module:function'",
        "gate.metric: the gate compares one of average_precision, auc_roc, "
        "card_precision_at_k, fraud_amount_at_k",
        "gate.confidence: Input should be less than 1",
        "rollout.canary_percent: Input should be less than 100",
        "retries: unknown setting (known: name, deployment, model, monitor, triggers",
    ):
        assert expected in message, expected
    assert "Traceback" not in result.output
    with pytest.raises(NotFound):
        get_policy("fraud loop")


def test_a_policy_from_python_round_trips_through_the_store(home: Path) -> None:
    seed_references(load_settings())  # what it names must exist
    assert apply_policy(GOOD) is True
    assert apply_policy(parse_policy(GOOD)) is False  # unchanged: nothing recorded
    stored = get_policy("fraud-loop")
    assert stored.training.window.days == 14
    record = stored.to_record()
    assert record["rollout"]["shadow"] == "2h"  # operations are watched for hours by default
    assert record["triggers"]["change_labels"] == "1d"
    assert record["gate"]["metric"] == "average_precision"
    with_more = {**GOOD, "triggers": {"budget": {"trainings": 4, "per": "28d"},
                                      "follow_up": {"every": "7d", "within": "35d"}},
                 "gate": {"metrics": ["ap_typo"]}}  # fmt: skip
    with pytest.raises(InvalidArgument) as bad:
        parse_policy(with_more)
    assert [d["field"] for d in bad.value.details] == ["gate.metrics"]
    with_more["gate"] = {"metrics": ["average_precision", "card_precision_at_k"],
                         "margin": [-0.01, -0.02]}  # fmt: skip
    parsed = parse_policy(with_more)
    assert parsed.gate.compared == ["average_precision", "card_precision_at_k"]
    assert parse_policy(parsed.to_record()) == parsed  # durations written back as read
    assert parsed.to_record()["triggers"]["follow_up"] == {
        "every": "7d",
        "within": "35d",
        "min_gain": 0.0,
    }
    with pytest.raises(InvalidArgument) as caught:
        parse_policy({**GOOD, "gate": {"bootstrap": 5}})
    assert caught.value.details == [
        {"field": "gate.bootstrap", "message": "Input should be greater than or equal to 100"}
    ]


def test_deleting_a_policy_keeps_its_decisions_in_the_audit_trail(home: Path) -> None:
    import modelloop as ml

    seed_references(load_settings())
    apply_policy(GOOD)
    result = CliRunner().invoke(app, ["policy", "delete", "fraud-loop", "--yes"])
    assert result.exit_code == 0, result.output
    with pytest.raises(NotFound):
        get_policy("fraud-loop")
    actions = [e.action for e in ml.audit_log() if e.object_type == "policy"]
    assert actions == ["policy.apply", "policy.delete"]
