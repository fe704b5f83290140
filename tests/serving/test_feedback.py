"""``POST /feedback``: labels for logged predictions, one or many; duplicates and unknown ids are
reported per item, never dropped in silence; ``ml.load_predictions`` joins what arrived."""

from __future__ import annotations

import threading

import pandas as pd
import pytest

import modelloop as ml
from modelloop.errors import NotFound
from modelloop.serving.deployment import parse_deployment
from modelloop.serving.feedback import Label, record_feedback
from modelloop.serving.fluent import apply_deployment, get_deployment, list_deployments
from modelloop.serving.prediction_log import PredictionLog, new_prediction_ids
from modelloop.serving.predictions import load_predictions
from modelloop.settings import Settings
from modelloop.store import open_database
from tests.serving.conftest import Registry, log_batch, record, serving

NEVER_LOGGED = "01a2169c-0810-7fb8-9289-5ab0fdbebe32"


def test_single_labels_are_stored_then_duplicates_refused(registry: Registry) -> None:
    with serving(registry.settings) as live:
        ids = [live.post("/predict", record(i)).json()["prediction_id"] for i in range(3)]
        # Not flushed yet: the ids this process answered are known from memory.
        first = live.post("/feedback", {"prediction_id": ids[0], "label": 1})
        again = live.post("/feedback", {"prediction_id": ids[0], "label": 0})
        live.flush()
        text = live.post("/feedback", {"prediction_id": ids[1], "label": "1"})  # the class
        boolean = live.post("/feedback", {"prediction_id": ids[2], "label": False})
        unknown = live.post("/feedback", {"prediction_id": NEVER_LOGGED, "label": 1})
        metrics = live.get("/metrics").text
    assert first.status_code == 200
    assert first.json() == {"prediction_id": ids[0], "status": "stored"}
    assert again.status_code == 409
    assert again.json()["error_code"] == "CONFLICT"
    assert again.json()["details"][0]["prediction_id"] == ids[0]
    assert text.status_code == 200
    assert boolean.status_code == 200
    assert unknown.status_code == 404
    assert unknown.json()["details"] == [
        {"row": None, "field": "prediction_id", "prediction_id": NEVER_LOGGED, "status": "unknown"}
    ]
    assert 'modelloop_feedback_total{status="stored"} 3.0' in metrics
    assert 'modelloop_feedback_total{status="duplicate"} 1.0' in metrics

    labelled = ml.load_predictions("fraud").set_index("prediction_id")
    assert labelled.loc[ids[0], "label"] == 1.0  # the first label stands
    assert labelled.loc[ids[1], "label"] == 1.0  # class "1" is the positive one
    assert pd.isna(labelled.loc[ids[1], "label_text"])
    assert labelled.loc[ids[2], "label"] == 0.0
    assert labelled["labelled_at"].notna().sum() == 3


def test_a_batch_reports_every_item(registry: Registry) -> None:
    with serving(registry.settings) as live:
        ids = live.post("/predict", [record(i) for i in range(6)]).json()["predictions"]
        ids = [row["prediction_id"] for row in ids]
        live.flush()
        live.post("/feedback", {"prediction_id": ids[0], "label": 1})
        batch = [
            {"prediction_id": ids[0], "label": 0},  # already labelled
            {"prediction_id": ids[1], "label": 1},
            {"prediction_id": ids[2], "label": 0},
            {"prediction_id": ids[2], "label": 1},  # twice in one request: the first counts
            {"prediction_id": NEVER_LOGGED, "label": 1},
            {"prediction_id": ids[3], "label": True},
        ]
        response = live.post("/feedback", batch)
    assert response.status_code == 200
    body = response.json()
    assert body["stored"] == 3
    assert body["duplicate"] == 2
    assert body["unknown"] == 1
    assert [r["status"] for r in body["results"]] == [
        "duplicate", "stored", "stored", "duplicate", "unknown", "stored",
    ]  # fmt: skip
    labels = ml.load_predictions("fraud").set_index("prediction_id")["label"]
    assert labels[ids[2]] == 0.0
    assert labels[ids[3]] == 1.0
    assert labels[ids[0]] == 1.0
    assert labels[[ids[4], ids[5]]].isna().all()


def test_labels_join_predictions_of_any_role(registry: Registry) -> None:
    deployment = {
        "name": "fraud-shadow",
        "model": "fraud@champion",
        "challenger": "fraud@challenger",
        "mode": "shadow",
    }
    with serving(registry.settings, deployment) as live:
        pid = live.post("/predict", record(0)).json()["prediction_id"]
        live.flush()
        assert live.post("/feedback", {"prediction_id": pid, "label": 1}).status_code == 200
    rows = ml.load_predictions("fraud")
    assert sorted(rows["role"]) == ["champion", "shadow"]
    assert rows["label"].tolist() == [1.0, 1.0]  # one label judges both models
    unlabelled = ml.load_predictions("fraud", with_labels=False)
    assert "label" not in unlabelled.columns


