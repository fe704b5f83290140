"""A version registered with its training data carries its drift reference (inputs and score)."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

import modelloop as ml
from modelloop.monitoring import check_drift


def _data(seed: int, shift: float = 0.0, n: int = 3000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 3)), columns=["amount", "hour", "velocity"])
    frame["amount"] += shift
    frame["merchant"] = pd.Categorical(rng.choice(["grocery", "travel"], n))
    return frame


def test_reference_is_stored_with_the_version_and_detects_drift(home: Path) -> None:
    train = _data(0)
    y = (train["amount"] + train["velocity"] > 0.5).astype(int)
    with ml.start_run(experiment="fraud") as run:
        model = lgb.LGBMClassifier(n_estimators=20, verbose=-1).fit(train, y)
        version = ml.register_model(run, "fraud-detector", model, training_data=train)
    reference = ml.reference_profile(f"models:/fraud-detector/{version.version}")
    assert set(reference) == {"amount", "hour", "velocity", "merchant", "score"}
    assert reference["score"].count == len(train)
    assert (
        reference["merchant"].to_dict()
        == ml.reference_profile("models:/fraud-detector/latest")["merchant"].to_dict()
    )

    loaded = ml.load_model(f"models:/fraud-detector/{version.version}")
    same = _data(1)
    same["score"] = loaded.predict(same)
    assert list(check_drift(reference, same).drifted_columns) == []
    shifted = _data(2, shift=1.5)
    shifted["score"] = loaded.predict(shifted)
    assert set(check_drift(reference, shifted).drifted_columns) == {"amount", "score"}


def test_without_training_data_there_is_no_reference(home: Path) -> None:
    with ml.start_run() as run:
        run.log_text("{}", "raw/notes.json")
        version = ml.register_model(run, "notes", artifact_path="raw")
    assert ml.reference_profile(f"models:/notes/{version.version}") == {}
