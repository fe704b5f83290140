"""The UI in a real browser: Playwright driving Debian's chromium (``make browser``).

Each page must load with no console error, uncaught exception or failed request, the key flows
must work by clicking (filter runs, open a run and see its chart, compare two runs), and the XSS
corpus must never run (no dialog ever opens). Screenshots go to ``test-output/ui/``.

Without chromium the tests skip locally; in CI (``CI`` or ``MODELLOOP_TEST_POSTGRES_URL`` set,
see ``tests/conftest.py``) they fail instead, so CI cannot pass by leaving the browser out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from tests.ui.browser import Watched
from tests.ui.conftest import LONG_POINTS, Seeded


@pytest.fixture
def page(browser: Any, ui_server: tuple[str, Seeded]) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        watched = Watched(context.new_page(), ui_server[0])
        yield watched
        watched.assert_clean()
    finally:
        context.close()


def chart_points(page: Watched, key: str | None = None) -> list[int]:
    """Points per trace of the Plotly chart, once it has drawn (``key``, when given)."""
    page.page.wait_for_function(
        "key => { const c = document.getElementById('chart');"
        " return c && c.data && c.data.length > 0 && c.dataset.points"
        " && (key === null || c.dataset.key === key); }",
        arg=key,
    )
    points: list[int] = page.page.evaluate(
        "() => document.getElementById('chart').data.map(t => t.x.length)"
    )
    return points


def test_every_page_loads_cleanly_and_the_xss_corpus_never_runs(
    page: Watched, ui_server: tuple[str, Seeded]
) -> None:
    _, seeded = ui_server
    experiment = quote(seeded.xss_experiment, safe="")
    pages = {
        "experiments": "/ui/",
        "runs": "/ui/runs",
        "runs-xss": f"/ui/runs?experiment={experiment}",
        "run-xss": f"/ui/runs/{seeded.xss_runs[0]}",
        "run-lineage": f"/ui/runs/{seeded.lineage_run}",
        "compare-xss": f"/ui/compare?runs={','.join(seeded.xss_runs)}",
        "login": "/ui/login",
    }
    for name, path in pages.items():
        response = page.goto(path)
        assert response.status == 200, path
        if "chart-box" in page.page.content():
            chart_points(page)
        page.shot(name)
    for run_id in seeded.xss_runs[1:]:
        page.goto(f"/ui/runs/{run_id}")
        chart_points(page)
    # The payloads are on screen as text.
    page.goto(f"/ui/runs/{seeded.xss_runs[0]}")
    assert page.page.locator("h1").inner_text() == "Run <script>alert(1)</script>"


def test_filter_runs_through_the_box(page: Watched) -> None:
    page.goto("/ui/runs?experiment=paged")
    assert page.page.locator("a.run-link").count() == 100
    page.page.fill("input[name=filter]", "params.parity = '1' and metrics.score < 10")
    page.page.fill("input[name=order_by]", "metrics.score ASC")
    with page.page.expect_navigation(wait_until="load"):
        page.page.press("input[name=filter]", "Enter")
    names = page.page.locator("a.run-link").all_inner_texts()
    assert names == ["p001", "p003", "p005", "p007", "p009"]
    page.shot("runs-filtered")
    # Clicking the sorted column's header flips the order.
    with page.page.expect_navigation(wait_until="load"):
        page.page.click("th a:has-text('metrics.score')")
    assert page.page.locator("a.run-link").first.inner_text() == "p009"


def test_a_bad_filter_shows_its_message_in_the_page(browser: Any, ui_server: Any) -> None:
    context = browser.new_context()
    try:
        watched = Watched(context.new_page(), ui_server[0])
        response = watched.goto("/ui/runs?filter=" + quote("metrics.auc >"))
        assert response.status == 400
        assert "expected a number" in watched.page.locator("#filter-error").inner_text()
        watched.shot("runs-bad-filter")
        # The browser reports the page's own 400 status; nothing else may go wrong.
        assert [p for p in watched.problems if "status of 400" not in p] == []
        assert watched.dialogs == []
    finally:
        context.close()


def test_open_a_run_and_see_its_downsampled_chart(
    page: Watched, ui_server: tuple[str, Seeded]
) -> None:
    _, seeded = ui_server
    page.goto("/ui/runs?experiment=curves")
    with page.page.expect_navigation(wait_until="load"):
        page.page.click("a.run-link:has-text('lr=0.1')")
    assert page.page.url.endswith(f"/ui/runs/{seeded.curve_run}")
    page.page.select_option(".metric-select", "loss")
    assert chart_points(page, "loss") == [2000]
    note = page.page.locator(".chart-note")
    page.page.wait_for_function(
        "() => document.querySelector('.chart-note').textContent.includes('LTTB')"
    )
    assert re.search(rf"showing 2,000 of {LONG_POINTS:,} points", note.inner_text())
    assert page.page.locator("#chart .main-svg").count() > 0  # drawn, not just data
    page.shot("run-chart")


def test_compare_two_runs(page: Watched, ui_server: tuple[str, Seeded]) -> None:
    _, seeded = ui_server
    page.goto("/ui/runs?experiment=curves")
    for run_id in seeded.plain_runs:
        page.page.check(f"input[name=run][value='{run_id}']")
    with page.page.expect_navigation(wait_until="load"):
        page.page.click("button:has-text('Compare')")
    assert "/ui/compare?" in page.page.url
    differing = page.page.locator("#params-diff tr.differs td:first-child").all_inner_texts()
    assert differing == ["lr"]
    page.page.select_option(".metric-select", "loss")
    assert sorted(chart_points(page, "loss")) == [500, 2000]
    page.page.check("#only-diff")
    assert page.page.locator("#params-diff tr.same").first.is_hidden()
    page.shot("compare")


BROWSER_TOKEN = "browser-t0ken-for-tests"


def test_log_in_through_the_form(browser: Any, ui_settings: Any) -> None:
    from tests.live_server import live_server

    settings, _ = ui_settings
    with live_server(settings, token=BROWSER_TOKEN) as url:
        context = browser.new_context()
        try:
            watched = Watched(context.new_page(), url)
            watched.goto("/ui/runs?experiment=curves")
            assert "/ui/login" in watched.page.url
            watched.page.fill("input[name=token]", BROWSER_TOKEN)
            with watched.page.expect_navigation(wait_until="load"):
                watched.page.click("button:has-text('Log in')")
            assert watched.page.url.endswith("/ui/runs?experiment=curves")
            assert watched.page.locator("a.run-link").count() == 2
            cookies = context.cookies()
            assert [(c["httpOnly"], c["sameSite"]) for c in cookies] == [(True, "Strict")]
            watched.shot("logged-in")
            watched.assert_clean()
        finally:
            context.close()
