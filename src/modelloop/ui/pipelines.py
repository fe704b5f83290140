"""The Pipelines section: pipeline runs, and one run's DAG drawn as an SVG on the server.

A pipeline run is a run tagged ``modelloop.pipeline`` (what ``modelloop pipelines list`` finds);
its ``pipeline.json`` (:meth:`PipelineRun.load`) holds the steps, their states, durations and
cache hits. The DAG is laid out here, in Python, and drawn by the template as plain SVG: no
JavaScript library, and every label goes through Jinja's autoescaping like the rest of the page.
Steps sit in layers by their longest path from a source, in the pipeline's own order within a
layer; a fan-out step becomes one node per trial in its layer, and the drawing scrolls sideways
when a layer is wider than the page.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from starlette.responses import HTMLResponse

from modelloop.errors import NotFound
from modelloop.pipelines.executors import CACHED, FAILED, SKIPPED, TAG_CACHE_KEY
from modelloop.pipelines.outputs import SUFFIX
from modelloop.pipelines.pipeline import TAG_PIPELINE, PipelineRun, StepState
from modelloop.tracking.entities import Run, check_run_id
from modelloop.tracking.sql import MAX_SEARCH_RESULTS, SqlTrackingStore
from modelloop.ui.app import PER_PAGE, Pages

MAX_PAGE = 1_000_000  # a page is an offset into the search, read directly
# The drawing's geometry, in pixels: nodes have a fixed width so a wide fan-out scrolls.
NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 184, 60, 24, 60, 16
NAME_CHARS, DETAIL_CHARS = 22, 25  # what fits in a node at its font sizes; the rest in a tooltip
CHANNEL_STEP = 10  # between edges routed around the same layers
CENTRED = 6  # nodes: the width over which narrower layers are centred


@dataclass
class Node:
    """One box of the drawing: a step, or one trial of a fan-out step."""

    key: str  # the step's name, or "step[i]" for a trial
    step: str
    state: str
    run_id: str | None
    name: str  # shown, truncated
    detail: str  # second line: duration, or a trial's params and metric
    title: str  # the tooltip: everything, untruncated
    cached: bool
    best: bool = False
    layer: int = 0
    x: float = 0.0
    y: float = 0.0


@dataclass
class Edge:
    source: str
    target: str
    path: str
    skipped: bool


@dataclass
class Drawing:
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    width: float = 0.0
    height: float = 0.0


def register(router: APIRouter, pages: Pages) -> None:
    """``/ui/pipelines`` (the runs, newest first) and ``/ui/pipelines/{run_id}`` (one DAG)."""
    from modelloop.tracking.client import Client

    client = Client(settings=pages.settings, store=pages.store)  # for PipelineRun.load

    @router.get("/ui/pipelines")
    def pipelines(
        pipeline: str = "", page_number: Annotated[str, Query(alias="page")] = "1"
    ) -> HTMLResponse:
        return pages.guarded(lambda: _list_page(pages, pipeline, _page_number(page_number)))

    @router.get("/ui/pipelines/{run_id}")
    def pipeline_run(run_id: str) -> HTMLResponse:
        return pages.guarded(lambda: _run_page(pages, client, run_id))


# -- the list ----------------------------------------------------------------------------------


def _list_page(pages: Pages, pipeline: str, number: int) -> HTMLResponse:
    store = pages.store
    ids = [e.experiment_id for e in store.list_experiments()]
    condition = f"= {_quoted(pipeline)}" if pipeline else "LIKE '%'"
    found = (
        store.search_runs(
            ids,
            f"tags.`{TAG_PIPELINE}` {condition}",
            ["start_time DESC"],
            PER_PAGE + 1,
            offset=(number - 1) * PER_PAGE,
        )
        if ids
        else []
    )
    shown = found[:PER_PAGE]
    docs = _pipeline_docs(store, [r.run_id for r in shown])
    rows = [_summary(run, docs.get(run.run_id)) for run in shown]

    def link(page: int) -> str:
        query = {"pipeline": pipeline, "page": page}
        return "/ui/pipelines?" + urlencode({k: v for k, v in query.items() if v not in ("", 1)})

    return pages.render(
        "pipelines.html",
        section="pipelines",
        title=f"Pipeline {pipeline}" if pipeline else "Pipelines",
        pipeline=pipeline,
        rows=rows,
        first=(number - 1) * PER_PAGE + 1,
        previous=link(number - 1) if number > 1 else None,
        next=link(number + 1) if len(found) > PER_PAGE and number < MAX_PAGE else None,
    )


def _pipeline_docs(store: SqlTrackingStore, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The ``pipeline.json`` of each listed run; a run without one (still running, or killed)
    or with an unreadable one is left out."""
    docs = {}
    for run_id, data in store.read_artifact_of_runs(run_ids, "pipeline.json").items():
        try:
            doc = json.loads(data)
        except ValueError:
            continue
        if isinstance(doc, dict) and isinstance(doc.get("steps"), list):
            docs[run_id] = doc
    return docs


