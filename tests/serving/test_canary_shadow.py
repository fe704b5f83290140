"""Shadow and canary: who answers, who is logged, and a canary split that is fair and sticky."""

from __future__ import annotations

import math
import subprocess
import sys

import pandas as pd
import pytest

from modelloop.serving.predictions import load_predictions
from modelloop.serving.routing import CanarySplit, bucket, salt_of
from tests.serving.conftest import Registry, record, serving, transactions

CANARY = {
    "name": "fraud-canary",
    "model": "fraud@champion",
    "challenger": "fraud@challenger",
    "mode": "canary",
    "canary_percent": 20,
    "sticky_key": "card_id",
}
KEYS = 10_000


def _rows(keys: range, offset: int = 0) -> list[dict]:
    return [{**record((k + offset) % 200), "card_id": f"card-{k}"} for k in keys]


def test_canary_share_is_binomial_and_sticky_per_key(registry: Registry) -> None:
    with serving(registry.settings, CANARY) as live:
        first: dict[str, str] = {}
        for start in range(0, KEYS, 1000):
            body = live.post("/predict", _rows(range(start, start + 1000))).json()
            for k, row in zip(range(start, start + 1000), body["predictions"], strict=True):
                first[f"card-{k}"] = row["role"]
        # The same cards again, in other batches, with other transactions: the same model.
        again: dict[str, str] = {}
        for start in range(0, KEYS, 700):
            keys = range(start, min(start + 700, KEYS))
            body = live.post("/predict", _rows(keys, offset=7)).json()
            again.update(
                {f"card-{k}": r["role"] for k, r in zip(keys, body["predictions"], strict=True)}
            )
        singles = {
            f"card-{k}": live.post("/predict", _rows(range(k, k + 1))[0]).json()["role"]
            for k in range(0, KEYS, 250)
        }
    share = sum(role == "challenger" for role in first.values()) / KEYS
    sigma = math.sqrt(0.2 * 0.8 / KEYS)
    assert abs(share - 0.2) < 4 * sigma, share
    assert again == first
    assert all(first[key] == role for key, role in singles.items())


def test_canary_rows_are_answered_and_logged_by_their_model(registry: Registry) -> None:
    rows = _rows(range(300))
    with serving(registry.settings, CANARY) as live:
        body = live.post("/predict", rows).json()["predictions"]
        live.flush()
    frame, _ = transactions()
    expected = {
        1: registry.model(1).predict(frame.iloc[:200]),
        2: registry.model(2).predict(frame.iloc[:200]),
    }
    for i, row in enumerate(body):
        assert row["version"] == (2 if row["role"] == "challenger" else 1)
        assert row["prediction"] == pytest.approx(float(expected[row["version"]][i % 200]))
    logged = load_predictions("fraud", settings=registry.settings).set_index("prediction_id")
    assert len(logged) == 300
    for row in body:
        entry = logged.loc[row["prediction_id"]]
        assert entry["role"] == row["role"]
        assert entry["model_version"] == row["version"]
        assert entry["score"] == pytest.approx(row["prediction"])
        assert entry["deployment"] == "fraud-canary"
    assert set(logged["card_id"]) == {f"card-{k}" for k in range(300)}


def test_a_sticky_key_that_is_missing_is_a_field_error(registry: Registry) -> None:
    with serving(registry.settings, CANARY) as live:
        response = live.post("/predict", [_rows(range(1))[0], record(1)])
        nested = live.post("/predict", {**record(0), "card_id": {"id": 1}})
    assert response.status_code == 422
    assert response.json()["details"] == [
        {"row": 1, "field": "card_id", "message": "sticky key missing"}
    ]
    assert nested.status_code == 422


def test_a_canary_without_sticky_key_splits_by_chance(registry: Registry) -> None:
    deployment = {**CANARY, "name": "coin", "canary_percent": 50}
    del deployment["sticky_key"]
    with serving(registry.settings, deployment) as live:
        body = live.post("/predict", [record(i % 200) for i in range(2000)]).json()
    share = sum(r["role"] == "challenger" for r in body["predictions"]) / 2000
    assert abs(share - 0.5) < 4 * math.sqrt(0.25 / 2000)


