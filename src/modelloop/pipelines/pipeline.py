"""``Pipeline``: steps wired by name into a DAG, run as child runs of one pipeline run.

Design (the simplest that works): ``Pipeline([load, split, train], name="fraud")``. A step's
output is named after its function (or ``@step(outputs=("train", "test"))`` for a tuple); a step
parameter whose name is some step's output receives that output; every other parameter comes
from ``run(params=...)`` (``"lr"`` for every step that takes ``lr``, ``"train.lr"`` for one
step) or from its default. The graph is checked when the pipeline is built (duplicate steps or
outputs, a step consuming its own output, cycles) and the params when it runs (unknown keys,
missing values), so mistakes surface before any step executes.

States: SUCCEEDED, CACHED (a run tagged ``modelloop.cached_from`` = the original run), FAILED,
SKIPPED (downstream of a failure; no run). The pipeline run holds ``pipeline.json`` (the DAG with
states, durations, cache hits, run ids, each step's ``module:qualname`` and code fingerprint, and
the pipeline's own ``module:attribute`` so :func:`~modelloop.pipelines.reproduce` can rebuild
it) and ``environment.json`` (Python and every installed package's version); its run records the
code version, and params ending in ``seed`` are tagged.
"""

from __future__ import annotations

import functools
import inspect
import json
import platform
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any

from modelloop.clock import now_ms
from modelloop.errors import InvalidArgument, NotFound
from modelloop.pipelines import cache, outputs
from modelloop.pipelines.executors import (
    CACHED,
    FAILED,
    SKIPPED,
    SUCCEEDED,
    TAG_CACHE_KEY,
    TAG_STEP,
    Executor,
    LocalExecutor,
    ProcessExecutor,
    RayExecutor,
    StepCall,
    StepResult,
)
from modelloop.pipelines.lineage import blobs_of, database_of
from modelloop.pipelines.step import FanOut, StepSpec, spec_of, target_of
from modelloop.tracking.client import Client
from modelloop.tracking.entities import TAG_CACHED_FROM, RunStatus

TAG_PIPELINE = "modelloop.pipeline"
Event = Callable[[str, str], None]


@dataclass
class StepState:
    name: str
    state: str = "PENDING"
    run_id: str | None = None
    duration_s: float = 0.0
    cached_from: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # the last frames of a failed step's traceback
    upstream: list[str] = field(default_factory=list)
    trials: list[dict[str, Any]] = field(default_factory=list)
    target: str | None = None  # module:qualname of the step function
    code: dict[str, str] = field(default_factory=dict)  # cache.code_fingerprint at run time
    datasets: dict[str, int] = field(default_factory=dict)  # dataset reference read -> version
    reason: str | None = None  # why it failed in one line: the exception's type and message


@dataclass
class PipelineRun:
    """The result of :meth:`Pipeline.run` (or :meth:`load`-ed from its ``pipeline.json``)."""

    run_id: str
    name: str
    status: str
    params: dict[str, Any]
    steps: dict[str, StepState]
    target: str | None = None  # module:attribute of the Pipeline, when it is a module global

    def value(
        self, output: str, client: Client | None = None, *, allow_pickle: bool = False
    ) -> Any:
        """An output's value, read back from the artifact store (pickles only when allowed)."""
        from modelloop.pipelines.executors import _read

        for state in self.steps.values():
            if output in state.outputs:
                ref = state.outputs[output]
                blobs = blobs_of(client or _default_client())
                return outputs.decode(ref["kind"], _read(blobs, ref), allow_pickle=allow_pickle)
        raise NotFound(f"no step of pipeline run {self.run_id} produced {output!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "name": self.name,
            "status": self.status,
            "params": self.params,
            "steps": [asdict(s) for s in self.steps.values()],
            "target": self.target,
        }

    @classmethod
    def load(cls, run_id: str, client: Client | None = None) -> PipelineRun:
        client = client or _default_client()
        try:
            doc = json.loads(client.read_artifact(run_id, "pipeline.json"))
        except NotFound:
            raise NotFound(f"run {run_id} is not a finished pipeline run") from None
        steps = {s["name"]: StepState(**s) for s in doc["steps"]}
        for state in steps.values():  # runs recorded before steps kept a one-line reason
            if state.error and not state.reason:
                state.reason = _last_line(state.error)
        return cls(
            doc["run_id"], doc["name"], doc["status"], doc["params"], steps, doc.get("target")
        )


