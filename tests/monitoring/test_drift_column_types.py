"""Numeric columns with few distinct values are tested as categories (as Evidently 0.7 does),
declared types and methods win, results state the type, and references stored before still load.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from modelloop.errors import InvalidArgument
from modelloop.monitoring import (
    ChiSquared,
    ColumnReference,
    JensenShannon,
    KolmogorovSmirnov,
    check_drift,
    default_method,
    fit_reference,
    fit_references,
)
from modelloop.monitoring.drift import ZTest, check_drift_chunks

# What ColumnReference.to_dict() wrote before column types (and value counts of numbers).
STORED_BEFORE = {
    "kind",
    "count",
    "null_count",
    "inf_count",
    "mean",
    "std",
    "levels",
    "edges",
    "below",
    "at_or_below",
    "sample",
    "categories",
}


def _column(counts: dict[float, int], seed: int = 0) -> np.ndarray:
    """Exactly ``counts[v]`` copies of each value ``v``, shuffled."""
    values = np.repeat(list(counts), list(counts.values())).astype(float)
    return np.random.default_rng(seed).permutation(values)


def _table(ref: np.ndarray, cur: np.ndarray) -> list[list[int]]:
    keys = sorted(set(ref) | set(cur))
    return [[int((ref == k).sum()) for k in keys], [int((cur == k).sum()) for k in keys]]


def _stored_before(reference: ColumnReference) -> dict:
    """``reference`` as a version stored before column types had it in its reference.json."""
    data = reference.to_dict()
    del data["column_type"]
    if data["kind"] == "numeric":
        data["categories"] = None  # numbers kept no value counts
    assert set(data) == STORED_BEFORE
    return json.loads(json.dumps(data))


def test_a_three_valued_numeric_column_is_tested_with_chi_squared() -> None:
    # A -1/0/1-like code whose middle value gains share: KS barely sees it, chi-squared does.
    ref = _column({0.0: 300, 0.5: 150, 1.0: 150})
    cur = _column({0.0: 255, 0.5: 230, 1.0: 115}, seed=1)
    report = check_drift(fit_references(pd.DataFrame({"https": ref})), pd.DataFrame({"https": cur}))
    result = report.results["https"]
    expected = stats.chi2_contingency(_table(ref, cur), correction=False)
    assert (result.column_type, result.method) == ("categorical", "chi_squared")
    assert result.value == pytest.approx(expected.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert result.p_value < 0.05
    assert result.drifted
    assert report.drifted_columns == ("https",)
    assert stats.ks_2samp(ref, cur).pvalue > 0.05  # what the column got before: no drift


def test_a_binary_numeric_column_is_tested_with_the_z_test() -> None:
    ref = _column({0.0: 400, 1.0: 225})
    cur = _column({0.0: 360, 1.0: 265}, seed=1)
    frame = pd.DataFrame({"age_of_domain": ref.astype(np.int64)})
    references = fit_references(frame)
    result = check_drift(references, pd.DataFrame({"age_of_domain": cur})).results["age_of_domain"]
    # Evidently's formula: share of the values other than the first, pooled standard error.
    p1, p2 = (ref == 1).mean(), (cur == 1).mean()
    pooled = (ref.sum() + cur.sum()) / (len(ref) + len(cur))
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / len(ref) + 1 / len(cur)))
    assert (result.column_type, result.method) == ("categorical", "z")
    assert result.value == pytest.approx(abs(z), rel=1e-12)
    assert result.p_value == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)
    # ... which is the chi-squared test of the 2 x 2 table
    expected = stats.chi2_contingency(_table(ref, cur), correction=False)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert result.drifted == (expected.pvalue < 0.05)
    assert result.details["share_reference"] == pytest.approx((ref == 0).mean())
    assert stats.ks_2samp(ref, cur).pvalue > result.p_value


def test_current_values_logged_as_floats_match_an_integer_reference() -> None:
    ref = _column({0.0: 300, 1.0: 200, 2.0: 100}).astype(np.int64)
    current = pd.DataFrame({"n": pd.Series(ref[:400], dtype=float)})  # same values, as floats
    result = check_drift(fit_references(pd.DataFrame({"n": ref})), current).results["n"]
    assert result.column_type == "categorical"
    assert result.details["new_categories"] == []
    assert not result.drifted


def test_whole_numbers_are_categories_up_to_ten_values_and_fractions_up_to_five() -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "eight_ints": rng.integers(0, 8, 600),
            "eight_whole_floats_with_a_null": np.append(rng.integers(0, 8, 599), np.nan),
            "five_fractions": rng.choice([0.1, 0.2, 0.3, 0.4, 0.5], 600),
            "six_fractions": rng.choice([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], 600),
            "eleven_ints": rng.integers(0, 11, 600),
            "continuous": rng.normal(size=600),
            "text": rng.choice(["a", "b"], 600),
        }
    )
    types = {name: ref.column_type for name, ref in fit_references(frame).items()}
    assert types == {
        "eight_ints": "categorical",
        "eight_whole_floats_with_a_null": "categorical",
        "five_fractions": "categorical",
        "six_fractions": "numeric",
        "eleven_ints": "numeric",
        "continuous": "numeric",
        "text": "categorical",
    }
    report = check_drift(fit_references(frame), frame.sample(frac=1.0, random_state=1))
    methods = {name: (r.column_type, r.method) for name, r in report.results.items()}
    assert methods == {
        "eight_ints": ("categorical", "chi_squared"),
        "eight_whole_floats_with_a_null": ("categorical", "chi_squared"),
        "five_fractions": ("categorical", "chi_squared"),
        "six_fractions": ("numeric", "ks"),
        "eleven_ints": ("numeric", "ks"),
        "continuous": ("numeric", "ks"),
        "text": ("categorical", "z"),
    }
    assert report.drifted_columns == ()


def test_large_samples_compare_a_discrete_column_per_value_with_jensen_shannon() -> None:
    ref = _column({1.0: 3000, 2.0: 2000, 3.0: 1000})
    cur = _column({1.0: 2000, 2.0: 2000, 3.0: 1000, 4.0: 200}, seed=1)
    result = check_drift({"x": fit_reference(ref)}, pd.DataFrame({"x": cur})).results["x"]
    p, q = _table(ref, cur)
    assert (result.column_type, result.method) == ("categorical", "jensen_shannon")
    assert result.value == pytest.approx(jensenshannon(p, q, base=2), rel=1e-12)
    assert result.details["new_categories"] == ["4.0"]


def test_declared_types_win() -> None:
    flag = _column({0.0: 400, 1.0: 225})
    code = np.random.default_rng(2).integers(0, 30, 625)  # 30 whole numbers: numeric undeclared
    frame = pd.DataFrame({"flag": flag, "code": code})
    declared = fit_references(frame, kinds={"flag": "numeric", "code": "categorical"})
    assert fit_references(frame)["flag"].column_type == "categorical"
    assert fit_references(frame)["code"].column_type == "numeric"
    current = pd.DataFrame({"flag": _column({0.0: 360, 1.0: 265}, 1), "code": np.sort(code)})
    report = check_drift(declared, current)
    assert (report.results["flag"].column_type, report.results["flag"].method) == ("numeric", "ks")
    assert report.results["flag"].p_value == stats.ks_2samp(flag, current["flag"]).pvalue
    code_result = report.results["code"]
    assert (code_result.column_type, code_result.method) == ("categorical", "chi_squared")
    assert code_result.p_value == pytest.approx(1.0)  # same values, reordered
    # fit_reference takes the same declaration
    assert fit_reference(flag, kind="numeric").column_type == "numeric"


def test_a_chosen_method_wins_and_chi_squared_works_on_a_numeric_column_with_few_values() -> None:
    rng = np.random.default_rng(4)
    steps = [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75]  # 7 fractions: typed numeric
    ref, cur = rng.choice(steps, 600), rng.choice(steps, 500, p=[0.2] + [0.8 / 6] * 6)
    references = fit_references(pd.DataFrame({"x": ref, "flag": (ref > 1).astype(int)}))
    assert references["x"].column_type == "numeric"
    current = pd.DataFrame({"x": cur, "flag": (cur > 1).astype(int)})
    report = check_drift(references, current, methods={"x": "chi_squared", "flag": "ks"})
    x = report.results["x"]
    expected = stats.chi2_contingency(_table(ref, cur), correction=False)
    assert (x.column_type, x.method) == ("numeric", "chi_squared")
    assert x.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    flag = report.results["flag"]
    assert (flag.column_type, flag.method) == ("categorical", "ks")
    assert flag.p_value == stats.ks_2samp((ref > 1).astype(int), current["flag"]).pvalue


def test_declaring_a_type_names_the_problem() -> None:
    frame = pd.DataFrame({"amount": [1.0, 2.0], "city": ["a", "b"]})
    with pytest.raises(InvalidArgument) as caught:
        fit_references(frame, kinds={"amount": "ordinal", "cty": "categorical"})
    assert {d["field"] for d in caught.value.details} == {"kinds.amount", "kinds.cty"}
    assert "numeric or categorical" in caught.value.message
    with pytest.raises(InvalidArgument, match="numeric") as caught:
        fit_references(frame, kinds={"city": "numeric"})
    assert caught.value.details[0]["field"] == "kinds.city"


def test_defaults_pick_the_z_test_for_two_values_in_small_samples() -> None:
    assert isinstance(default_method("categorical", 600, 600, values=2), ZTest)
    assert isinstance(default_method("categorical", 600, 600, values=3), ChiSquared)
    assert isinstance(default_method("categorical", 5000, 5000, values=2), JensenShannon)
    assert isinstance(default_method("numeric", 600, 600, values=2), KolmogorovSmirnov)


def test_chunked_checks_of_discrete_columns_agree_exactly() -> None:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"flag": rng.integers(0, 2, 4000), "code": rng.choice([0, 0.5, 1], 4000)})
    current = pd.DataFrame(
        {"flag": rng.integers(0, 2, 900), "code": rng.choice([0, 0.5, 1, 2], 900)}
    )
    references = fit_references(frame)
    whole = check_drift(references, current)
    chunked = check_drift_chunks(
        references, (current.iloc[i : i + 200] for i in range(0, 900, 200))
    )
    for column in ("flag", "code"):
        got, expected = chunked.results[column], whole.results[column]
        assert (got.method, got.column_type, got.drifted) == (
            expected.method,
            expected.column_type,
            expected.drifted,
        )
        assert got.p_value == pytest.approx(expected.p_value, rel=1e-12)
        assert got.details["new_categories"] == expected.details["new_categories"]
    assert whole.results["code"].details["new_categories"] == ["2.0"]


@pytest.mark.parametrize(
    "values",
    [
        _column({0.0: 300, 0.5: 150, 1.0: 150}),  # sample kept
        _column({0.0: 5000, 0.5: 3000, 1.0: 2000}),  # sketch only, every value at an edge
        _column({1.0: 20, 2.0: 30, 3.0: 40}).astype(np.int64),
    ],
)
def test_references_stored_before_column_types_are_typed_when_loaded(values) -> None:
    fresh = fit_reference(values)
    loaded = ColumnReference.from_dict(_stored_before(fresh))
    assert loaded.column_type == "categorical"
    assert loaded.categories == fresh.categories
    assert loaded == fresh
    current = pd.DataFrame({"x": values[: len(values) // 2]})
    assert check_drift({"x": loaded}, current) == check_drift({"x": fresh}, current)


def test_references_stored_before_stay_numeric_when_their_values_are_not_held() -> None:
    # 20,000 rows, a middle value of 0.3%: it falls between sketch edges, so its count is lost.
    values = _column({0.0: 10_000, 0.5: 60, 1.0: 9_940})
    stored = _stored_before(fit_reference(values))
    loaded = ColumnReference.from_dict(stored)
    assert (loaded.column_type, loaded.categories) == ("numeric", None)
    result = check_drift({"x": loaded}, pd.DataFrame({"x": values[:5000]})).results["x"]
    assert (result.column_type, result.method, result.status) == ("numeric", "wasserstein", "ok")
    # continuous and categorical references load as they were
    continuous = fit_reference(np.random.default_rng(6).normal(size=800))
    assert ColumnReference.from_dict(_stored_before(continuous)) == continuous
    text = fit_reference(pd.Series(["a", "b", "b"]))
    assert ColumnReference.from_dict(_stored_before(text)) == text
    assert text.column_type == "categorical"


def test_a_reference_round_trips_with_its_column_type_and_value_counts() -> None:
    reference = fit_reference(_column({0.0: 10, 1.0: 5}).astype(np.int64), kind="numeric")
    restored = ColumnReference.from_dict(json.loads(json.dumps(reference.to_dict())))
    assert restored == reference
    assert (restored.column_type, restored.categories) == ("numeric", {"0.0": 10, "1.0": 5})


def _gof(ref: pd.Series, cur: pd.Series) -> tuple[float, float]:
    """Evidently 0.7's ``chisquare`` by hand: ``scipy.stats.chisquare`` of the current counts
    against the reference counts scaled by n_current / n_reference, over the values of both."""
    keys = sorted(set(ref.dropna()) | set(cur.dropna()))
    ref_counts, cur_counts = ref.value_counts(), cur.value_counts()
    k_norm = cur.notna().sum() / ref.notna().sum()
    f_exp = [ref_counts.get(k, 0) * k_norm for k in keys]
    f_obs = [cur_counts.get(k, 0) for k in keys]
    with np.errstate(divide="ignore"):  # a value absent from the reference is expected 0 times
        result = stats.chisquare(f_obs, f_exp)
    return float(result.statistic), float(result.pvalue)


def test_evidently_chi_squared_goodness_of_fit_is_opt_in_and_matches_scipy() -> None:
    rng = np.random.default_rng(7)
    ref = pd.DataFrame(
        {
            "https": _column({0.0: 300, 0.5: 150, 1.0: 150}),
            "country": rng.choice(["fr", "de", "it", None], 600, p=[0.5, 0.3, 0.15, 0.05]),
        }
    )
    cur = pd.DataFrame(
        {
            "https": _column({0.0: 230, 0.5: 150, 1.0: 120}, seed=1),  # 500 rows: scaled
            "country": rng.choice(["fr", "de", "it", None], 500, p=[0.45, 0.35, 0.15, 0.05]),
        }
    )
    references = fit_references(ref)
    methods = {"https": "chi_squared_gof", "country": "chi_squared_gof"}
    report = check_drift(references, cur, methods=methods)
    default = check_drift(references, cur)
    for column in methods:
        result = report.results[column]
        statistic, p_value = _gof(ref[column], cur[column])
        assert (result.column_type, result.method) == ("categorical", "chi_squared_gof")
        assert result.value == pytest.approx(statistic, rel=1e-12)
        assert result.p_value == pytest.approx(p_value, rel=1e-9)
        assert result.drifted == (p_value < 0.05)
        # It ignores the reference's own noise, so its p-value is below the two-sample test's.
        assert default.results[column].method == "chi_squared"
        assert result.p_value < default.results[column].p_value


def test_evidently_chi_squared_flags_a_value_absent_from_the_reference() -> None:
    ref = pd.Series(["a"] * 40 + ["b"] * 60)
    cur = pd.Series(["a"] * 20 + ["b"] * 29 + ["c"])
    references = fit_references(pd.DataFrame({"x": ref}))
    result = check_drift(
        references, pd.DataFrame({"x": cur}), methods={"x": "chi_squared_gof"}
    ).results["x"]
    assert _gof(ref, cur) == (math.inf, 0.0)
    assert (result.value, result.p_value, result.drifted) == (math.inf, 0.0, True)
    assert result.details["new_categories"] == ["c"]
