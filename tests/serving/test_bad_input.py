"""A corpus of bad requests to ``/predict``, ``/explain`` and ``/feedback``: each is a 4xx in the
error contract, with field-level details where a field is at fault, and never a 500. The server
keeps answering afterwards, and nothing a rejected request carried reaches the prediction log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from modelloop.serving.predictions import load_predictions
from tests.serving.conftest import Live, Registry, record, serving

GOOD = record(0)
VALID_ID = "01a2169c-0810-7fb8-9289-5ab0fdbebe32"  # well formed, never logged


@dataclass(frozen=True)
class Case:
    id: str
    body: bytes
    status: int
    blame: str | None = None  # a details entry must name this field
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})
    path: str = "/predict"


def _j(value: Any) -> bytes:
    return json.dumps(value).encode()


def _without(key: str) -> dict[str, Any]:
    return {k: v for k, v in GOOD.items() if k != key}


PREDICT = [
    Case("not-json", b"{amount: 1}", 422),
    Case("truncated-json", b'{"amount": 1', 422),
    Case("empty-body", b"", 422),
    Case("nan-literal", b'{"amount": NaN}', 422),
    Case("infinity-literal", b'{"amount": Infinity}', 422),
    Case("invalid-utf8", b'{"merchant": "\xff\xfe"}', 422),
    Case("json-string", b'"hello"', 422),
    Case("json-number", b"42", 422),
    Case("json-null", b"null", 422),
    Case("empty-object", b"{}", 422),
    Case("empty-list", b"[]", 422),
    Case("list-of-numbers", _j([1, 2, 3]), 422),
    Case("missing-field", _j(_without("amount")), 422, "amount"),
    Case("extra-field", _j({**GOOD, "surprise": 1}), 422, "surprise"),
    Case("string-for-number", _j({**GOOD, "amount": "12.5"}), 422, "amount"),
    Case("null-not-nullable", _j({**GOOD, "amount": None}), 422, "amount"),
    Case("bool-for-number", _j({**GOOD, "amount": True}), 422, "amount"),
    Case("number-for-bool", _j({**GOOD, "foreign": 3}), 422, "foreign"),
    Case("float-for-int", _j({**GOOD, "hour": 3.5}), 422, "hour"),
    Case("string-for-bool", _j({**GOOD, "foreign": "yes"}), 422, "foreign"),
    Case("unseen-category", _j({**GOOD, "merchant": "casino"}), 422, "merchant"),
    Case("number-for-category", _j({**GOOD, "merchant": 3}), 422, "merchant"),
    Case("object-for-number", _j({**GOOD, "amount": {"value": 1}}), 422, "amount"),
    Case("list-in-record", _j({**GOOD, "amount": [1, 2]}), 422),
    Case("bad-row-in-list", _j([GOOD, {**GOOD, "hour": "noon"}]), 422, "hour"),
    Case("non-object-row", _j([GOOD, 5]), 422),
    Case("ragged-columns", _j({k: [v, v] if k != "hour" else [v] for k, v in GOOD.items()}), 422),
    Case("column-missing", _j({k: [v] for k, v in _without("velocity").items()}), 422, "velocity"),
    Case("too-many-rows", _j([GOOD] * 10_001), 413),
    Case("huge-body", b"[" + b" " * (17 * 1024 * 1024) + b"]", 413),
    Case(
        "form-encoded",
        b"amount=1",
        415,
        headers={"content-type": "application/x-www-form-urlencoded"},
    ),
    Case("deep-nesting", b"[" * 5000 + b"]" * 5000, 422),
    Case("explain-bad-top-k", _j(GOOD), 422, "top_k", path="/explain?top_k=-1"),
    Case("explain-top-k-text", _j(GOOD), 422, "top_k", path="/explain?top_k=many"),
    Case(
        "explain-wrapper-bad-k", _j({"inputs": GOOD, "top_k": 1.5}), 422, "top_k", path="/explain"
    ),
]

FEEDBACK = [
    Case("fb-not-json", b"{prediction_id", 422, path="/feedback"),
    Case("fb-empty-body", b"", 422, path="/feedback"),
    Case("fb-empty-list", b"[]", 422, path="/feedback"),
    Case("fb-string", _j("label"), 422, path="/feedback"),
    Case("fb-number", _j(1), 422, path="/feedback"),
    Case("fb-missing-id", _j({"label": 1}), 422, "prediction_id", path="/feedback"),
    Case("fb-missing-label", _j({"prediction_id": VALID_ID}), 422, "label", path="/feedback"),
    Case(
        "fb-null-label",
        _j({"prediction_id": VALID_ID, "label": None}),
        422,
        "label",
        path="/feedback",
    ),
    Case(
        "fb-list-label",
        _j({"prediction_id": VALID_ID, "label": [1]}),
        422,
        "label",
        path="/feedback",
    ),
    Case(
        "fb-object-label",
        _j({"prediction_id": VALID_ID, "label": {}}),
        422,
        "label",
        path="/feedback",
    ),
    Case(
        "fb-empty-text-label",
        _j({"prediction_id": VALID_ID, "label": ""}),
        422,
        "label",
        path="/feedback",
    ),
    Case(
        "fb-long-text-label",
        _j({"prediction_id": VALID_ID, "label": "x" * 2000}),
        422,
        "label",
        path="/feedback",
    ),
    Case(
        "fb-huge-int-label",
        b'{"prediction_id": "%s", "label": 1e400}' % VALID_ID.encode(),
        422,
        path="/feedback",
    ),
    Case(
        "fb-nan-label",
        b'{"prediction_id": "%s", "label": NaN}' % VALID_ID.encode(),
        422,
        path="/feedback",
    ),
    Case(
        "fb-id-number",
        _j({"prediction_id": 12, "label": 1}),
        422,
        "prediction_id",
        path="/feedback",
    ),
    Case(
        "fb-id-not-uuid",
        _j({"prediction_id": "abc", "label": 1}),
        422,
        "prediction_id",
        path="/feedback",
    ),
    Case(
        "fb-id-uppercase",
        _j({"prediction_id": VALID_ID.upper(), "label": 1}),
        422,
        "prediction_id",
        path="/feedback",
    ),
    Case(
        "fb-id-uuid4",
        _j({"prediction_id": "9b2f6c1e-3f1a-4c2b-9d3e-1a2b3c4d5e6f", "label": 1}),
        422,
        "prediction_id",
        path="/feedback",
    ),
    Case(
        "fb-id-path-traversal",
        _j({"prediction_id": "../../etc/passwd", "label": 1}),
        422,
        "prediction_id",
        path="/feedback",
    ),
    Case(
        "fb-extra-field",
        _j({"prediction_id": VALID_ID, "label": 1, "note": "x"}),
        422,
        "note",
        path="/feedback",
    ),
    Case(
        "fb-bad-item-in-list",
        _j([{"prediction_id": VALID_ID, "label": 1}, {"label": 0}]),
        422,
        "prediction_id",
        path="/feedback",
    ),
    Case(
        "fb-non-object-item",
        _j([{"prediction_id": VALID_ID, "label": 1}, 7]),
        422,
        path="/feedback",
    ),
    Case(
        "fb-too-many", _j([{"prediction_id": VALID_ID, "label": 1}] * 10_001), 413, path="/feedback"
    ),
    Case(
        "fb-form-encoded", b"label=1", 415, headers={"content-type": "text/plain"}, path="/feedback"
    ),
    Case("fb-huge-body", b"[" + b" " * (17 * 1024 * 1024) + b"]", 413, path="/feedback"),
    Case(
        "fb-unknown-id",
        _j({"prediction_id": VALID_ID, "label": 1}),
        404,
        "prediction_id",
        path="/feedback",
    ),
]


@pytest.fixture(scope="module")
def live(registry_module: Registry) -> Any:
    with serving(registry_module.settings) as live:
        yield live


@pytest.mark.parametrize("case", PREDICT + FEEDBACK, ids=lambda c: c.id)
def test_bad_requests_are_4xx_with_details(live: Live, case: Case) -> None:
    response = live.client.post(case.path, content=case.body, headers=case.headers)
    assert response.status_code == case.status, response.text
    body = response.json()
    assert set(body) <= {"error_code", "message", "details"}
    assert body["error_code"]
    assert body["message"]
    if case.blame is not None:
        fields = {d.get("field") for d in body.get("details", [])}
        assert case.blame in fields, body


def test_the_corpus_is_big_enough() -> None:
    assert len(PREDICT) >= 25
    assert len(FEEDBACK) >= 25


def test_the_server_still_answers_and_logged_nothing_bad(live: Live) -> None:
    for case in PREDICT:
        live.client.post(case.path, content=case.body, headers=case.headers)
    ok = live.post("/predict", GOOD)
    assert ok.status_code == 200
    live.flush()
    logged = load_predictions("fraud", settings=live.service.settings)
    assert logged["prediction_id"].tolist() == [ok.json()["prediction_id"]]
