"""On a store whose data runs on a simulated clock, every page says so, with the simulated
instant, in Chromium; "now" on its pages is that instant; a wall-clock store has no banner."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

import modelloop as ml
from modelloop.monitoring.fluent import apply_monitor
from modelloop.settings import Settings
from modelloop.tracking.client import open_store
from modelloop.tracking.entities import RunSpec
from tests.conftest import store_settings
from tests.live_server import live_server
from tests.ui.browser import Watched

SIMULATED = datetime(2018, 5, 28, 0, 10, tzinfo=UTC)
BANNER = "simulated clock: 2018-05-28 00:10:00 UTC"
PAGES = (
    "/ui/",
    "/ui/runs",
    "/ui/pipelines",
    "/ui/models",
    "/ui/approvals",
    "/ui/deployments",
    "/ui/monitoring",
    "/ui/monitoring/watch",
    "/ui/automation",
)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings]]:
    tmp: Path = tmp_path_factory.mktemp("uiclock")
    with store_settings(tmp, "sqlite") as settings:
        store = open_store(settings)
        experiment = store.create_experiment("simulation")
        store.create_run(RunSpec(experiment.experiment_id, name="a run on the wall clock"))
        ml.set_store_clock(SIMULATED, settings=settings)
        apply_monitor({"name": "watch", "deployment": "online", "model": "m"}, settings=settings)
        with live_server(settings) as url:
            yield url, settings


@pytest.fixture
def page(browser: Any, simulated: tuple[str, Settings]) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        watched = Watched(context.new_page(), simulated[0])
        yield watched
        watched.assert_clean()
    finally:
        context.close()


def test_a_monitor_applied_on_a_simulated_store_starts_at_the_simulated_now(
    simulated: tuple[str, Settings],
) -> None:
    page = httpx.get(f"{simulated[0]}/ui/monitoring/watch", timeout=30).text
    assert "since 2018-05-28 00:10" in page


def test_every_page_of_a_simulated_store_shows_the_simulated_instant(
    page: Watched, simulated: tuple[str, Settings]
) -> None:
    for path in PAGES:
        assert page.goto(path).status == 200, path
        banner = page.page.locator("#store-clock")
        assert banner.is_visible(), path
        assert BANNER in banner.inner_text(), path
    page.shot("simulated-clock")

    ml.use_wall_clock(settings=simulated[1])  # the store's data is live again: no banner
    try:
        page.goto("/ui/monitoring")
        assert page.page.locator("#store-clock").count() == 0
    finally:
        ml.set_store_clock(SIMULATED, settings=simulated[1])
