"""Automation pages: policies with where their loop stands, and one policy's timeline.

Everything is read through the policy store (:mod:`modelloop.automation.store`: the metadata
database, or the server the settings name), never with SQL here. The timeline is the audit trail
(the store's ``decisions``), grouped in cycles: the signals that led to a training (triggers
skipped, a retraining scheduled, the trigger itself, or a rollout started by hand) and what
followed, training run, gate, shadow, canary, promotion or rollback; a cycle ends with its outcome
(or a training skipped). Triggers skipped one after the other are merged into one muted step
listing why (identical reasons once, counted). Every decision keeps its evidence, shown as escaped
text under a ``<details>``; a gate's replay backtest shows the traffic it was judged on and both
models' metric per day (:mod:`~modelloop.ui.replay`); a rollout stage shows its operational checks;
an interval of a difference (the gate's bootstrap, the canary's paired shadow comparison) is drawn
as an error bar against the bound it had to clear, as inline SVG built here, so the page needs no
script. Above the timeline, the time the loop took to adapt to each change its triggers detected
(:mod:`~modelloop.automation.adaptation`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from starlette.responses import HTMLResponse

from modelloop.ui.monitoring import plain_items
from modelloop.ui.replay import ReplayTable, replay_table

if TYPE_CHECKING:
    from modelloop.automation.adaptation import Adaptation
    from modelloop.automation.decision import Decision
    from modelloop.automation.entities import Policy
    from modelloop.ui.app import Pages

_LABELS = {
    "policy.trigger_skipped": "Trigger skipped",
    "policy.retrain_scheduled": "Retraining scheduled",
    "policy.trigger": "Triggered",
    "policy.training_skipped": "Training skipped",
    "policy.trained": "Trained",
    "policy.rejected": "Rejected at the gate",
    "policy.shadow": "Passed the gate: shadow",
    "policy.canary": "Canary",
    "policy.approval_requested": "Awaiting approval",
    "policy.promoted": "Promoted",
    "policy.rolled_back": "Rolled back",
    "policy.rollout_started": "Rollout started by hand",
}
_OUTCOME = {
    "policy.promoted": "good",
    "policy.rolled_back": "bad",
    "policy.rejected": "bad",
    "policy.training_skipped": "muted",
    "policy.trigger_skipped": "muted",
}
_TRAINED = (
    ("rows", "labelled predictions"),
    ("positives", "positive"),
    ("holdout_rows", "held out"),
)
_TRIGGERED = ("policy.trigger", "policy.rollout_started")  # a cycle acts from here on
_STARTS = (*_TRIGGERED, "policy.retrain_scheduled")
_ENDS = ("policy.promoted", "policy.rolled_back", "policy.rejected", "policy.training_skipped")
_SKIPPED = "policy.trigger_skipped"
_WIDTH, _HEIGHT, _PAD = 420, 64, 24


@dataclass(frozen=True)
class Check:
    """One operational check of a rollout stage."""

    name: str
    passed: bool
    detail: str


@dataclass
class SkipReason:
    """Why triggers were skipped: one reason, as often as it came in a row."""

    reason: str
    found: list[str]  # what the triggers had found each time (distinct)
    count: int
    first: int
    last: int


@dataclass
class Step:
    """One decision as the page shows it (or a run of skipped triggers, merged)."""

    action: str
    label: str
    time: int
    outcome: str
    headline: str
    evidence: list[tuple[str, str]]
    run_id: str | None = None
    version: int | None = None
    interval: dict[str, Any] | None = None  # what the SVG error bar draws
    found: str = ""  # what the triggers found (a skip, a scheduled retraining)
    replay: ReplayTable | None = None  # a gate's replay backtest
    checks: list[Check] = field(default_factory=list)  # a rollout stage's operational checks
    checked: str = ""  # which stage's checks, and on how many requests
    until: int | None = None  # a merged run: its last decision's time
    skips: list[SkipReason] = field(default_factory=list)  # a merged run: why, in order
    members: list[Step] = field(default_factory=list)  # a merged run: each decision


@dataclass
class Cycle:
    steps: list[Step] = field(default_factory=list)

    @property
    def triggered(self) -> bool:
        return any(s.action in _TRIGGERED for s in self.steps)

    @property
    def finished(self) -> bool:
        return any(s.action in _ENDS for s in self.steps)

    @property
    def outcome(self) -> str:
        ends = [s.action for s in self.steps if s.action in _ENDS]
        if ends:
            return _LABELS.get(ends[-1], "")
        if self.triggered:
            return "in progress"
        if any(s.action == "policy.retrain_scheduled" for s in self.steps):
            return "retraining scheduled"
        return "triggers skipped"


def register(router: APIRouter, pages: Pages) -> None:
    """``/ui/automation`` and ``/ui/automation/{name}``."""

    @router.get("/ui/automation")
    def policies() -> HTMLResponse:
        return pages.guarded(lambda: _list_page(pages))

    @router.get("/ui/automation/{name}")
    def policy_page(name: str) -> HTMLResponse:
        return pages.guarded(lambda: _policy_page(pages, name))


def _list_page(pages: Pages) -> HTMLResponse:
    from modelloop.automation.entities import PolicyState
    from modelloop.automation.policy import policy_store

    with policy_store(pages.settings) as store:
        states = store.states()  # every state in one read
        rows = [(p, states.get(p.name, PolicyState("idle"))) for p in store.list()]
    return pages.render("automation.html", section="automation", title="Automation", policies=rows)


def _policy_page(pages: Pages, name: str) -> HTMLResponse:
    from modelloop.automation.policy import policy_store

    with policy_store(pages.settings) as store:
        policy, state, decisions = store.get(name), store.state(name), store.decisions(name)
    cycles = cycles_of(policy, decisions)
    skipped = sum(d.action == _SKIPPED for d in decisions)
    return pages.render(
        "automation_policy.html",
        section="automation",
        title=f"Policy {name}",
        policy=policy,
        state=state,
        cycles=list(reversed(cycles)),  # newest first
        config=_config_rows(policy),
        decisions=len(decisions),
        skipped=skipped,
        adaptation=adaptation_of(decisions),
    )


def adaptation_of(decisions: list[Decision]) -> list[Adaptation]:
    """Time to adapt to each change the policy's triggers detected, oldest first."""
    from modelloop.automation.adaptation import detected_changes, time_to_adapt

    return [time_to_adapt(decisions, start) for start in detected_changes(decisions)]


