"""A corpus of malformed requests: each gets a 4xx ``{error_code, message}``, none a 500.

Afterwards the server must still answer, and nothing a rejected request carried may have been
stored (a batch is validated whole before any of it is written).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpcore
import httpx
import pytest

from modelloop.settings import load_settings
from modelloop.tracking.entities import RunSpec
from modelloop.tracking.http import HttpTrackingStore
from tests.live_server import live_server

RUN = "{run}"  # replaced by the id of a real run
EXP = "{exp}"  # replaced by the id of a real experiment
JSON_LIMIT = 32 * 1024 * 1024


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})
    raw: bool = False  # send the request target byte for byte (no client normalisation)


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _deep_object(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"x": value}
    return value


def _batch(*points: Any) -> bytes:
    return _json({"metrics": list(points)})


BATCH = f"/api/v1/runs/{RUN}/batch"
SEARCH = "/api/v1/runs/search"
EXPERIMENTS = "/api/v1/experiments"

CORPUS = [
    # -- not JSON at all, or not the JSON we want
    Case("invalid-json", "POST", EXPERIMENTS, b"{not json"),
    Case("truncated-json", "POST", EXPERIMENTS, b'{"name": "x"'),
    Case("trailing-comma", "POST", EXPERIMENTS, b'{"name": "x",}'),
    Case("empty-body", "POST", EXPERIMENTS, b""),
    Case("json-array", "POST", EXPERIMENTS, b'["name"]'),
    Case("json-string", "POST", EXPERIMENTS, b'"name"'),
    Case("json-null", "POST", EXPERIMENTS, b"null"),
    Case("nan-literal", "POST", BATCH, b'{"metrics": [["m", NaN, 0, 1]]}'),
    Case("infinity-literal", "POST", BATCH, b'{"metrics": [["m", -Infinity, 0, 1]]}'),
    Case("lone-surrogate", "POST", EXPERIMENTS, b'{"name": "\\ud800"}'),
    Case("invalid-utf8", "POST", EXPERIMENTS, b'{"name": "\xff\xfe"}'),
    Case("latin1-body", "POST", EXPERIMENTS, '{"name": "caf\xe9"}'.encode("latin-1")),
    Case("nested-5000", "POST", EXPERIMENTS, b'{"name": ' + _nested(5000) + b"}"),
    Case("nested-1000", "POST", BATCH, b'{"metrics": ' + _nested(1000) + b"}"),
    Case(
        "deep-source",
        "POST",
        "/api/v1/runs",
        _json({"experiment_id": EXP, "source": _deep_object(200)}),
    ),
    Case("huge-float", "POST", BATCH, b'{"metrics": [["m", 1e400, 0, 1]]}'),
    Case("huge-int-value", "POST", BATCH, b'{"metrics": [["m", 1' + b"0" * 400 + b", 0, 1]]}"),
    # -- wrong types everywhere
    Case("name-number", "POST", EXPERIMENTS, _json({"name": 5})),
    Case("name-null", "POST", EXPERIMENTS, _json({"name": None})),
    Case("name-list", "POST", EXPERIMENTS, _json({"name": ["a"]})),
    Case("name-empty", "POST", EXPERIMENTS, _json({"name": ""})),
    Case("name-nul", "POST", EXPERIMENTS, _json({"name": "a\x00b"})),
    Case("name-too-long", "POST", EXPERIMENTS, _json({"name": "n" * 300})),
    Case("description-object", "POST", EXPERIMENTS, _json({"name": "x", "description": {}})),
    Case("unknown-field", "POST", EXPERIMENTS, _json({"name": "x", "colour": "red"})),
    Case("metrics-string", "POST", BATCH, _json({"metrics": "loss"})),
    Case("metrics-object", "POST", BATCH, _json({"metrics": {"loss": 1.0}})),
    Case("point-string", "POST", BATCH, _batch("loss")),
    Case("point-too-short", "POST", BATCH, _batch(["loss", 1.0])),
    Case("point-too-long", "POST", BATCH, _batch(["loss", 1.0, 0, 1, 2])),
    Case("value-string", "POST", BATCH, _batch(["loss", "high", 0, 1])),
    Case("value-bool", "POST", BATCH, _batch(["loss", True, 0, 1])),
    Case("value-list", "POST", BATCH, _batch(["loss", [1.0], 0, 1])),
    Case("step-float", "POST", BATCH, _batch(["loss", 1.0, 1.5, 1])),
    Case("step-string", "POST", BATCH, _batch(["loss", 1.0, "1", 1])),
    Case("step-over-int64", "POST", BATCH, _batch(["loss", 1.0, 2**63, 1])),
    Case("step-huge", "POST", BATCH, _batch(["loss", 1.0, 10**30, 1])),
    Case("timestamp-negative", "POST", BATCH, _batch(["loss", 1.0, 0, -1])),
    Case("timestamp-null", "POST", BATCH, _batch(["loss", 1.0, 0, None])),
    Case("key-too-long", "POST", BATCH, _batch(["k" * 300, 1.0, 0, 1])),
    Case("key-nul", "POST", BATCH, _batch(["a\x00b", 1.0, 0, 1])),
    Case("key-number", "POST", BATCH, _batch([7, 1.0, 0, 1])),
    Case("key-leading-space", "POST", BATCH, _batch([" k", 1.0, 0, 1])),
    Case(
        "bad-point-after-many-good",
        "POST",
        BATCH,
        _batch(*[["good", 1.0, i, 1] for i in range(1000)], ["good", "bad", 1000, 1]),
    ),
    Case("params-number", "POST", BATCH, _json({"params": {"lr": 0.1}})),
    Case("params-list", "POST", BATCH, _json({"params": ["lr"]})),
    Case("param-key-invalid", "POST", BATCH, _json({"params": {"bad key!": "x"}})),
    Case("param-value-too-long", "POST", BATCH, _json({"params": {"p": "v" * 9000}})),
    Case("param-value-nul", "POST", BATCH, _json({"params": {"p": "a\x00"}})),
    Case("tag-null", "POST", BATCH, _json({"tags": {"t": None}})),
    Case("batch-unknown-field", "POST", BATCH, _json({"metrics": [], "metric": []})),
    # -- runs and search
    Case("run-experiment-number", "POST", "/api/v1/runs", _json({"experiment_id": 1})),
    Case("run-source-list", "POST", "/api/v1/runs", _json({"experiment_id": EXP, "source": [1]})),
    Case(
        "run-bad-parent",
        "POST",
        "/api/v1/runs",
        _json({"experiment_id": EXP, "parent_run_id": "../x"}),
    ),
    Case(
        "run-name-too-long",
        "POST",
        "/api/v1/runs",
        _json({"experiment_id": EXP, "name": "r" * 300}),
    ),
    Case("run-missing-experiment", "POST", "/api/v1/runs", _json({"name": "r"})),
    Case("search-ids-string", "POST", SEARCH, _json({"experiment_ids": EXP})),
    Case("search-ids-numbers", "POST", SEARCH, _json({"experiment_ids": [1, 2]})),
    Case("search-missing-ids", "POST", SEARCH, _json({})),
    Case(
        "search-max-negative", "POST", SEARCH, _json({"experiment_ids": [EXP], "max_results": -1})
    ),
    Case("search-max-zero", "POST", SEARCH, _json({"experiment_ids": [EXP], "max_results": 0})),
    Case(
        "search-max-huge", "POST", SEARCH, _json({"experiment_ids": [EXP], "max_results": 10**12})
    ),
    Case(
        "search-max-string", "POST", SEARCH, _json({"experiment_ids": [EXP], "max_results": "10"})
    ),
    Case("search-max-float", "POST", SEARCH, _json({"experiment_ids": [EXP], "max_results": 1.5})),
    Case("search-order-string", "POST", SEARCH, _json({"experiment_ids": [EXP], "order_by": "x"})),
    Case(
        "search-order-bad", "POST", SEARCH, _json({"experiment_ids": [EXP], "order_by": ["x y z"]})
    ),
    Case("search-filter-number", "POST", SEARCH, _json({"experiment_ids": [EXP], "filter": 5})),
    Case(
        "search-filter-garbage", "POST", SEARCH, _json({"experiment_ids": [EXP], "filter": "(((("})
    ),
    Case(
        "search-filter-huge",
        "POST",
        SEARCH,
        _json({"experiment_ids": [EXP], "filter": "(" * 10000}),
    ),
    Case("end-bad-status", "POST", f"/api/v1/runs/{RUN}/end", _json({"status": "DONE"})),
    Case("end-running", "POST", f"/api/v1/runs/{RUN}/end", _json({"status": "RUNNING"})),
    Case("end-status-number", "POST", f"/api/v1/runs/{RUN}/end", _json({"status": 1})),
    # -- content types
    Case("text-plain", "POST", EXPERIMENTS, _json({"name": "x"}), {"content-type": "text/plain"}),
    Case("no-content-type", "POST", EXPERIMENTS, _json({"name": "x"}), {}),
    Case(
        "form-encoded",
        "POST",
        EXPERIMENTS,
        b"name=x",
        {"content-type": "application/x-www-form-urlencoded"},
    ),
    # -- ids and routes
    Case("run-id-not-hex", "GET", "/api/v1/runs/zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"),
    Case("run-id-upper-case", "GET", "/api/v1/runs/" + "A" * 32),
    Case("run-id-short", "GET", "/api/v1/runs/" + "a" * 31),
    Case("run-id-long", "GET", "/api/v1/runs/" + "a" * 33),
    Case("run-id-in-batch", "POST", "/api/v1/runs/nope/batch", _json({})),
    Case("run-id-in-history", "GET", "/api/v1/runs/nope/metrics/m/history"),
    Case("run-id-encoded-traversal", "GET", "/api/v1/runs/..%2F..%2Fetc%2Fpasswd", raw=True),
    Case("run-id-dot-segments", "GET", "/api/v1/runs/../../../etc/passwd", raw=True),
    Case("run-id-nul", "GET", "/api/v1/runs/%00" + "a" * 31, raw=True),
    Case("run-id-backslashes", "GET", "/api/v1/runs/..%5C..%5Cwindows", raw=True),
    Case("artifact-run-traversal", "GET", "/api/v1/runs/..%2F" + "a" * 32 + "/artifacts", raw=True),
    Case("unknown-run", "GET", "/api/v1/runs/" + "0" * 32),
    Case("unknown-experiment", "GET", "/api/v1/experiments/" + "0" * 32),
    Case("unknown-route", "GET", "/api/v1/nothing-here"),
    Case("trailing-slash", "GET", "/api/v1/experiments/"),
    Case("wrong-method", "PUT", f"/api/v1/runs/{RUN}"),  # GET, PATCH and DELETE exist
    Case("wrong-method-batch", "GET", BATCH),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    """The server's URL, an experiment id and a run id in it."""
    settings = load_settings({"MODELLOOP_HOME": str(tmp_path_factory.mktemp("malformed"))})
    with live_server(settings) as url:
        store = HttpTrackingStore(url)
        try:
            experiment = store.create_experiment("malformed")
            run = store.create_run(RunSpec(experiment.experiment_id))
        finally:
            store.close()
        yield url, experiment.experiment_id, run.run_id


