"""Where steps run. Every executor has one small shape: ``submit(StepCall) -> Future[StepResult]``.

A :class:`StepCall` is plain data (the step's import path ``module:qualname``, its params, its
inputs' artifact references, the parent run id), so a worker process or a Ray task can run it
without anyone pickling user objects: :func:`run_step` imports the function, reads its inputs
from the artifact store, calls it, writes its outputs back there and records the child run, its
lineage edges, the datasets it read and its cache entry. Values travel only through the artifact
store. The numbers a step returns (a number, or a dict of them: its metrics) become metrics of its
run too (see :func:`~modelloop.pipelines.outputs.numbers`).

    LocalExecutor     in this process, one step at a time (the default; no start-up cost)
    ProcessExecutor   a pool of spawned processes: independent steps and trials in parallel
    RayExecutor       Ray tasks on the cluster at ``MODELLOOP_RAY_ADDRESS`` (or a local one)
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from modelloop.clock import now_ms
from modelloop.datasets.fluent import recording_reads
from modelloop.errors import InvalidArgument
from modelloop.pipelines import cache, outputs
from modelloop.pipelines.lineage import blobs_of, database_of
from modelloop.settings import Settings
from modelloop.tracking.client import Client
from modelloop.tracking.entities import RunStatus, check_key
from modelloop.tracking.fluent import activated
from modelloop.tracking.run import ActiveRun

SUCCEEDED, CACHED, FAILED, SKIPPED = "SUCCEEDED", "CACHED", "FAILED", "SKIPPED"
TAG_STEP = "modelloop.pipeline.step"
TAG_CACHE_KEY = "modelloop.cache_key"


@dataclass(frozen=True)
class StepCall:
    step: str  # the execution's name: "train", or "train[2]" for a fan-out trial
    target: str  # module:qualname
    params: dict[str, Any]
    inputs: dict[str, outputs.Ref]  # parameter name -> reference of an upstream output
    parent_run_id: str
    experiment: str
    output_names: tuple[str, ...]
    tuple_output: bool = False
    allow_pickle: bool = False
    cache_key: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StepResult:
    step: str
    status: str  # SUCCEEDED | CACHED | FAILED
    run_id: str | None
    outputs: dict[str, outputs.Ref]
    duration_s: float
    error: str | None = None  # the last frames of the traceback (also the run's error)
    cached_from: str | None = None
    datasets: dict[str, int] = field(default_factory=dict)  # reference as read -> version
    reason: str | None = None  # why it failed in one line: the exception's type and message


class Executor(Protocol):
    def submit(self, call: StepCall) -> Future[StepResult]: ...
    def close(self) -> None: ...


class LocalExecutor:
    """Runs each step in this process when submitted; functions given by the pipeline are used
    as they are (so steps defined in ``__main__`` or a notebook work too)."""

    def __init__(
        self, client: Client, functions: Mapping[str, Callable[..., Any]] | None = None
    ) -> None:
        self.client = client
        self.functions = dict(functions or {})

    def submit(self, call: StepCall) -> Future[StepResult]:
        future: Future[StepResult] = Future()
        future.set_result(run_step(call, self.client, self.functions.get(call.target)))
        return future

    def close(self) -> None:
        """Nothing to release."""


class ProcessExecutor:
    """A pool of ``spawn``-ed worker processes (forking a process that holds database
    connections and writer threads is unsafe); each worker keeps one client for its life."""

    def __init__(self, settings: Settings, max_workers: int | None = None) -> None:
        import multiprocessing

        self.settings = settings
        self._pool = ProcessPoolExecutor(
            max_workers=max_workers or min(4, os.cpu_count() or 1),
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(list(sys.path), os.getcwd()),
        )

    def submit(self, call: StepCall) -> Future[StepResult]:
        return self._pool.submit(_run_in_worker, call, self.settings)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor:
    """Ray tasks; artifacts go through the artifact store, so it must be shared storage (a path
    every node mounts, or an fsspec URL) for a multi-node cluster."""

    def __init__(self, settings: Settings, address: str | None = None) -> None:
        import ray

        self.settings = settings
        if not ray.is_initialized():
            ray.init(
                address=address or settings.ray_address,
                include_dashboard=False,
                log_to_driver=False,
                runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(sys.path)}},
            )
        self._task = ray.remote(_run_in_worker)

    def submit(self, call: StepCall) -> Future[StepResult]:
        future: Future[StepResult] = self._task.remote(call, self.settings).future()
        return future

    def close(self) -> None:
        """Leave Ray running: starting it is the expensive part, the caller may run again."""


def run_step(call: StepCall, client: Client, fn: Callable[..., Any] | None = None) -> StepResult:
    """Execute one step as a child run of ``call.parent_run_id`` (see the module docstring)."""
    started = time.perf_counter()
    tags = {TAG_STEP: call.step, **call.tags}
    if call.cache_key:
        tags[TAG_CACHE_KEY] = call.cache_key
    run = client.create_run(
        call.experiment,
        name=call.step,
        params=call.params,
        tags=tags,
        parent_run_id=call.parent_run_id,
    )
    run_id = run.run_id
    try:
        func = fn if fn is not None else import_target(call.target)
        blobs = blobs_of(client)
        kwargs = dict(call.params)
        for name, ref in call.inputs.items():
            kwargs[name] = outputs.decode(
                ref["kind"], _read(blobs, ref), allow_pickle=call.allow_pickle
            )
        with activated(ActiveRun(client, run)), recording_reads() as datasets:
            value = func(**kwargs)  # ml.active_run() in the step is its run
        refs = _store_outputs(client, run_id, call, value, datasets)
    except Exception as exc:
        error = "".join(traceback.format_exception(exc, limit=-3))
        client.end_run(run_id, RunStatus.FAILED, error=error[-4000:])
        reason = "".join(traceback.format_exception_only(exc)).strip()
        duration = time.perf_counter() - started
        return StepResult(call.step, FAILED, run_id, {}, duration, error, reason=reason)
    db = database_of(client)
    edges = [("artifact", ref["digest"], "run", run_id, "input") for ref in call.inputs.values()]
    edges += [("run", run_id, "artifact", ref["digest"], "output") for ref in refs.values()]
    from modelloop.store.lineage import record_edges

    record_edges(db, edges)
    if call.cache_key:
        cache.remember(db, call.cache_key, call.step, run_id, refs, datasets)
    client.end_run(run_id)
    duration = time.perf_counter() - started
    return StepResult(call.step, SUCCEEDED, run_id, refs, duration, datasets=dict(datasets))


def import_target(target: str) -> Callable[..., Any]:
    module_name, _, qualname = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{target} is not callable")
    return obj  # type: ignore[no-any-return]


def _store_outputs(
    client: Client, run_id: str, call: StepCall, value: Any, datasets: Mapping[str, int]
) -> dict[str, Any]:
    names = call.output_names
    if call.tuple_output:
        if not isinstance(value, tuple) or len(value) != len(names):
            raise TypeError(f"step {call.step} must return a tuple of {len(names)}: {names}")
        values = dict(zip(names, value, strict=True))
    else:
        values = {names[0]: value}
    refs: dict[str, Any] = {}
    for name, item in values.items():
        encoded = outputs.encode(item, allow_pickle=call.allow_pickle)
        if encoded.kind == "model":
            files = {
                fname: client.log_bytes(run_id, data, f"outputs/{name}/{fname}").digest
                for fname, data in encoded.files.items()
            }
            tree = outputs.tree_blob(files)
            info = client.log_bytes(run_id, tree, f"outputs/{name}.model.json")
            refs[name] = {"kind": "model", "digest": info.digest, "files": files}
        else:
            path = f"outputs/{name}{outputs.SUFFIX[encoded.kind]}"
            info = client.log_bytes(run_id, encoded.files[""], path)
            refs[name] = {"kind": encoded.kind, "digest": info.digest}
    step_doc = {"target": call.target, "params": call.params, "inputs": call.inputs}
    step_doc.update(outputs=refs, datasets=dict(datasets))
    client.log_bytes(run_id, json.dumps(step_doc, sort_keys=True).encode(), cache.STEP_FILE)
    metrics = _metrics(values)
    if metrics:
        client.log_batch(run_id, [(k, v, 0, now_ms()) for k, v in metrics.items()])
    return refs


def _metrics(values: Mapping[str, Any]) -> dict[str, float]:
    """A number output is metric ``<output>``; the numbers in a dict output are metrics named by
    their keys (nested ones ``a.b``), or ``<output>.<key>`` where two outputs would give one
    name. Keys that cannot be metric names stay in the output's file only."""
    found = {name: outputs.numbers(item) for name, item in values.items()}
    names = [key or name for name, numbers in found.items() for key in numbers]
    metrics: dict[str, float] = {}
    for name, numbers in found.items():
        for key, number in numbers.items():
            metric = key or name
            if names.count(metric) > 1 and key:
                metric = f"{name}.{key}"
            try:
                metrics[check_key(metric, "metric")] = number
            except InvalidArgument:
                continue
    return metrics


def _read(blobs: Any, ref: outputs.Ref) -> dict[str, bytes]:
    if ref["kind"] == "model":
        return {name: blobs.read_bytes(digest) for name, digest in ref["files"].items()}
    return {"": blobs.read_bytes(ref["digest"])}


_worker_clients: dict[Settings, Client] = {}


def _init_worker(path: list[str], cwd: str) -> None:
    sys.path[:] = path
    os.chdir(cwd)


def _run_in_worker(call: StepCall, settings: Settings) -> StepResult:
    client = _worker_clients.get(settings)
    if client is None:
        client = _worker_clients[settings] = Client(settings=settings)
    return run_step(call, client)
