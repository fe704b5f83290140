"""Policies through the REST API of a real server: declared, read with their state, stepped,
rolled out by hand, their timeline read back; bad bodies are field-level 4xx."""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy import delete

from modelloop.settings import load_settings
from modelloop.store import open_database
from modelloop.store import tables as t

from ..live_server import live_server
from ..server.test_policy_references import seed_references
from .test_policy import GOOD


def test_policies_over_rest(home: Path) -> None:
    seed_references(load_settings())  # the deployment, model and monitor it names
    with live_server(load_settings()) as url:
        api = f"{url}/api/v1/policies"
        bad = httpx.put(f"{api}/fraud-loop", json={**GOOD, "gate": {"metric": "f1"}})
        assert bad.status_code == 422
        assert bad.json()["details"][0]["field"] == "gate.metric"
        renamed = httpx.put(f"{api}/other", json=GOOD)
        assert renamed.status_code == 422

        created = httpx.put(f"{api}/fraud-loop", json=GOOD)
        assert created.status_code == 200, created.text
        assert created.json()["changed"] is True
        assert httpx.put(f"{api}/fraud-loop", json=GOOD).json()["changed"] is False
        shown = httpx.get(f"{api}/fraud-loop").json()
        assert shown["state"]["stage"] == "idle"
        assert shown["training"]["window"] == "14d"
        assert [p["name"] for p in httpx.get(api).json()["policies"]] == ["fraud-loop"]

        # Its monitor cannot be deleted while the policy names it...
        refused = httpx.delete(f"{url}/api/v1/monitors/fraud-watch")
        assert refused.status_code == 409
        assert "policy 'fraud-loop' still name it" in refused.json()["message"]
        # ... but a store written before that check may lack it: a clear 404, not a 500.
        with open_database(load_settings().database_url).write() as conn:
            conn.execute(delete(t.monitors).where(t.monitors.c.name == "fraud-watch"))
        step = httpx.post(f"{api}/fraud-loop/step")
        assert step.status_code == 404
        assert "fraud-watch" in step.json()["message"]
        rollout = httpx.post(f"{api}/fraud-loop/rollout", json={"version": 0, "stage": "full"})
        assert rollout.status_code == 422
        assert httpx.get(f"{api}/fraud-loop/timeline").json() == {"decisions": []}
        assert httpx.get(f"{api}/nope").status_code == 404
        assert httpx.delete(f"{api}/fraud-loop").status_code == 204
        assert httpx.get(f"{api}/fraud-loop").status_code == 404
