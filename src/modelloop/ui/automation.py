"""Automation pages: policies with where their loop stands, and one policy's timeline.

The timeline is the audit trail (``modelloop.automation.loop.timeline``), grouped in cycles: a
trigger (or a rollout started by hand) and what followed, training run, gate, shadow, canary,
promotion or rollback. Every decision keeps its evidence, shown as escaped text under a
``<details>``; an interval of a difference (the gate's bootstrap, the canary's paired shadow
comparison) is drawn as an error bar against the bound it had to clear, as inline SVG built
here, so the page needs no script.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from starlette.responses import HTMLResponse

from modelloop.ui.monitoring import plain_items

if TYPE_CHECKING:
    from modelloop.automation.loop import Decision
    from modelloop.automation.policy import Policy
    from modelloop.ui.app import Pages

_LABELS = {
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
_OUTCOME = {"policy.promoted": "good", "policy.rolled_back": "bad", "policy.rejected": "bad",
            "policy.training_skipped": "muted"}  # fmt: skip
_TRAINED = (("rows", "labelled predictions"), ("positives", "positive"),
            ("holdout_rows", "held out"))  # fmt: skip
_STARTS = ("policy.trigger", "policy.rollout_started")
_WIDTH, _HEIGHT, _PAD = 420, 64, 24


@dataclass
class Step:
    """One decision as the page shows it."""

    action: str
    label: str
    time: int
    outcome: str
    headline: str
    evidence: list[tuple[str, str]]
    run_id: str | None = None
    version: int | None = None
    interval: dict[str, Any] | None = None  # what the SVG error bar draws


@dataclass
class Cycle:
    steps: list[Step] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        ends = [s.action for s in self.steps if s.outcome in ("good", "bad")]
        return _LABELS.get(ends[-1], "") if ends else "in progress"


def register(router: APIRouter, pages: Pages) -> None:
    """``/ui/automation`` and ``/ui/automation/{name}``."""

    @router.get("/ui/automation")
    def policies() -> HTMLResponse:
        return pages.guarded(lambda: _list_page(pages))

    @router.get("/ui/automation/{name}")
    def policy_page(name: str) -> HTMLResponse:
        return pages.guarded(lambda: _policy_page(pages, name))


def _list_page(pages: Pages) -> HTMLResponse:
    from sqlalchemy import select

    from modelloop.automation.policy import PolicyState, list_policies, policy_database
    from modelloop.store import tables as t

    stored = list_policies(settings=pages.settings)
    s = t.policy_state
    with policy_database(pages.settings).read() as conn:  # every state in one query
        states = {row.name: PolicyState(**{k: getattr(row, k) for k in PolicyState.__slots__})
                  for row in conn.execute(select(s))}  # fmt: skip
    rows = [(p, states.get(p.name, PolicyState("idle"))) for p in stored]
    return pages.render("automation.html", section="automation", title="Automation",
                        policies=rows)  # fmt: skip


def _policy_page(pages: Pages, name: str) -> HTMLResponse:
    from modelloop.automation.loop import timeline
    from modelloop.automation.policy import get_policy, policy_state

    policy = get_policy(name, settings=pages.settings)
    state = policy_state(name, settings=pages.settings)
    decisions = timeline(name, settings=pages.settings)
    cycles = cycles_of(policy, decisions)
    return pages.render(
        "automation_policy.html",
        section="automation",
        title=f"Policy {name}",
        policy=policy,
        state=state,
        cycles=list(reversed(cycles)),  # newest first
        config=_config_rows(policy),
        decisions=len(decisions),
    )


def cycles_of(policy: Policy, decisions: list[Decision]) -> list[Cycle]:
    """Decisions grouped from each trigger (or hand-started rollout) to the next."""
    cycles: list[Cycle] = []
    for decision in decisions:
        if not cycles or decision.action in _STARTS:
            cycles.append(Cycle())
        cycles[-1].steps.append(_step(policy, decision))
    return cycles


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
    )
    interval = evidence.get("interval")
    if isinstance(interval, list) and len(interval) == 2 and all(_number(x) for x in interval):
        step.interval = _interval(policy, decision.action, evidence, interval)
    return step


def _headline(action: str, evidence: dict[str, Any]) -> str:
    """The one line a reader needs before opening the evidence."""
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
        return (f"{evidence.get('shadow_predictions', '?')} requests scored in shadow; "
                f"now answering {evidence.get('canary_percent', '?')}%")  # fmt: skip
    if action == "policy.rollout_started":
        return f"v{evidence.get('version', '?')} put in {evidence.get('stage', '?')} by " \
               f"{evidence.get('by', '?')}"  # fmt: skip
    if action == "policy.promoted" and _number(evidence.get("challenger")):
        return (f"live {evidence.get('metric', '')} {evidence['challenger']:.4f} vs "
                f"{evidence.get('champion') or 0:.4f}")  # fmt: skip
    return ""


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
