"""A seeded store and a live server shared by the UI tests of one module.

The store holds an experiment whose runs, params, tags and lineage carry an XSS corpus, a run
with a 100k-point curve (downsampled on its way to the chart), and enough runs to page through.
Seeding goes through the store directly: it is the pages that are under test.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from modelloop.settings import Settings
from modelloop.store.lineage import record_edges
from modelloop.tracking.client import open_store
from modelloop.tracking.entities import Metric, RunSpec, RunStatus
from modelloop.tracking.sql import SqlTrackingStore
from tests.conftest import store_settings
from tests.live_server import live_server
from tests.ui.browser import ARGS, CHROMIUM

XSS = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(2)>',
    "'><svg onload=alert(3)>",
    "</title><script>alert(4)</script>",
    '<a href="javascript:alert(5)">click</a>',
    '"><iframe src=javascript:alert(6)></iframe>',
    "<b onmouseover=alert(7)>bold</b>",
    "</textarea></script><script>alert(8)</script>",
    "javascript:alert(9)",
    "{{7*7}} {% raw %}",
)
LONG_POINTS = 100_000
PAGED_RUNS = 205  # three pages of 100


@dataclass
class Seeded:
    xss_experiment: str = XSS[0]
    xss_runs: list[str] = field(default_factory=list)
    curve_run: str = ""
    plain_runs: list[str] = field(default_factory=list)  # two runs that differ in one param
    lineage_run: str = ""


def seed(settings: Settings) -> Seeded:
    store = open_store(settings)
    assert isinstance(store, SqlTrackingStore)
    out = Seeded()
    xss = store.create_experiment(out.xss_experiment, description=XSS[1])
    for i, payload in enumerate(XSS):
        run = store.create_run(
            RunSpec(
                xss.experiment_id,
                name=payload,
                user=payload,
                params={"payload": payload, "index": str(i)},
                tags={"note": payload, "link": "javascript:alert(10)"},
            )
        )
        store.log_batch(run.run_id, [Metric("acc", i / 10, 0, 1_000)])
        store.put_artifact(run.run_id, f"reports/{i}-x.txt", payload.encode())
        out.xss_runs.append(run.run_id)

    curves = store.create_experiment("curves")
    for lr in ("0.1", "0.3"):
        run = store.create_run(
            RunSpec(curves.experiment_id, name=f"lr={lr}", params={"lr": lr, "model": "lgbm"})
        )
        points = [
            Metric("loss", 1.0 / (step + 1) + (0.5 if step == 4321 else 0.0), step, 1_000 + step)
            for step in range(LONG_POINTS if lr == "0.1" else 500)
        ]
        store.log_batch(run.run_id, points)
        store.log_batch(run.run_id, [Metric("auc", float(lr) + 0.5, 0, 2_000)])
        store.end_run(run.run_id, RunStatus.FINISHED)
        out.plain_runs.append(run.run_id)
    out.curve_run = out.plain_runs[0]

    paged = store.create_experiment("paged")
    for i in range(PAGED_RUNS):
        run = store.create_run(
            RunSpec(paged.experiment_id, name=f"p{i:03d}", params={"parity": str(i % 2)})
        )
        store.log_batch(run.run_id, [Metric("score", float(i), 0, 1_000)])

    # Lineage: a dataset (whose name carries a payload) and another run's artifact fed this run.
    producer, consumer = out.plain_runs[1], out.plain_runs[0]
    digest = "ab" * 32
    record_edges(
        store.db,
        [
            ("run", producer, "artifact", digest, "output"),
            ("artifact", digest, "run", consumer, "input"),
            ("dataset", f"{XSS[0]}@1", "run", consumer, "input"),
        ],
    )
    out.lineage_run = consumer
    return out


@pytest.fixture(scope="module")
def ui_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Seeded]]:
    tmp: Path = tmp_path_factory.mktemp("ui")
    with store_settings(tmp, "sqlite") as settings:
        yield settings, seed(settings)


@pytest.fixture(scope="module")
def ui_server(ui_settings: tuple[Settings, Seeded]) -> Iterator[tuple[str, Seeded]]:
    settings, seeded = ui_settings
    with live_server(settings) as url:
        yield url, seeded


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        reason = f"no chromium at {CHROMIUM}: run 'make browser' (apt-get install chromium)"
        if os.environ.get("MODELLOOP_TEST_POSTGRES_URL") or os.environ.get("CI"):  # required
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield launched
        finally:
            launched.close()
