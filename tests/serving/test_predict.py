"""``/predict`` and ``/explain`` on a real served model: the three body shapes, the answers equal
the model's own predictions, explanations add up, and the operational routes."""

from __future__ import annotations

import numpy as np
import pytest

from modelloop.errors import InvalidArgument
from modelloop.explain import explain
from modelloop.serving.server import ServeSpec, build_app
from tests.live_server import status_of_raw_get
from tests.serving.conftest import Registry, record, serving, transactions


def _frame(records: list[dict]) -> object:
    frame, _ = transactions()
    return frame.iloc[: len(records)].reset_index(drop=True)


def test_one_record_is_answered_like_the_model(registry: Registry) -> None:
    expected = registry.model(1).predict(_frame([record(0)]))
    with serving(registry.settings) as live:
        response = live.post("/predict", record(0))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["prediction"] == pytest.approx(float(expected[0]), abs=1e-12)
    assert body["model"] == "fraud"
    assert body["version"] == 1
    assert body["role"] == "champion"
    assert len(body["prediction_id"]) == 36


def test_a_list_of_records_gets_a_list_of_answers(registry: Registry) -> None:
    records = [record(i) for i in range(25)]
    expected = registry.model(1).predict(_frame(records))
    with serving(registry.settings) as live:
        body = live.post("/predict", records).json()
    rows = body["predictions"]
    assert [r["prediction"] for r in rows] == pytest.approx(expected.tolist(), abs=1e-12)
    assert len({r["prediction_id"] for r in rows}) == 25
    assert {r["version"] for r in rows} == {1}


def test_columns_get_columns(registry: Registry) -> None:
    records = [record(i) for i in range(10)]
    columns = {key: [r[key] for r in records] for key in records[0]}
    expected = registry.model(1).predict(_frame(records))
    with serving(registry.settings) as live:
        body = live.post("/predict", columns).json()
    assert body["prediction"] == pytest.approx(expected.tolist(), abs=1e-12)
    assert len(body["prediction_id"]) == 10
    assert body["version"] == [1] * 10
    assert body["role"] == ["champion"] * 10


def test_the_inputs_wrapper_is_accepted(registry: Registry) -> None:
    with serving(registry.settings) as live:
        plain = live.post("/predict", record(3)).json()
        wrapped = live.post("/predict", {"inputs": record(3)}).json()
    assert wrapped["prediction"] == plain["prediction"]


def test_prediction_ids_are_unique_and_time_ordered(registry: Registry) -> None:
    with serving(registry.settings) as live:
        ids = [live.post("/predict", record(i)).json()["prediction_id"] for i in range(30)]
    assert len(set(ids)) == 30
    assert [i[:13] for i in ids] == sorted(i[:13] for i in ids)  # the millisecond prefix


def test_explain_returns_contributions_and_reason_codes(registry: Registry) -> None:
    records = [record(i) for i in range(5)]
    model = registry.model(1)
    expected = explain(model, _frame(records), k=2)
    with serving(registry.settings) as live:
        body = live.post("/explain?top_k=2", records).json()
        default_k = live.post("/explain", record(0)).json()
        wrapped = live.post("/explain", {"inputs": record(0), "top_k": 1}).json()
    rows = body["predictions"]
    for row, want in zip(rows, expected, strict=True):
        assert row["contributions"].keys() == want["contributions"].keys()
        got = np.array(list(row["contributions"].values()))
        assert got == pytest.approx(np.array(list(want["contributions"].values())), abs=1e-9)
        assert row["base_value"] == pytest.approx(want["base_value"], abs=1e-9)
        assert row["reason_codes"] == want["reason_codes"]
        # Contributions are in log-odds: with the base they give the probability back.
        logit = row["base_value"] + got.sum()
        assert 1 / (1 + np.exp(-logit)) == pytest.approx(row["prediction"], abs=1e-9)
    assert len(default_k["reason_codes"]) <= 3
    assert len(wrapped["reason_codes"]) <= 1
    merchant_codes = [c for r in rows for c in r["reason_codes"] if c["feature"] == "merchant"]
    assert all(c["value"] in ("grocery", "travel", "online", "atm") for c in merchant_codes)


def test_health_ready_and_metrics(registry: Registry) -> None:
    with serving(registry.settings) as live:
        assert live.get("/health").json() == {"status": "ok"}
        ready = live.get("/ready").json()
        live.post("/predict", record(0))
        live.post("/predict", {"amount": "lots"})
        metrics = live.get("/metrics").text
    assert ready["status"] == "ready"
    assert ready["models"] == [
        {"role": "champion", "name": "fraud", "alias": "champion", "version": 1}
    ]
    assert 'modelloop_requests_total{route="/predict",status="200"} 1.0' in metrics
    assert 'modelloop_requests_total{route="/predict",status="422"} 1.0' in metrics
    assert 'modelloop_errors_total{error_code="INVALID_INPUT",route="/predict"} 1.0' in metrics
    assert 'modelloop_model_version{alias="fraud@champion",role="champion"} 1.0' in metrics
    assert "modelloop_request_latency_seconds_bucket" in metrics
    assert "modelloop_prediction_log_queue_rows" in metrics


def test_a_token_guards_everything_but_health(registry: Registry) -> None:
    token = "s3cret-serving-token"
    with serving(registry.settings, token=token) as live:
        assert live.get("/health").status_code == 200
        refused = live.post("/predict", record(0))
        wrong = live.post("/predict", record(0), headers={"Authorization": "Bearer nope"})
        blank = status_of_raw_get(
            str(live.client.base_url), "/ready", {"Authorization": "Bearer  "}
        )
        allowed = live.post("/predict", record(0), headers={"Authorization": f"Bearer {token}"})
        lower = live.post("/predict", record(0), headers={"Authorization": f"bearer  {token}"})
    assert refused.status_code == 401
    assert refused.json()["error_code"] == "UNAUTHORIZED"
    assert wrong.status_code == 401
    assert blank == 401
    assert allowed.status_code == 200
    assert lower.status_code == 200


@pytest.mark.parametrize("token", [" ", "", "x", "fifteen-chars-x"])
def test_a_blank_or_short_token_is_refused(registry: Registry, token: str) -> None:
    with pytest.raises(InvalidArgument, match="users token --generate"):
        build_app(
            ServeSpec(
                deployment={"name": "d", "model": "fraud@champion"}, stored=False, token=token
            ),
            registry.settings,
        )


def test_unknown_routes_and_methods_are_in_the_error_contract(registry: Registry) -> None:
    with serving(registry.settings) as live:
        missing = live.post("/predictions", record(0))
        slash = live.post("/predict/", record(0))
        method = live.get("/predict")
    assert missing.status_code == 404
    assert missing.json() == {"error_code": "NOT_FOUND", "message": "No route POST /predictions"}
    assert slash.status_code == 404
    assert method.status_code == 405
    assert method.json()["error_code"] == "METHOD_NOT_ALLOWED"