def _send(
    url: str, case: Case, experiment_id: str, run_id: str
) -> tuple[int, dict[str, str], bytes]:
    path = case.path.replace(RUN, run_id)
    body = case.body.replace(EXP.encode(), experiment_id.encode()) if case.body else case.body
    if case.raw:
        host, port = httpx.URL(url).host, httpx.URL(url).port
        target = httpcore.URL(scheme=b"http", host=host.encode(), port=port, target=path.encode())
        raw = httpcore.request(case.method, target, headers=case.headers, content=body)
        headers = {k.decode().lower(): v.decode() for k, v in raw.headers}
        return raw.status, headers, raw.content
    with httpx.Client(base_url=url, timeout=30) as client:
        response = client.request(case.method, path, content=body, headers=case.headers)
        return response.status_code, dict(response.headers), response.content


def _assert_client_error(status: int, headers: dict[str, str], content: bytes) -> dict[str, Any]:
    assert 400 <= status < 500, (status, content[:300])
    assert headers["content-type"] == "application/json", content[:300]
    body = json.loads(content)
    assert isinstance(body.get("error_code"), str), body
    assert body["error_code"], body
    assert isinstance(body.get("message"), str), body
    assert body["message"], body
    assert "Traceback" not in body["message"]
    return dict(body)