def cycles_of(policy: Policy, decisions: list[Decision]) -> list[Cycle]:
    """Decisions grouped in cycles: a cycle gathers the signals before a training (skipped
    triggers, a scheduled retraining) with the trigger and what followed, up to its outcome;
    the next trigger, or any decision after an outcome, opens the next one."""
    cycles: list[Cycle] = []
    for decision in decisions:
        current = cycles[-1] if cycles else None
        if (
            current is None
            or current.finished
            or (decision.action in _STARTS and current.triggered)
        ):
            current = Cycle()
            cycles.append(current)
        current.steps.append(_step(policy, decision))
    for cycle in cycles:
        cycle.steps = _merge_skips(cycle.steps)
    return cycles


def _merge_skips(steps: list[Step]) -> list[Step]:
    """Each run of two or more skipped triggers as one step; a reason repeated in a row once."""
    merged: list[Step] = []
    run: list[Step] = []
    for step in [*steps, None]:
        if step is not None and step.action == _SKIPPED:
            run.append(step)
            continue
        if len(run) == 1:
            merged.append(run[0])
        elif run:
            merged.append(_skip_run(run))
        run = []
        if step is not None:
            merged.append(step)
    return merged


def _skip_run(run: list[Step]) -> Step:
    reasons: list[SkipReason] = []
    for step in run:
        if reasons and reasons[-1].reason == step.headline:
            same = reasons[-1]
            same.count, same.last = same.count + 1, step.time
            if step.found not in same.found:
                same.found.append(step.found)
        else:
            reasons.append(SkipReason(step.headline, [step.found], 1, step.time, step.time))
    return Step(
        action=_SKIPPED,
        label=f"{len(run)} triggers skipped",
        time=run[0].time,
        outcome="muted",
        headline="",
        evidence=[],
        until=run[-1].time,
        skips=reasons,
        members=run,
    )


def _step(policy: Policy, decision: Decision) -> Step:
    evidence = decision.evidence
    version = evidence.get("version")
    step = Step(
        action=decision.action,
        label=_LABELS.get(decision.action, decision.action),
        time=decision.time,
        outcome=_OUTCOME.get(decision.action, "step"),
        headline=_headline(decision.action, evidence),
        evidence=list(plain_items(evidence)),
        run_id=evidence.get("run_id") if isinstance(evidence.get("run_id"), str) else None,
        version=version if isinstance(version, int) else None,
        replay=replay_table(evidence),
    )
    if decision.action in (_SKIPPED, "policy.retrain_scheduled"):
        step.found = "; ".join(str(r) for r in evidence.get("reasons", []))
    if decision.action == "policy.retrain_scheduled" and isinstance(evidence.get("at"), str):
        step.label += f" for {_minute(evidence['at'])}"
    for stage in ("shadow", "canary"):
        checks = evidence.get(stage)
        if isinstance(checks, dict) and isinstance(checks.get("checks"), dict):
            step.checks = [
                Check(str(name), bool(c.get("passed")), str(c.get("detail", "")))
                for name, c in checks["checks"].items()
                if isinstance(c, dict)
            ]
            requests = checks.get("requests")
            step.checked = f"{stage} checks" + (
                f" on {requests} requests" if isinstance(requests, int) else ""
            )
    interval = evidence.get("interval")
    if isinstance(interval, list) and len(interval) == 2 and all(_number(x) for x in interval):
        step.interval = _interval(policy, decision.action, evidence, interval)
    return step


