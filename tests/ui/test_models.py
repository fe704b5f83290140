"""The registry pages over a real server and in a real browser: models, a model's versions,
aliases, requests and history, the model card and its export, and deciding alias requests.

The registry is seeded through the SDK with two real LightGBM versions trained on data whose
categories, descriptions, tags and reasons carry the XSS corpus; ``champion`` is protected, so
moving it takes a request by ``alice`` and someone else's approval. On a server without
authentication a request acts as the ``X-Modelloop-User`` it names, else as ``anonymous``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import pandas as pd
import pytest

from modelloop import audit
from modelloop.settings import Settings
from modelloop.store import open_database
from tests.ui.browser import Watched
from tests.ui.conftest import XSS, Seeded
from tests.ui.test_pages import assert_inert

MODEL = "fraud"
ALICE = {"X-Modelloop-User": "alice"}


@dataclass
class Models:
    url: str
    settings: Settings
    staging_request: str  # pending throughout, its reason a payload


def _data(rows: int = 600) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    merchants = ("grocery", "travel", XSS[0], XSS[1])
    frame = pd.DataFrame(
        {
            "amount": rng.gamma(2.0, 50.0, rows),
            "merchant": pd.Categorical(rng.choice(merchants, rows), categories=merchants),
            "hour": rng.integers(0, 24, rows),
            "velocity": rng.normal(size=rows),
        }
    )
    label = ((frame["amount"] > 150) | (frame["merchant"] == XSS[0])).astype(int)
    return frame, label


def _seed(settings: Settings) -> str:
    import lightgbm as lgb

    from modelloop.artifacts import BlobStore
    from modelloop.datasets.sql import SqlDatasetStore
    from modelloop.registry.client import Registry
    from modelloop.registry.sql import SqlRegistryStore
    from modelloop.tracking.client import Client, open_store
    from modelloop.tracking.entities import RunSpec

    tracking = open_store(settings)
    db = open_database(settings.database_url)
    store = SqlRegistryStore(db, protected_aliases=settings.protected_aliases)
    registry = Registry(Client(settings=settings, store=tracking), store=store)
    experiment = tracking.create_experiment("registry-ui")
    frame, label = _data()
    runs = [
        tracking.create_run(RunSpec(experiment.experiment_id, name=XSS[2 + i])).run_id
        for i in range(2)
    ]
    logged = SqlDatasetStore(db, BlobStore(settings.artifact_uri)).log_version(
        "fraud-train", frame.assign(label=label), actor="alice", run_id=runs[0]
    )
    for i, run_id in enumerate(runs):
        model = lgb.LGBMClassifier(n_estimators=10 + 10 * i, num_leaves=7, verbose=-1)
        registry.register_model(
            run_id,
            MODEL,
            model.fit(frame, label),
            training_data=frame,
            description=XSS[0] if i == 0 else None,
            tags={
                "card.intended_use": XSS[1],
                "card.limitations": XSS[2],
                "card.fairness": XSS[3],
                "note": XSS[4],
            }
            if i == 0
            else {},
            metrics={"auc": 0.9 + i / 100},
            dataset_digests={"train": logged.digest} if i == 0 else {"train": "cd" * 32},
        )
    store.update_registered_model(MODEL, actor="alice", description=XSS[5], tags={"owner": XSS[6]})
    first = store.request_alias(MODEL, "champion", 1, actor="alice", reason=XSS[7])
    store.approve_request(first.request_id, actor="bob", reason=XSS[8])
    store.set_alias(MODEL, "challenger", 2, actor="alice", reason=XSS[9])
    staging = store.request_alias(MODEL, "staging", 2, actor="alice", reason=XSS[0])
    with audit.recording(db, "gatekeeper") as conn:
        audit.append(
            conn,
            time=1_700_000_000_000,
            actor="gatekeeper",
            action="gate.decision",
            object_type="model_version",
            object_id=f"{MODEL}/2",
            before=None,
            after={
                "decision": "promote",
                "metric": "average_precision",
                "k": None,
                "challenger": {"value": 0.61, "uri": f"models:/{MODEL}/2"},
                "champion": {"value": 0.55, "uri": f"models:/{MODEL}/1"},
                "difference": 0.06,
                "ci_low": 0.021,
                "ci_high": 0.094,
                "confidence": 0.95,
                "margin": 0.0,
                "data": XSS[1],
                "summary": f"promote: {XSS[2]}",
            },
            reason=XSS[3],
        )
    return staging.request_id


@pytest.fixture(scope="module")
def models(ui_settings: tuple[Settings, Seeded], ui_server: tuple[str, Seeded]) -> Models:
    settings, _ = ui_settings
    return Models(ui_server[0], settings, _seed(settings))


@pytest.fixture(scope="module")
def http(models: Models) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=models.url, headers={"Origin": models.url}, timeout=30) as client:
        yield client


def _registry(models: Models) -> Any:
    from modelloop.registry.sql import SqlRegistryStore

    return SqlRegistryStore(open_database(models.settings.database_url))


def _request(models: Models, alias: str = "champion") -> str:
    """A new pending request by alice to point ``alias`` at the version it is not on."""
    store = _registry(models)
    current = store.get_registered_model(MODEL).aliases.get(alias)
    target = 1 if current == 2 else 2
    return str(store.request_alias(MODEL, alias, target, actor="alice", reason="ready").request_id)


PAGES = (
    "/ui/models",
    "/ui/approvals",
    f"/ui/models/{MODEL}",
    f"/ui/models/{MODEL}?version=1",
    f"/ui/models/{MODEL}/versions/1/card",
    f"/ui/models/{MODEL}/versions/2/card",
)


def test_every_registry_page_answers_and_renders_user_text_inert(
    http: httpx.Client, models: Models
) -> None:
    for path in PAGES:
        response = http.get(path)
        assert response.status_code == 200, (path, response.text[:300])
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert_inert(response.text)
    listing = http.get("/ui/models").text
    assert 'href="/ui/models/fraud"' in listing
    assert "&#34;&gt;&lt;iframe src=javascript:alert(6)&gt;&lt;/iframe&gt;" in listing
    model = http.get(f"/ui/models/{MODEL}").text
    assert 'href="/ui/models" class="active"' in model  # the nav marks the section
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in model  # the staging request's reason
    assert model.count('class="card-link"') == 2
    assert "alias.move" in model
    assert "alias_request.approve" in model
    assert "yes (needs approval)" in model  # champion is protected


def test_missing_things_are_pages_with_their_status(http: httpx.Client) -> None:
    for path, status in (
        ("/ui/models/nope", 404),
        (f"/ui/models/{MODEL}/versions/9/card", 404),
        (f"/ui/models/{MODEL}/versions/x/card", 422),
        (f"/ui/models/{MODEL}?version=0", 422),
        (f"/ui/models/{quote(XSS[1], safe='')}", 422),
    ):
        response = http.get(path)
        assert response.status_code == status, path
        assert response.headers["content-type"].startswith("text/html")
        assert_inert(response.text)


def test_the_card_shows_use_data_metrics_explanation_and_history(http: httpx.Client) -> None:
    first = http.get(f"/ui/models/{MODEL}/versions/1/card").text
    intended = _section(first, "intended-use")
    assert "Intended use" in first
    assert "Limitations" in intended
    assert "Fairness" in intended
    assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in intended  # card.intended_use
    profile = _section(first, "profile")
    for feature in ("amount", "merchant", "hour", "velocity", "score (model output)"):
        assert f" {feature} " in profile
    assert "&lt;script&gt;alert(1)&lt;/script&gt; 2" in profile  # a top category, escaped
    assert "fraud-train@1" in first
    assert "600 rows" in first
    assert '<td>auc</td><td class="num">0.9</td>' in first
    explained = _section(first, "explanation")
    assert "Mean absolute contribution over 200 rows sampled from the logged dataset" in explained
    assert all(f" {feature} " in explained for feature in ("amount", "merchant", "velocity"))
    assert "alias_request.approve" in first
    assert "bob" in first
    second = http.get(f"/ui/models/{MODEL}/versions/2/card").text
    assert "Unavailable: the package saved no background rows" in second
    assert "no logged dataset holds this content" in second
    gates = _section(second, "gates")
    assert "promote" in gates
    assert "0.021 to 0.094 (95%)" in gates
    assert "&lt;/title&gt;&lt;script&gt;alert(4)&lt;/script&gt;" in gates  # the reason


def test_the_card_exports_as_one_self_contained_file(http: httpx.Client) -> None:
    response = http.get(f"/ui/models/{MODEL}/versions/1/card.html")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="fraud-v1-card.html"'
    assert "default-src 'none'" in response.headers["content-security-policy"]
    html = response.text
    assert "<script" not in html.lower()
    assert "<style>" in html
    assert "/ui/static" not in html
    assert 'href="/' not in html
    assert_inert(html)
    page = http.get(f"/ui/models/{MODEL}/versions/1/card").text
    for section in ("intended-use", "profile", "card-metrics", "explanation", "card-history"):
        assert _section(html, section) == _section(page, section), section


def test_approve_and_reject_as_the_request_says(http: httpx.Client, models: Models) -> None:
    store = _registry(models)
    request_id = _request(models)
    target = store.get_request(request_id).version
    here = f"/ui/models/{MODEL}"
    origin = {"Origin": models.url}

    # Posted from another site: refused before anything is read.
    other = http.post(
        f"/ui/models/requests/{request_id}/approve",
        data={"reason": "x", "next": here},
        headers={"Origin": "http://evil.example"},
    )
    assert other.status_code == 403
    assert "another site" in other.text
    # The requester cannot approve their own request: a message, not an error page.
    own = http.post(
        f"/ui/models/requests/{request_id}/approve",
        data={"reason": "mine", "next": here},
        headers={**origin, **ALICE},
    )
    assert own.status_code == 303
    shown = http.get(own.headers["location"])
    assert shown.status_code == 200
    assert "cannot approve it" in _section(shown.text, "flash")
    assert 'class="flash error"' in shown.text
    assert store.get_request(request_id).status.value == "PENDING"
    # Anyone else (here the anonymous admin of a server without authentication) can.
    done = http.post(
        f"/ui/models/requests/{request_id}/approve",
        data={"reason": XSS[1], "next": here + "?version=1"},
        headers=origin,
    )
    assert done.status_code == 303
    assert done.headers["location"].startswith(here + "?version=1&")
    page = http.get(done.headers["location"]).text
    assert f"now points at version {target}" in _section(page, "flash")
    assert store.get_registered_model(MODEL).aliases["champion"] == target
    assert store.get_request(request_id).decided_by == "anonymous"
    assert_inert(page)
    # Deciding again: the store's conflict, as a message.
    again = http.post(f"/ui/models/requests/{request_id}/approve", data={}, headers=origin)
    assert "already APPROVED" in _section(http.get(again.headers["location"]).text, "flash")

    # Rejecting needs a reason; the default target is the approvals page.
    doomed = _request(models, "staging-2")
    empty = http.post(f"/ui/models/requests/{doomed}/reject", data={"reason": " "})
    assert empty.headers["location"].startswith("/ui/approvals?")
    assert "reason is required" in _section(http.get(empty.headers["location"]).text, "flash")
    rejected = http.post(f"/ui/models/requests/{doomed}/reject", data={"reason": "not yet"})
    assert "Rejected" in _section(http.get(rejected.headers["location"]).text, "flash")
    assert store.get_request(doomed).status.value == "REJECTED"
    # An open redirect is not: ``next`` stays within the UI.
    away = http.post(
        f"/ui/models/requests/{doomed}/reject", data={"reason": "x", "next": "//evil.example/"}
    )
    assert away.headers["location"].startswith("/ui/?")
    unknown = http.post("/ui/models/requests/nope/frobnicate", data={})
    assert unknown.status_code == 303


def test_a_user_without_the_approver_role_is_told_so(models: Models) -> None:
    """On a server with users: an editor sees no decision form, and a posted one is refused."""
    from modelloop.auth import Role, Users
    from tests.live_server import live_server

    request_id = _request(models, "staging-3")
    users = Users(open_database(models.settings.database_url))
    _, editor = users.add("eve", Role.editor, actor="admin")
    _, approver = users.add("ann", Role.approver, actor="admin")
    with live_server(models.settings) as url, httpx.Client(base_url=url, timeout=30) as http:
        as_eve = {"Authorization": f"Bearer {editor}"}
        page = http.get("/ui/approvals", headers=as_eve)
        assert page.status_code == 200
        assert "Deciding needs the approver role (eve has not)" in page.text
        assert f"/ui/models/requests/{request_id}/approve" not in page.text
        refused = http.post(
            f"/ui/models/requests/{request_id}/approve", data={"reason": "x"}, headers=as_eve
        )
        assert "needs the approver role" in _section(
            http.get(refused.headers["location"], headers=as_eve).text, "flash"
        )
        approved = http.post(
            f"/ui/models/requests/{request_id}/approve",
            data={"reason": "ok"},
            headers={"Authorization": f"Bearer {approver}"},
        )
        assert approved.status_code == 303
    assert _registry(models).get_request(request_id).decided_by == "ann"


# -- in the browser ----------------------------------------------------------------------------


@pytest.fixture
def page(browser: Any, models: Models) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        watched = Watched(context.new_page(), models.url)
        yield watched
        watched.assert_clean()
    finally:
        context.close()


def test_browse_models_to_a_card_and_approve_a_promotion(page: Watched, models: Models) -> None:
    for path in PAGES:
        assert page.goto(path).status == 200, path
    page.goto("/ui/models")
    page.shot("models")
    with page.page.expect_navigation(wait_until="load"):
        page.page.click("a.model-link:has-text('fraud')")
    assert page.page.locator("h1").inner_text() == "Model fraud"
    with page.page.expect_navigation(wait_until="load"):
        page.page.click("tr[data-version='1'] a.card-link")
    assert page.page.locator("h1").inner_text() == "Model card: fraud v1"
    intended = page.page.locator("#intended-use dd").first.inner_text()
    assert intended == XSS[1]  # shown as text
    assert page.page.locator("#explanation tbody tr").count() == 4
    page.shot("model-card")

    request_id = _request(models)
    target = _registry(models).get_request(request_id).version
    page.goto(f"/ui/models/{MODEL}")
    row = page.page.locator(f"tr[data-request='{request_id}']")
    row.locator("input[name=reason]").fill("reviewed the gate's evidence")
    with page.page.expect_navigation(wait_until="load"):
        row.locator("button.approve").click()
    assert f"now points at version {target}" in page.page.locator("#flash").inner_text()
    champion = page.page.locator("tr[data-alias='champion'] .alias-version").inner_text()
    assert champion == f"v{target}"
    assert page.page.locator(f"tr[data-request='{request_id}']").count() == 0
    moved = page.page.locator("#history tbody tr").first.inner_text()
    assert "alias.move" in moved
    assert "reviewed" not in moved
    page.shot("model-approved")


# -- helpers -----------------------------------------------------------------------------------


class _Section(HTMLParser):
    """The inner HTML text of the element with one id (tags dropped, text kept escaped)."""

    def __init__(self, ident: str) -> None:
        super().__init__(convert_charrefs=False)
        self.ident, self.depth = ident, 0
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.depth:
            self.depth += 1 if tag not in _VOID else 0
            self.parts.append(" ")
        elif dict(attrs).get("id") == self.ident:
            self.depth = 1

    def handle_endtag(self, tag: str) -> None:
        if self.depth:
            self.depth -= 1
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.parts.append(data)

    def handle_entityref(self, name: str) -> None:
        if self.depth:
            self.parts.append(f"&{name};")

    def handle_charref(self, name: str) -> None:
        if self.depth:
            self.parts.append(f"&#{name};")


_VOID = {"input", "br", "img", "meta", "link", "hr"}


def _section(html: str, ident: str) -> str:
    parser = _Section(ident)
    parser.feed(html)
    text = re.sub(r"\s+", " ", "".join(parser.parts)).strip()
    assert text, f"no element #{ident}"
    return text
