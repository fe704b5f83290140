"""Every error body of the REST server says ``X-Content-Type-Options: nosniff``, so a browser
never sniffs an echoed fragment of a JSON error (a name, a path) into HTML or script."""

from __future__ import annotations

import httpx

from modelloop.settings import Settings
from modelloop.tracking.entities import new_id
from tests.live_server import live_server


def test_error_responses_say_nosniff(sqlite_settings: Settings) -> None:
    with live_server(sqlite_settings) as url, httpx.Client(base_url=url, timeout=30) as client:
        responses = {
            "no route (HTTPException)": client.get("/api/v1/no-such-route"),
            "wrong method": client.delete("/api/v1/experiments"),
            "validation (RequestValidationError)": client.post(
                "/api/v1/experiments",
                content=b"{not json",
                headers={"Content-Type": "application/json"},
            ),
            "unknown run (ModelloopError)": client.get(f"/api/v1/runs/{new_id()}"),
            "hostile path (UnsafePath)": client.get(
                f"/api/v1/runs/{new_id()}/artifact", params={"path": "../x"}
            ),
            "rebinding Host (middleware)": client.get(
                "/api/v1/experiments", headers={"Host": "evil.example"}
            ),
        }
    for what, response in responses.items():
        assert 400 <= response.status_code < 500, (what, response.status_code, response.text)
        assert response.headers["content-type"] == "application/json", what
        assert response.headers.get("x-content-type-options") == "nosniff", what
