"""Reproduce a pipeline run: re-execute it without the cache and compare, step by step.

``reproduce(run_id)`` loads the run's ``pipeline.json``, rebuilds the pipeline (its recorded
``module:attribute``, else its steps' ``module:qualname``), runs it again with the recorded params
and ``cache=False``, and compares each step's output digests (bit-identical or not) and numeric
outputs. Where a step differs, the reasons are spelled out from what the run recorded:

- its code fingerprint (``cache.code_fingerprint``: the step and the project helpers it names),
- its inputs (an upstream step produced something else),
- the datasets it read (a reference such as ``"fraud"`` gave another version than it did: the
  reads recorded with each step, the ones its cache entry is keyed on),
- none of these: the data it reads from outside the pipeline changed (a file named by a
  param), or the step is not deterministic,
- and, for every differing step, the installed packages (``environment.json``) and the git
  commit / uncommitted diff of the original run versus now.

The pipeline's module is imported as it is now: a new process (the CLI) sees edited code; in an
already running interpreter, reload the module first.
"""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from modelloop.errors import InvalidArgument
from modelloop.pipelines import outputs
from modelloop.pipelines import pipeline as _pipeline
from modelloop.pipelines.executors import CACHED, FAILED, SKIPPED, SUCCEEDED, import_target
from modelloop.pipelines.lineage import blobs_of
from modelloop.pipelines.pipeline import Pipeline, PipelineRun, StepState
from modelloop.tracking.client import Client

MATCH, DIFFERENT = "MATCH", "DIFFERENT"
TAG_REPRODUCES = "modelloop.reproduces"
_MAX_PACKAGES = 8


@dataclass
class StepComparison:
    """One step of the original run against its re-execution."""

    step: str
    status: str  # MATCH | DIFFERENT | FAILED | SKIPPED
    original_digests: dict[str, str]
    new_digests: dict[str, str]
    reasons: list[str] = field(default_factory=list)
    # numeric outputs (and numeric entries of dict outputs) that differ: name -> (original, new)
    numbers: dict[str, tuple[float, float]] = field(default_factory=dict)


@dataclass
class ReproductionReport:
    """The result of :func:`reproduce`; ``ok`` when every step matched bit for bit."""

    run_id: str
    new_run_id: str
    pipeline: str
    steps: list[StepComparison]
    packages_changed: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(s.status == MATCH for s in self.steps)

    def summary(self) -> str:
        bad = [f"{s.step} {s.status}" for s in self.steps if s.status != MATCH]
        if not bad:
            return f"run {self.run_id} reproduced: every step matches bit for bit"
        return f"run {self.run_id} did not reproduce: {', '.join(bad)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "new_run_id": self.new_run_id,
            "pipeline": self.pipeline,
            "ok": self.ok,
            "packages_changed": {k: list(v) for k, v in self.packages_changed.items()},
            "steps": [asdict(s) for s in self.steps],
        }

    def render(self) -> str:
        """A plain-text table: step, status, outputs compared, reasons."""
        rows = [("step", "status", "outputs", "reasons")]
        for s in self.steps:
            names = sorted(set(s.original_digests) | set(s.new_digests))
            same = sum(s.original_digests.get(n) == s.new_digests.get(n) for n in names)
            reasons = s.reasons or ["-"]
            rows.append((s.step, s.status, f"{same}/{len(names)} identical", reasons[0]))
            rows.extend(("", "", "", r) for r in reasons[1:])
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = [
            f"Reproduction of pipeline {self.pipeline} run {self.run_id} as run {self.new_run_id}"
        ]
        for row in rows:
            lines.append("  ".join(c.ljust(w) for c, w in zip(row[:3], widths, strict=True)))
            lines[-1] += "  " + row[3]
        return "\n".join(line.rstrip() for line in lines)


