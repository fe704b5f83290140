"""A version registered with its training data carries its drift reference (inputs and score)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

import modelloop as ml
from modelloop import flavors
from modelloop.errors import NotFound
from modelloop.monitoring import check_drift
from modelloop.monitoring.runner import check_windows
from modelloop.monitoring.sql import window_rows
from modelloop.registry.reference import NoDriftReference
from modelloop.store import open_database

from .conftest import MODEL, Watched, day


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


def test_without_training_data_there_is_no_reference_and_it_says_so(home: Path) -> None:
    with ml.start_run() as run:
        run.log_text("{}", "raw/notes.json")
        version = ml.register_model(run, "notes", artifact_path="raw")
    with pytest.raises(NotFound, match=r"models:/notes/1 has no drift reference.*not package"):
        ml.reference_profile(f"models:/notes/{version.version}")


def test_a_monitored_version_without_reference_says_why_and_how_to_add_one(
    watched: Watched, tmp_path: Path
) -> None:
    train = _data(3, n=500)
    model = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(train, train["amount"] > 0)
    flavors.save_model(model, tmp_path / "pkg", training_data=train)
    with ml.start_run(experiment="fraud") as run:
        run.log_artifacts(tmp_path / "pkg", artifact_path="other")
    with pytest.warns(NoDriftReference):
        version = ml.register_model(run.run_id, MODEL, artifact_path="other").version
    watched.log_predictions(day(1), 300, seed=1, version=version)
    name = watched.monitor()
    check_windows(name, now=day(2) + timedelta(hours=1), settings=watched.settings)
    rows = window_rows(open_database(watched.settings.database_url), name, kind="drift")
    assert rows[0]["status"] == "no_reference"
    (note,) = rows[0]["report"]["notes"]
    assert f"models:/{MODEL}/{version} has no drift reference" in note
    assert f"ml.set_reference_profile('{MODEL}', {version}, DATA)" in note
