"""A version's drift reference: from its training data, else from the dataset its run read, else
a loud warning and a way to add one later; never a silent ``{}`` where monitoring needs one."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import Result

import modelloop as ml
from modelloop.errors import Conflict, NotFound
from modelloop.examples import training_pipeline as ex
from modelloop.pipelines import Pipeline, PipelineRun, step
from modelloop.registry.reference import NoDriftReference
from modelloop.tracking import fluent
from tests import cli_helpers


def invoke(*args: str) -> Result:
    fluent.close_clients()  # the command opens its own client on the same store
    return cli_helpers.invoke(*args)


def _frame(seed: int, n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, len(ex.FEATURES))), columns=ex.FEATURES)
    frame["label"] = (frame["f0"] - frame["f1"] > 0).astype("int64")
    return frame


@step(name="load")
def load_fraud() -> pd.DataFrame:
    return ml.load_dataset("fraud")


fraud_pipeline = Pipeline([load_fraud, ex.split, ex.train], name="fraud")


def _train_run(result: PipelineRun) -> str:
    run_id = result.steps["train"].run_id
    assert run_id is not None
    return run_id


def test_a_step_model_gets_its_reference_from_the_dataset_read_upstream(home: Path) -> None:
    ml.log_dataset(_frame(0, n=100), "fraud")
    ml.log_dataset(_frame(1), "fraud")  # fraud@2, the version the pipeline reads
    result = fraud_pipeline.run()
    done = invoke(
        "models", "register", _train_run(result), "fraud", "--artifact-path", "outputs/model"
    )
    assert done.exit_code == 0, done.output
    assert "drift reference from dataset fraud@2" in done.stdout
    assert "no drift reference" not in done.output

    reference = ml.reference_profile("models:/fraud/1")
    assert set(reference) == {*ex.FEATURES, "score"}
    assert reference["f0"].count == 400  # all of fraud@2, not fraud@1
    assert ml.get_model_version("fraud", 1).tags["modelloop.reference.dataset"] == "fraud@2"
    ml.load_model("models:/fraud/1")  # the package is the one that was registered


def test_a_step_model_with_no_dataset_upstream_warns_and_can_get_one_later(home: Path) -> None:
    result = ex.pipeline.run()  # generates its data: no dataset anywhere upstream
    run_id = _train_run(result)
    with pytest.warns(NoDriftReference, match="read or logged no dataset") as warned:
        first = ml.register_model(run_id, "example", artifact_path="outputs/model")
    assert "ml.set_reference_profile('example', 1, DATA)" in str(warned[0].message)
    with pytest.raises(NotFound, match=re.escape("models:/example/1 has no drift reference")):
        ml.reference_profile("models:/example/1")

    done = invoke("models", "register", run_id, "example", "--artifact-path", "outputs/model")
    assert done.exit_code == 0, done.output  # the version was registered: a warning, not a failure
    assert "Registered models:/example/2" in done.stdout
    assert "Warning: models:/example/2 has no drift reference" in done.stderr
    assert "`modelloop models register ... --dataset NAME@VERSION`" in done.stderr

    ml.log_dataset(result.value("train"), "example-train")
    with_data = ("--artifact-path", "outputs/model", "--dataset", "example-train@1")
    again = invoke("models", "register", run_id, "example", *with_data)
    assert again.exit_code == 0, again.output
    assert "drift reference from dataset example-train@1" in again.stdout
    assert ml.reference_profile("models:/example/3")["f0"].count == 300

    ml.set_reference_profile("example", 2, "example-train@1")
    assert (
        ml.get_model_version("example", 2).tags["modelloop.reference.dataset"] == "example-train@1"
    )
    with pytest.raises(Conflict, match="already has a drift reference"):
        ml.set_reference_profile("example", 2, result.value("train"))
    ml.set_reference_profile("example", first.version, result.value("train"))
    assert set(ml.reference_profile("models:/example/1")) == {*ex.FEATURES, "score"}
    events = [e for e in ml.audit_log("example") if e.action == "model_version.update"]
    assert len(events) == 2  # each reference added later is an audited change of its version
    for v in (1, 2, 3):  # adding references left the registered package as it was
        ml.load_model(f"models:/example/{v}")
