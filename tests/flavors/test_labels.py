"""Which ground-truth labels a model allows, from what its package records: the classes of a
classifier (also of a Booster trained directly, from its objective), else numbers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb

from modelloop.flavors import OutputSpec, save_model
from tests.flavors import numeric, transactions

FRAME, LABEL = transactions()
NUMERIC = numeric(FRAME)


@pytest.mark.parametrize(
    ("train", "classes"),
    [
        (lambda: lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(FRAME, LABEL), 3),
         ("0", "1")),
        (lambda: lgb.train({"objective": "multiclass", "num_class": 3, "verbose": -1},
                           lgb.Dataset(FRAME, LABEL + (FRAME.hour > 12)), 3), ("0", "1", "2")),
        (lambda: lgb.train({"objective": "regression", "verbose": -1},
                           lgb.Dataset(FRAME, FRAME.amount), 3), None),
        (lambda: xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(NUMERIC, LABEL), 3),
         ("0", "1")),
        (lambda: xgb.train({"objective": "multi:softprob", "num_class": 3},
                           xgb.DMatrix(NUMERIC, LABEL + (FRAME.hour > 12)), 3), ("0", "1", "2")),
    ],
)  # fmt: skip
def test_a_booster_records_the_classes_its_objective_implies(
    train: Any, classes: tuple[str, ...] | None, tmp_path: Path
) -> None:
    model = train()
    data = FRAME if isinstance(model, lgb.Booster) else NUMERIC
    manifest = save_model(model, tmp_path / "package", training_data=data)
    assert manifest.signature.output.classes == classes


BINARY = OutputSpec("probability", ("0", "1"))
NAMED = OutputSpec("probability", ("no", "yes"))
BOOLEAN = OutputSpec("probability", ("False", "True"))
SIGNED = OutputSpec("probability", ("-1", "1"))
THREE = OutputSpec("probability", ("0", "1", "2"))
WORDS = OutputSpec("class", ("cat", "dog", "fish"))


@pytest.mark.parametrize(
    ("output", "value", "stored"),
    [
        (BINARY, 1, (1.0, None)),
        (BINARY, 0.0, (0.0, None)),
        (BINARY, True, (1.0, None)),
        (BINARY, "0", (0.0, None)),
        (NAMED, "yes", (1.0, "yes")),  # 1 = classes[1], the class the score is P of
        (NAMED, "no", (0.0, "no")),
        (BOOLEAN, True, (1.0, None)),
        (BOOLEAN, "False", (0.0, None)),
        (SIGNED, -1, (0.0, "-1")),
        (THREE, 2, (2.0, None)),
        (WORDS, "dog", (None, "dog")),
        (OutputSpec("probability"), False, (0.0, None)),  # no classes recorded
        (OutputSpec("score"), 12.5, (12.5, None)),
    ],
)
def test_allowed_labels_as_stored(output: OutputSpec, value: Any, stored: Any) -> None:
    assert output.read_label(value) == stored


@pytest.mark.parametrize(
    ("output", "value", "message"),
    [
        (BINARY, "yes", "'yes' is not a class of this model: allowed 0, 1"),
        (BINARY, 0.25, "0.25 is not a class of this model: allowed 0, 1"),
        (BINARY, 2, "2 is not a class of this model: allowed 0, 1"),
        (NAMED, True, "True is not a class of this model: allowed 'no', 'yes'"),
        (OutputSpec("class", tuple(f"c{i}" for i in range(25))), "x", "(+5 more)"),
        (OutputSpec("probability"), 0.5, "its labels are 0 or 1"),
        (OutputSpec("probability"), "yes", "its labels are numbers (0 or 1)"),
        (OutputSpec("score"), "high", "its labels are numbers (a number)"),
    ],
)
def test_refused_labels_name_the_allowed_values(
    output: OutputSpec, value: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        output.read_label(value)


def test_read_label_takes_numpy_numbers() -> None:
    assert BINARY.read_label(np.float64(1.0)) == (1.0, None)
