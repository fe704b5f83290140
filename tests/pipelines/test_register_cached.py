"""Registering a model from a cached pipeline step's run: the step reused an earlier run's
package and logged nothing itself, so the version is that package, from that run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelloop.examples import training_pipeline as ex
from modelloop.pipelines import get_lineage
from modelloop.registry.client import TAG_REGISTERED_FROM, Registry
from modelloop.registry.reference import NoDriftReference
from modelloop.tracking.fluent import get_client

PACKAGE = "outputs/model"  # where a pipeline step's model output is logged


def test_a_cached_steps_model_registers_the_package_it_reuses(home: Path) -> None:
    first = ex.pipeline.run()
    second = ex.pipeline.run()
    original, cached = first.steps["train"], second.steps["train"]
    assert cached.state == "CACHED"
    assert cached.run_id is not None
    assert original.run_id is not None
    assert cached.cached_from == original.run_id
    client = get_client()
    assert client.list_artifacts(cached.run_id) == []  # the cached run holds nothing
    registry = Registry(client)
    try:
        with pytest.warns(NoDriftReference):  # the example pipeline logs no dataset
            version = registry.register_model(cached.run_id, "example", artifact_path=PACKAGE)
        with pytest.warns(NoDriftReference):
            direct = registry.register_model(original.run_id, "example", artifact_path=PACKAGE)
        # The version is the original run's package, and says which run it was asked from.
        assert version.run_id == original.run_id
        assert version.tags[TAG_REGISTERED_FROM] == cached.run_id
        assert TAG_REGISTERED_FROM not in direct.tags
        assert version.flavor == direct.flavor == "lightgbm"
        assert version.signature == direct.signature
        assert version.package_digest == direct.package_digest
        features = ex.load()[ex.FEATURES]  # a step is a plain function
        loaded = registry.load_model(f"models:/example/{version.version}")
        np.testing.assert_array_equal(
            loaded.predict(features),
            registry.load_model(f"models:/example/{direct.version}").predict(features),
        )
    finally:
        registry.close()
    # Lineage: the version came out of the run that trained it, and from its inputs upstream.
    graph = get_lineage(f"models:/example/{version.version}")
    root = ("model_version", f"example/{version.version}")
    assert graph.parents(root) == [(("run", original.run_id), "output")]
    assert first.steps["split"].run_id in graph.runs()
