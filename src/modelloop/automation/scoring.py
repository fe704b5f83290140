"""One side of the gate at work: its scores on a frame, and what it costs to serve.

Scores are computed in batches of ``BATCH_ROWS`` (timed per row); latency is the median of
``LATENCY_ROWS`` single-row predictions on one thread, as a request pays it; size is the
registered package on disk.

Standard library only at import time; numpy and the model libraries load on first use.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelloop.errors import InvalidArgument

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from modelloop.flavors import LoadedModel
    from modelloop.registry.client import Registry
    from modelloop.registry.entities import ModelVersion

    FloatArray = np.ndarray[Any, np.dtype[np.float64]]

LATENCY_ROWS = 200  # single-row predictions timed per model
BATCH_ROWS = 10_000  # rows per predict call when scoring the holdout


@dataclass(frozen=True)
class ModelCost:
    """Which version one side of the gate is, and what it costs to serve."""

    requested: str  # as asked, e.g. models:/fraud-detector@champion
    uri: str  # the version it resolved to, models:/fraud-detector/3
    name: str
    version: int
    package_digest: str
    latency_ms: float  # median of single-row predictions (what one request pays)
    batch_latency_ms: float  # milliseconds per row when scoring in batches
    size_bytes: int  # the registered package (model files, manifest, references)


def score_frame(
    model: LoadedModel, frame: pd.DataFrame, version: ModelVersion | None = None
) -> tuple[FloatArray, float]:
    """The model's scores on ``frame``, and the milliseconds per row it took in batches."""
    import numpy as np

    features = model.signature.select(frame)  # InvalidInput naming missing columns
    parts = []
    started = time.perf_counter()
    for start in range(0, len(features), BATCH_ROWS):
        parts.append(np.asarray(model.predict(features.iloc[start : start + BATCH_ROWS])))
    elapsed = time.perf_counter() - started
    scores = np.concatenate(parts)
    if scores.ndim != 1:
        raise InvalidArgument(
            f"{version.uri if version else 'the model'} returns {scores.shape[1]} values per "
            "row: the gate compares binary classifiers and scorers (one score per row)"
        )
    return scores.astype(np.float64), elapsed * 1000.0 / len(features)


def single_row_latency(model: LoadedModel, frame: pd.DataFrame) -> float:
    """Median milliseconds of one-row predictions through the serving hot path, on one thread
    as ``modelloop serve`` runs models (an OpenMP pool spinning for a single row would
    measure contention, not the model)."""
    import numpy as np

    rows = frame.iloc[: min(LATENCY_ROWS, len(frame))]
    timings = []
    with _one_thread():
        if model.signature.matrix_ready:
            X = model.signature.frame_to_matrix(rows)
            for i in range(min(3, len(X))):  # warm-up: first calls pay for lazy setup
                model.predict_matrix(X[i : i + 1])
            for i in range(len(X)):
                started = time.perf_counter()
                model.predict_matrix(X[i : i + 1])
                timings.append(time.perf_counter() - started)
        else:  # string features: only the DataFrame path exists
            selected = model.signature.select(rows)
            for i in range(len(selected)):
                started = time.perf_counter()
                model.predict(selected.iloc[i : i + 1])
                timings.append(time.perf_counter() - started)
    return float(np.median(timings)) * 1000.0


def _one_thread() -> contextlib.AbstractContextManager[object]:
    """Limit OpenMP/BLAS pools to one thread (threadpoolctl comes with scikit-learn; without
    it, the libraries' defaults stay)."""
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - scikit-learn not installed
        return contextlib.nullcontext()
    limits: contextlib.AbstractContextManager[object] = threadpool_limits(limits=1)
    return limits


def package_size(registry: Registry, version: ModelVersion) -> int:
    """Bytes of the registered package (downloaded once, cached by ``load_model`` already)."""
    package = registry.download_model(version)
    return sum(f.stat().st_size for f in package.rglob("*") if f.is_file())


def model_cost(
    requested: str,
    version: ModelVersion,
    model: LoadedModel,
    frame: pd.DataFrame,
    registry: Registry,
    *,
    batch_latency_ms: float,
) -> ModelCost:
    """``model`` (``version``, asked for as ``requested``) timed on the rows of ``frame``."""
    size = package_size(registry, version)
    return ModelCost(
        requested=requested,
        uri=version.uri,
        name=version.name,
        version=version.version,
        package_digest=version.package_digest,
        latency_ms=single_row_latency(model, frame),
        batch_latency_ms=batch_latency_ms,
        size_bytes=size,
    )