def _summary(run: Run, doc: Mapping[str, Any] | None) -> dict[str, Any]:
    states = [s.get("state") for s in doc["steps"] if isinstance(s, dict)] if doc else []
    return {
        "run": run,
        "pipeline": run.tags[TAG_PIPELINE],
        "steps": len(states) if doc else None,
        "cached": states.count(CACHED),
        "failed": states.count(FAILED),
        "skipped": states.count(SKIPPED),
    }


# -- one run -----------------------------------------------------------------------------------


def _run_page(pages: Pages, client: Any, run_id: str) -> HTMLResponse:
    store = pages.store
    run = store.get_run(check_run_id(run_id))
    if TAG_PIPELINE not in run.tags:
        raise NotFound(f"Run {run_id} is not a pipeline run")
    # Every step's child run in one query: their cache keys, and the steps so far while running.
    children = store.search_runs(
        [run.experiment_id], f"attributes.parent_run_id = '{run.run_id}'", (), MAX_SEARCH_RESULTS
    )
    by_id = {child.run_id: child for child in children}
    try:
        result: PipelineRun | None = PipelineRun.load(run.run_id, client)
    except NotFound:  # pipeline.json is written when the run ends
        result = None
    steps = list(result.steps.values()) if result else []
    return pages.render(
        "pipelines_run.html",
        section="pipelines",
        title=f"Pipeline {run.tags[TAG_PIPELINE]}",
        run=run,
        pipeline=run.tags[TAG_PIPELINE],
        result=result,
        drawing=layout(steps),
        node_w=NODE_W,
        node_h=NODE_H,
        steps=[_step_row(s, by_id) for s in steps],
        children=sorted(children, key=lambda c: c.start_time),
        counts={state: sum(s.state == state for s in steps) for state in (CACHED, FAILED, SKIPPED)},
    )


def _step_row(state: StepState, children: Mapping[str, Run]) -> dict[str, Any]:
    """A row of the steps table; outputs link to the run that wrote them (the original run
    when the step was a cache hit, since a cached step's own run holds no artifacts)."""
    child = children.get(state.run_id) if state.run_id else None
    producer = state.cached_from or state.run_id
    outputs = []
    for name, ref in sorted(state.outputs.items()):
        kind = ref.get("kind", "") if isinstance(ref, dict) else ""
        path = (
            f"outputs/{name}.model.json"
            if kind == "model"
            else f"outputs/{name}{SUFFIX.get(kind, '')}"
        )
        href = f"/api/v1/runs/{producer}/artifact?{urlencode({'path': path})}" if producer else None
        outputs.append(
            {"name": name, "kind": kind, "href": href, "digest": str(ref.get("digest", ""))[:12]}
        )
    return {
        "state": state,
        "duration": fmt_seconds(state.duration_s) if state.run_id else "",
        "cache_key": (child.tags.get(TAG_CACHE_KEY, "") if child else "")[:12],
        "outputs": outputs,
    }


# -- the layout --------------------------------------------------------------------------------


def layout(steps: Sequence[StepState]) -> Drawing:
    """Place the steps' nodes in layers (longest path from a source), top to bottom, and route
    each edge: a curve to the next layer, or around the nodes of the layers it would cross."""
    names = {s.name for s in steps}
    depth: dict[str, int] = {}

    def layer_of(step: StepState, seen: frozenset[str] = frozenset()) -> int:
        if step.name not in depth:
            ups = [by_name[u] for u in step.upstream if u in names and u not in seen]
            depth[step.name] = 1 + max((layer_of(u, seen | {step.name}) for u in ups), default=-1)
        return depth[step.name]

    by_name = {s.name: s for s in steps}
    drawing = Drawing()
    of_step: dict[str, list[Node]] = {}
    for step in steps:
        of_step[step.name] = _nodes(step, layer_of(step))
        drawing.nodes += of_step[step.name]
    if not drawing.nodes:
        return drawing
    layers: dict[int, list[Node]] = {}
    for node in drawing.nodes:
        layers.setdefault(node.layer, []).append(node)
    widths = {number: len(row) * NODE_W + (len(row) - 1) * GAP_X for number, row in layers.items()}
    widest = max(widths.values())
    # Narrower layers are centred over at most CENTRED nodes' width, not over a wide fan-out:
    # a source above forty trials stays on the first screen, left of the scroll.
    centre = min(widest, CENTRED * NODE_W + (CENTRED - 1) * GAP_X)
    for number, row in layers.items():
        left = PAD + max(centre - widths[number], 0) / 2
        for i, node in enumerate(row):
            node.x, node.y = left + i * (NODE_W + GAP_X), PAD + number * (NODE_H + GAP_Y)
    right = PAD + widest
    pairs = [
        (source, target)
        for step in steps
        for upstream in step.upstream
        for source in of_step.get(upstream, [])
        for target in of_step[step.name]
    ]
    # Where an edge leaves its source and enters its target: spread along the box's edge, in
    # the order of the other ends, so that converging arrows stay apart and do not cross.
    outgoing: dict[str, list[Node]] = {}
    incoming: dict[str, list[Node]] = {}
    for source, target in pairs:
        outgoing.setdefault(source.key, []).append(target)
        incoming.setdefault(target.key, []).append(source)

    def spots(ends: dict[str, list[Node]]) -> dict[tuple[str, str], float]:
        """x of each edge's end on this node's box, by node key and the other end's key."""
        out = {}
        for key, others in ends.items():
            node = by_key[key]
            for i, other in enumerate(sorted(others, key=lambda n: (n.x, n.layer))):
                out[key, other.key] = node.x + NODE_W * (i + 1) / (len(others) + 1)
        return out

    by_key = {node.key: node for node in drawing.nodes}
    leaving, entering = spots(outgoing), spots(incoming)
    channels = 0
    for source, target in pairs:
        sx, ex = leaving[source.key, target.key], entering[target.key, source.key]
        path, routed = _route(source, target, sx, ex, layers, right + channels * CHANNEL_STEP)
        channels += routed
        drawing.edges.append(Edge(source.key, target.key, path, target.state == SKIPPED))
    drawing.width = right + PAD + (channels * CHANNEL_STEP + GAP_X if channels else 0)
    drawing.height = 2 * PAD + len(layers) * NODE_H + (len(layers) - 1) * GAP_Y
    return drawing


