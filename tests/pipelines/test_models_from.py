"""``models_from``: the model versions whose lineage reaches a dataset version, found by one walk
downstream; it agrees with the upstream walk of ``lineage`` from every version."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import modelloop as ml
from modelloop.pipelines import ModelOutput, Pipeline, get_lineage, step
from modelloop.pipelines.lineage import models_from
from modelloop.registry.client import Registry
from modelloop.registry.reference import TAG_REFERENCE_DATASET
from modelloop.tracking.fluent import get_client

FEATURES = ["amount", "age"]


def _frame(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(80, 2)), columns=FEATURES)
    return frame.assign(label=(frame["amount"] > 0).astype("int64"))


@step
def load() -> pd.DataFrame:
    return ml.load_dataset("phish@2")


@step
def fit(load: pd.DataFrame) -> ModelOutput:
    from sklearn.linear_model import LogisticRegression

    X = load[FEATURES]
    return ModelOutput(LogisticRegression().fit(X, load["label"]), training_data=X)


PHISH = Pipeline([load, fit], name="phish")


def _model(frame: pd.DataFrame) -> object:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression().fit(frame[FEATURES], frame["label"])


def test_models_from_agrees_with_the_lineage_of_every_version(home: Path) -> None:
    ml.log_dataset(_frame(1), "phish")
    ml.log_dataset(_frame(2), "phish")
    ml.log_dataset(_frame(3), "other")
    steps = PHISH.run().steps
    client = get_client()
    registry = Registry(client)
    try:
        # 1: a pipeline step's model; its drift reference found from lineage (phish@2).
        from_step = registry.register_model(
            steps["fit"].run_id or "", "phish-model", artifact_path="outputs/fit"
        )
        assert from_step.tags[TAG_REFERENCE_DATASET] == "phish@2"
        # 2: a run that read nothing, registered with a dataset reference for its data.
        with ml.start_run(experiment="phish") as bare:
            declared = registry.register_model(
                bare, "phish-model", _model(_frame(1)), training_data="phish@1"
            )
        # 3: a run that read phish@2 itself.
        with ml.start_run(experiment="phish") as reader:
            frame = ml.load_dataset("phish@2")
            direct = registry.register_model(
                reader, "phish-model", _model(frame), training_data=frame[FEATURES]
            )
        # 4: a run that read another dataset.
        with ml.start_run(experiment="phish") as elsewhere:
            ml.load_dataset("other@1")
            other = registry.register_model(
                elsewhere, "phish-model", _model(_frame(3)), training_data=_frame(3)[FEATURES]
            )
    finally:
        registry.close()
    assert models_from("phish@2", client) == {
        f"phish-model/{from_step.version}": "upstream",
        f"phish-model/{direct.version}": "read",
    }
    assert models_from("phish@1", client) == {f"phish-model/{declared.version}": "reference"}
    assert models_from("other@1", client) == {f"phish-model/{other.version}": "read"}
    assert models_from("phish@3", client) == {}
    versions = [from_step, declared, direct, other]
    for ref in ("phish@1", "phish@2", "other@1"):
        reached = models_from(ref, client)
        for version in versions:
            graph = get_lineage(version.uri, client)
            assert (ref in graph.datasets()) == (f"phish-model/{version.version}" in reached)
    graph = get_lineage(declared.uri, client)
    assert graph.parents(("model_version", f"phish-model/{declared.version}")) == [
        (("run", bare.run_id), "output"),
        (("dataset", "phish@1"), "reference"),
    ]
    assert "<-reference- dataset phish@1" in graph.render()


def test_a_cached_steps_models_are_from_the_data_its_original_read(home: Path) -> None:
    ml.log_dataset(_frame(1), "phish")
    ml.log_dataset(_frame(2), "phish")
    PHISH.run()
    cached = PHISH.run().steps["fit"]
    assert cached.state == "CACHED"
    registry = Registry(get_client())
    try:
        version = registry.register_model(
            cached.run_id or "", "phish-model", artifact_path="outputs/fit"
        )
        assert version.run_id == cached.cached_from  # the package's run, which ran
        frame = _frame(2)
        logged_here = registry.register_model(  # a model logged in the cached run itself
            cached.run_id or "", "phish-model", _model(frame), training_data=frame[FEATURES]
        )
        assert logged_here.run_id == cached.run_id
    finally:
        registry.close()
    assert models_from("phish@2") == {
        f"phish-model/{version.version}": "upstream",
        f"phish-model/{logged_here.version}": "upstream",
    }
    assert get_lineage(version.uri).datasets() == ["phish@2"]
    assert get_lineage(logged_here.uri).datasets() == ["phish@2"]
