"""Contributions add up to the model's own output, and reason codes are the top positive ones."""

from __future__ import annotations

import json
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelloop.errors import InvalidArgument
from modelloop.explain import ReasonCode, explain, reason_codes
from modelloop.flavors import (
    Contributions,
    LoadedModel,
    infer_signature,
    load_model,
    save_model,
)
from tests.flavors import numeric, transactions

FRAME, LABEL = transactions()
NUMERIC = numeric(FRAME)


def saved(model: object, tmp_path: Path, training_data: object = FRAME) -> LoadedModel:
    save_model(model, tmp_path / "m", training_data=training_data)  # type: ignore[arg-type]
    return load_model(tmp_path / "m")


def expected_codes(values: np.ndarray, names: tuple[str, ...], k: int) -> list[list[str]]:
    """The reference: sort each row by contribution, keep the positive ones, take k."""
    rows = []
    for row in values:
        ranked = sorted(range(len(names)), key=lambda j: -row[j])
        rows.append([names[j] for j in ranked if row[j] > 0][:k])
    return rows


def test_lightgbm_contributions_add_up_to_the_raw_score(tmp_path: Path) -> None:
    model = lgb.LGBMClassifier(n_estimators=30, num_leaves=7, verbose=-1).fit(FRAME, LABEL)
    loaded = saved(model, tmp_path)
    found = loaded.contributions(FRAME)
    raw = model.predict(FRAME, raw_score=True)
    assert found.feature_names == tuple(FRAME.columns)
    assert found.values.shape == (len(FRAME), 5)
    np.testing.assert_allclose(found.values.sum(1) + found.base_values, raw, rtol=0, atol=1e-6)
    codes = reason_codes(found, k=3)
    assert [[c.feature for c in row] for row in codes] == expected_codes(
        found.values, found.feature_names, 3
    )
    row = int(np.argmax(found.values[:, 3]))  # where the merchant pushes hardest
    merchant = next(c for c in codes[row] if c.feature == "merchant")
    assert merchant.value == FRAME.merchant.iloc[row]
    assert merchant.contribution == found.values[row, 3]
    # Serving explains the matrix it already validated: the same numbers.
    X = loaded.signature.to_matrix(json.loads(FRAME.to_json(orient="records")))
    from_matrix = loaded.contributions_matrix(X)
    np.testing.assert_array_equal(from_matrix.values, found.values)
    np.testing.assert_array_equal(from_matrix.base_values, found.base_values)


def test_xgboost_contributions_add_up_to_the_margin(tmp_path: Path) -> None:
    model = xgb.XGBClassifier(n_estimators=30, max_depth=3).fit(NUMERIC, LABEL)
    loaded = saved(model, tmp_path, NUMERIC)
    found = loaded.contributions(NUMERIC)
    margin = model.predict(NUMERIC, output_margin=True).astype(np.float64)
    # XGBoost adds in float32 (one step is 4.8e-7 near |margin| ~ 4), hence the relative term.
    total = found.values.sum(1) + found.base_values
    np.testing.assert_allclose(total, margin, rtol=1e-6, atol=1e-6)
    codes = reason_codes(found, k=2)
    assert [[c.feature for c in row] for row in codes] == expected_codes(
        found.values, found.feature_names, 2
    )
    assert all(len(row) <= 2 and all(c.contribution > 0 for c in row) for row in codes)
    X = loaded.signature.to_matrix(NUMERIC.head(5).to_dict("records"))
    np.testing.assert_array_equal(loaded.contributions_matrix(X).values, found.values[:5])


def test_a_sklearn_pipeline_is_explained_through_shap(tmp_path: Path) -> None:
    model = make_pipeline(StandardScaler(), GradientBoostingClassifier(n_estimators=20))
    model.fit(NUMERIC, LABEL)
    loaded = saved(model, tmp_path, NUMERIC)
    rows = NUMERIC.head(8)
    found = loaded.contributions(rows)
    total = found.values.sum(1) + found.base_values
    np.testing.assert_allclose(total, model.predict_proba(rows)[:, 1], rtol=0, atol=1e-9)
    assert len(set(found.base_values)) == 1  # one background, one expected value


def test_reason_codes_rank_positive_contributions_only() -> None:
    found = Contributions(
        feature_names=("a", "b", "c", "d"),
        values=np.array([[0.5, -1.0, 2.0, 0.5], [-1.0, -2.0, 0.0, 0.1], [-1, -1, -1, -1.0]]),
        base_values=np.zeros(3),
        data=np.array([[1.5, "x", np.nan, 4], [0, 0, 0, 0], [0, 0, 0, 0]], dtype=object),
    )
    codes = reason_codes(found, k=3)
    assert codes[0] == [
        ReasonCode("c", 2.0, None),  # NaN becomes None: it goes out as JSON
        ReasonCode("a", 0.5, 1.5),  # ties keep the signature's order
        ReasonCode("d", 0.5, 4),
    ]
    assert codes[1] == [ReasonCode("d", 0.1, 0)]  # a zero contribution is no reason
    assert codes[2] == []
    assert [len(row) for row in reason_codes(found, k=1)] == [1, 1, 0]
    assert reason_codes(found, k=0) == [[], [], []]
    with pytest.raises(InvalidArgument):
        reason_codes(found, k=-1)


def test_explain_returns_json_ready_rows(tmp_path: Path) -> None:
    model = lgb.LGBMClassifier(n_estimators=10, verbose=-1).fit(FRAME, LABEL)
    loaded = saved(model, tmp_path)
    rows = explain(loaded, FRAME.head(3), k=2)
    assert len(rows) == 3
    assert set(rows[0]) == {"contributions", "base_value", "reason_codes"}
    assert list(rows[0]["contributions"]) == list(FRAME.columns)
    raw = model.predict(FRAME.head(3), raw_score=True)
    for row, score in zip(rows, raw, strict=True):
        assert sum(row["contributions"].values()) + row["base_value"] == pytest.approx(score)
        assert len(row["reason_codes"]) <= 2
    json.dumps(rows, allow_nan=False)


def test_explaining_needs_training_rows_for_shap(tmp_path: Path) -> None:
    model = make_pipeline(StandardScaler(), GradientBoostingClassifier(n_estimators=5))
    model.fit(NUMERIC, LABEL)
    save_model(model, tmp_path / "m", signature=infer_signature(NUMERIC))
    with pytest.raises(InvalidArgument, match="training_data"):
        load_model(tmp_path / "m").contributions(NUMERIC.head(1))
