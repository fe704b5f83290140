"""Chunked drift checks agree with the in-memory ones and hold one chunk at a time."""

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats

from modelloop.datasets.reference import SAMPLE_LIMIT
from modelloop.monitoring import (
    PSI,
    ChiSquared,
    JensenShannon,
    KolmogorovSmirnov,
    Wasserstein,
    check_drift,
    fit_references,
)
from modelloop.monitoring.drift import check_drift_chunks

BINNED_KS_TOLERANCE = 0.01
BINNED_WASSERSTEIN_TOLERANCE = 0.01
ROUNDING = 1e-12


@pytest.fixture
def rng():
    return np.random.default_rng(11)


def _frame(rng, n, shift=0.0):
    return pd.DataFrame(
        {
            "normal": rng.normal(shift, 1, n),
            "lognormal": rng.lognormal(0, 0.8, n),
            "integers": rng.poisson(20, n).astype(float),
            "with_nulls": np.where(rng.random(n) < 0.1, np.nan, rng.uniform(0, 5, n)),
            "city": rng.choice(list("abcdefg"), n, p=[0.3, 0.2, 0.15, 0.15, 0.1, 0.05, 0.05]),
        }
    )


def _chunks(frame, size):
    return (frame.iloc[i : i + size] for i in range(0, len(frame), size))


def _assert_same_results(chunked, whole, tolerance):
    assert chunked.results.keys() == whole.results.keys()
    for column, expected in whole.results.items():
        got = chunked.results[column]
        assert (got.method, got.status, got.drifted) == (
            expected.method,
            expected.status,
            expected.drifted,
        ), column
        assert got.value == pytest.approx(expected.value, rel=tolerance, abs=tolerance, nan_ok=True)
        if expected.p_value is not None:
            assert got.p_value == pytest.approx(expected.p_value, rel=tolerance, abs=tolerance)
        for key in ("n_current", "null_current", "new_categories"):
            assert got.details.get(key) == expected.details.get(key), (column, key)
    assert chunked.drifted_columns == whole.drifted_columns
    assert chunked.share_drifted == whole.share_drifted
    assert chunked.no_data == whole.no_data


@pytest.mark.parametrize("method", [PSI(), JensenShannon()])
def test_binned_distances_match_the_in_memory_check_exactly(rng, method):
    refs = fit_references(_frame(rng, 20_000))
    current = _frame(rng, 7_000, shift=0.2)
    methods = dict.fromkeys(refs, method)
    whole = check_drift(refs, current, methods=methods)
    for size in (1, 999, 7_000):
        chunked = check_drift_chunks(refs, _chunks(current, size), methods=methods)
        _assert_same_results(chunked, whole, ROUNDING)


def test_chi_squared_matches_exactly_with_new_categories(rng):
    refs = fit_references(_frame(rng, 20_000)[["city"]])
    current = pd.DataFrame({"city": rng.choice(list("abcdefgxy"), 5_000)})
    whole = check_drift(refs, current, methods={"city": ChiSquared()})
    chunked = check_drift_chunks(refs, _chunks(current, 333), methods={"city": ChiSquared()})
    _assert_same_results(chunked, whole, ROUNDING)
    assert chunked.results["city"].details["new_categories"] == ["x", "y"]
    assert chunked.drifted_columns == ("city",)


def test_binned_ks_and_wasserstein_match_the_in_memory_check_on_large_references(rng):
    reference = _frame(rng, 30_000)
    refs = fit_references(reference)
    assert all(r.sample is None for r in refs.values() if r.kind == "numeric")
    current = _frame(rng, 12_000, shift=0.1)
    numeric = [c for c, r in refs.items() if r.kind == "numeric"]
    refs = {c: refs[c] for c in numeric}
    for method in (KolmogorovSmirnov(), Wasserstein()):
        methods = dict.fromkeys(numeric, method)
        whole = check_drift(refs, current[numeric], methods=methods)
        chunked = check_drift_chunks(refs, _chunks(current[numeric], 1_000), methods=methods)
        _assert_same_results(chunked, whole, ROUNDING)  # same counts; tail sums reordered
        assert not any(r.details["exact"] for r in chunked.results.values() if r.status == "ok")
        for column in numeric:
            ref, cur = reference[column].dropna(), current[column].dropna()
            if isinstance(method, KolmogorovSmirnov):
                exact = stats.ks_2samp(ref, cur).statistic
                tolerance = BINNED_KS_TOLERANCE
            else:
                exact = stats.wasserstein_distance(ref, cur) / ref.std(ddof=1)
                tolerance = BINNED_WASSERSTEIN_TOLERANCE
            assert abs(chunked.results[column].value - exact) <= tolerance, column


