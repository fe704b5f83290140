"""The cache is invalidated by a change in code, params or input data, and not otherwise."""

from __future__ import annotations

import importlib
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

import modelloop as ml
from modelloop.examples import training_pipeline as ex
from modelloop.pipelines import Pipeline, get_lineage, step
from modelloop.pipelines.cache import cache_key
from modelloop.pipelines.step import spec_of
from modelloop.tracking.fluent import get_client

STEPS = """
from modelloop.pipelines import Pipeline, step


def _scale(x):
    return x * {factor}


@step
def source(n: int = 3) -> list[int]:
    return list(range(n))


@step
def double(source: list[int]) -> list[int]:
    return [v * 2 for v in source]


@step
def scaled(double: list[int]) -> list[int]:
    return [_scale(v) for v in double]


pipeline = Pipeline([source, double, scaled], name="tmp")
"""


def _states(result: object) -> dict[str, str]:
    return {name: s.state for name, s in result.steps.items()}  # type: ignore[attr-defined]


@pytest.fixture
def steps_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """A step module written to disk, importable, never byte-compiled (edits must be seen)."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    src = tmp_path / "src"
    src.mkdir()
    name = f"steps_{uuid.uuid4().hex[:8]}"
    (src / f"{name}.py").write_text(STEPS.format(factor=10))
    monkeypatch.syspath_prepend(str(src))
    yield src / f"{name}.py", name
    sys.modules.pop(name, None)


def _import(name: str) -> ModuleType:
    module = sys.modules.get(name)
    return importlib.import_module(name) if module is None else importlib.reload(module)


def test_identical_second_run_is_all_cached_and_reuses_outputs(home: Path) -> None:
    first = ex.pipeline.run()
    second = ex.pipeline.run()
    assert set(_states(second).values()) == {"CACHED"}
    client = get_client()
    for name, state in second.steps.items():
        original = first.steps[name]
        assert state.outputs == original.outputs
        assert state.cached_from == original.run_id
        run = client.get_run(state.run_id or "")
        assert run.tags["modelloop.cached_from"] == original.run_id
        assert run.parent_run_id == second.run_id
    assert second.value("evaluate") == first.value("evaluate")


def test_param_change_invalidates_that_step_and_downstream_only(home: Path) -> None:
    ex.pipeline.run()
    changed = ex.pipeline.run(params={"train.learning_rate": 0.05})
    assert _states(changed) == {
        "load": "CACHED",
        "split": "CACHED",
        "train": "SUCCEEDED",
        "evaluate": "SUCCEEDED",
    }


def test_input_data_change_invalidates_consumers(home: Path) -> None:
    ex.pipeline.run()
    changed = ex.pipeline.run(params={"seed": 3})  # new data, same code and params downstream
    assert set(_states(changed).values()) == {"SUCCEEDED"}


def test_rerun_upstream_with_identical_output_keeps_downstream_cached(home: Path) -> None:
    @step(cache=False)
    def fresh() -> list[int]:
        return [1, 2]

    @step
    def total(fresh: list[int]) -> int:
        return sum(fresh)

    pipe = Pipeline([fresh, total])
    pipe.run()
    again = pipe.run()
    assert _states(again) == {"fresh": "SUCCEEDED", "total": "CACHED"}


def test_no_cache_runs_everything(home: Path) -> None:
    ex.pipeline.run()
    again = ex.pipeline.run(cache=False)
    assert set(_states(again).values()) == {"SUCCEEDED"}


def test_code_change_invalidates_the_edited_step(
    home: Path, steps_module: tuple[Path, str]
) -> None:
    path, name = steps_module
    first = _import(name).pipeline.run()
    assert first.value("scaled") == [0, 20, 40]
    text = path.read_text()
    path.write_text(text.replace("v * 2 for v", "v * 3 for v"))
    edited = _import(name).pipeline.run()
    assert _states(edited) == {"source": "CACHED", "double": "SUCCEEDED", "scaled": "SUCCEEDED"}
    assert edited.value("scaled") == [0, 30, 60]


def test_helper_change_invalidates_its_caller(home: Path, steps_module: tuple[Path, str]) -> None:
    path, name = steps_module
    _import(name).pipeline.run()
    path.write_text(STEPS.format(factor=100))
    edited = _import(name).pipeline.run()
    assert _states(edited) == {"source": "CACHED", "double": "CACHED", "scaled": "SUCCEEDED"}
    assert edited.value("scaled") == [0, 200, 400]


def test_blank_lines_and_trailing_spaces_do_not_invalidate(
    home: Path, steps_module: tuple[Path, str]
) -> None:
    path, name = steps_module
    _import(name).pipeline.run()
    path.write_text(
        path.read_text().replace("    return list(range(n))", "\n    return list(range(n))   \n")
    )
    again = _import(name).pipeline.run()
    assert set(_states(again).values()) == {"CACHED"}


def test_cache_key_covers_params_inputs_and_env() -> None:
    spec = spec_of(ex.train)
    base = cache_key(ex.train, spec, {"learning_rate": 0.1}, {"train": "a" * 64})
    assert base == cache_key(ex.train, spec, {"learning_rate": 0.1}, {"train": "a" * 64})
    assert base != cache_key(ex.train, spec, {"learning_rate": 0.2}, {"train": "a" * 64})
    assert base != cache_key(ex.train, spec, {"learning_rate": 0.1}, {"train": "b" * 64})
    other_env = type(spec)(spec.name, spec.outputs, env=("numpy",), tuple_output=True)
    assert base != cache_key(ex.train, other_env, {"learning_rate": 0.1}, {"train": "a" * 64})


@step
def by_name() -> float:
    return float(ml.load_dataset("fraud")["x"].sum())


@step
def via_version() -> float:
    return float(ml.load_dataset(ml.get_dataset("fraud"))["x"].sum())


@step
def pinned() -> float:
    return float(ml.load_dataset("fraud@1")["x"].sum())


def _datasets_in_lineage(run_id: str | None) -> set[str]:
    return {i for k, i in get_lineage(run_id or "").labels if k == "dataset"}


def test_a_new_version_of_a_dataset_read_by_name_is_a_cache_miss(home: Path) -> None:
    ml.log_dataset(pd.DataFrame({"x": [1.0, 2.0]}), "fraud")
    pipe = Pipeline([by_name, via_version, pinned], name="reads")
    first = pipe.run()
    assert set(_states(pipe.run()).values()) == {"CACHED"}  # same version: still a hit

    ml.log_dataset(pd.DataFrame({"x": [10.0, 20.0]}), "fraud")
    second = pipe.run()
    assert _states(second) == {
        "by_name": "SUCCEEDED",
        "via_version": "SUCCEEDED",
        "pinned": "CACHED",
    }
    assert second.value("by_name") == second.value("via_version") == 30.0
    assert second.value("pinned") == 3.0
    assert _datasets_in_lineage(second.steps["by_name"].run_id) == {"fraud@2"}
    assert first.steps["by_name"].datasets == {"fraud": 1}  # as recorded in pipeline.json
    assert second.steps["by_name"].datasets == {"fraud": 2}

    third = pipe.run()  # the new version's execution is reused from now on
    assert set(_states(third).values()) == {"CACHED"}
    assert third.steps["by_name"].cached_from == second.steps["by_name"].run_id
    assert third.steps["by_name"].datasets == {"fraud": 2}
    assert _datasets_in_lineage(third.steps["by_name"].run_id) == {"fraud@2"}
    assert _datasets_in_lineage(third.steps["pinned"].run_id) == {"fraud@1"}
