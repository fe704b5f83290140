"""Writing lineage edges: what was made from what.

Any domain that creates or consumes something records it here, as rows of ``lineage_edges``:
``(source kind, source id) --relation--> (target kind, target id)``, e.g. a run that logged a
dataset version (``run -> dataset: output``) or read one (``dataset -> run: input``). Reading
them back, transitively, is :func:`modelloop.pipelines.lineage.lineage`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelloop.store.database import Database

Edge = tuple[str, str, str, str, str]  # source kind, source id, target kind, target id, relation


def record_edges(db: Database, edges: Iterable[Edge]) -> None:
    """Append edges in one transaction (an edge recorded twice is harmless: walks dedupe)."""
    from sqlalchemy import insert

    from modelloop.clock import now_ms
    from modelloop.store.tables import lineage_edges

    now = now_ms()
    rows = [
        {
            "source_kind": sk,
            "source_id": si,
            "target_kind": tk,
            "target_id": ti,
            "relation": rel,
            "created_at": now,
        }
        for sk, si, tk, ti, rel in edges
    ]
    if rows:
        with db.write() as conn:
            conn.execute(insert(lineage_edges), rows)
