"""The report of an import, and the names an import leaves in modelloop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

TAG_IMPORTED_FROM = "modelloop.imported_from"  # "mlflow:<run id>" or "mlflow:<name>/<version>"
TAG_STAGE = "mlflow.stage"  # a version's MLflow stage (Staging, Production, Archived), kept
KINDS = (
    "experiments",
    "experiment_tags",
    "runs",
    "params",
    "tags",
    "dataset_inputs",
    "metric_points",
    "artifact_files",
    "artifact_bytes",
    "models",
    "versions",
    "aliases",
)
Progress = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)``; stages are ``"runs"`` and ``"versions"``."""


@dataclass
class Count:
    """One kind: in the source, in the destination (of what the source holds), added now."""

    source: int = 0
    imported: int = 0
    new: int = 0


@dataclass
class ImportReport:
    source: str  # the source URI, any password hidden
    dry_run: bool
    counts: dict[str, Count] = field(default_factory=lambda: {k: Count() for k in KINDS})
    problems: list[str] = field(default_factory=list)  # what was not copied, and why
    notes: list[str] = field(default_factory=list)  # copied, but worth knowing
    not_copied: list[str] = field(default_factory=list)  # left out by design, with counts

    @property
    def complete(self) -> bool:
        """Everything of the kinds counted is in the destination (a dry run: already was);
        what an import leaves out by design (``not_copied``) does not make it incomplete."""
        return not self.problems and all(c.source == c.imported for c in self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "dry_run": self.dry_run,
            "complete": self.complete,
            "counts": {k: vars(c).copy() for k, c in self.counts.items()},
            "problems": list(self.problems),
            "notes": list(self.notes),
            "not_copied": list(self.not_copied),
        }
