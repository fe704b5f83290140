"""Whether a policy trains now, later, or not at all, and why.

A trigger is a reason found in the monitor's newest windows (drifted features, a drifted score,
a matured metric too low) or in the schedule (``every``). What it leads to depends on what it
would cost and what it could gain:

- a **performance** or **schedule** reason trains (the labels already say the model fell short);
- **drift alone** is judged by the change's labels once they have matured: no training while
  the matured metric since the change (or since the champion's promotion) stays within
  ``tolerance`` of its level in the week before it, or within the days' own noise when that is
  larger ("performance holds", from the monitor's stored performance windows). Before its
  labels mature, drift is weighed instead: when the drifted features carry less than
  ``min_importance`` of the champion's attention (mean absolute contribution on the window's
  own requests) and the score did not drift, the model barely reads what moved, so no
  retraining is scheduled (the labels will tell);
- a reason trains only once ``change_labels`` of the change's labels have matured (the change
  starts with the run of triggering windows the newest belongs to): before that a training
  could not see it, so the retraining is *scheduled* for that moment instead;
- a change under way keeps moving: with ``follow_up``, a training for a change that hurt (its
  performance fell) or whose learning paid (beyond ``follow_up.min_gain`` on the replay) is
  followed by another every ``follow_up.every`` until ``follow_up.within`` of the change's start;
  once two trainings for a change were tried and neither paid, it is not trained for again (by
  any trigger) within that time: it hurts every model alike, a stale model is not the problem;
- never within the ``cooldown``, and never beyond the ``budget`` of trainings per period.

Every judgement that does not train is a decision too (``skip`` or ``schedule``, with its
reason), recorded once per new window: the loop stores the newest window it judged.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from modelloop.automation.decision import Decision
from modelloop.automation.entities import PerformanceTrigger, Policy, PolicyState
from modelloop.automation.policy import logged
from modelloop.clock import DAY_MS, days, duration_ms, iso, to_ms
from modelloop.monitoring.monitor import Monitor
from modelloop.monitoring.store import monitor_database
from modelloop.settings import Settings

if TYPE_CHECKING:
    from modelloop.registry.client import Registry

Action = Literal["train", "schedule", "skip"]
_LOOKBACK = 90  # drift windows walked back to find where a change started
_DEFAULT_PERFORMANCE = PerformanceTrigger(below=0.0)  # the metric read when none is configured
_ONE_SIDED_95 = 1.645


@dataclass(frozen=True)
class Outcome:
    """What the triggers ask of the loop, with the evidence to record."""

    action: Action
    evidence: dict[str, Any]
    judged: int | None = None  # the newest window start judged (not judged again)


#: ``importance(drifted columns, window start, window end)`` -> evidence with a ``share``.
Importance = Callable[[list[str], int, int], dict[str, Any]]


def check_triggers(
    policy: Policy,
    monitor: Monitor,
    state: PolicyState,
    *,
    now: int,
    settings: Settings,
    history: Sequence[Decision] = (),
    importance: Importance | None = None,
) -> Outcome | None:
    """What to do at ``now`` (ms): train, schedule a training, skip (each with its reasons and
    evidence), or None when nothing new was found. ``history`` is the policy's decisions so far
    (for a scheduled retraining and the budget); ``importance`` weighs drifted features."""
    from modelloop.monitoring.sql import window_rows

    triggers = policy.triggers
    last = state.last_trained_at
    cooling = last is not None and now - last < duration_ms(triggers.cooldown)
    scheduled = _scheduled(history, last)
    if scheduled is not None and not cooling and now >= scheduled[0]:
        at, change, by_drift = scheduled
        due = f"the retraining scheduled for {iso(at)} is due: the change from {iso(change)} "
        planned: dict[str, Any] = {"reasons": [due + "has matured labels"]}
        planned["change_start"] = iso(change)
        held = _holds(policy, monitor, change, now, settings, history) if by_drift else None
        if held is not None and held["holds"]:
            planned["performance"] = held
            why = f"drift alone, and the matured performance holds: {held['detail']}"
            return Outcome("skip", {**planned, "skipped": why}, state.last_checked_at)
        planned["hurt"] = not by_drift or (held is not None and not held["holds"])
        futile = _futility(policy, history, change, now)
        if futile is not None:
            return Outcome("skip", {**planned, "skipped": futile}, state.last_checked_at)
        return _within_budget(policy, Outcome("train", planned), history, now)
    # Only windows since the loop came back to idle (older ones judged the previous model) and
    # not judged already.
    since = max(last or 0, state.stage_started_at or 0, (state.last_checked_at or -1) + 1)
    db = monitor_database(settings)
    drift = _newest(window_rows(db, monitor.name, kind="drift", start=since))
    perf = _newest(window_rows(db, monitor.name, kind="performance", start=since))
    evidence: dict[str, Any] = {}
    found: list[str] = []  # from the windows: drift, then a metric that fell
    if drift is not None:
        found += _drift_reasons(policy, drift)
        evidence["drift_window"] = {
            "start": drift["window_start"].isoformat(),
            "drifted_columns": list(drift["report"].get("drifted_columns", [])),
            "values": _main_values(drift["values"]),
        }
    fell = perf is not None and _fell(policy, perf)
    if perf is not None and triggers.performance is not None:
        evidence["performance_window"] = {
            "start": perf["window_start"].isoformat(),
            "values": _main_values(perf["values"]),
        }
        if fell:
            metric, below = triggers.performance.metric, triggers.performance.below
            value = perf["values"][f"performance.{metric}"]
            found.insert(0, f"{metric} {value:.4f} below {below:g}")
    scheduled_reasons: list[str] = []  # from the calendar: a change followed, ``every``
    follow = _follow_up(policy, history, last, now)
    if follow is not None:
        scheduled_reasons.append(follow[0])
        evidence["change_start"] = iso(follow[1])
    base = max(last or 0, state.stage_started_at or 0)
    if triggers.every is not None and now - base >= duration_ms(triggers.every):
        scheduled_reasons.append(
            f"{days(now - base)} since the last training (every "
            f"{days(duration_ms(triggers.every))})"
        )
    reasons = scheduled_reasons + found
    if not reasons:
        return None
    newest = [to_ms(r["window_start"]) for r in (drift, perf) if r is not None]
    judged = max(newest) if newest else state.last_checked_at
    evidence = {"reasons": reasons, **evidence}  # the reasons first, for whoever reads it
    if cooling:
        assert last is not None
        free = last + duration_ms(triggers.cooldown)
        why = f"within the cooldown: trained {days(now - last)} ago, next training from {iso(free)}"
        return Outcome("skip", {**evidence, "skipped": why}, judged)
    if scheduled_reasons:
        return _within_budget(policy, Outcome("train", evidence, judged), history, now)
    window = perf if fell else drift
    assert window is not None
    change = _run_start(db, policy, monitor.name, window)
    evidence["change_start"] = iso(change)
    matured = duration_ms(monitor.performance.label_delay) + duration_ms(monitor.grace)
    ready = change + duration_ms(triggers.change_labels) + matured
    evidence["hurt"] = fell
    if not fell and now >= ready:  # drift alone, and the change's labels say how much it hurt
        held = _holds(policy, monitor, change, now, settings, history)
        if held is not None:
            evidence["performance"] = held
            evidence["hurt"] = not held["holds"]
            if held["holds"]:
                why = f"drift alone, and the matured performance holds: {held['detail']}"
                return Outcome("skip", {**evidence, "skipped": why}, judged)
    score_drifted = drift is not None and drift["values"].get("drift.score_drifted") == 1.0
    if not fell and now < ready and drift is not None and importance is not None:
        span = (to_ms(drift["window_start"]), to_ms(drift["window_end"]))
        weighed = importance(evidence["drift_window"]["drifted_columns"], *span)
        evidence["importance"] = weighed
        if not (triggers.score_drift and score_drifted) and weighed["share"] < (
            triggers.min_importance
        ):
            why = (
                f"the drifted features carry {weighed['share']:.1%} of the champion's attention "
                f"(below {triggers.min_importance:.0%}) and the score did not drift: no "
                f"retraining is scheduled; the change's labels will tell from {iso(ready)}"
            )
            return Outcome("skip", {**evidence, "skipped": why}, judged)
    if now < ready:
        if scheduled is not None and scheduled[1] == change:
            why = f"already scheduled for {iso(ready)}"
            return Outcome("skip", {**evidence, "skipped": why}, judged)
        evidence["at"] = iso(ready)
        evidence["by"] = "performance" if fell else "drift"
        evidence["scheduled"] = (
            f"the change from {iso(change)} has less than "
            f"{days(duration_ms(triggers.change_labels))} of matured labels: a training now would "
            f"hardly see it, so the retraining waits until it has ({iso(ready)})"
        )
        return Outcome("schedule", evidence, judged)
    futile = _futility(policy, history, change, now)
    if futile is not None:
        return Outcome("skip", {**evidence, "skipped": futile}, judged)
    return _within_budget(policy, Outcome("train", evidence, judged), history, now)


def drift_importance(registry: Registry, policy: Policy, settings: Settings) -> Importance:
    """Weighs drifted features by the champion's mean absolute contribution on the requests of
    the drift window (at most 500, answered ones, drawn at random), as shares that add up to
    1."""
    from modelloop.explain import feature_importance

    def weigh(drifted: list[str], start: int, end: int) -> dict[str, Any]:
        champion = registry.store.get_version_by_alias(policy.model, "champion")
        model = registry.load_model(champion.uri)
        frame = logged(policy, start, end, with_labels=False, settings=settings)
        frame = frame[frame["role"] != "shadow"]
        if frame.empty:
            return {"share": 1.0, "note": "no request in the window to weigh the features on"}
        sample = frame.sample(n=min(500, len(frame)), random_state=0)
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


def _run_start(db: Any, policy: Policy, monitor: str, newest: dict[str, Any]) -> int:
    """The start of the run of triggering windows (of ``newest``'s kind) that ``newest`` ends:
    where the change began. One quiet window in between does not end a run (daily windows
    flicker near a threshold)."""
    from modelloop.monitoring.sql import window_rows

    end = to_ms(newest["window_start"])
    kind = newest["kind"]
    rows = window_rows(db, monitor, kind=kind, start=end - _LOOKBACK * DAY_MS, end=end + 1)
    start = end
    quiet = 0
    for row in reversed([r for r in rows if r["status"] == "ok"]):  # newest first
        row_start = to_ms(row["window_start"])
        if row_start >= end:
            continue  # the newest window itself
        if _drift_reasons(policy, row) if kind == "drift" else _fell(policy, row):
            start, quiet = row_start, 0
        else:
            quiet += 1
            if quiet > 1:
                break
    return start


def _fell(policy: Policy, row: dict[str, Any]) -> bool:
    wanted = policy.triggers.performance
    if wanted is None:
        return False
    value = row["values"].get(f"performance.{wanted.metric}")
    return value is not None and value < wanted.below


def _follow_up(
    policy: Policy, history: Sequence[Decision], last_trained: int | None, now: int
) -> tuple[str, int] | None:
    """(reason, change start) when a change trained for is due a follow-up training: only a
    change that hurt (the matured performance fell) or whose learning paid, i.e. one of the
    trainings for it beat the champion beyond noise on the replay (the lower bound of the
    primary metric's interval above ``min_gain``), and not once two were tried and none paid."""
    follow = policy.triggers.follow_up
    if follow is None or last_trained is None:
        return None
    change = None
    for event in reversed(history):
        if event.action == "policy.trained" and event.evidence.get("change_start"):
            change = to_ms(_instant(event.evidence["change_start"]))
            break
    if change is None or now - last_trained < duration_ms(follow.every):
        return None
    if now - change > duration_ms(follow.within):
        return None
    paid = _payoffs(history, change, follow.min_gain)
    if _futile(paid):
        return None
    if _hurt(history, change):
        why = "that hurt the matured performance"
    elif any(paid):
        by = f" by more than {follow.min_gain:g}" if follow.min_gain else ""
        why = f"whose learning paid on the replay{by}"
    else:
        return None
    reason = (
        f"following the change from {iso(change)}: {days(now - last_trained)} since the last "
        f"training (every {days(duration_ms(follow.every))} for "
        f"{days(duration_ms(follow.within))} after a change {why})"
    )
    return reason, change


def _hurt(history: Sequence[Decision], change: int) -> bool:
    """Whether a trigger for ``change`` found the matured performance fallen (below the
    performance trigger, or beyond the tolerance and the noise since the change)."""
    return any(
        event.action == "policy.trigger"
        and event.evidence.get("hurt")
        and event.evidence.get("change_start")
        and to_ms(_instant(event.evidence["change_start"])) == change
        for event in history
    )


def _payoffs(history: Sequence[Decision], change: int, min_gain: float) -> list[bool]:
    """For each training for ``change`` the gate judged, oldest first: whether its challenger
    beat the champion by more than ``min_gain`` beyond noise (its primary interval's lower
    bound)."""
    versions = set()
    paid = []
    for event in history:
        evidence = event.evidence
        if event.action == "policy.trained" and evidence.get("change_start"):
            if to_ms(_instant(evidence["change_start"])) == change:
                versions.add(evidence.get("version"))
        elif (
            event.action in ("policy.shadow", "policy.rejected")
            and "interval" in evidence
            and evidence.get("version") in versions
        ):
            paid.append(evidence["interval"][0] > min_gain)
    return paid


def _futile(paid: Sequence[bool]) -> bool:
    """Two trainings for a change and neither paid: the change hurts every model alike (harder
    data, not a stale model), so a third would not pay either. (Once one paid, the change is
    learnable: later ones that do not pay only say the champion has learnt it already.)"""
    return len(paid) >= 2 and not any(paid)


def _futility(policy: Policy, history: Sequence[Decision], change: int, now: int) -> str | None:
    """Why training for ``change`` again is futile, or None (only with ``follow_up``, whose
    ``min_gain`` says what paying is, and within ``follow_up.within`` of the change)."""
    follow = policy.triggers.follow_up
    if follow is None or now - change > duration_ms(follow.within):
        return None
    paid = _payoffs(history, change, follow.min_gain)
    if not _futile(paid):
        return None
    return (
        f"none of the {len(paid)} trainings for the change from {iso(change)} beat the champion "
        f"on the replay by more than {follow.min_gain:g}: retraining does not pay for this change "
        f"(it hurts every model alike); it is judged again {days(duration_ms(follow.within))} "
        "after its start"
    )


def _scheduled(
    history: Sequence[Decision], last_trained: int | None
) -> tuple[int, int, bool] | None:
    """(when, change start, whether drift alone asked) of a retraining scheduled since the last
    training and not skipped since, if any."""
    for event in reversed(history):
        if last_trained is not None and event.time < last_trained:
            return None
        if event.action == "policy.trigger_skipped" and "performance" in event.evidence:
            return None  # a scheduled retraining found the performance holding
        if event.action == "policy.retrain_scheduled":
            at = to_ms(_instant(event.evidence["at"]))
            change = to_ms(_instant(event.evidence["change_start"]))
            return at, change, event.evidence.get("by") != "performance"
    return None


def _holds(
    policy: Policy,
    monitor: Monitor,
    change: int,
    now: int,
    settings: Settings,
    history: Sequence[Decision],
) -> dict[str, Any] | None:
    """The monitor's matured metric since ``change`` (or since the champion was promoted, when
    later: the days before judged another model) against the week before the change: does it
    stay within the tolerance? Holds, for now, while the champion has no matured window yet
    (it was trained on the change already); None when nothing before the change was measured."""
    from modelloop.monitoring.sql import window_rows

    promoted = max((e.time for e in history if e.action == "policy.promoted"), default=0)
    metric = (policy.triggers.performance or _DEFAULT_PERFORMANCE).metric
    rows = window_rows(
        monitor_database(settings),
        monitor.name,
        kind="performance",
        start=change - 7 * DAY_MS,
        end=now,
    )
    key = f"performance.{metric}"
    before = [
        r["values"][key] for r in rows if key in r["values"] and to_ms(r["window_start"]) < change
    ]
    start = max(change, promoted)
    since = [
        r["values"][key] for r in rows if key in r["values"] and to_ms(r["window_start"]) >= start
    ]
    if not before:
        return None
    if not since:
        detail = (
            f"the champion, promoted {iso(promoted)} after the change began, has no matured "
            "window yet (it learnt from the change): judged again once it has"
        )
        return {"holds": True, "detail": detail}
    level, now_level = statistics.fmean(before), statistics.fmean(since)
    # A day's metric is noisy (a few dozen positives): a fall counts when it is beyond the
    # tolerance and beyond the days' own noise (the week before's day-to-day spread, one-sided
    # 95% bound on the difference of the two means).
    spread = statistics.stdev(before) if len(before) > 1 else 0.0
    noise = _ONE_SIDED_95 * spread * math.sqrt(1 / len(before) + 1 / len(since))
    bound = max(policy.triggers.tolerance, noise)
    holds = level - now_level <= bound
    detail = (
        f"{metric} {now_level:.4f} over {len(since)} matured window(s) since "
        f"{'the change' if start == change else 'the champion was promoted'} vs "
        f"{level:.4f} over {len(before)} before the change: a fall of {level - now_level:+.4f} "
        f"is {'within' if holds else 'beyond'} {bound:.4f} (the tolerance "
        f"{policy.triggers.tolerance:g} or the days' noise {noise:.4f}, whichever is larger)"
    )
    return {"holds": holds, "since": now_level, "before": level, "bound": bound, "detail": detail}


def _within_budget(
    policy: Policy, outcome: Outcome, history: Sequence[Decision], now: int
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
    return Outcome("skip", {**outcome.evidence, "skipped": why}, outcome.judged)


def _instant(value: Any) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _newest(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    ok = [r for r in rows if r["status"] in ("ok", "insufficient_labels")]
    return ok[-1] if ok else None


def _main_values(values: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in values.items() if not k.startswith("drift.column.")}
