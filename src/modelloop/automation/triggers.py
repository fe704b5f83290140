"""Why a policy trains now: its monitor's newest windows, or its schedule; never within the
cooldown.

Only windows stored since the last training (or since the loop came back to idle) count: older
ones judged the previous model. A window counts when it was computed (``ok``) or computed with
too few labels for performance (``insufficient_labels``), not when it failed.
"""

from __future__ import annotations

from typing import Any

from modelloop.automation.policy import Policy, PolicyState
from modelloop.clock import days, duration_ms
from modelloop.monitoring.monitor import Monitor, monitor_database
from modelloop.settings import Settings


def check_triggers(
    policy: Policy, monitor: Monitor, state: PolicyState, *, now: int, settings: Settings
) -> dict[str, Any] | None:
    """The reasons to train at ``now`` (ms) with the windows' evidence, or None."""
    from modelloop.monitoring.store import window_rows

    triggers = policy.triggers
    last = state.last_trained_at
    if last is not None and now - last < duration_ms(triggers.cooldown):
        return None
    # Only windows since the loop came back to idle: older ones judged the previous model.
    since = max(last or 0, state.stage_started_at or 0)
    db = monitor_database(settings)
    reasons: list[str] = []
    evidence: dict[str, Any] = {}
    drift = _newest(window_rows(db, monitor.name, kind="drift", start=since))
    if drift is not None:
        drifted = list(drift["report"].get("drifted_columns", []))
        need = triggers.drifted_features
        if need is not None and len(drifted) >= need:
            reasons.append(f"{len(drifted)} features drifted (at least {need} trigger)")
        if triggers.score_drift and drift["values"].get("drift.score_drifted") == 1.0:
            reasons.append("the score drifted")
        evidence["drift_window"] = {
            "start": drift["window_start"].isoformat(),
            "drifted_columns": drifted,
            "values": _main_values(drift["values"]),
        }
    wanted = triggers.performance
    perf = _newest(window_rows(db, monitor.name, kind="performance", start=since))
    if wanted is not None and perf is not None:
        value = perf["values"].get(f"performance.{wanted.metric}")
        if value is not None and value < wanted.below:
            reasons.append(f"{wanted.metric} {value:.4f} below {wanted.below:g}")
        evidence["performance_window"] = {
            "start": perf["window_start"].isoformat(),
            "values": _main_values(perf["values"]),
        }
    if triggers.every is not None and now - since >= duration_ms(triggers.every):
        reasons.append(
            f"{days(now - since)} since the last training (every "
            f"{days(duration_ms(triggers.every))})"
        )
    if not reasons:
        return None
    return {"reasons": reasons, **evidence}


def _newest(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    ok = [r for r in rows if r["status"] in ("ok", "insufficient_labels")]
    return ok[-1] if ok else None


def _main_values(values: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in values.items() if not k.startswith("drift.column.")}