def _headline(action: str, evidence: dict[str, Any]) -> str:
    """The one line a reader needs before opening the evidence."""
    if action == _SKIPPED:
        return str(evidence.get("skipped", ""))
    if action == "policy.retrain_scheduled":
        return str(evidence.get("scheduled", ""))
    if isinstance(evidence.get("summary"), str):
        return str(evidence["summary"])
    if isinstance(evidence.get("reason"), str):
        return str(evidence["reason"])
    if action == "policy.trigger":
        return "; ".join(str(r) for r in evidence.get("reasons", []))
    if action == "policy.trained":
        parts = [f"{evidence[key]} {what}" for key, what in _TRAINED if key in evidence]
        return ", ".join(parts)
    if action == "policy.canary":
        return (
            f"{evidence.get('shadow_predictions', '?')} requests scored in shadow; "
            f"now answering {evidence.get('canary_percent', '?')}%"
        )
    if action == "policy.rollout_started":
        return (
            f"v{evidence.get('version', '?')} put in {evidence.get('stage', '?')} by "
            f"{evidence.get('by', '?')}"
        )
    if action == "policy.promoted" and _number(evidence.get("challenger")):
        return (
            f"live {evidence.get('metric', '')} {evidence['challenger']:.4f} vs "
            f"{evidence.get('champion') or 0:.4f}"
        )
    if action == "policy.promoted" and isinstance(evidence.get("approved_by"), str):
        return f"approved by {evidence['approved_by']}"
    return ""


def _minute(text: str) -> str:
    """An ISO instant of the evidence, to the minute (UTC)."""
    return text[:16].replace("T", " ")


def _interval(
    policy: Policy, action: str, evidence: dict[str, Any], interval: list[float]
) -> dict[str, Any]:
    """Coordinates of the error bar: the difference (challenger - champion), its interval and
    the bound it had to clear (the gate's margin: the low end must be above it; in canary, the
    high end must not be below minus the rollback margin)."""
    low, high = float(interval[0]), float(interval[1])
    if _number(evidence.get("difference")):
        difference = float(evidence["difference"])
    elif _number(evidence.get("challenger")) and _number(evidence.get("champion")):
        difference = float(evidence["challenger"]) - float(evidence["champion"])
    else:
        difference = (low + high) / 2
    if "margin" in evidence and _number(evidence["margin"]):  # the gate
        bound, rule = float(evidence["margin"]), "low end above the margin"
        passed = low > bound
    else:  # the canary's paired comparison
        bound = -policy.rollout.rollback_margin
        rule, passed = "high end not below minus the rollback margin", high >= bound
    lo, hi = min(low, bound, 0.0, difference), max(high, bound, 0.0, difference)
    span = (hi - lo) or 1.0
    lo, hi = lo - span * 0.1, hi + span * 0.1

    def x(value: float) -> float:
        return round(_PAD + (value - lo) / (hi - lo) * (_WIDTH - 2 * _PAD), 1)

    confidence = evidence.get("confidence")
    return {
        "width": _WIDTH,
        "height": _HEIGHT,
        "low": low,
        "high": high,
        "difference": difference,
        "bound": bound,
        "passed": passed,
        "rule": rule,
        "metric": str(evidence.get("metric", policy.gate.metric)),
        "level": f"{confidence * 100:g}%" if isinstance(confidence, float) else "95%",
        "x_low": x(low),
        "x_high": x(high),
        "x_diff": x(difference),
        "x_bound": x(bound),
        "x_zero": x(0.0),
        "x_start": _PAD,
        "x_end": _WIDTH - _PAD,
    }


def _config_rows(policy: Policy) -> list[tuple[str, str]]:
    record = policy.to_record()
    rows = []
    for section in ("triggers", "training", "gate", "rollout"):
        for key, value in (record.get(section) or {}).items():
            text = value if isinstance(value, str) else json.dumps(value)
            rows.append((f"{section}.{key}", text))
    return rows


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value
