"""LTTB against a brute-force transcription of the published algorithm, and its guarantees."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from modelloop.ui.downsample import downsample, lttb_indices


def reference_lttb(x: list[float], y: list[float], threshold: int) -> list[int]:
    """Steinarsson's LTTB, point by point in plain Python (bucket bounds in exact integers)."""
    n = len(x)
    if threshold >= n or threshold < 3:
        return list(range(n))
    inner = threshold - 2

    def bound(k: int) -> int:  # floor(k * every) + 1 with every = (n - 2) / inner
        return k * (n - 2) // inner + 1

    kept, a = [0], 0
    for b in range(inner):
        start, end = bound(b), bound(b + 1)
        # The next bucket's mean; after the last bucket, the last point.
        next_start, next_end = (n - 1, n) if b + 1 == inner else (bound(b + 1), bound(b + 2))
        cx = sum(x[next_start:next_end]) / (next_end - next_start)
        cy = sum(y[next_start:next_end]) / (next_end - next_start)
        best, best_area = start, -1.0
        for i in range(start, end):
            area = abs((x[a] - cx) * (y[i] - y[a]) - (x[a] - x[i]) * (cy - y[a])) / 2
            if area > best_area:
                best, best_area = i, area
        kept.append(best)
        a = best
    kept.append(n - 1)
    return kept


@pytest.mark.parametrize("seed", range(40))
def test_matches_the_brute_force_reference(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(3, 300)
    steps = sorted(rng.randint(0, 3 * n) for _ in range(n))  # ties included
    values = [rng.gauss(0, 1) for _ in range(n)]
    for threshold in {3, 4, 5, n // 2, n - 1, n, n + 5, rng.randint(3, n + 1)}:
        if threshold < 3:
            continue
        got = lttb_indices(np.array(steps, float), np.array(values, float), threshold)
        assert got.tolist() == reference_lttb([float(s) for s in steps], values, threshold), (
            n,
            threshold,
        )


@pytest.mark.parametrize(("n", "threshold"), [(10, 3), (1001, 100), (100_000, 2000), (7, 6)])
def test_keeps_the_endpoints_and_the_x_order(n: int, threshold: int) -> None:
    rng = np.random.default_rng(n)
    x = np.sort(rng.integers(0, 10 * n, n)).astype(float)
    y = rng.normal(size=n).cumsum()
    kept = lttb_indices(x, y, threshold)
    assert len(kept) == min(threshold, n)
    assert kept[0] == 0
    assert kept[-1] == n - 1
    assert (np.diff(kept) > 0).all()  # strictly increasing indices, so x never goes back
    assert (np.diff(x[kept]) >= 0).all()


def test_a_spike_survives_where_every_nth_point_would_lose_it() -> None:
    x = np.arange(100_000, dtype=float)
    y = 1.0 / (x + 1)
    y[43_217] = 5.0
    shown = downsample(x, y, 1000)
    assert 5.0 in shown.y
    assert 5.0 not in y[:: len(y) // 1000]


def test_short_curves_come_back_whole_with_their_gaps() -> None:
    shown = downsample([0, 1, 2], [1.0, math.nan, 3.0], 2000)
    assert shown.original == shown.shown == 3
    assert not shown.downsampled
    assert math.isnan(shown.y[1])


def test_long_curves_drop_non_finite_points_and_say_how_many_they_had() -> None:
    y = np.linspace(0, 1, 10_000)
    y[[10, 500, 9000]] = [math.nan, math.inf, -math.inf]
    shown = downsample(np.arange(10_000), y, 500)
    assert shown.downsampled
    assert (shown.original, shown.shown) == (10_000, 500)
    assert np.isfinite(shown.y).all()
    assert shown.x[0] == 0
    assert shown.x[-1] == 9999


def test_thresholds_too_small_to_downsample_keep_everything() -> None:
    x = np.arange(10, dtype=float)
    assert lttb_indices(x, x, 2).tolist() == list(range(10))
    assert lttb_indices(x, x, 50).tolist() == list(range(10))