def test_a_label_arriving_days_later_finds_its_partition(registry: Registry) -> None:
    """Ids from another day and another writer are looked up in that day's files."""
    days_ago = 1_767_225_600_000  # 2026-01-01
    log = PredictionLog(registry.settings.prediction_log_uri)
    old = log_batch(days_ago, rows=2, model="fraud")
    log.append(old)
    log.close()
    db = open_database(registry.settings.database_url)
    statuses = record_feedback(
        db,
        [
            Label(old.prediction_ids[0], 1.0, None),
            Label(new_prediction_ids(1, days_ago)[0], 0.0, None),
        ],
        log_uri=registry.settings.prediction_log_uri,
        received_by="tester",
    )
    assert [s["status"] for s in statuses] == ["stored", "unknown"]
    frame = ml.load_predictions("fraud", "2026-01-01", "2026-01-02")
    assert frame["label"].tolist()[0] == 1.0 or frame["label"].tolist()[1] == 1.0


@pytest.mark.parametrize("token", [None, "s3cret-serving-token"])
def test_who_sent_a_label_is_recorded(registry: Registry, token: str | None) -> None:
    from sqlalchemy import select

    from modelloop.store import tables as t

    headers = {"Authorization": f"Bearer {token}"} if token else {"X-Modelloop-User": "analyst"}
    with serving(registry.settings, token=token) as live:
        pid = live.post("/predict", record(0), headers=headers).json()["prediction_id"]
        live.post("/feedback", {"prediction_id": pid, "label": 1}, headers=headers)
    with open_database(registry.settings.database_url).read() as conn:
        row = conn.execute(select(t.feedback).where(t.feedback.c.prediction_id == pid)).one()
    assert row.received_by == ("admin" if token else "analyst")
    assert row.deployment == "fraud-online"


def test_the_feedback_store_on_every_database(settings: Settings) -> None:
    """Stored once per prediction, on SQLite and PostgreSQL, even when writers race."""
    log = PredictionLog(settings.prediction_log_uri)
    batch = log_batch(1_767_225_600_000, rows=4, model="fraud")
    log.append(batch)
    log.close()
    db = open_database(settings.database_url)
    ids = batch.prediction_ids
    results: list[list[dict[str, str]]] = []

    def label(value: float) -> None:
        results.append(
            record_feedback(
                db,
                [Label(ids[0], value, None), Label(ids[1], None, "chargeback")],
                log_uri=settings.prediction_log_uri,
                received_by="tester",
            )
        )

    threads = [threading.Thread(target=label, args=(float(i),)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = [s["status"] for result in results for s in result]
    assert statuses.count("stored") == 2  # one label per prediction, whoever came first
    assert statuses.count("duplicate") == 6
    frame = load_predictions("fraud", settings=settings).set_index("prediction_id")
    assert frame.loc[ids[1], "label_text"] == "chargeback"
    assert frame.loc[ids[0], "label"] in {0.0, 1.0, 2.0, 3.0}
    assert frame["label"].notna().sum() == 1


def _two_versions(settings: Settings, name: str) -> None:
    """Versions 1 and 2 of ``name`` (packages of one file) in the store of ``settings``."""
    from modelloop.registry.client import Registry
    from modelloop.registry.entities import ModelVersionSpec
    from modelloop.tracking.client import Client

    client = Client(settings=settings)
    registry = Registry(client)
    for _ in range(2):
        run = client.create_run("deployments")
        client.log_bytes(run.run_id, b"tree\n", "model/model.txt")
        registry.store.create_model_version(ModelVersionSpec(name, run.run_id), actor="t")
    registry.close()
    client.close()


def test_deployments_are_stored_on_every_database(settings: Settings) -> None:
    first = parse_deployment({"name": "d", "model": "fraud/1"})
    second = parse_deployment(
        {
            "name": "d",
            "model": "fraud/1",
            "challenger": "fraud/2",
            "mode": "canary",
            "canary_percent": 5,
        }
    )
    with pytest.raises(NotFound, match="Registered model 'fraud' does not exist"):
        apply_deployment(first, settings=settings, actor="alice")  # nothing registered yet
    _two_versions(settings, "fraud")
    assert apply_deployment(first, settings=settings, actor="alice")
    assert not apply_deployment(first, settings=settings, actor="alice")
    assert apply_deployment(second, settings=settings, actor="bob")
    stored = get_deployment("d", settings=settings)
    assert stored.deployment == second
    assert stored.updated_by == "bob"
    assert [s.deployment.name for s in list_deployments(settings=settings)] == ["d"]
    with pytest.raises(NotFound):
        get_deployment("other", settings=settings)
