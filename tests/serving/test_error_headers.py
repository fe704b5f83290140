"""Every error body of a served model says ``X-Content-Type-Options: nosniff``, so a browser
never sniffs an echoed fragment of a JSON error (an input value, a column) into HTML."""

from __future__ import annotations

from tests.serving.conftest import Registry, record, serving


def test_error_responses_say_nosniff(registry: Registry) -> None:
    token = "s3cret-serving-token-for-nosniff"
    auth = {"Authorization": f"Bearer {token}"}
    with serving(registry.settings, token=token) as live:
        responses = {
            "bad input": live.post("/predict", {"amount": "<script>"}, headers=auth),
            "no route": live.post("/predictions", record(0), headers=auth),
            "wrong method": live.get("/predict", headers=auth),
            "no token": live.post("/predict", record(0)),
        }
    for what, response in responses.items():
        assert 400 <= response.status_code < 500, (what, response.status_code, response.text)
        assert response.headers.get("x-content-type-options") == "nosniff", what
