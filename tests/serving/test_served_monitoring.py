"""The whole path: a model served over real HTTP with a shadow challenger, its answers and the
labels sent back to /feedback, watched by a monitor: drift and performance per version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import modelloop as ml
from modelloop.monitoring.runner import check_windows

from .conftest import Registry, serving, transactions


def _columns(frame: Any) -> dict[str, list[Any]]:
    return {
        "amount": frame["amount"].astype(float).tolist(),
        "merchant": frame["merchant"].astype(str).tolist(),
        "hour": frame["hour"].astype(int).tolist(),
        "foreign": frame["foreign"].astype(bool).tolist(),
        "velocity": frame["velocity"].astype(float).tolist(),
    }


def test_a_served_deployment_is_monitored_per_version(registry: Registry) -> None:
    frame, label = transactions(rows=3000, seed=7)
    live_frame = frame.copy()
    live_frame["amount"] = live_frame["amount"] * 3  # bigger purchases than in training
    deployment = {"name": "fraud-online", "model": "fraud@champion",
                  "challenger": "fraud@challenger", "mode": "shadow",
                  "log_keys": ["card_id"]}  # fmt: skip
    cards = [f"card-{i % 400}" for i in range(3000)]
    with serving(registry.settings, deployment) as live:
        ids: list[str] = []
        for part in range(0, 3000, 500):
            body = _columns(live_frame.iloc[part : part + 500]) | {
                "card_id": cards[part : part + 500]
            }
            answer = live.post("/predict", body)
            assert answer.status_code == 200, answer.text
            ids += answer.json()["prediction_id"]
        live.flush()
        labels = [{"prediction_id": i, "label": int(y)} for i, y in zip(ids, label, strict=True)]
        stored = live.post("/feedback", labels)
        assert stored.status_code == 200, stored.text

    ml.apply_monitor(
        {
            "name": "served",
            "deployment": "fraud-online",
            "model": "fraud",
            "window": "last 2000",
            "performance": {"label_delay": "0s", "k": 50, "entity": "card_id"},
        }
    )
    results = check_windows("served", now=datetime.now(UTC) + timedelta(minutes=1))
    drift, performance = results
    assert (drift.kind, performance.kind) == ("drift", "performance")
    champion, challenger = 1, 2
    scopes = {s.model_version: s for s in drift.scopes}
    assert set(scopes) == {0, champion, challenger}
    assert scopes[0].n_predictions == 2000  # the answers; the shadow's scores are apart
    assert scopes[challenger].n_predictions == 2000
    for scope in scopes.values():
        assert "amount" in scope.report["drifted_columns"]
        assert "merchant" not in scope.report["drifted_columns"]
        assert set(scope.report["columns"]) == {"amount", "merchant", "hour", "foreign",
                                                "velocity"}  # fmt: skip

    quality = {s.model_version: s for s in performance.scopes}
    for version in (0, champion, challenger):
        values = quality[version].values
        assert quality[version].status == "ok"
        assert values["performance.label_coverage"] == 1.0
        assert 0.5 < values["performance.auc_roc"] <= 1.0
        assert 0 < values["performance.card_precision_at_k"] <= 1.0  # the logged card ids
    assert (
        quality[0].values["performance.auc_roc"] == quality[champion].values["performance.auc_roc"]
    )


def test_a_simulated_clock_stamps_predictions_and_labels(registry: Registry) -> None:
    """A simulation replays past days through real HTTP: its clock, not the wall's, decides
    which day a prediction and its label belong to."""
    from modelloop.serving.prediction_log import prediction_time_ms
    from modelloop.serving.server import ServeSpec, build_app

    from .conftest import live_app

    now = {"ms": int(datetime(2018, 4, 3, 12, tzinfo=UTC).timestamp() * 1000)}
    spec = ServeSpec(deployment={"name": "sim", "model": "fraud@champion"}, stored=False)
    frame, _ = transactions(rows=10)
    with live_app(build_app(spec, registry.settings, clock=lambda: now["ms"])) as live:
        ids = live.post("/predict", _columns(frame)).json()["prediction_id"]
        live.flush()
        now["ms"] += 7 * 86_400_000  # the labels come a week later
        assert live.post("/feedback", [{"prediction_id": i, "label": 0} for i in ids]).is_success
    assert {prediction_time_ms(i) for i in ids} == {now["ms"] - 7 * 86_400_000}
    logged = ml.load_predictions("fraud", "2018-04-03", "2018-04-04")
    assert sorted(logged["prediction_id"]) == sorted(ids)
    assert set(logged["labelled_at"]) == {datetime(2018, 4, 10, 12, tzinfo=UTC)}
