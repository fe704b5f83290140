"""Regression tests of the loopback security probe (issue 13) on ``modelloop serve``: a DNS
rebinding ``Host`` and cross-site "simple" POSTs (no JSON ``Content-Type``) are refused, on a
real served model."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import orjson
import pytest

from tests.serving.conftest import Live, Registry, record, serving

EVIL = "evil.example"


@pytest.fixture(scope="module")
def live(registry_module: Registry) -> Iterator[Live]:
    with serving(registry_module.settings) as live:
        yield live


def _port(live: Live) -> str:
    return str(live.client.base_url).rstrip("/").rsplit(":", 1)[1]


@pytest.mark.parametrize("path", ["/predict", "/explain", "/feedback", "/ready", "/metrics"])
def test_a_rebinding_host_is_refused(live: Live, path: str) -> None:
    rebound = f"{EVIL}:{_port(live)}"
    headers = {"Host": rebound, "Origin": f"http://{rebound}"}
    if path in ("/ready", "/metrics"):
        answer = live.get(path, headers=headers)
    else:
        answer = live.post(path, record(), headers=headers)
    assert answer.status_code == 400
    assert answer.json()["error_code"] == "INVALID_ARGUMENT"
    assert f"MODELLOOP_ALLOWED_HOSTS={EVIL}" in answer.json()["message"]


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "localhost", "[::1]"])
def test_loopback_names_are_served(live: Live, host: str) -> None:
    answer = live.post("/predict", record(), headers={"Host": host.format(port=_port(live))})
    assert answer.status_code == 200, answer.text


def test_allowed_hosts_are_served(registry_module: Registry) -> None:
    settings = dataclasses.replace(registry_module.settings, allowed_hosts=("models.example",))
    with serving(settings) as live:
        assert live.post("/predict", record(), headers={"Host": "models.example"}).is_success
        assert live.post("/predict", record(), headers={"Host": EVIL}).status_code == 400


@pytest.mark.parametrize("path", ["/predict", "/explain", "/feedback"])
@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", ""]
)
def test_a_post_without_a_json_content_type_is_415(
    live: Live, path: str, content_type: str | None
) -> None:
    """What a page on any site may send cross-site without a preflight."""
    body = record() if path != "/feedback" else {"prediction_id": "0" * 32, "label": 1}
    headers = {} if content_type is None else {"Content-Type": content_type}
    request = live.client.build_request("POST", path, content=orjson.dumps(body), headers=headers)
    assert request.headers.get("content-type") == content_type  # bytes name no type of their own
    answer = live.client.send(request)
    assert answer.status_code == 415, answer.text
    assert answer.json()["error_code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert "Content-Type: application/json" in answer.json()["message"]


def test_json_content_types_are_accepted(live: Live) -> None:
    for content_type in ("application/json", "application/json; charset=utf-8", "text/x+json"):
        answer = live.client.post(
            "/predict", content=orjson.dumps(record()), headers={"Content-Type": content_type}
        )
        assert answer.status_code == 200, content_type
