"""The Pipelines pages: the list of pipeline runs and one run's DAG, drawn as SVG on the server.

Real pipelines run against a fresh store: the example training pipeline twice (the second run is
all cache hits) and a pipeline whose fan-out trials, params, name and error carry the XSS
corpus, with a failing step and one skipped after it. Pagination is checked on pipeline runs
seeded through the store. Then the pages over HTTP, and the click path in Chromium.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelloop.examples import training_pipeline as example
from modelloop.pipelines import Pipeline, PipelineRun, fan_out, step
from modelloop.pipelines.pipeline import TAG_PIPELINE
from modelloop.tracking.client import Client
from modelloop.tracking.entities import RunSpec, RunStatus
from tests.conftest import store_settings
from tests.live_server import live_server
from tests.ui.browser import Watched
from tests.ui.conftest import XSS

SEEDED_RUNS = 100  # plus the three real ones: two pages


@step
def source(note: str = "") -> list[int]:
    return [1, 2, 3]


@step
def scored(source: list[int], weight: float = 1.0, label: str = "") -> float:
    return float(sum(source)) * weight


@step
def broken(scored: float, note: str = "") -> float:
    raise ValueError(f"failed on purpose: {note}")


@step
def after(broken: float) -> float:
    return broken


failing = Pipeline(
    [
        source,
        fan_out(scored, [{"weight": 0.5, "label": XSS[0]}, {"weight": 2.0, "label": XSS[6]}],
                metric="scored"),
        broken,
        after,
    ],
    name=XSS[3],
)  # fmt: skip


@dataclass
class Runs:
    url: str
    first: PipelineRun
    second: PipelineRun
    failed: PipelineRun


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    tmp: Path = tmp_path_factory.mktemp("ui-pipelines")
    with store_settings(tmp, "sqlite") as settings:
        client = Client(settings=settings)
        try:
            store: Any = client.store
            seeded = store.create_experiment("seeded-pipelines")
            for i in range(SEEDED_RUNS):  # oldest: no pipeline.json, as a killed run has none
                run = store.create_run(
                    RunSpec(seeded.experiment_id, name="s", tags={TAG_PIPELINE: f"seeded-{i}"})
                )
                store.end_run(run.run_id, RunStatus.KILLED)
            first = example.pipeline.run({"seed": 3}, client=client)
            second = example.pipeline.run({"seed": 3}, client=client)
            time.sleep(0.002)  # distinct start times: the list is ordered by them
            failed = failing.run({"note": XSS[1]}, experiment="failing", client=client)
        finally:
            client.close()
        assert first.status == "FINISHED"
        assert failed.status == "FAILED"
        with live_server(settings) as url:
            yield Runs(url, first, second, failed)


def get(runs: Runs, path: str) -> httpx.Response:
    return httpx.get(runs.url + path, timeout=30)


class Svg(HTMLParser):
    """The DAG's nodes (step, node, state, classes, link) and edges, as the browser gets them."""

    def __init__(self) -> None:
        super().__init__()
        self.nodes: list[dict[str, str]] = []
        self.edges: set[tuple[str, str]] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "g" and "node" in a.get("class", "").split():
            self.nodes.append(a)
        elif tag == "path" and "edge" in a.get("class", "").split():
            self.edges.add((a["data-source"], a["data-target"]))
        elif tag == "a" and a.get("class") == "node-link":
            self.links.append(a["href"])


def dag(html: str) -> Svg:
    svg = html[html.index("<svg") : html.index("</svg>")]
    parser = Svg()
    parser.feed(svg)
    return parser


def states(parsed: Svg) -> dict[str, str]:
    return {n["data-node"]: n["data-state"] for n in parsed.nodes}


EXAMPLE_EDGES = {
    ("load", "split"),
    ("split", "train"),
    ("split", "evaluate"),
    ("train", "evaluate"),
}