def test_a_kept_reference_sample_is_exact_in_memory_and_binned_in_chunks(rng):
    ref, cur = rng.normal(size=SAMPLE_LIMIT), rng.normal(0.3, 1, size=20_000)
    refs = fit_references(pd.DataFrame({"x": ref}))
    assert refs["x"].sample is not None
    current = pd.DataFrame({"x": cur})
    for method, exact, tolerance in (
        (KolmogorovSmirnov(), stats.ks_2samp(ref, cur).statistic, BINNED_KS_TOLERANCE),
        (Wasserstein(), stats.wasserstein_distance(ref, cur) / ref.std(ddof=1), 0.01),
    ):
        whole = check_drift(refs, current, methods={"x": method}).results["x"]
        chunked = check_drift_chunks(refs, _chunks(current, 4_096), methods={"x": method})
        result = chunked.results["x"]
        assert whole.details["exact"]
        assert whole.value == pytest.approx(exact, rel=1e-12)
        assert not result.details["exact"]
        assert abs(result.value - exact) <= tolerance
        assert result.drifted == whole.drifted


def test_default_methods_follow_the_total_current_count(rng):
    refs = fit_references(_frame(rng, 8_000))  # above SAMPLE_LIMIT: both sides binned
    current = _frame(rng, 1_500)
    chunked = check_drift_chunks(refs, _chunks(current, 500))  # every chunk is small
    assert chunked.results["normal"].method == "wasserstein"
    assert chunked.results["city"].method == "jensen_shannon"
    small = check_drift_chunks(refs, _chunks(current.iloc[:900], 300))
    assert small.results["normal"].method == "ks"
    assert small.results["city"].method == "chi_squared"
    _assert_same_results(chunked, check_drift(refs, current), ROUNDING)


def test_injected_drift_is_found_in_exactly_the_shifted_columns(rng):
    columns = [f"f{i}" for i in range(8)]
    reference = pd.DataFrame(rng.normal(size=(40_000, 8)), columns=columns)
    reference["segment"] = rng.choice(list("pqrs"), 40_000, p=[0.4, 0.3, 0.2, 0.1])
    current = pd.DataFrame(rng.normal(size=(60_000, 8)), columns=columns)
    current["segment"] = rng.choice(list("pqrs"), 60_000, p=[0.1, 0.2, 0.3, 0.4])
    current["f2"] += 0.5
    current["f5"] *= 1.6
    current["f7"] -= 0.4
    refs = fit_references(reference)
    report = check_drift_chunks(refs, _chunks(current, 8_192))
    assert sorted(report.drifted_columns) == ["f2", "f5", "f7", "segment"]
    assert report.share_drifted == pytest.approx(4 / 9)
    assert not report.dataset_drifted
    assert check_drift(refs, current).drifted_columns == report.drifted_columns


def test_empty_chunks_all_null_columns_and_columns_absent_from_some_chunks(rng):
    refs = fit_references(_frame(rng, 10_000))
    current = _frame(rng, 6_000)
    current["with_nulls"] = np.nan
    parts = list(_chunks(current, 2_000))
    parts[1] = parts[1].drop(columns=["city", "normal"])
    chunks = [current.iloc[:0], parts[0], pd.DataFrame(), parts[1], current.iloc[:0], parts[2]]
    report = check_drift_chunks(refs, chunks)
    assert report.no_data == ("with_nulls",)
    assert report.results["with_nulls"].details["null_current"] == 6_000
    assert math.isnan(report.results["with_nulls"].value)
    assert report.results["city"].details["n_current"] == 4_000
    assert report.results["normal"].details["n_current"] == 4_000
    whole = pd.concat([parts[0], parts[1], parts[2]])  # the absent columns become nulls here
    expected = check_drift(refs, whole)
    assert report.results["normal"].value == pytest.approx(expected.results["normal"].value)
    assert report.results["city"].value == pytest.approx(expected.results["city"].value)
    nothing = check_drift_chunks(refs, [])
    assert set(nothing.no_data) == set(refs)
    assert not nothing.dataset_drifted


def test_arrow_record_batches_are_chunks_too(rng):
    refs = fit_references(_frame(rng, 10_000))
    current = _frame(rng, 5_000, shift=0.3)
    current["unwatched"] = "not referenced"
    batches = pa.Table.from_pandas(current, preserve_index=False).to_batches(max_chunksize=1_024)
    assert len(batches) == 5
    whole = check_drift(refs, current)
    _assert_same_results(check_drift_chunks(refs, batches), whole, ROUNDING)
    _assert_same_results(check_drift_chunks(refs, [pa.Table.from_batches(batches)]), whole, 0)


def test_infinities_are_counted_across_chunks(rng):
    refs = fit_references(pd.DataFrame({"x": rng.normal(size=3_000)}))
    current = pd.DataFrame({"x": np.concatenate([rng.normal(size=2_000), [np.inf, -np.inf]])})
    report = check_drift_chunks(refs, _chunks(current, 701))
    assert report.results["x"].details["inf_current"] == 2
    assert report.results["x"].details["n_current"] == 2_000
