import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from modelloop.datasets.reference import SAMPLE_LIMIT
from modelloop.monitoring import (
    PSI,
    ChiSquared,
    ColumnReference,
    JensenShannon,
    KolmogorovSmirnov,
    Wasserstein,
    check_drift,
    default_method,
    fit_reference,
    fit_references,
)

BINNED_KS_TOLERANCE = 0.01
BINNED_WASSERSTEIN_TOLERANCE = 0.01


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def test_ks_is_exact_when_the_reference_keeps_its_sample(rng):
    ref, cur = rng.normal(size=800), rng.normal(0.2, 1, size=600)
    result = KolmogorovSmirnov().compare(fit_reference(ref), cur)
    expected = stats.ks_2samp(ref, cur)
    assert result.details["exact"]
    assert result.value == expected.statistic
    assert result.p_value == expected.pvalue
    assert result.drifted == (expected.pvalue < 0.05)


@pytest.mark.parametrize("shift", [0.0, 0.05, 0.3])
def test_binned_ks_is_within_tolerance_of_scipy(rng, shift):
    ref, cur = rng.normal(size=50_000), rng.normal(shift, 1, size=20_000)
    reference = fit_reference(ref)
    assert reference.sample is None
    result = KolmogorovSmirnov().compare(reference, cur)
    expected = stats.ks_2samp(ref, cur)
    assert not result.details["exact"]
    assert abs(result.value - expected.statistic) <= BINNED_KS_TOLERANCE
    assert result.value <= expected.statistic + 1e-12  # binned D is a lower bound
    en = math.sqrt(50_000 * 20_000 / 70_000)
    assert result.p_value == pytest.approx(stats.kstwobign.sf(result.value * en))
    if shift >= 0.05:
        assert result.drifted
        assert expected.pvalue < 0.05


def test_binned_ks_is_exact_on_discrete_data(rng):
    ref, cur = rng.integers(0, 5, 20_000), rng.integers(0, 6, 3_000)
    result = KolmogorovSmirnov().compare(fit_reference(ref), cur)
    assert result.value == pytest.approx(stats.ks_2samp(ref, cur).statistic, abs=1e-12)


