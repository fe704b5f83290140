"""Largest-Triangle-Three-Buckets downsampling of a metric curve for the charts.

A browser draws 2,000 points smoothly and 1,000,000 not at all; LTTB keeps the points that shape
the curve (spikes, drops) where taking every n-th point would drop them. The first and last
points are always kept and the kept points stay in x order, so a downsampled curve starts and
ends where the full one does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
IndexArray = np.ndarray[Any, np.dtype[np.intp]]


@dataclass(frozen=True, slots=True)
class Downsampled:
    """The points to draw, and how many there were: the page says when it shows fewer."""

    x: FloatArray
    y: FloatArray
    original: int

    @property
    def shown(self) -> int:
        return len(self.x)

    @property
    def downsampled(self) -> bool:
        return self.shown < self.original


def lttb_indices(x: FloatArray, y: FloatArray, threshold: int) -> IndexArray:
    """Indices of the ``threshold`` points LTTB keeps (all of them when there are no more).

    ``x`` must be non-decreasing. Bucket ``i`` of the ``threshold - 2`` inner buckets keeps the
    point forming the largest triangle with the point kept before it and the mean of bucket
    ``i + 1`` (the last point for the last bucket).
    """
    n = len(x)
    if threshold >= n or threshold < 3:
        return np.arange(n)
    # Bucket b (0-based, of threshold - 2) spans [edges[b], edges[b + 1]); integer arithmetic,
    # so that float rounding never moves a bucket boundary.
    edges = np.arange(threshold - 1, dtype=np.intp) * (n - 2) // (threshold - 2) + 1
    # Means of each bucket, and of the last point as the "bucket" after the last one.
    counts = np.diff(edges).astype(np.float64)
    mean_x = np.append(np.add.reduceat(x[:-1], edges[:-1]) / counts, x[-1])
    mean_y = np.append(np.add.reduceat(y[:-1], edges[:-1]) / counts, y[-1])
    kept = np.empty(threshold, dtype=np.intp)
    kept[0], kept[-1] = 0, n - 1
    a = 0
    for b in range(threshold - 2):
        start, end = edges[b], edges[b + 1]
        ax, ay = x[a], y[a]
        cx, cy = mean_x[b + 1], mean_y[b + 1]
        # Twice the triangle's area, up to sign: the constant factor does not move the argmax.
        area = np.abs((ax - cx) * (y[start:end] - ay) - (ax - x[start:end]) * (cy - ay))
        a = start + int(np.argmax(area))
        kept[b + 1] = a
    return kept


def downsample(steps: Any, values: Any, max_points: int) -> Downsampled:
    """At most ``max_points`` of the curve ``(steps, values)``, chosen by LTTB.

    Non-finite values (a diverged NaN loss) are dropped only when there are more points than
    ``max_points``; a short curve comes back whole, NaN included, for the chart to show as gaps.
    """
    x = np.asarray(steps, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    original = len(x)
    if original <= max_points:
        return Downsampled(x, y, original)
    finite = np.isfinite(y)
    if not finite.all():
        x, y = x[finite], y[finite]
    kept = lttb_indices(x, y, max_points)
    return Downsampled(x[kept], y[kept], original)