def test_shadow_scores_every_request_but_the_champion_answers(registry: Registry) -> None:
    deployment = {
        "name": "fraud-shadow",
        "model": "fraud@champion",
        "challenger": "fraud@challenger",
        "mode": "shadow",
    }
    with serving(registry.settings, deployment) as live:
        answers = [live.post("/predict", record(i)).json() for i in range(20)]
        batch = live.post("/predict", [record(i) for i in range(20, 30)]).json()["predictions"]
        live.flush()
    answers += batch
    assert {(a["role"], a["version"]) for a in answers} == {("champion", 1)}
    logged = load_predictions("fraud", settings=registry.settings)
    assert len(logged) == 60
    frame, _ = transactions()
    challenger = registry.model(2).predict(frame.iloc[:30])
    by_role = {role: part.set_index("prediction_id") for role, part in logged.groupby("role")}
    assert set(by_role) == {"champion", "shadow"}
    for i, a in enumerate(answers):
        assert by_role["champion"].loc[a["prediction_id"], "score"] == pytest.approx(
            a["prediction"]
        )
        shadow = by_role["shadow"].loc[a["prediction_id"]]
        assert shadow["model_version"] == 2
        assert shadow["score"] == pytest.approx(float(challenger[i]))


def test_the_bucket_of_a_key_is_stable_across_processes() -> None:
    code = (
        "from modelloop.serving.routing import bucket, salt_of; "
        "print([bucket(salt_of('fraud-canary'), k) for k in ('card-1', 42, 42.0, '42')])"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    here = [bucket(salt_of("fraud-canary"), k) for k in ("card-1", 42, 42.0, "42")]
    assert other.stdout.strip() == str(here)
    assert here[1] == here[2] == here[3]  # one card, however the client spells it


def test_raising_the_percentage_only_moves_cards_to_the_challenger() -> None:
    keys = [f"card-{k}" for k in range(5000)]
    at_10 = CanarySplit("d", 10).route(keys, len(keys))
    at_30 = CanarySplit("d", 30).route(keys, len(keys))
    assert all(b for a, b in zip(at_10, at_30, strict=True) if a)
    assert sum(at_30) > sum(at_10)
    other = CanarySplit("other-deployment", 10).route(keys, len(keys))
    assert other != at_10  # another deployment picks other cards
    assert pd.Series(at_10).mean() == pytest.approx(0.1, abs=0.03)


def test_a_failing_shadow_never_fails_the_request(registry: Registry) -> None:
    """A challenger that reads other features cannot score these requests: counted, not felt."""
    import lightgbm as lgb

    import modelloop as ml

    frame, label = transactions()
    narrow = frame.drop(columns=["velocity"])
    model = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(narrow, label)
    with ml.start_run(experiment="serving-tests") as run:
        version = ml.register_model(run, "fraud", model, training_data=narrow).version
    registry.alias("challenger", version)
    deployment = {
        "name": "fraud-shadow",
        "model": "fraud@champion",
        "challenger": "fraud@challenger",
        "mode": "shadow",
    }
    with serving(registry.settings, deployment) as live:
        answers = [live.post("/predict", record(i)) for i in range(3)]
        live.flush()
        metrics = live.get("/metrics").text
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert "modelloop_shadow_errors_total 3.0" in metrics
    assert set(load_predictions("fraud", settings=registry.settings)["role"]) == {"champion"}


def test_a_deployment_can_turn_the_log_off(registry: Registry) -> None:
    deployment = {"name": "quiet", "model": "fraud@champion", "log_predictions": False}
    with serving(registry.settings, deployment) as live:
        answer = live.post("/predict", record(0)).json()
        live.flush()
    assert len(answer["prediction_id"]) == 36  # still an id, for the caller's own records
    assert load_predictions("fraud", settings=registry.settings).empty
