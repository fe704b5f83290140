"""What a model version bases its decisions on: the mean absolute contribution of each feature,
for model cards (the web UI's, and their exports).

The rows explained are the background rows saved in the version's package, else a sample of the
logged dataset it was trained on. Summaries are cached by package and data digest: both name
exact content, so a cached summary is never stale.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from modelloop.errors import ModelloopError

if TYPE_CHECKING:
    from modelloop.datasets.entities import DatasetVersion
    from modelloop.registry.client import Registry
    from modelloop.registry.entities import ModelVersion

EXPLAIN_ROWS = 200  # rows of a logged dataset explained when the package has no background


@dataclass(frozen=True)
class Importance:
    """Mean |contribution| per feature, or why there is none (``available`` False)."""

    available: bool
    note: str  # where the rows came from, or why there is no summary
    features: list[tuple[str, float, float]] = field(default_factory=list)  # name, mean, %


class ImportanceCache:
    """:func:`feature_importance` by package and data digest (at most ``size`` kept)."""

    def __init__(self, size: int = 64) -> None:
        self._found: dict[tuple[str, str], Importance] = {}
        self._lock = threading.Lock()
        self._size = size

    def get(
        self,
        registry: Registry,
        version: ModelVersion,
        data: DatasetVersion | None,
        role: str | None = None,
    ) -> Importance:
        key = (version.package_digest or "", data.digest if data is not None else "")
        with self._lock:
            if key in self._found:
                return self._found[key]
        found = feature_importance(registry, version, data, role)
        with self._lock:
            if len(self._found) >= self._size:
                self._found.pop(next(iter(self._found)))
            self._found[key] = found
        return found


def feature_importance(
    registry: Registry,
    version: ModelVersion,
    data: DatasetVersion | None = None,
    role: str | None = None,
) -> Importance:
    """Mean |contribution| per feature over the package's background rows, else over a sample
    of ``data`` (the logged dataset the version was trained on, in the ``role`` it played);
    unavailable (and why) otherwise. A pickled ('python' flavor) model is never loaded."""
    import numpy as np

    from modelloop.datasets.store import open_dataset_store
    from modelloop.flavors.package import BACKGROUND_FILE

    if version.flavor is None:
        return Importance(False, "The version's files were not packaged by modelloop.")
    if version.flavor == "python":
        return Importance(False, "A pickled ('python' flavor) model is never loaded here.")
    try:
        model = registry.load_model(version.uri)
        if BACKGROUND_FILE in model.manifest.model_files:
            rows = np.load(registry.download_model(version) / BACKGROUND_FILE, allow_pickle=False)
            contributions = model.contributions_matrix(rows)
            note = f"the {len(rows)} background rows saved in the package"
        elif data is not None:
            datasets = open_dataset_store(registry.client.settings)
            try:
                frame = datasets.load(data)
            finally:
                datasets.close()
            missing = [n for n in model.signature.names if n not in frame.columns]
            if missing:
                return Importance(
                    False,
                    f"The logged dataset {data.ref} lacks the features {', '.join(missing[:5])}.",
                )
            sample = frame.sample(n=min(EXPLAIN_ROWS, len(frame)), random_state=0)
            contributions = model.contributions(sample)
            note = f"{len(sample)} rows sampled from the logged dataset {data.ref} ({role})"
        else:
            return Importance(
                False,
                "Unavailable: the package saved no background rows (tree flavors do not) and no "
                "logged dataset matches the version's dataset digests or is in its lineage.",
            )
    except ModelloopError as exc:
        return Importance(False, f"Unavailable: {exc.message}")
    means = np.abs(contributions.values).mean(axis=0)
    total = float(means.sum()) or 1.0
    ranked = sorted(
        zip(contributions.feature_names, means.tolist(), strict=True), key=lambda x: -x[1]
    )
    return Importance(
        True,
        f"Mean absolute contribution over {note}, in the model's raw output "
        "(log-odds for LightGBM and XGBoost classifiers).",
        [(name, value, 100 * value / total) for name, value in ranked],
    )
