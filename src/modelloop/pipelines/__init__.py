"""Pipelines: plain functions composed into a DAG, cached by content, traced by lineage.

from modelloop.pipelines import Pipeline, step

@step
def load(n: int = 1000) -> pd.DataFrame: ...

@step(outputs=("train", "test"))
def split(load: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]: ...

run = Pipeline([load, split, train], name="fraud").run(params={"seed": 1})
run.steps["train"].state        # SUCCEEDED | CACHED | FAILED | SKIPPED
get_lineage(run.steps["train"].outputs["model"]["digest"]).render()
reproduce(run.run_id).ok         # re-run without the cache: every output bit-identical?
"""

from modelloop.pipelines.executors import (
    Executor,
    LocalExecutor,
    ProcessExecutor,
    RayExecutor,
    StepCall,
    StepResult,
)
from modelloop.pipelines.lineage import LineageGraph, get_lineage
from modelloop.pipelines.outputs import ModelOutput
from modelloop.pipelines.pipeline import Pipeline, PipelineRun, StepState
from modelloop.pipelines.reproduce import ReproductionReport, StepComparison, reproduce
from modelloop.pipelines.step import FanOut, StepSpec, fan_out, step

__all__ = [
    "Executor",
    "FanOut",
    "LineageGraph",
    "LocalExecutor",
    "ModelOutput",
    "Pipeline",
    "PipelineRun",
    "ProcessExecutor",
    "RayExecutor",
    "ReproductionReport",
    "StepCall",
    "StepComparison",
    "StepResult",
    "StepSpec",
    "StepState",
    "fan_out",
    "get_lineage",
    "reproduce",
    "step",
]
