"""Profile values checked against pandas/numpy on the same data."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from modelloop.datasets.profile import (
    MAX_CATEGORIES,
    QUANTILES,
    DatasetProfile,
    categorical_for_drift,
    compute_profile,
)
from modelloop.datasets.reference import fit_reference
from modelloop.errors import InvalidArgument


@pytest.fixture
def data() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 10_000
    amount = rng.lognormal(3, 1, n)
    amount[::97] = np.nan
    amount[5] = np.inf
    return pd.DataFrame(
        {
            "amount": amount,
            "count": pd.array(np.where(rng.random(n) < 0.1, None, rng.integers(0, 50, n)), "Int64"),
            "merchant": pd.Categorical(rng.choice(["a", "b", "c"], n, p=[0.6, 0.3, 0.1])),
            "user": pd.Series([f"u{i}" for i in rng.integers(0, 1000, n)]),
            "fraud": rng.random(n) < 0.02,
            "when": pd.date_range("2024-01-01", periods=n, freq="min"),
        }
    )


def test_numeric_statistics_match_numpy(data: pd.DataFrame) -> None:
    col = compute_profile(data).columns["amount"]
    finite = data["amount"][np.isfinite(data["amount"])]
    assert col.kind == "numeric"
    assert col.null_count == int(data["amount"].isna().sum())
    assert col.null_rate == pytest.approx(data["amount"].isna().mean())
    assert col.count == len(data) - col.null_count
    assert col.inf_count == 1
    assert col.min == finite.min()
    assert col.max == finite.max()
    assert col.mean == pytest.approx(finite.mean())
    assert col.std == pytest.approx(finite.std())
    assert col.quantiles is not None
    for q in QUANTILES:
        assert col.quantiles[str(q)] == pytest.approx(np.quantile(finite, q))
    assert col.distinct == data["amount"].nunique()
    assert col.histogram is not None
    assert len(col.histogram.edges) == 21
    assert sum(col.histogram.counts) == len(finite)
    expected, _ = np.histogram(finite, bins=col.histogram.edges)
    assert col.histogram.counts == expected.tolist()


def test_nullable_integers_and_categories(data: pd.DataFrame) -> None:
    profile = compute_profile(data)
    count = profile.columns["count"]
    assert count.null_count == int(data["count"].isna().sum())
    assert count.mean == pytest.approx(data["count"].mean())
    assert count.distinct == data["count"].nunique()
    merchant = profile.columns["merchant"]
    assert merchant.kind == "categorical"
    shares = data["merchant"].value_counts(normalize=True)
    assert merchant.top == pytest.approx({k: shares[k] for k in ["a", "b", "c"]})
    assert list(merchant.top or {}) == ["a", "b", "c"]
    assert merchant.other_share == 0.0
    fraud = profile.columns["fraud"]
    assert fraud.top == pytest.approx({"False": 1 - data.fraud.mean(), "True": data.fraud.mean()})
    when = profile.columns["when"]
    assert (when.kind, when.min, when.max) == (
        "datetime",
        "2024-01-01T00:00:00",
        str(data.when.max().isoformat()),
    )


def test_top_categories_are_capped_with_an_other_share(data: pd.DataFrame) -> None:
    user = compute_profile(data).columns["user"]
    counts = data["user"].value_counts()
    assert user.distinct == len(counts)
    assert user.top is not None
    assert len(user.top) == MAX_CATEGORIES
    assert min(user.top.values()) >= counts.iloc[MAX_CATEGORIES] / len(data) - 1e-12
    assert user.other_share == pytest.approx(1 - sum(user.top.values()))
    assert user.other_share == pytest.approx(counts.iloc[MAX_CATEGORIES:].sum() / len(data))


def test_profile_survives_json(data: pd.DataFrame) -> None:
    profile = compute_profile(data)
    text = json.dumps(profile.to_dict(), allow_nan=False)
    assert DatasetProfile.from_dict(json.loads(text)) == profile


def test_hostile_columns_do_not_crash() -> None:
    frame = pd.DataFrame(
        {
            "all_nan": [np.nan, np.nan],
            "all_inf": [np.inf, -np.inf],
            "constant": [3.0, 3.0],
            "empty_text": pd.Series([None, None], dtype=object),
        }
    )
    profile = compute_profile(frame)
    assert profile.columns["all_nan"].null_rate == 1.0
    assert profile.columns["all_nan"].mean is None
    assert profile.columns["all_inf"].inf_count == 2
    assert profile.columns["all_inf"].distinct == 2
    constant = profile.columns["constant"]
    assert constant.histogram is not None
    assert (constant.histogram.edges, constant.histogram.counts) == ([3.0, 3.0], [2])
    assert constant.std == 0.0
    assert profile.columns["empty_text"].top == {}
    empty = compute_profile(frame.iloc[:0])
    assert empty.num_rows == 0
    assert empty.columns["constant"].null_rate == 0.0
    json.dumps(empty.to_dict(), allow_nan=False)


def test_refuses_non_frames() -> None:
    with pytest.raises(InvalidArgument, match="expected a DataFrame"):
        compute_profile([1, 2])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("values", "categories"),
    [
        ([0.0, 1.0], True),  # a flag
        ([0.0, 0.5, 1.0], True),  # a three-valued code
        ([0.1, 0.2, 0.3, 0.4, 0.5], True),  # 5 values of any kind
        ([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], False),
        (list(range(10)), True),  # 10 whole numbers, int or float
        ([float(v) for v in range(10)], True),
        (list(range(11)), False),
        ([0.0, 1.0, 2.0, 3.0, 4.0, 5.5], False),  # 6 values, not all whole
    ],
)
def test_numeric_columns_with_few_values_are_categorical_for_drift(values, categories) -> None:
    assert categorical_for_drift(values) is categories


def test_huge_values_have_finite_moments() -> None:
    """Squares of values beyond ~1e154 overflow float64: the mean and std are still finite and
    right (computed on scaled values), so the profile and drift references stay valid JSON."""
    values = np.array([1e300, -1e300, 3e299, 2e299])
    frame = pd.DataFrame({"x": values})
    column = compute_profile(frame).columns["x"]
    assert column.mean == pytest.approx(float(np.mean(values / 1e300)) * 1e300)
    assert column.std == pytest.approx(float(np.std(values / 1e300, ddof=1)) * 1e300)
    assert math.isfinite(column.std)
    reference = fit_reference(frame["x"])
    assert (reference.mean, reference.std) == (column.mean, column.std)