def reproduce(
    run_id: str, *, client: Client | None = None, executor: str = "local"
) -> ReproductionReport:
    """Re-execute pipeline run ``run_id`` without the cache and compare it step by step."""
    client = client or _pipeline._default_client()
    original = PipelineRun.load(run_id, client)
    pipeline = _rebuild(original)
    run = client.get_run(run_id)
    experiment = client.store.get_experiment(run.experiment_id).name
    new = pipeline.run(
        original.params, executor=executor, cache=False, experiment=experiment, client=client
    )
    client.set_tags(new.run_id, {TAG_REPRODUCES: run_id})
    recorded_env = json.loads(client.read_artifact(run_id, "environment.json"))
    packages = _package_changes(recorded_env, _current_environment())
    context = _context_reasons(packages, run.source, client.get_run(new.run_id).source)
    steps: list[StepComparison] = []
    for name in pipeline.order:
        before = original.steps.get(name)
        after = new.steps[name]
        if before is None:
            steps.append(
                StepComparison(name, DIFFERENT, {}, _digests(after), ["step is new in the code"])
            )
            continue
        steps.append(_compare(pipeline, original, new, before, after, context, client))
    return ReproductionReport(run_id, new.run_id, original.name, steps, packages)


def _current_environment() -> dict[str, Any]:
    """Python and installed package versions now (the form ``environment.json`` records)."""
    result: dict[str, Any] = json.loads(_pipeline._environment_lock())
    return result


def _rebuild(original: PipelineRun) -> Pipeline:
    if original.target is not None:
        module_name, _, attribute = original.target.partition(":")
        try:
            value = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise InvalidArgument(f"cannot load pipeline {original.target!r}: {exc}") from exc
        if not isinstance(value, Pipeline):
            raise InvalidArgument(f"{original.target} is now a {type(value).__name__}")
        return value
    states = list(original.steps.values())
    if any(s.target is None or s.trials or "<locals>" in s.target for s in states):
        raise InvalidArgument(
            f"run {original.run_id} does not record an importable pipeline (define it as a "
            "module global, with its steps at module level, to make its runs reproducible)"
        )
    try:
        return Pipeline([import_target(s.target or "") for s in states], name=original.name)
    except (ImportError, AttributeError) as exc:
        raise InvalidArgument(f"cannot rebuild pipeline {original.name}: {exc}") from exc


def _compare(
    pipeline: Pipeline,
    original: PipelineRun,
    new: PipelineRun,
    before: StepState,
    after: StepState,
    context: list[str],
    client: Client,
) -> StepComparison:
    old, now = _digests(before), _digests(after)
    comparison = StepComparison(after.name, MATCH, old, now)
    if after.state == FAILED:
        comparison.status = FAILED
        comparison.reasons.append(f"failed: {after.reason or 'unknown error'}")
        return comparison
    if after.state == SKIPPED:
        comparison.status = SKIPPED
        comparison.reasons.append("skipped: an upstream step failed")
        return comparison
    if before.state not in (SUCCEEDED, CACHED):
        comparison.status = DIFFERENT
        comparison.reasons.append(f"originally {before.state}, now {after.state}")
        return comparison
    if old == now:
        return comparison
    comparison.status = DIFFERENT
    changed = sorted(n for n in set(old) | set(now) if old.get(n) != now.get(n))
    comparison.reasons.append(f"outputs differ: {', '.join(changed)}")
    comparison.numbers = _number_changes(before, after, changed, client)
    for key, (a, b) in comparison.numbers.items():
        comparison.reasons.append(f"{key}: {a:.6g} -> {b:.6g} ({b - a:+.3g})")
    code = _code_changes(before.code, after.code)
    if code:
        comparison.reasons.append(f"code changed: {code}")
    node = pipeline.nodes[after.name]
    upstream = sorted(
        {
            producer
            for param, producer in node.inputs.items()
            if _digest_of(original, producer, param) != _digest_of(new, producer, param)
        }
    )
    if upstream:
        comparison.reasons.append(f"inputs differ: upstream {', '.join(upstream)} changed")
    datasets = _dataset_changes(before.datasets, after.datasets)
    if datasets:
        comparison.reasons.append(f"datasets read changed: {datasets}")
    if not code and not upstream and not datasets:
        comparison.reasons.append(_external_reason(original, after.name, node.params))
    comparison.reasons.extend(context)
    return comparison