@pytest.mark.parametrize("case", CORPUS, ids=[case.id for case in CORPUS])
def test_malformed_request_gets_a_4xx_json_error(server: tuple[str, str, str], case: Case) -> None:
    url, experiment_id, run_id = server
    _assert_client_error(*_send(url, case, experiment_id, run_id))


def test_validation_errors_name_the_field(server: tuple[str, str, str]) -> None:
    url, experiment_id, run_id = server
    cases = {
        "point-string": "body.metrics.0",
        "value-string": "body.metrics.0",
        "bad-point-after-many-good": "body.metrics.1000",
        "name-number": "body.name",
        "unknown-field": "body.colour",
        "search-max-negative": "body.max_results",
        "run-id-not-hex": "path.run_id",
        "invalid-json": "invalid JSON",
        "nan-literal": "NaN",
    }
    by_id = {case.id: case for case in CORPUS}
    for case_id, expected in cases.items():
        body = _assert_client_error(*_send(url, by_id[case_id], experiment_id, run_id))
        assert expected in body["message"], (case_id, body)


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_oversize_json_body_is_413(server: tuple[str, str, str], declared: bool) -> None:
    url, _, run_id = server
    block = b" " * (1024 * 1024)
    size = JSON_LIMIT + len(block)
    content: bytes | Iterator[bytes] = (
        b" " * size if declared else (block for _ in range(size // len(block)))
    )
    with httpx.Client(base_url=url, timeout=60) as client:
        response = client.post(
            f"/api/v1/runs/{run_id}/batch",
            content=content,
            headers={"content-type": "application/json"},
        )
    body = _assert_client_error(response.status_code, dict(response.headers), response.content)
    assert response.status_code == 413
    assert body["error_code"] == "PAYLOAD_TOO_LARGE"


def test_server_survives_the_corpus(server: tuple[str, str, str]) -> None:
    url, experiment_id, run_id = server
    for case in CORPUS:
        _send(url, case, experiment_id, run_id)
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/health").json() == {"status": "ok"}
        created = client.post("/api/v1/experiments", json={"name": "after-the-corpus"})
        assert created.status_code == 201, created.text
        logged = client.post(f"/api/v1/runs/{run_id}/batch", json={"metrics": [["ok", 1.0, 0, 1]]})
        assert logged.status_code == 204, logged.text
    store = HttpTrackingStore(url)
    try:
        run = store.get_run(run_id)
        # nothing from the rejected requests was written, only the normal batch above
        assert run.metrics == {"ok": 1.0}
        assert run.params == {}
        assert run.tags == {}
        assert run.status.value == "RUNNING"
        assert len(store.metric_history(run_id, "good")) == 0
    finally:
        store.close()
