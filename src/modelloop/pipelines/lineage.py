"""What produced a thing, and from what, transitively.

Edges live in the ``lineage_edges`` table as ``(source) --relation--> (target)``:

    artifact:<digest>   --input-->   run:<id>        a step read that artifact
    run:<id>            --output-->  artifact:<digest>
    dataset:<NAME@V>    --input-->   run:<id>        written by whoever logs dataset inputs
    run:<id>            --output-->  model_version:<NAME/V>

A cached step's run produced nothing itself: it points at the original run through its
``modelloop.cached_from`` tag, which :func:`lineage` follows as a ``cached_from`` edge. A
registered model version is linked to the run it was registered from through the registry, and
to the dataset its drift reference was fitted on (its ``modelloop.reference.dataset`` tag) as a
``reference`` edge. :func:`models_from` walks the same graph the other way: the model versions
whose lineage reaches a dataset version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelloop.artifacts import BlobStore
from modelloop.errors import InvalidArgument, NotFound
from modelloop.registry.reference import TAG_REFERENCE_DATASET
from modelloop.tracking.client import Client

if TYPE_CHECKING:
    from modelloop.store.database import Database

Node = tuple[str, str]  # (kind, id)
_CACHED_FROM = "modelloop.cached_from"  # executors._CACHED_FROM (which imports this module)
_CHUNK = 500  # ids per IN (...) list
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

    def datasets(self) -> list[str]:
        """``NAME@V`` of the dataset versions upstream (read by a run of it, or the version's
        drift reference)."""
        return sorted(i for k, i in self.labels if k == "dataset" and (k, i) != self.root)

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


def get_lineage(target: str, client: Client | None = None) -> LineageGraph:
    """Upstream lineage of a run id, an artifact digest (bare or ``sha256:``-prefixed),
    ``dataset:NAME@V`` or ``models:/NAME/VERSION``."""
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
    if target.startswith("sha256:"):  # as the lineage prints an artifact
        if not _DIGEST.fullmatch(target.removeprefix("sha256:")):
            raise InvalidArgument(
                f"Invalid artifact digest {target!r}: expected sha256: and 64 lowercase hex "
                "characters (the tree shows the first 12; --output json has them all)"
            )
        return ("artifact", target.removeprefix("sha256:"))
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
        original = client.get_run(ident).tags.get(_CACHED_FROM)
        if original:
            found.append((("run", original), "cached_from"))
    if kind == "model_version":
        found.extend(p for p in _registered_from(client, ident, bool(found)) if p not in found)
    return found


def _registered_from(client: Client, ident: str, recorded: bool) -> list[tuple[Node, str]]:
    """The run a version was registered from (unless edges already name it) and the dataset
    its drift reference was fitted on."""
    from modelloop.registry.client import Registry

    name, _, version = ident.rpartition("/")
    registry = Registry(client)
    try:
        found = registry.get_version(name, int(version))
    except NotFound:
        return []
    finally:
        registry.close()
    parents: list[tuple[Node, str]] = [] if recorded else [(("run", found.run_id), "output")]
    reference = found.tags.get(TAG_REFERENCE_DATASET)
    if reference:
        parents.append((("dataset", reference), "reference"))
    return parents


def models_from(dataset: str, client: Client | None = None) -> dict[str, str]:
    """The model versions (``NAME/V``) whose :func:`lineage` reaches the dataset version
    ``NAME@V``, each with how: ``"read"`` (the run it was registered from read it),
    ``"upstream"`` (a run upstream of that one did) or ``"reference"`` (its drift reference was
    fitted on it). One walk downstream over the lineage edges, a query per level, instead of
    one upstream walk per model version."""
    from sqlalchemy import and_, select

    from modelloop.store.tables import lineage_edges, model_version_tags

    if client is None:
        from modelloop.tracking.fluent import get_client

        client = get_client()
    db = database_of(client)
    e, vt = lineage_edges.c, model_version_tags.c
    seen: set[Node] = {("dataset", dataset)}
    frontier, readers = set(seen), None
    while frontier:
        found: set[Node] = set()
        for kind, ids in _by_kind(frontier).items():
            for chunk in _chunks(ids):
                where = and_(e.source_kind == kind, e.source_id.in_(chunk))
                with db.read() as conn:
                    rows = conn.execute(select(e.target_kind, e.target_id).where(where)).all()
                found |= {(str(r.target_kind), str(r.target_id)) for r in rows}
        if readers is None:  # the first level: the runs that read the dataset itself
            readers = {i for k, i in found if k == "run"}
        frontier = found - seen
        seen |= frontier
    how: dict[str, str] = {}
    for ident, run_id in _versions_of_runs(db, {i for k, i in seen if k == "run"}):
        if run_id in (readers or set()):
            how[ident] = "read"
        else:
            how.setdefault(ident, "upstream")
    for kind, ident in seen:
        if kind == "model_version":  # an edge naming the version, where one was recorded
            how.setdefault(ident, "upstream")
    fitted = and_(vt.key == TAG_REFERENCE_DATASET, vt.value == dataset)
    with db.read() as conn:
        for name, version in conn.execute(select(vt.name, vt.version).where(fitted)).all():
            how.setdefault(f"{name}/{version}", "reference")
    return dict(sorted(how.items()))


def _versions_of_runs(db: Database, runs: set[str]) -> list[tuple[str, str]]:
    """``(NAME/V, run)`` of the model versions registered from ``runs``, or from a cached
    step's run standing for one of them (lineage follows its ``cached_from`` tag)."""
    from sqlalchemy import and_, select

    from modelloop.store.tables import model_versions as mv
    from modelloop.store.tables import tags as rt

    found: list[tuple[str, str]] = []
    for chunk in _chunks(runs):
        direct = select(mv.c.name, mv.c["version"], mv.c.run_id).where(mv.c.run_id.in_(chunk))
        stand_in = (
            select(mv.c.name, mv.c["version"], rt.c.value)
            .join(rt, and_(rt.c.run_id == mv.c.run_id, rt.c.key == _CACHED_FROM))
            .where(rt.c.value.in_(chunk))
        )
        with db.read() as conn:
            for query in (direct, stand_in):
                found += [(f"{n}/{v}", str(r)) for n, v, r in conn.execute(query).all()]
    return found


def _by_kind(nodes: set[Node]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for kind, ident in sorted(nodes):
        grouped.setdefault(kind, []).append(ident)
    return grouped


def _chunks(ids: set[str] | list[str]) -> list[list[str]]:
    ordered = sorted(ids)
    return [ordered[i : i + _CHUNK] for i in range(0, len(ordered), _CHUNK)]


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