def _digests(state: StepState) -> dict[str, str]:
    return {name: str(ref["digest"]) for name, ref in state.outputs.items()}


def _digest_of(run: PipelineRun, step: str, output: str) -> str | None:
    state = run.steps.get(step)
    ref = state.outputs.get(output) if state is not None else None
    return None if ref is None else str(ref["digest"])


def _code_changes(before: dict[str, str], after: dict[str, str]) -> str:
    if not before:
        return ""  # recorded before code fingerprints were: unknown, say nothing
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    return ", ".join("the step's source" if k == "" else f"helper {k}" for k in changed)


def _dataset_changes(before: dict[str, int], after: dict[str, int]) -> str:
    if not before:
        return ""  # recorded before dataset reads were, or read none: say nothing
    changed = []
    for ref in sorted(set(before) | set(after)):
        then, now = before.get(ref), after.get(ref)
        if then != now:
            then_text = "not read" if then is None else f"gave version {then}"
            changed.append(f"{ref!r} {then_text}, now {'not read' if now is None else now}")
    return "; ".join(changed)


def _external_reason(original: PipelineRun, step: str, params: dict[str, Any]) -> str:
    """Same code, same params, same inputs, other outputs: data read from outside changed."""
    values = {p: original.params.get(f"{step}.{p}", original.params.get(p)) for p in params}
    sources = [
        f"{p}={v}"
        for p, v in sorted(values.items())
        if isinstance(v, str) and (os.path.exists(v) or v.startswith("dataset:"))
    ]
    where = f" (read via {', '.join(sources)})" if sources else ""
    return (
        "code, params and inputs are the same: the input data the step reads from outside the "
        f"pipeline changed{where}, or the step is not deterministic"
    )


def _number_changes(
    before: StepState, after: StepState, names: list[str], client: Client
) -> dict[str, tuple[float, float]]:
    blobs = blobs_of(client)
    changes: dict[str, tuple[float, float]] = {}
    for name in names:
        a_ref, b_ref = before.outputs.get(name), after.outputs.get(name)
        if a_ref is None or b_ref is None or {a_ref["kind"], b_ref["kind"]} != {"json"}:
            continue
        a = _numbers(json.loads(blobs.read_bytes(a_ref["digest"])), name)
        b = _numbers(json.loads(blobs.read_bytes(b_ref["digest"])), name)
        changes.update({k: (a[k], b[k]) for k in sorted(set(a) & set(b)) if a[k] != b[k]})
    return changes


def _numbers(value: Any, name: str) -> dict[str, float]:
    return {f"{name}.{k}" if k else name: v for k, v in outputs.numbers(value).items()}


def _package_changes(
    recorded: dict[str, Any], current: dict[str, Any]
) -> dict[str, tuple[str | None, str | None]]:
    changes: dict[str, tuple[str | None, str | None]] = {}
    if recorded.get("python") != current.get("python"):
        changes["python"] = (recorded.get("python"), current.get("python"))
    old, now = recorded.get("packages", {}), current.get("packages", {})
    for name in sorted(set(old) | set(now)):
        if old.get(name) != now.get(name):
            changes[name] = (old.get(name), now.get(name))
    return changes


def _context_reasons(
    packages: dict[str, tuple[str | None, str | None]],
    source_then: dict[str, Any],
    source_now: dict[str, Any],
) -> list[str]:
    reasons: list[str] = []
    if packages:
        listed = [f"{k} {a or '-'} -> {b or '-'}" for k, (a, b) in packages.items()]
        more = len(listed) - _MAX_PACKAGES
        text = ", ".join(listed[:_MAX_PACKAGES]) + (f" and {more} more" if more > 0 else "")
        reasons.append(f"package versions differ: {text}")
    then, now = source_then.get("git_commit"), source_now.get("git_commit")
    if then != now:
        reasons.append(f"git commit differs: {str(then)[:12]} -> {str(now)[:12]}")
    elif then is not None and source_then.get("git_diff_sha256") != source_now.get(
        "git_diff_sha256"
    ):
        reasons.append("uncommitted changes differ (git diff)")
    return reasons
