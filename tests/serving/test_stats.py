"""Each serving process counts requests and errors per minute into ``serving_stats``; the web
UI's deployment page shows the error rate from there."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from modelloop.serving.deployment import parse_deployment
from modelloop.serving.fluent import apply_deployment
from modelloop.serving.server import ServeSpec, build_app
from modelloop.store import open_database
from modelloop.ui.deployments import served_requests

from ..live_server import live_server
from .conftest import Registry, live_app, record
from .test_feedback import NEVER_LOGGED

NOON = int(datetime(2026, 1, 5, 12, 0, 30, tzinfo=UTC).timestamp() * 1000)


def test_requests_and_errors_reach_the_database_and_the_ui(registry: Registry) -> None:
    deployment = {"name": "fraud-online", "model": "fraud@champion"}
    apply_deployment(parse_deployment(deployment))
    spec = ServeSpec(deployment=deployment, stored=False)
    with live_app(build_app(spec, registry.settings, clock=lambda: NOON)) as live:
        for i in range(3):
            assert live.post("/predict", record(i)).status_code == 200
        assert live.post("/predict", record(0, amount="lots")).status_code == 422
        assert live.post("/explain", {"nope": 1}).status_code == 422
        unknown = {"prediction_id": NEVER_LOGGED, "label": 1}
        assert live.post("/feedback", unknown).status_code == 404
        assert live.get("/health").status_code == 200  # not counted: not traffic
    # Shutting the app down flushed the counters.
    with open_database(registry.settings.database_url).read() as conn:
        rows = conn.exec_driver_sql(
            "SELECT route, minute, requests, errors FROM serving_stats ORDER BY route"
        ).all()
    minute = NOON // 60_000 * 60_000
    assert [tuple(r) for r in rows] == [
        ("/explain", minute, 1, 1),
        ("/feedback", minute, 1, 1),
        ("/predict", minute, 4, 1),
    ]
    served = served_requests(registry.settings, "fraud-online", minute - 3_600_000,
                             minute + 60_000, 60_000)  # fmt: skip
    assert (served["requests"], served["errors"]) == (6, 3)
    assert served["error_rate"] == 0.5

    end = datetime.fromtimestamp((minute + 60_000) / 1000, UTC).isoformat()
    with live_server(registry.settings) as url:
        page = httpx.get(f"{url}/ui/deployments/fraud-online", params={"end": end})
    assert page.status_code == 200
    assert '<td id="error-rate">50.00%</td>' in page.text