def test_chi_squared_matches_scipy_contingency_with_unseen_categories(rng):
    ref = rng.choice(["a", "b", "c"], 500, p=[0.5, 0.3, 0.2])
    cur = rng.choice(["a", "b", "c", "d"], 300, p=[0.4, 0.3, 0.2, 0.1])
    result = ChiSquared().compare(fit_reference(ref), cur)
    keys = ["a", "b", "c", "d"]
    table = [[int((ref == k).sum()) for k in keys], [int((cur == k).sum()) for k in keys]]
    expected = stats.chi2_contingency(table, correction=False)
    assert result.value == pytest.approx(expected.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert result.details["new_categories"] == ["d"]
    assert result.drifted


def test_chi_squared_without_new_categories_matches_goodness_of_fit_shape(rng):
    ref = rng.choice(["x", "y"], 400)
    result = ChiSquared().compare(fit_reference(ref), rng.choice(["x", "y"], 400))
    assert 0.0 <= result.p_value <= 1.0
    assert result.details["dof"] == 1


def test_jensen_shannon_matches_scipy_for_categories_and_numbers(rng):
    ref = rng.choice(list("abcd"), 2000, p=[0.4, 0.3, 0.2, 0.1])
    cur = rng.choice(list("abce"), 1000, p=[0.1, 0.2, 0.3, 0.4])
    result = JensenShannon().compare(fit_reference(ref), cur)
    keys = list("abcde")
    p = np.array([(ref == k).sum() for k in keys], float)
    q = np.array([(cur == k).sum() for k in keys], float)
    assert result.value == pytest.approx(jensenshannon(p, q, base=2), rel=1e-12)
    assert result.drifted

    nref, ncur = rng.normal(size=10_000), rng.normal(0.5, 1, size=5_000)
    numeric = JensenShannon().compare(fit_reference(nref), ncur)
    p, q = _decile_counts(nref, ncur)
    assert numeric.value == pytest.approx(jensenshannon(p, q, base=2), rel=1e-12)


def _decile_counts(ref, cur):
    cuts = np.unique(np.quantile(ref, [i / 10 for i in range(1, 10)]))
    bins = np.concatenate(([-np.inf], cuts, [np.inf]))
    pairs = list(itertools.pairwise(bins))
    p = np.array([((ref > lo) & (ref <= hi)).sum() for lo, hi in pairs], float)
    q = np.array([((cur > lo) & (cur <= hi)).sum() for lo, hi in pairs], float)
    return p, q


def test_psi_matches_a_hand_computation(rng):
    ref, cur = rng.normal(size=10_000), rng.normal(0.3, 1.2, size=4_000)
    p, q = _decile_counts(ref, cur)
    p, q = np.clip(p / p.sum(), 1e-4, None), np.clip(q / q.sum(), 1e-4, None)
    expected = float(np.sum((q - p) * np.log(q / p)))
    result = PSI().compare(fit_reference(ref), cur)
    assert result.value == pytest.approx(expected, rel=1e-12)
    assert result.p_value is None
    assert result.drifted == (expected >= 0.2)
    assert PSI().compare(fit_reference(ref), rng.normal(size=4_000)).value < 0.02


def test_wasserstein_is_exact_with_a_sample_and_close_when_binned(rng):
    ref, cur = rng.normal(size=900), rng.normal(0.3, 1, size=700)
    small = Wasserstein().compare(fit_reference(ref), cur)
    assert small.value == pytest.approx(
        stats.wasserstein_distance(ref, cur) / ref.std(ddof=1), rel=1e-12
    )
    for shift, scale in [(0.0, 1.0), (0.05, 1.0), (0.5, 2.0), (8.0, 1.0)]:
        big_ref, big_cur = rng.normal(size=100_000), rng.normal(shift, scale, size=30_000)
        result = Wasserstein().compare(fit_reference(big_ref), big_cur)
        expected = stats.wasserstein_distance(big_ref, big_cur) / big_ref.std(ddof=1)
        assert not result.details["exact"]
        assert abs(result.value - expected) <= BINNED_WASSERSTEIN_TOLERANCE
        assert result.drifted == (shift >= 0.5 or scale != 1.0)


def test_injected_mean_shift_is_found_in_exactly_those_columns(rng):
    columns = [f"f{i}" for i in range(10)]
    reference = pd.DataFrame(rng.normal(size=(20_000, 10)), columns=columns)
    current = pd.DataFrame(rng.normal(size=(5_000, 10)), columns=columns)
    shifted = ["f1", "f4", "f6", "f9"]
    current[shifted] += 0.5
    refs = fit_references(reference)
    for methods in (None, dict.fromkeys(columns, "ks"), dict.fromkeys(columns, "psi")):
        report = check_drift(refs, current, methods=methods)
        assert sorted(report.drifted_columns) == shifted
        assert report.share_drifted == pytest.approx(0.4)
        assert not report.dataset_drifted
    assert check_drift(refs, current, share_threshold=0.4).dataset_drifted


def test_false_alarm_rate_of_ks_stays_within_a_binomial_bound(rng):
    trials, alarms = 50, 0
    for _ in range(trials):
        ref, cur = rng.normal(size=500), rng.normal(size=500)
        alarms += KolmogorovSmirnov().compare(fit_reference(ref), cur).drifted
    assert stats.binom(trials, 0.05).sf(alarms - 1) > 0.001  # P(X >= alarms) is not tiny


def test_defaults_follow_type_and_smaller_sample():
    assert isinstance(default_method("numeric", 500, 10_000), KolmogorovSmirnov)
    assert isinstance(default_method("numeric", 10_000, 500), KolmogorovSmirnov)
    assert isinstance(default_method("numeric", 10_000, 5_000), Wasserstein)
    assert isinstance(default_method("categorical", 800, 800), ChiSquared)
    assert isinstance(default_method("categorical", 5_000, 5_000), JensenShannon)


def test_thresholds_are_configurable_per_column(rng):
    frame = pd.DataFrame({"a": rng.normal(size=5000), "b": rng.normal(size=5000)})
    current = frame + 0.15
    refs = fit_references(frame)
    report = check_drift(refs, current, methods={"a": "wasserstein", "b": Wasserstein()})
    assert report.drifted_columns == ("a", "b")
    report = check_drift(refs, current, thresholds={"b": 0.5}, methods={"b": "wasserstein"})
    assert report.results["b"].threshold == 0.5
    assert report.results["b"].method == "wasserstein"
    assert report.drifted_columns == ("a",)


def test_nulls_and_infinities_are_excluded_and_counted(rng):
    ref = rng.normal(size=1000)
    cur = np.concatenate([rng.normal(size=400), [np.nan] * 7, [np.inf, -np.inf]])
    reference = fit_reference(np.concatenate([ref, [np.nan, np.inf]]))
    assert (reference.count, reference.null_count, reference.inf_count) == (1000, 1, 1)
    result = KolmogorovSmirnov().compare(reference, cur)
    assert result.details | {"n_current": 400, "null_current": 7, "inf_current": 2} == (
        result.details
    )
    assert result.value == stats.ks_2samp(ref, cur[:400]).statistic


def test_empty_all_null_and_missing_columns_report_no_data(rng):
    refs = {
        "x": fit_reference(rng.normal(size=100)),
        "nulls": fit_reference(pd.Series([np.nan] * 10, dtype=float)),
        "c": fit_reference(pd.Series(["a", "b"] * 50)),
    }
    for method in (PSI(), KolmogorovSmirnov(), Wasserstein(), JensenShannon()):
        result = method.compare(refs["x"], pd.Series([], dtype=float))
        assert result.status == "no_data"
        assert not result.drifted
        assert math.isnan(result.value)
    report = check_drift(refs, pd.DataFrame({"x": [np.nan, np.nan], "nulls": [1.0, 2.0]}))
    assert set(report.no_data) == {"x", "nulls", "c"}
    assert report.share_drifted == 0.0
    assert not report.dataset_drifted
    assert check_drift(refs, pd.DataFrame()).no_data == ("x", "nulls", "c")


def test_constant_columns(rng):
    reference = fit_reference(np.full(10_000, 3.0))
    same = np.full(2_000, 3.0)
    assert Wasserstein().compare(reference, same).value == 0.0
    assert not KolmogorovSmirnov().compare(reference, same).drifted
    assert PSI().compare(reference, same).value == pytest.approx(0.0)
    moved = np.full(2_000, 3.5)
    assert Wasserstein().compare(reference, moved).value == math.inf
    ks = KolmogorovSmirnov().compare(reference, moved)
    assert ks.value == 1.0
    assert ks.drifted
    assert PSI().compare(reference, moved).drifted


def test_methods_refuse_the_wrong_kind(rng):
    with pytest.raises(ValueError, match="categorical"):
        KolmogorovSmirnov().compare(fit_reference(["a", "b"]), ["a"])
    continuous = fit_reference(rng.normal(size=500))  # too many values to count each
    with pytest.raises(ValueError, match=r"numeric column 'x'.*declare it categorical"):
        ChiSquared().compare(continuous, [1.0], column="x")


@pytest.mark.parametrize(
    "values",
    [np.arange(20_000) * 0.5, np.arange(SAMPLE_LIMIT) * 1.0, ["a", "b", None, "a"], [True, False]],
)
def test_references_round_trip_through_json(values, rng):
    reference = fit_reference(values)
    restored = ColumnReference.from_dict(json.loads(json.dumps(reference.to_dict())))
    assert restored == reference
    current = pd.Series(values).sample(frac=1.0, random_state=1)
    assert PSI().compare(restored, current) == PSI().compare(reference, current)


def test_a_large_frame_is_checked_vectorised(rng):
    """200k rows x 25 columns: the two columns that moved are found, each with the distance
    scipy computes on all the rows (the reference keeps a bounded summary, not the rows)."""
    from scipy.stats import wasserstein_distance

    frame = pd.DataFrame(rng.normal(size=(200_000, 25)), columns=[f"c{i}" for i in range(25)])
    refs = fit_references(frame)
    current = frame.assign(c3=frame["c3"] + 0.5, c7=frame["c7"] * 2.0)
    report = check_drift(refs, current)
    assert len(report.results) == 25
    assert all(r.method == "wasserstein" for r in report.results.values())
    assert report.drifted_columns == ("c3", "c7")
    for column in ("c3", "c7", "c0"):
        exact = wasserstein_distance(frame[column], current[column]) / frame[column].std()
        assert report.results[column].value == pytest.approx(exact, abs=0.02), column
    assert report.results["c0"].value < 0.02


def test_an_id_like_column_keeps_a_bounded_reference_and_still_detects_a_shift() -> None:
    from modelloop.datasets.reference import CATEGORY_LIMIT, OTHER

    rng = np.random.default_rng(0)
    reference = fit_reference(pd.Series(rng.integers(0, 50_000, 200_000).astype(str)))
    assert reference.categories is not None
    assert len(reference.categories) == CATEGORY_LIMIT
    assert reference.categories[OTHER] > 0
    assert sum(reference.categories.values()) == reference.count == 200_000

    same = pd.DataFrame({"card": rng.integers(0, 50_000, 50_000).astype(str)})
    assert not check_drift({"card": reference}, same, methods={"card": "psi"}).dataset_drifted
    # A handful of cards take most of the traffic: the kept categories gain, OTHER loses.
    top = [k for k in reference.categories if k != OTHER][:5]
    skewed = pd.DataFrame({"card": np.where(rng.random(50_000) < 0.5, rng.choice(top, 50_000),
                                            same["card"])})  # fmt: skip
    assert check_drift({"card": reference}, skewed, methods={"card": "psi"}).dataset_drifted