def test_the_list_shows_pipeline_runs_newest_first_with_step_counts(runs: Runs) -> None:
    response = get(runs, "/ui/pipelines")
    assert response.status_code == 200
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    html = response.text
    ids = re.findall(r'href="/ui/pipelines/([0-9a-f]+)"', html)
    assert ids[:3] == [runs.failed.run_id, runs.second.run_id, runs.first.run_id]
    assert len(ids) == 100
    row = html[html.index(runs.second.run_id[:12]) :].split("</tr>")[0]
    counts = re.findall(r'<td class="num[^"]*">(\d+)</td>', row)
    assert counts == ["4", "4", "0", "0"]  # steps, cached, failed, skipped
    failed_row = html[html.index(runs.failed.run_id[:12]) :].split("</tr>")[0]
    assert re.findall(r'<td class="num[^"]*">(\d+)</td>', failed_row) == ["4", "0", "1", "1"]
    assert "&lt;/title&gt;&lt;script&gt;alert(4)&lt;/script&gt;" in html  # the pipeline's name
    assert "<script>alert" not in html
    assert 'rel="next"' in html
    # Page two holds the rest; a pipeline's name filters.
    second_page = get(runs, "/ui/pipelines?page=2").text
    assert len(re.findall(r'href="/ui/pipelines/[0-9a-f]+"', second_page)) == SEEDED_RUNS + 3 - 100
    assert "no pipeline.json" in second_page
    only = get(runs, "/ui/pipelines?pipeline=example").text
    assert re.findall(r'href="/ui/pipelines/([0-9a-f]+)"', only) == [
        runs.second.run_id,
        runs.first.run_id,
    ]
    assert (
        get(runs, "/ui/pipelines?pipeline=" + httpx.QueryParams({"p": XSS[3]})["p"]).status_code
        == 200
    )


def test_the_dag_has_a_node_per_step_with_its_state_and_edges(runs: Runs) -> None:
    first = get(runs, f"/ui/pipelines/{runs.first.run_id}")
    assert first.status_code == 200
    parsed = dag(first.text)
    assert states(parsed) == dict.fromkeys(["load", "split", "train", "evaluate"], "SUCCEEDED")
    assert parsed.edges == EXAMPLE_EDGES
    assert sorted(parsed.links) == sorted(f"/ui/runs/{s.run_id}" for s in runs.first.steps.values())
    assert "cache-hit" not in first.text.split("<svg")[1].split("</svg>")[0]

    second = get(runs, f"/ui/pipelines/{runs.second.run_id}").text
    parsed = dag(second)
    assert states(parsed) == dict.fromkeys(["load", "split", "train", "evaluate"], "CACHED")
    assert all("state-cached" in n["class"] and "cache-hit" in n["class"] for n in parsed.nodes)
    assert parsed.edges == EXAMPLE_EDGES
    # The steps table: cache keys, and outputs linked in the run that wrote them.
    train = runs.second.steps["train"]
    assert train.cached_from == runs.first.steps["train"].run_id
    assert f"/api/v1/runs/{train.cached_from}/artifact?path=outputs%2Fmodel.model.json" in second
    model = httpx.get(
        runs.url + f"/api/v1/runs/{train.cached_from}/artifact?path=outputs%2Ftrain_auc.json"
    )
    assert model.status_code == 200
    assert 0.5 < float(model.text) <= 1.0
    assert re.search(r'<td class="mono">[0-9a-f]{12}</td>', second)  # a cache key prefix


def test_a_failed_run_shows_failed_and_skipped_steps_and_fan_out_trials(runs: Runs) -> None:
    html = get(runs, f"/ui/pipelines/{runs.failed.run_id}").text
    parsed = dag(html)
    assert states(parsed) == {
        "source": "SUCCEEDED",
        "scored[0]": "SUCCEEDED",
        "scored[1]": "SUCCEEDED",
        "broken": "FAILED",
        "after": "SKIPPED",
    }
    by_node = {n["data-node"]: n for n in parsed.nodes}
    assert "state-failed" in by_node["broken"]["class"]
    assert "state-skipped" in by_node["after"]["class"]
    assert "best" in by_node["scored[1]"]["class"].split()  # weight 2.0 scores higher
    assert parsed.edges == {
        ("source", "scored[0]"),
        ("source", "scored[1]"),
        ("scored[0]", "broken"),
        ("scored[1]", "broken"),
        ("broken", "after"),
    }
    assert len(parsed.links) == 4  # a skipped step has no run to open
    # Every payload (name, params, trial params, the step's error) is text, never markup.
    assert "failed on purpose" in html
    for payload in (XSS[0], XSS[1], XSS[3], XSS[6]):
        assert payload not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b onmouseover=alert(7)&gt;" in html
    assert "<script>alert" not in html
    assert "<img" not in html


