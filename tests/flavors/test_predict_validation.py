"""A loaded model checks a DataFrame against its signature as serving checks requests: a column
of the wrong type is an InvalidInput naming it and the type expected, never the library's own
error; values of the right type held differently (text for a category, numbers as objects) are
taken as they are meant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

import modelloop as ml
from modelloop.errors import InvalidInput
from modelloop.flavors import load_model, save_model
from tests.flavors import transactions

FRAME, LABEL = transactions()


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Any:
    fitted = lgb.LGBMClassifier(n_estimators=10, num_leaves=7, verbose=-1).fit(FRAME, LABEL)
    path = tmp_path_factory.mktemp("model") / "package"
    save_model(fitted, path, training_data=FRAME)
    return load_model(path)


def test_text_columns_name_every_column_and_its_type(model: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        model.predict(FRAME.astype(str))
    error = caught.value
    fields = {d["field"]: d["message"] for d in error.details or []}
    assert set(fields) == {"amount", "hour", "is_online", "velocity"}  # merchant is text anyway
    assert fields["amount"].startswith("expected numbers (float), got a string (")
    assert fields["hour"].startswith("expected whole numbers (int), got a string ('")
    assert fields["is_online"].startswith("expected true/false (bool, or 0/1), got a string")
    assert (error.details or [])[0]["row"] == 0  # the first value that does not fit
    assert "4 column(s) do not match the model signature" in error.message
    assert "'amount' expected numbers (float)" in error.message
    with pytest.raises(InvalidInput, match="'amount' expected numbers"):
        model.contributions(FRAME.astype(str))  # the matrix path checks the same way


def test_values_of_the_right_type_are_taken_however_held(model: Any) -> None:
    expected = model.predict(FRAME)
    as_text = FRAME.assign(merchant=FRAME["merchant"].astype(str))  # e.g. read from a CSV
    as_objects = FRAME.astype(object).assign(velocity=FRAME["velocity"].astype(object))
    as_objects.loc[FRAME["velocity"].isna(), "velocity"] = None  # records with None
    reordered = FRAME.assign(
        merchant=pd.Categorical(FRAME["merchant"].astype(str), categories=["travel", "fuel",
                                "grocery", "online"])
    )  # fmt: skip
    bool_as_number = FRAME.assign(is_online=FRAME["is_online"].astype(float))
    for frame in (as_text, as_objects, reordered, bool_as_number):
        np.testing.assert_allclose(model.predict(frame), expected)


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("hour", 1.5, "expected whole numbers (int), got 1.5"),
        ("is_online", 2, "expected true/false (bool, or 0/1), got 2.0"),
        ("amount", True, "expected numbers (float), got a bool column"),
        ("merchant", 3, "expected one of 'grocery', 'travel', 'online', 'fuel' (category, as"),
    ],
)
def test_each_type_rule(model: Any, column: str, values: Any, message: str) -> None:
    frame = FRAME.assign(**{column: values})
    with pytest.raises(InvalidInput) as caught:
        model.predict(frame)
    assert [d["field"] for d in caught.value.details or []] == [column]
    assert message in (caught.value.details or [])[0]["message"]


def test_the_sdk_model_of_the_registry_refuses_text(home: Path) -> None:
    fitted = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(FRAME, LABEL)
    with ml.start_run(experiment="validation") as run:
        ml.register_model(run, "fraud", fitted, training_data=FRAME)
    loaded = ml.load_model("models:/fraud/1")
    with pytest.raises(InvalidInput, match="'amount' expected numbers"):
        loaded.predict(FRAME.astype(str))
