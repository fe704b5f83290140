"""The automation timeline and the model card on a store where the fraud loop ran for real:
the time to adapt per detected change, skipped triggers muted (a run of them merged), a
scheduled retraining, the gate's replay per day; the card shows what traffic the version was
judged on. Over HTTP and in Chromium."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from modelloop.automation.adaptation import detected_changes, time_to_adapt
from modelloop.automation.decision import Decision
from modelloop.automation.loop import timeline
from tests.conftest import FraudLoop
from tests.live_server import live_server
from tests.ui.browser import Watched
from tests.ui.test_pages import assert_inert


@pytest.fixture(scope="module")
def served(fraud_loop: FraudLoop) -> Iterator[str]:
    with live_server(fraud_loop.settings) as url:
        yield url


@pytest.fixture(scope="module")
def http(served: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def decisions(fraud_loop: FraudLoop) -> list[Decision]:
    return timeline(fraud_loop.policy, settings=fraud_loop.settings)


def _gate(decisions: list[Decision]) -> dict[str, Any]:
    gates = [d for d in decisions if d.action in ("policy.shadow", "policy.rejected")]
    assert gates, f"no gate decision in {[d.action for d in decisions]}"
    return gates[0].evidence


def _text(page: str) -> str:
    """The page's text, tags dropped, entities decoded, spaces collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def test_the_timeline_shows_time_to_adapt_skips_and_the_replay(
    http: httpx.Client, fraud_loop: FraudLoop, decisions: list[Decision]
) -> None:
    response = http.get(f"/ui/automation/{fraud_loop.policy}")
    assert response.status_code == 200, response.text
    page = response.text
    own = re.sub(r'<figure class="interval">.*?</figure>', "", page, flags=re.S)
    assert_inert(own)
    text = _text(page)

    changes = detected_changes(decisions)
    assert changes
    adaptations = [time_to_adapt(decisions, start) for start in changes]
    assert adaptations[0].trained is not None  # the gated challenger saw the change's labels
    start = page.index('id="adaptation"')
    table = _text(page[start : page.index("</table>", start)])
    assert f"{adaptations[0].trained:.1f} days" in table
    missing = sum(v is None for a in adaptations for v in (a.trained, a.partial, a.full))
    assert table.count("not yet") == missing

    skips = [d.evidence["skipped"] for d in decisions if d.action == "policy.trigger_skipped"]
    assert skips
    assert all(reason in text for reason in skips)  # merged in a row, each reason still shown
    assert f"{len(skips)} triggers skipped" in text
    assert 'class="step muted" data-action="policy.trigger_skipped"' in page
    scheduled = next(d for d in decisions if d.action == "policy.retrain_scheduled")
    assert f"Retraining scheduled for {scheduled.evidence['at'][:16].replace('T', ' ')}" in text

    replay = _gate(decisions)["replay"]
    assert replay["data"] in text
    for day in replay["per_day"]:
        champion = "\N{EN DASH}" if day["champion"] is None else f"{day['champion']:.4f}"
        assert f"{day['day']} {day['rows']} {day['positives']} {champion}" in text


def test_the_card_shows_the_replay_the_version_was_judged_on(
    http: httpx.Client, fraud_loop: FraudLoop, decisions: list[Decision]
) -> None:
    gate = _gate(decisions)
    card = http.get(f"/ui/models/{fraud_loop.model}/versions/{gate['version']}/card").text
    replays = card[card.index('id="replays"') :]
    assert gate["replay"]["data"] in _text(
        card[card.index('id="gates"') : card.index('id="replays"')]
    )
    assert gate["replay"]["data"] in _text(replays)
    rows = re.findall(r"<tr><td class=\"mono\">(\d{4}-\d\d-\d\d)</td>", replays)
    assert rows == [d["day"] for d in gate["replay"]["per_day"]]
    assert "replay/per_day.csv" in replays

    exported = http.get(f"/ui/models/{fraud_loop.model}/versions/{gate['version']}/card.html")
    assert exported.status_code == 200
    assert gate["replay"]["data"] in _text(exported.text)
    assert re.findall(r"<tr><td class=\"mono\">(\d{4}-\d\d-\d\d)</td>", exported.text) == rows
    assert 'href="/' not in exported.text

    first = http.get(f"/ui/models/{fraud_loop.model}/versions/1/card").text
    assert 'id="replays"' not in first  # the first champion was never judged by the loop


# -- in the browser ----------------------------------------------------------------------------


@pytest.fixture
def page(browser: Any, served: str) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        watched = Watched(context.new_page(), served)
        yield watched
        watched.assert_clean()
    finally:
        context.close()


def test_read_the_loop_in_the_browser(
    page: Watched, fraud_loop: FraudLoop, decisions: list[Decision]
) -> None:
    page.goto(f"/ui/automation/{fraud_loop.policy}")
    adaptation = page.page.locator("#adaptation tbody tr")
    assert adaptation.count() == len(detected_changes(decisions))
    assert "days" in adaptation.first.inner_text()
    skipped = page.page.locator("li.step.muted[data-action='policy.trigger_skipped']")
    assert skipped.count() >= 1
    assert skipped.first.is_visible()
    assert "found:" in skipped.first.inner_text()
    days = page.page.locator("li.step table.replay-days").first
    assert days.is_visible()
    assert days.locator("tbody tr").count() == len(_gate(decisions)["replay"]["per_day"])
    page.shot("automation-loop")

    gate = _gate(decisions)
    page.goto(f"/ui/models/{fraud_loop.model}/versions/{gate['version']}/card")
    replay = page.page.locator("#replays")
    assert replay.is_visible()
    assert gate["replay"]["data"] in replay.inner_text()
    page.shot("model-card-replay")