def test_not_a_pipeline_run_and_unknown_runs_are_error_pages(runs: Runs) -> None:
    step_run = runs.first.steps["load"].run_id
    assert step_run is not None
    assert get(runs, f"/ui/pipelines/{step_run}").status_code == 404
    assert get(runs, f"/ui/pipelines/{'0' * 32}").status_code == 404
    bad = get(runs, "/ui/pipelines/not-an-id")
    assert bad.status_code == get(runs, "/ui/runs/not-an-id").status_code == 422
    assert "<h1>Error</h1>" in bad.text
    nav = get(runs, "/ui/").text
    assert '<a href="/ui/pipelines">Pipelines</a>' in nav


def test_browse_from_the_list_to_a_dag_and_a_step_run(browser: Any, runs: Runs) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = Watched(context.new_page(), runs.url)
        page.goto("/ui/pipelines")
        page.shot("pipelines")
        with page.page.expect_navigation(wait_until="load"):
            page.page.click(f"a.pipeline-link:has-text('{runs.failed.run_id[:12]}')")
        assert page.page.url.endswith(f"/ui/pipelines/{runs.failed.run_id}")
        assert page.page.locator("svg#dag g.node").count() == 5
        assert page.page.locator("svg#dag path.edge").count() == 5
        assert page.page.locator("h1").inner_text() == f"Pipeline {XSS[3]}"
        page.shot("pipeline-failed")
        page.goto(f"/ui/pipelines/{runs.second.run_id}")
        assert page.page.locator("svg#dag g.node.state-cached").count() == 4
        box = page.page.locator("svg#dag g[data-node='train'] rect").bounding_box()
        assert box is not None
        assert box["width"] > 100  # drawn, with its CSS
        page.shot("pipeline-cached")
        with page.page.expect_navigation(wait_until="load"):
            page.page.click("svg#dag g[data-node='train'] a.node-link")
        assert page.page.url.endswith(f"/ui/runs/{runs.second.steps['train'].run_id}")
        assert page.page.locator("h1").inner_text() == "Run train"
        page.assert_clean()
    finally:
        context.close()


def test_a_wide_fan_out_stays_one_layer_of_fixed_width_nodes() -> None:
    """Forty-one trials: one row of capped-width boxes that do not overlap (the page scrolls)."""
    from modelloop.pipelines import StepState
    from modelloop.ui.pipelines import NODE_H, NODE_W, layout

    trials = [{"run_id": f"{i:032x}", "state": "SUCCEEDED", "params": {"lr": i}} for i in range(41)]
    steps = [
        StepState("load", "SUCCEEDED", "a" * 32),
        StepState("train" * 10, "SUCCEEDED", "b" * 32, upstream=["load"], trials=trials),
        StepState("pick", "SUCCEEDED", "c" * 32, upstream=["train" * 10, "load"]),
    ]
    drawing = layout(steps)
    rows: dict[float, list[Any]] = {}
    for node in drawing.nodes:
        rows.setdefault(node.y, []).append(node)
    assert [len(r) for r in rows.values()] == [1, 41, 1]
    xs = sorted(n.x for n in rows[sorted(rows)[1]])
    assert all(b - a >= NODE_W for a, b in itertools.pairwise(xs))
    assert all(len(n.name) <= 22 for n in drawing.nodes)  # long names are clipped, with a title
    assert drawing.width >= xs[-1] + NODE_W
    assert drawing.height >= max(rows) + NODE_H
    assert len(drawing.edges) == 41 + 41 + 1  # load -> each trial -> pick, and load -> pick
    around = [e for e in drawing.edges if (e.source, e.target) == ("load", "pick")]
    assert " L" in around[0].path  # around the middle trial, not through it
