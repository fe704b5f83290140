"""Upstream lineage as the pages show it: an indented list of what a run, a dataset version or a
model version came from, each entry linked to its page."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from modelloop.datasets.entities import parse_ref
from modelloop.errors import InvalidArgument, ModelloopError


def lineage_rows(client: Any, run_id: str) -> list[dict[str, Any]]:
    """The run's upstream lineage as an indented list: depth, relation, label, link."""
    from modelloop.pipelines.lineage import get_lineage

    try:
        graph = get_lineage(run_id, client)
    except ModelloopError:
        return []
    rows: list[dict[str, Any]] = []

    def walk(node: tuple[str, str], depth: int, relation: str, seen: frozenset[Any]) -> None:
        kind, ident = node
        rows.append(
            {
                "depth": depth,
                "relation": relation,
                "label": graph.labels.get(node, f"{kind}:{ident}"),
                "href": lineage_href(kind, ident) if depth else None,
            }
        )
        if node in seen or len(rows) > 200:
            return
        for parent, rel in graph.parents(node):
            walk(parent, depth + 1, rel, seen | {node})

    walk(graph.root, 0, "", frozenset())
    return rows if len(rows) > 1 else []


def lineage_href(kind: str, ident: str) -> str | None:
    """The page of a lineage node: a run, a dataset version or a model version."""
    if kind == "run":
        return f"/ui/runs/{quote(ident, safe='')}"
    if kind == "dataset":
        try:
            name, version = parse_ref(ident)
        except InvalidArgument:  # an edge names what it names: only real references link
            return None
        return f"/ui/datasets/{name}/versions/{version}" if version else f"/ui/datasets/{name}"
    if kind == "model_version":
        model, _, number = ident.rpartition("/")
        if model and number.isascii() and number.isdigit():
            return f"/ui/models/{quote(model, safe='')}?version={number}"
    return None