def _nodes(step: StepState, layer: int) -> list[Node]:
    if not step.trials:
        detail = (
            step.state
            if step.state == SKIPPED
            else f"{step.state} · {fmt_seconds(step.duration_s)}"
        )
        title = f"{step.name}: {detail}" + (
            f", cached from {step.cached_from}" if step.cached_from else ""
        )
        node = Node(
            key=step.name,
            step=step.name,
            state=step.state,
            run_id=step.run_id,
            name=_clip(step.name, NAME_CHARS),
            detail=_clip(detail, DETAIL_CHARS),
            title=title,
            cached=step.cached_from is not None,
            layer=layer,
        )
        return [node]
    nodes = []
    for i, trial in enumerate(step.trials):
        params = ", ".join(f"{k}={v}" for k, v in sorted(dict(trial.get("params") or {}).items()))
        metric = trial.get("metric")
        detail = params + (f" → {metric:.4g}" if isinstance(metric, int | float) else "")
        state = str(trial.get("state", ""))
        name = f"{step.name}[{i}]"
        nodes.append(
            Node(
                key=name,
                step=step.name,
                state=state,
                run_id=trial.get("run_id"),
                name=_clip(name, NAME_CHARS),
                detail=_clip(detail, DETAIL_CHARS),
                title=f"{name} ({state}): {detail}",
                cached=trial.get("cached_from") is not None,
                best=bool(trial.get("best")),
                layer=layer,
            )
        )
    return nodes


def _route(
    source: Node,
    target: Node,
    sx: float,
    ex: float,
    layers: Mapping[int, list[Node]],
    channel: float,
) -> tuple[str, bool]:
    """The edge's SVG path from ``sx`` under the source to ``ex`` above the target, and whether
    it went around the nodes of the layers between (taking up a side channel)."""
    sy, ey = source.y + NODE_H, target.y
    bend = GAP_Y / 2
    between = [n for layer in range(source.layer + 1, target.layer) for n in layers.get(layer, [])]

    def x_at(y: float) -> float:
        return sx + (ex - sx) * (y - sy) / (ey - sy) if ey != sy else sx

    blocked = any(
        min(x_at(n.y), x_at(n.y + NODE_H)) < n.x + NODE_W + 4
        and max(x_at(n.y), x_at(n.y + NODE_H)) > n.x - 4
        for n in between
    )
    if not blocked:
        return f"M{sx:g},{sy:g} C{sx:g},{sy + bend:g} {ex:g},{ey - bend:g} {ex:g},{ey:g}", False
    cx = channel + GAP_X / 2
    return (
        f"M{sx:g},{sy:g} C{sx:g},{sy + bend:g} {cx:g},{sy + bend:g} {cx:g},{sy + GAP_Y:g} "
        f"L{cx:g},{ey - GAP_Y:g} C{cx:g},{ey - bend:g} {ex:g},{ey - bend:g} {ex:g},{ey:g}",
        True,
    )


# -- helpers -----------------------------------------------------------------------------------


def _clip(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _quoted(value: str) -> str:
    """A string literal of the filter language."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _page_number(text: str) -> int:
    try:
        return min(max(int(text), 1), MAX_PAGE)
    except ValueError:
        return 1


def fmt_seconds(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
