"""Feedback is checked against the served model's labels: a label it does not know is a 422
naming the allowed values, and nothing stored is one monitoring would ignore later."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import lightgbm as lgb
import pandas as pd

import modelloop as ml
from modelloop.monitoring.runner import check_windows
from tests.serving.conftest import Registry, record, serving, transactions


def _columns(frame: pd.DataFrame) -> dict[str, list[Any]]:
    return {
        "amount": frame["amount"].astype(float).tolist(),
        "merchant": frame["merchant"].astype(str).tolist(),
        "hour": frame["hour"].astype(int).tolist(),
        "foreign": frame["foreign"].astype(bool).tolist(),
        "velocity": frame["velocity"].astype(float).tolist(),
    }


def test_a_label_the_model_does_not_know_is_refused(registry: Registry) -> None:
    with serving(registry.settings) as live:  # fraud: a 0/1 classifier
        ids = [live.post("/predict", record(i)).json()["prediction_id"] for i in range(5)]
        live.flush()
        single = live.post("/feedback", {"prediction_id": ids[0], "label": "yes"})
        batch = live.post(
            "/feedback",
            [
                {"prediction_id": ids[1], "label": 1},
                {"prediction_id": ids[2], "label": 0.25},
                {"prediction_id": ids[3], "label": 2},
                {"prediction_id": ids[4], "label": "chargeback"},
            ],
        )
        accepted = live.post(
            "/feedback",
            [
                {"prediction_id": ids[0], "label": True},
                {"prediction_id": ids[1], "label": "0"},
                {"prediction_id": ids[2], "label": 1.0},
            ],
        )
    assert single.status_code == 422
    assert single.json()["details"] == [
        {
            "row": None,
            "field": "label",
            "message": "'yes' is not a class of this model: allowed 0, 1",
        }
    ]
    assert batch.status_code == 422
    details = batch.json()["details"]
    assert [(d["row"], d["field"]) for d in details] == [(1, "label"), (2, "label"), (3, "label")]
    assert all(d["message"].endswith("allowed 0, 1") for d in details)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["stored"] == 3
    labels = ml.load_predictions("fraud").set_index("prediction_id")
    assert labels.loc[ids[:3], "label"].tolist() == [1.0, 0.0, 1.0]  # nothing of the 422s
    assert labels.loc[ids[3:], "label"].isna().all()
    assert labels["label_text"].isna().all()


def test_class_names_are_stored_for_the_monitor(registry: Registry) -> None:
    """A classifier trained on "no"/"yes": its labels are those names, stored as 0/1 for the
    class its score is the probability of, and the performance monitor counts every one."""
    train, label = transactions()
    names = label.map({0: "no", 1: "yes"})
    model = lgb.LGBMClassifier(n_estimators=20, num_leaves=7, verbose=-1).fit(train, names)
    assert list(model.classes_) == ["no", "yes"]
    with ml.start_run(experiment="labels") as run:
        version = ml.register_model(run, "fraud-names", model, training_data=train)
    ml.set_alias("fraud-names", "champion", version.version, reason="test")
    frame, truth = transactions(rows=300, seed=5)
    sent = truth.map({0: "no", 1: "yes"}).tolist()
    deployment = {"name": "names", "model": "fraud-names@champion"}
    with serving(registry.settings, deployment) as live:
        ids = live.post("/predict", _columns(frame)).json()["prediction_id"]
        live.flush()
        refused = live.post("/feedback", {"prediction_id": ids[0], "label": 1})
        stored = live.post(
            "/feedback", [{"prediction_id": i, "label": y} for i, y in zip(ids, sent, strict=True)]
        )
    assert refused.status_code == 422
    assert refused.json()["details"][0]["message"] == (
        "1 is not a class of this model: allowed 'no', 'yes'"
    )
    assert stored.status_code == 200, stored.text
    assert stored.json()["stored"] == 300
    logged = ml.load_predictions("fraud-names").set_index("prediction_id").loc[ids]
    assert logged["label"].tolist() == truth.astype(float).tolist()
    assert logged["label_text"].tolist() == sent

    ml.apply_monitor(
        {
            "name": "names",
            "deployment": "names",
            "model": "fraud-names",
            "window": "last 300",
            "performance": {"label_delay": "0s", "k": 20},
        }
    )
    _, performance = check_windows("names", now=datetime.now(UTC) + timedelta(minutes=1))
    whole = next(s for s in performance.scopes if s.model_version == 0)
    assert whole.status == "ok"
    assert whole.values["performance.n_labelled"] == 300
    assert whole.values["performance.n_positive"] == sum(truth)
    assert whole.values["performance.auc_roc"] > 0.6
