"""Whether a policy trains now, later, or not at all, and why.

A trigger is a reason found in the monitor's newest windows (drifted features, a drifted score,
a matured metric too low) or in the schedule (``every``). What it leads to depends on what it
would cost and what it could gain:

- a **performance** or **schedule** reason trains (the labels already say the model fell short);
- **drift alone** is weighed first: when the drifted features carry less than ``min_importance``
  of the champion's attention (mean absolute contribution on the window's own requests) and the
  score did not drift, the model barely reads what moved, so no training is paid for;
- drift that matters trains only once ``change_labels`` of the change's labels have matured
  (the change starts with the run of drifted windows the newest belongs to): before that a
  training could not see it, so the retraining is *scheduled* for that moment instead;
- never within the ``cooldown``, and never beyond the ``budget`` of trainings per period.

Every judgement that does not train is a decision too (``skip`` or ``schedule``, with its
reason), recorded once per new window: the loop stores the newest window it judged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from modelloop.automation.policy import Policy, PolicyState
from modelloop.clock import DAY_MS, days, duration_ms, from_ms, iso, to_ms
from modelloop.monitoring.monitor import Monitor, monitor_database
from modelloop.settings import Settings

if TYPE_CHECKING:
    from modelloop.registry.client import Registry

Action = Literal["train", "schedule", "skip"]
_LOOKBACK = 90  # drift windows walked back to find where a change started


class _Event(Protocol):
    @property
    def action(self) -> str: ...
    @property
    def time(self) -> int: ...
    @property
    def evidence(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Outcome:
    """What the triggers ask of the loop, with the evidence to record."""

    action: Action
    evidence: dict[str, Any]
    judged: int | None = None  # the newest window start judged (not judged again)
    reasons: list[str] = field(default_factory=list)


#: ``importance(drifted columns, window start, window end)`` -> evidence with a ``share``.
Importance = Callable[[list[str], int, int], dict[str, Any]]


def check_triggers(
    policy: Policy,
    monitor: Monitor,
    state: PolicyState,
    *,
    now: int,
    settings: Settings,
    history: Sequence[_Event] = (),
    importance: Importance | None = None,
) -> Outcome | None:
    """What to do at ``now`` (ms): train, schedule a training, skip (each with its reasons and
    evidence), or None when nothing new was found. ``history`` is the policy's decisions so far
    (for a scheduled retraining and the budget); ``importance`` weighs drifted features."""
    from modelloop.monitoring.store import window_rows

    triggers = policy.triggers
    last = state.last_trained_at
    cooling = last is not None and now - last < duration_ms(triggers.cooldown)
    scheduled = _scheduled(history, last)
    if scheduled is not None and not cooling and now >= scheduled[0]:
        at, change = scheduled
        due = f"the retraining scheduled for {iso(at)} is due: the change from {iso(change)} "
        planned: dict[str, Any] = {"reasons": [due + "has matured labels"]}
        planned["change_start"] = iso(change)
        return _within_budget(policy, Outcome("train", planned), history, now)
    # Only windows since the loop came back to idle (older ones judged the previous model) and
    # not judged already.
    since = max(last or 0, state.stage_started_at or 0, (state.last_checked_at or -1) + 1)
    db = monitor_database(settings)
    drift = _newest(window_rows(db, monitor.name, kind="drift", start=since))
    perf = _newest(window_rows(db, monitor.name, kind="performance", start=since))
    found: list[str] = []  # drift reasons
    strong: list[str] = []  # performance and schedule reasons
    evidence: dict[str, Any] = {}
    if drift is not None:
        drifted = list(drift["report"].get("drifted_columns", []))
        found += _drift_reasons(policy, drift)
        evidence["drift_window"] = {
            "start": drift["window_start"].isoformat(),
            "drifted_columns": drifted,
            "values": _main_values(drift["values"]),
        }
    wanted = triggers.performance
    if wanted is not None and perf is not None:
        value = perf["values"].get(f"performance.{wanted.metric}")
        if value is not None and value < wanted.below:
            strong.append(f"{wanted.metric} {value:.4f} below {wanted.below:g}")
        evidence["performance_window"] = {
            "start": perf["window_start"].isoformat(),
            "values": _main_values(perf["values"]),
        }
    if triggers.every is not None and not cooling:
        base = max(last or 0, state.stage_started_at or 0)
        if now - base >= duration_ms(triggers.every):
            strong.append(
                f"{days(now - base)} since the last training (every "
                f"{days(duration_ms(triggers.every))})"
            )
    if not found and not strong:
        return None
    judged = max(to_ms(r["window_start"]) for r in (drift, perf) if r is not None)
    reasons = strong + found
    evidence = {"reasons": reasons, **evidence}  # the reasons first, for whoever reads it
    if cooling:
        assert last is not None
        free = last + duration_ms(triggers.cooldown)
        why = f"within the cooldown: trained {days(now - last)} ago, next training from {iso(free)}"
        return Outcome("skip", {**evidence, "skipped": why}, judged, reasons)
    if strong:
        return _within_budget(policy, Outcome("train", evidence, judged, reasons), history, now)
    assert drift is not None
    change = _change_start(db, policy, monitor.name, drift)
    evidence["change_start"] = iso(change)
    score_drifted = drift["values"].get("drift.score_drifted") == 1.0
    if importance is not None:
        window = (to_ms(drift["window_start"]), to_ms(drift["window_end"]))
        weighed = importance(evidence["drift_window"]["drifted_columns"], *window)
        evidence["importance"] = weighed
        if not (triggers.score_drift and score_drifted) and weighed["share"] < (
            triggers.min_importance
        ):
            why = (
                f"the drifted features carry {weighed['share']:.1%} of the champion's attention "
                f"(below {triggers.min_importance:.0%}), the score did not drift and no matured "
                "metric fell: the model barely reads what moved"
            )
            return Outcome("skip", {**evidence, "skipped": why}, judged, reasons)
    matured = duration_ms(monitor.performance.label_delay) + duration_ms(monitor.grace)
    ready = change + duration_ms(triggers.change_labels) + matured
    if now < ready:
        if scheduled is not None and scheduled[1] == change:
            why = f"already scheduled for {iso(ready)}"
            return Outcome("skip", {**evidence, "skipped": why}, judged, reasons)
        evidence["at"] = iso(ready)
        evidence["scheduled"] = (
            f"no label of the change from {iso(change)} has matured yet: training now would "
            f"not see it, so the retraining waits until {days(duration_ms(triggers.change_labels))}"
            f" of its labels have ({iso(ready)})"
        )
        return Outcome("schedule", evidence, judged, reasons)
    return _within_budget(policy, Outcome("train", evidence, judged, reasons), history, now)


def drift_importance(registry: Registry, policy: Policy, settings: Settings) -> Importance:
    """Weighs drifted features by the champion's mean absolute contribution on the requests of
    the drift window (at most 2,000, answered ones), as shares that add up to 1."""
    from modelloop.explain import feature_importance
    from modelloop.serving.predictions import predictions

    def weigh(drifted: list[str], start: int, end: int) -> dict[str, Any]:
        champion = registry.store.get_version_by_alias(policy.model, "champion")
        model = registry.load_model(champion.uri)
        frame = predictions(
            policy.model,
            from_ms(start),
            from_ms(end),
            with_labels=False,
            deployment=policy.deployment,
            settings=settings,
        )
        frame = frame[frame["role"] != "shadow"]
        if frame.empty:
            return {"share": 1.0, "note": "no request in the window to weigh the features on"}
        sample = frame.sample(n=min(2000, len(frame)), random_state=0)
        shares = feature_importance(model, sample)
        return {
            "share": float(sum(shares.get(c, 0.0) for c in drifted)),
            "columns": {c: round(shares.get(c, 0.0), 4) for c in drifted},
            "version": champion.version,
            "rows": len(sample),
        }

    return weigh


def _drift_reasons(policy: Policy, drift: dict[str, Any]) -> list[str]:
    triggers = policy.triggers
    drifted = drift["report"].get("drifted_columns", [])
    out = []
    if triggers.drifted_features is not None and len(drifted) >= triggers.drifted_features:
        out.append(
            f"{len(drifted)} features drifted (at least {triggers.drifted_features} trigger)"
        )
    if triggers.score_drift and drift["values"].get("drift.score_drifted") == 1.0:
        out.append("the score drifted")
    return out


def _change_start(db: Any, policy: Policy, monitor: str, newest: dict[str, Any]) -> int:
    """The start of the run of consecutive triggering drift windows ``newest`` ends."""
    from modelloop.monitoring.store import window_rows

    end = to_ms(newest["window_start"])
    rows = window_rows(db, monitor, kind="drift", start=end - _LOOKBACK * DAY_MS, end=end + 1)
    start = end
    for row in reversed([r for r in rows if r["status"] == "ok"]):  # newest first
        row_start = to_ms(row["window_start"])
        if row_start >= start:
            continue  # the newest window itself
        if to_ms(row["window_end"]) != start or not _drift_reasons(policy, row):
            break
        start = row_start
    return start


def _scheduled(history: Sequence[_Event], last_trained: int | None) -> tuple[int, int] | None:
    """(when, change start) of a retraining scheduled since the last training, if any."""
    for event in reversed(history):
        if last_trained is not None and event.time < last_trained:
            return None
        if event.action == "policy.retrain_scheduled":
            at = to_ms(_instant(event.evidence["at"]))
            return at, to_ms(_instant(event.evidence["change_start"]))
    return None


def _within_budget(
    policy: Policy, outcome: Outcome, history: Sequence[_Event], now: int
) -> Outcome:
    budget = policy.triggers.budget
    if budget is None:
        return outcome
    period = duration_ms(budget.per)
    spent = sum(e.action == "policy.trained" and e.time > now - period for e in history)
    if spent < budget.trainings:
        return outcome
    why = (
        f"the budget of {budget.trainings} trainings per {days(period)} is spent "
        f"({spent} since {iso(now - period)})"
    )
    return Outcome("skip", {**outcome.evidence, "skipped": why}, outcome.judged, outcome.reasons)


def _instant(value: Any) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _newest(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    ok = [r for r in rows if r["status"] in ("ok", "insufficient_labels")]
    return ok[-1] if ok else None


def _main_values(values: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in values.items() if not k.startswith("drift.column.")}