@dataclass
class _Node:
    name: str
    fn: Callable[..., Any]
    spec: StepSpec
    inputs: dict[str, str]  # parameter -> producing step
    params: dict[str, inspect.Parameter]
    fan_out: FanOut | None = None


class Pipeline:
    """A DAG of steps; see the module docstring for how steps are wired."""

    def __init__(
        self, steps: Sequence[Callable[..., Any] | FanOut], *, name: str = "pipeline"
    ) -> None:
        self.name = name
        specs: list[tuple[Callable[..., Any], StepSpec, FanOut | None]] = []
        for item in steps:
            if isinstance(item, FanOut):
                specs.append((item.fn, item.spec, item))
            else:
                specs.append((item, spec_of(item), None))
        names = [spec.name for _, spec, _ in specs]
        for dup in sorted({n for n in names if names.count(n) > 1}):
            raise InvalidArgument(f"pipeline {name} has two steps named {dup!r}")
        producer: dict[str, str] = {}
        for _, spec, _ in specs:
            for out in spec.outputs:
                if out in producer:
                    raise InvalidArgument(
                        f"output {out!r} is produced by both {producer[out]} and {spec.name}"
                    )
                producer[out] = spec.name
        self.nodes: dict[str, _Node] = {}
        for fn, spec, fan in specs:
            self.nodes[spec.name] = _make_node(fn, spec, fan, producer)
        self.order = _topological(self.nodes)

    def __repr__(self) -> str:
        return f"Pipeline({self.order}, name={self.name!r})"

    def run(
        self,
        params: Mapping[str, Any] | None = None,
        *,
        executor: str | Executor = "local",
        cache: bool = True,
        experiment: str | None = None,
        max_workers: int | None = None,
        on_event: Event | None = None,
        client: Client | None = None,
    ) -> PipelineRun:
        """Execute the DAG (``executor``: "local", "process", "ray" or an Executor)."""
        client = client or _default_client()
        resolved = self._resolve(dict(params or {}))
        db = database_of(client)
        run = client.create_run(
            experiment or self.name,
            name=self.name,
            params=dict(params or {}),
            tags={TAG_PIPELINE: self.name, **_seeds(params or {})},
        )
        client.log_bytes(run.run_id, _environment_lock(), "environment.json")
        exe = self._executor(executor, client, max_workers)
        driver = _Driver(self, client, db, exe, run.run_id, run.experiment_id, cache, on_event)
        try:
            driver.drive(resolved)
        except BaseException as exc:
            client.end_run(run.run_id, RunStatus.KILLED, error=repr(exc))
            raise
        finally:
            exe.close()
        failed = [s.name for s in driver.states.values() if s.state == FAILED]
        status = FAILED if failed else "FINISHED"
        result = PipelineRun(
            run.run_id, self.name, status, dict(params or {}), driver.states, _locate(self)
        )
        client.log_bytes(run.run_id, json.dumps(result.to_dict()).encode(), "pipeline.json")
        client.end_run(
            run.run_id,
            RunStatus.FAILED if failed else RunStatus.FINISHED,
            error=f"steps failed: {', '.join(failed)}" if failed else None,
        )
        return result

    def _executor(self, executor: str | Executor, client: Client, workers: int | None) -> Executor:
        if not isinstance(executor, str):
            return executor
        if executor == "local":
            functions = {target_of(n.fn): n.fn for n in self.nodes.values()}
            return LocalExecutor(client, functions)
        nested = [n.name for n in self.nodes.values() if "<locals>" in n.fn.__qualname__]
        if nested:
            raise InvalidArgument(
                f"steps {nested} are defined inside a function, so a {executor!r} worker cannot "
                "import them: define them at module level"
            )
        if executor == "process":
            return ProcessExecutor(client.settings, workers)
        if executor == "ray":
            return RayExecutor(client.settings)
        raise InvalidArgument(f"unknown executor {executor!r}: local, process or ray")

    def _resolve(self, params: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Each step's params; unknown keys and missing values are errors, all reported."""
        known = {p for n in self.nodes.values() for p in n.params}
        known |= {f"{n.name}.{p}" for n in self.nodes.values() for p in n.params}
        problems = [f"unknown param {k!r}" for k in params if k not in known]
        resolved: dict[str, dict[str, Any]] = {}
        for node in self.nodes.values():
            values: dict[str, Any] = {}
            trial_keys = {k for t in node.fan_out.trials for k in t} if node.fan_out else set()
            for pname, parameter in node.params.items():
                if f"{node.name}.{pname}" in params:
                    values[pname] = params[f"{node.name}.{pname}"]
                elif pname in params:
                    values[pname] = params[pname]
                elif parameter.default is not inspect.Parameter.empty:
                    values[pname] = parameter.default
                elif pname not in trial_keys:
                    problems.append(
                        f"step {node.name} needs {pname!r}: no step outputs it, no param gives it"
                    )
            resolved[node.name] = values
        if problems:
            raise InvalidArgument(f"pipeline {self.name}: " + "; ".join(problems))
        return resolved


class _Driver:
    """Launches ready steps, collects results, and skips what depends on a failure."""

    def __init__(
        self,
        pipeline: Pipeline,
        client: Client,
        db: Any,
        executor: Executor,
        run_id: str,
        experiment_id: str,
        use_cache: bool,
        on_event: Event | None,
    ) -> None:
        self.p, self.client, self.db, self.executor = pipeline, client, db, executor
        self.run_id = run_id
        self.experiment = client.store.get_experiment(experiment_id).name
        self.use_cache, self.on_event = use_cache, on_event
        self.states = {
            node.name: StepState(
                node.name,
                upstream=sorted(set(node.inputs.values())),
                target=target_of(node.fn),
                code=cache.code_fingerprint(node.fn),
            )
            for node in (pipeline.nodes[n] for n in pipeline.order)
        }
        self.running: dict[Future[StepResult], tuple[str, int]] = {}
        self.trials: dict[str, list[StepResult | None]] = {}

    def drive(self, params: dict[str, dict[str, Any]]) -> None:
        pending = list(self.p.order)
        while pending or self.running:
            for name in list(pending):
                ups = [self.states[u].state for u in self.states[name].upstream]
                if any(s in (FAILED, SKIPPED) for s in ups):
                    self.states[name].state = SKIPPED
                    self._emit(name, SKIPPED)
                    pending.remove(name)
                elif all(s in (SUCCEEDED, CACHED) for s in ups):
                    pending.remove(name)
                    self._launch(name, params[name])
            if not self.running:
                continue
            done, _ = wait(list(self.running), return_when=FIRST_COMPLETED)
            for future in done:
                name, index = self.running.pop(future)
                error = future.exception()
                if error is None:
                    result = future.result()
                else:
                    reason = f"executor error: {error!r}"
                    result = StepResult(name, FAILED, None, {}, 0.0, reason, reason=reason)
                self._collect(name, index, result)

    def _launch(self, name: str, params: dict[str, Any]) -> None:
        node = self.p.nodes[name]
        refs = {
            param: self.states[producer].outputs[param] for param, producer in node.inputs.items()
        }
        trials = node.fan_out.trials if node.fan_out else (None,)
        self.trials[name] = [None] * len(trials)
        self.states[name].state = "RUNNING"
        self._emit(name, "RUNNING")
        for index, trial in enumerate(trials):
            call_name = name if trial is None else f"{name}[{index}]"
            call_params = {**params, **(trial or {})}
            key = None
            if self.use_cache and node.spec.cache:
                digests = {k: r["digest"] for k, r in refs.items()}
                key = cache.cache_key(node.fn, node.spec, call_params, digests)
            call = StepCall(
                call_name,
                target_of(node.fn),
                call_params,
                refs,
                self.run_id,
                self.experiment,
                node.spec.outputs,
                node.spec.tuple_output,
                node.spec.allow_pickle,
                key,
            )
            hit = self._cached(call) if key else None
            if hit is not None:
                self._collect(name, index, hit)
            else:
                self.running[self.executor.submit(call)] = (name, index)

    def _cached(self, call: StepCall) -> StepResult | None:
        """A run standing for the earlier execution: its outputs, and its metrics so that
        searching the latest runs finds them."""
        assert call.cache_key is not None
        found = cache.lookup(self.client, self.db, call.cache_key)
        if found is None:
            return None
        blobs = blobs_of(self.client)
        if not all(blobs.exists(r["digest"]) for r in found.outputs.values()):
            return None
        original = found.run_id
        run = self.client.create_run(
            self.experiment,
            name=call.step,
            params=call.params,
            tags={TAG_STEP: call.step, TAG_CACHE_KEY: call.cache_key, TAG_CACHED_FROM: original},
            parent_run_id=self.run_id,
        )
        metrics = self.client.get_run(original).metrics
        if metrics:
            now = now_ms()
            self.client.log_batch(run.run_id, [(k, v, 0, now) for k, v in metrics.items()])
        self.client.end_run(run.run_id)
        return StepResult(
            call.step,
            CACHED,
            run.run_id,
            found.outputs,
            0.0,
            cached_from=original,
            datasets=found.datasets,
        )

    def _collect(self, name: str, index: int, result: StepResult) -> None:
        slots = self.trials[name]
        slots[index] = result
        if any(r is None for r in slots):
            return
        done = [r for r in slots if r is not None]
        state = self.states[name]
        node = self.p.nodes[name]
        if node.fan_out is None:
            best = done[0]
        else:
            state.trials = [
                {"run_id": r.run_id, "state": r.status, "params": t, "cached_from": r.cached_from}
                for r, t in zip(done, node.fan_out.trials, strict=True)
            ]
            best = self._best(node.fan_out, done)
        state.state = best.status
        state.run_id, state.cached_from = best.run_id, best.cached_from
        state.outputs, state.error, state.reason = best.outputs, best.error, best.reason
        state.datasets = best.datasets
        state.duration_s = round(sum(r.duration_s for r in done), 6)
        self._emit(name, state.state)

    def _best(self, fan: FanOut, results: list[StepResult]) -> StepResult:
        failed = [r for r in results if r.status == FAILED]
        if failed:
            return failed[0]
        blobs = blobs_of(self.client)
        scores = [
            float(json.loads(blobs.read_bytes(r.outputs[fan.metric]["digest"]))) for r in results
        ]
        pick = max if fan.mode == "max" else min
        best = pick(range(len(results)), key=scores.__getitem__)
        for trial, score in zip(self.states[fan.spec.name].trials, scores, strict=True):
            trial["metric"] = score
        self.states[fan.spec.name].trials[best]["best"] = True
        run_id = results[best].run_id
        if run_id is not None:
            self.client.set_tags(run_id, {"modelloop.best_trial": "true"})
        return results[best]

    def _emit(self, name: str, state: str) -> None:
        if self.on_event is not None:
            self.on_event(name, state)


def _make_node(
    fn: Callable[..., Any], spec: StepSpec, fan: FanOut | None, producer: Mapping[str, str]
) -> _Node:
    inputs: dict[str, str] = {}
    params: dict[str, inspect.Parameter] = {}
    for pname, parameter in inspect.signature(fn).parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise InvalidArgument(f"step {spec.name}: *args/**kwargs cannot be wired by name")
        if pname in producer:
            if producer[pname] == spec.name:
                raise InvalidArgument(f"step {spec.name} consumes its own output {pname!r}")
            inputs[pname] = producer[pname]
        else:
            params[pname] = parameter
    if fan is not None:
        bad = {k for t in fan.trials for k in t} - set(params)
        if bad:
            raise InvalidArgument(f"fan_out({spec.name}) trials set unknown params {sorted(bad)}")
    return _Node(spec.name, fn, spec, inputs, params, fan)


def _topological(nodes: Mapping[str, _Node]) -> list[str]:
    """Kahn's algorithm, keeping the declared order among independent steps."""
    remaining = {n: set(node.inputs.values()) for n, node in nodes.items()}
    order: list[str] = []
    while remaining:
        ready = [n for n, deps in remaining.items() if not deps - set(order)]
        if not ready:
            raise InvalidArgument(f"the steps {sorted(remaining)} depend on each other in a cycle")
        for n in ready:
            order.append(n)
            del remaining[n]
    return order


def _locate(pipeline: Pipeline) -> str | None:
    """``module:attribute`` of ``pipeline`` in a module defining one of its steps, if any."""
    for node in pipeline.nodes.values():
        module = sys.modules.get(node.fn.__module__)
        for attribute, value in vars(module).items() if module is not None else ():
            if value is pipeline:
                return f"{node.fn.__module__}:{attribute}"
    return None


def _last_line(error: str) -> str:
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    return lines[-1] if lines else error


def _seeds(params: Mapping[str, Any]) -> dict[str, str]:
    seeds = {k: v for k, v in params.items() if k.split(".")[-1].endswith("seed")}
    return {"modelloop.seeds": json.dumps(seeds, sort_keys=True, default=str)} if seeds else {}


@functools.cache
def _environment_lock() -> bytes:
    packages = {d.metadata["Name"]: d.version for d in metadata.distributions()}
    doc = {"python": platform.python_version(), "packages": dict(sorted(packages.items()))}
    return json.dumps(doc, indent=1).encode()


def _default_client() -> Client:
    from modelloop.tracking.fluent import get_client

    return get_client()
