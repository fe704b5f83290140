"""Drift method names given as strings are checked up front, with the valid names listed."""

from __future__ import annotations

import pandas as pd
import pytest

from modelloop.datasets.reference import ColumnReference, fit_references
from modelloop.errors import InvalidArgument
from modelloop.monitoring.drift import METHODS, check_drift, check_drift_chunks


@pytest.fixture
def reference() -> dict[str, ColumnReference]:
    frame = pd.DataFrame({"amount": [1.0, 2.0, 3.0, 4.0], "country": ["a", "b", "a", "b"]})
    return fit_references(frame)


def test_unknown_method_names_the_valid_ones(reference: dict[str, ColumnReference]) -> None:
    current = pd.DataFrame({"amount": [1.0, 2.0], "country": ["a", "a"]})
    with pytest.raises(InvalidArgument) as caught:
        check_drift(reference, current, methods={"country": "chi2"})
    message = caught.value.message
    assert "chi2" in message
    for name in METHODS:
        assert name in message
    assert "chi_squared_gof" in message  # Evidently's chi-square, opt-in
    assert caught.value.details == [
        {"field": "methods.country", "message": "unknown drift method 'chi2'"}
    ]


def test_unknown_method_in_chunked_check(reference: dict[str, ColumnReference]) -> None:
    chunks = [pd.DataFrame({"amount": [1.0], "country": ["a"]})]
    with pytest.raises(InvalidArgument, match="chi_squared"):
        check_drift_chunks(reference, chunks, methods={"country": "chi2"})


def test_known_method_name_still_works(reference: dict[str, ColumnReference]) -> None:
    current = pd.DataFrame({"amount": [1.0, 2.0], "country": ["a", "a"]})
    report = check_drift(reference, current, methods={"country": "chi_squared"})
    assert report.results["country"].method == "chi_squared"
