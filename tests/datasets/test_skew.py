"""Skew between profiles: real shifts are found, a resample of the same data is not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelloop.datasets import fluent as ds
from modelloop.datasets.profile import compute_profile
from modelloop.datasets.skew import Tolerances, compare_profiles
from modelloop.errors import InvalidArgument


def sample(seed: int, n: int = 20_000, mean: float = 50.0, null_rate: float = 0.01) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amount = rng.normal(mean, 10.0, n)
    amount[rng.random(n) < null_rate] = np.nan
    merchant = rng.choice(["grocery", "travel", "fuel"], n, p=[0.5, 0.3, 0.2])
    return pd.DataFrame({"amount": amount, "merchant": pd.Series(merchant, dtype="str")})


def statistics(report: object) -> set[tuple[str, str]]:
    return {(f.column, f.statistic) for f in report.findings}  # type: ignore[attr-defined]


def test_a_resample_is_not_skew() -> None:
    report = compare_profiles(compute_profile(sample(1)), compute_profile(sample(2, n=5_000)))
    assert report.ok, report.summary()
    assert report.summary() == "No skew beyond the tolerances."


def test_shifted_mean() -> None:
    report = compare_profiles(compute_profile(sample(1)), compute_profile(sample(2, mean=60.0)))
    assert statistics(report) == {("amount", "mean"), ("amount", "psi")}
    mean = next(f for f in report.findings if f.statistic == "mean")
    assert mean.current == pytest.approx(60.0, abs=0.5)
    assert "+1.0" in mean.message


def test_new_category_and_null_rate_jump() -> None:
    current = sample(2)
    current.loc[:999, "merchant"] = "crypto"
    current.loc[2000:5999, "amount"] = np.nan
    report = compare_profiles(compute_profile(sample(1)), compute_profile(current))
    found = statistics(report)
    assert ("merchant", "new_categories") in found
    assert ("amount", "null_rate") in found
    new = next(f for f in report.findings if f.statistic == "new_categories")
    assert new.current == ["crypto"]
    assert report.skewed_columns == ["amount", "merchant"]


def test_missing_columns_dtypes_and_tolerances() -> None:
    reference = compute_profile(sample(1))
    current = compute_profile(
        sample(1).astype({"merchant": "category"}).rename(columns={"amount": "amt"})
    )
    assert statistics(compare_profiles(reference, current)) == {
        ("amount", "column"),
        ("amt", "column"),
        ("merchant", "dtype"),
    }
    loose = compare_profiles(
        compute_profile(sample(1)),
        compute_profile(sample(2, mean=60.0)),
        tolerances=Tolerances(mean_shift=2.0, psi=10.0),
    )
    assert loose.ok


def test_skew_against_a_logged_dataset(home: Path) -> None:
    ds.log_dataset(sample(1), "train")
    assert ds.check_skew("train", sample(3)).ok
    assert not ds.check_skew("train@1", sample(3, mean=70.0)).ok
    assert ds.check_skew(ds.get_dataset("train"), ds.get_dataset("train").profile).ok
    with pytest.raises(InvalidArgument, match="Cannot compare a list"):
        ds.check_skew("train", [1, 2])  # type: ignore[arg-type]
