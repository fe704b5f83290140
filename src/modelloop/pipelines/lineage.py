"""What produced a thing, and from what, transitively.

Edges live in the ``lineage_edges`` table as ``(source) --relation--> (target)``:

    artifact:<digest>   --input-->   run:<id>        a step read that artifact
    run:<id>            --output-->  artifact:<digest>
    dataset:<NAME@V>    --input-->   run:<id>        written by whoever logs dataset inputs
    run:<id>            --output-->  model_version:<NAME/V>

A cached step's run produced nothing itself: it points at the original run through its
``modelloop.cached_from`` tag, which :func:`lineage` follows as a ``cached_from`` edge. A
registered model version is linked to the run it was registered from through the registry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelloop.artifacts import BlobStore
from modelloop.errors import InvalidArgument, NotFound
from modelloop.tracking.client import Client

if TYPE_CHECKING:
    from modelloop.store.database import Database

Node = tuple[str, str]  # (kind, id)
_DIGEST = re.compile(r"[0-9a-f]{64}")
_MODEL_URI = re.compile(r"models:/(?P<name>[^/]+)/(?P<version>\d+)")


def database_of(client: Client) -> Database:
    """Pipelines keep cache entries and lineage in the metadata database: local store only."""
    from modelloop.store.database import Database

    db = getattr(client.store, "db", None)
    if not isinstance(db, Database):
        raise InvalidArgument("pipelines need the local store (unset MODELLOOP_TRACKING_URI)")
    return db


def blobs_of(client: Client) -> BlobStore:
    blobs = getattr(client.store, "blobs", None)
    if not isinstance(blobs, BlobStore):
        raise InvalidArgument("pipelines need the local store (unset MODELLOOP_TRACKING_URI)")
    return blobs


@dataclass
class LineageGraph:
    """The upstream closure of ``root``: nodes with labels, edges ``(source, target, relation)``."""

    root: Node
    labels: dict[Node, str] = field(default_factory=dict)
    edges: list[tuple[Node, Node, str]] = field(default_factory=list)

    def parents(self, node: Node) -> list[tuple[Node, str]]:
        return [(s, rel) for s, t, rel in self.edges if t == node]

    def runs(self) -> list[str]:
        return [i for k, i in self.labels if k == "run"]

    def render(self) -> str:
        """An indented tree, the root first, each node followed by what it came from."""
        lines: list[str] = []

        def walk(node: Node, depth: int, relation: str, seen: frozenset[Node]) -> None:
            prefix = "  " * depth + (f"<-{relation}- " if relation else "")
            lines.append(f"{prefix}{self.labels.get(node, node[0] + ':' + node[1])}")
            if node in seen:
                return
            for parent, rel in self.parents(node):
                walk(parent, depth + 1, rel, seen | {node})

        walk(self.root, 0, "", frozenset())
        return "\n".join(lines)


def lineage(target: str, client: Client | None = None) -> LineageGraph:
    """Upstream lineage of a run id, an artifact digest, ``dataset:NAME@V`` or
    ``models:/NAME/VERSION``."""
    if client is None:
        from modelloop.tracking.fluent import get_client

        client = get_client()
    db = database_of(client)
    root = _parse(target)
    if not _recorded(db, root):
        _require(root, client)
    graph = LineageGraph(root)
    frontier = [root]
    while frontier:
        node = frontier.pop()
        if node in graph.labels:
            continue
        graph.labels[node] = _label(client, node)
        for parent, relation in _parents(client, db, node):
            graph.edges.append((parent, node, relation))
            frontier.append(parent)
    return graph


def _require(root: Node, client: Client) -> None:
    """NotFound when the thing asked about neither exists nor is named by lineage: its lineage
    would otherwise print as an empty tree, as if it did. (A missing run fails while walking.)"""
    kind, ident = root
    if kind == "model_version":
        from modelloop.registry.client import Registry

        name, _, version = ident.rpartition("/")
        registry = Registry(client)
        try:
            registry.get_version(name, int(version))
        finally:
            registry.close()
    elif kind == "dataset":
        from modelloop.datasets.entities import parse_ref
        from modelloop.datasets.fluent import dataset_store

        name, number = parse_ref(ident)
        found = dataset_store(client).get_version(name, number)  # NotFound names it
        if number is None:
            raise InvalidArgument(
                f"Name a version: lineage is recorded per dataset version, e.g. "
                f"dataset:{found.ref} (the latest)"
            )
    elif kind == "artifact" and not blobs_of(client).exists(ident):
        raise NotFound(f"No artifact with digest {ident}")


def _recorded(db: Database, node: Node) -> bool:
    """Whether lineage names ``node`` (e.g. a dataset a run read from outside the store)."""
    from sqlalchemy import and_, or_, select

    from modelloop.store.tables import lineage_edges as e

    kind, ident = node
    named = or_(
        and_(e.c.source_kind == kind, e.c.source_id == ident),
        and_(e.c.target_kind == kind, e.c.target_id == ident),
    )
    with db.read() as conn:
        return conn.execute(select(e.c.edge_id).where(named).limit(1)).first() is not None


def _parse(target: str) -> Node:
    if target.startswith("dataset:"):
        return ("dataset", target.removeprefix("dataset:"))
    match = _MODEL_URI.fullmatch(target)
    if match:
        return ("model_version", f"{match['name']}/{match['version']}")
    if _DIGEST.fullmatch(target):
        return ("artifact", target)
    if target.startswith("run:"):
        return ("run", target.removeprefix("run:"))
    return ("run", target)


def _parents(client: Client, db: Database, node: Node) -> list[tuple[Node, str]]:
    from sqlalchemy import select

    from modelloop.store.tables import lineage_edges

    kind, ident = node
    with db.read() as conn:
        rows = conn.execute(
            select(lineage_edges.c.source_kind, lineage_edges.c.source_id, lineage_edges.c.relation)
            .where(lineage_edges.c.target_kind == kind, lineage_edges.c.target_id == ident)
            .order_by(lineage_edges.c.edge_id)
        ).all()
    found: list[tuple[Node, str]] = []
    for row in rows:
        parent = (str(row.source_kind), str(row.source_id))
        if (parent, str(row.relation)) not in found:
            found.append((parent, str(row.relation)))
    if kind == "run":
        original = client.get_run(ident).tags.get("modelloop.cached_from")
        if original:
            found.append((("run", original), "cached_from"))
    if kind == "model_version" and not found:
        found.extend(_registered_from(client, ident))
    return found


def _registered_from(client: Client, ident: str) -> list[tuple[Node, str]]:
    from modelloop.registry.client import Registry

    name, _, version = ident.rpartition("/")
    try:
        run_id = Registry(client).lineage(name, int(version)).run.run_id
    except NotFound:
        return []
    return [(("run", run_id), "output")]


def _label(client: Client, node: Node) -> str:
    kind, ident = node
    if kind == "run":
        try:
            run = client.get_run(ident)
        except NotFound:
            return f"run {ident} (missing)"
        extra: Any = " CACHED" if run.tags.get("modelloop.cached_from") else ""
        return f"run {ident} ({run.name}, {run.status.value}{extra})"
    if kind == "artifact":
        return f"artifact sha256:{ident[:12]}"
    return f"{kind} {ident}"
