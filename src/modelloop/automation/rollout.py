"""What a rollout's traffic says about the challenger, read from the prediction log.

In shadow the challenger scores the very transactions the champion answers, so once their
labels have matured both are compared on the same rows (:func:`paired_shadow`, a paired
bootstrap as at the gate). Straight into canary, each version answered its own share of the
traffic, so each is measured on its own (:func:`live_comparison`).
"""

from __future__ import annotations

from typing import Any

from modelloop.automation.bootstrap import paired_bootstrap
from modelloop.automation.policy import Policy, PolicyState
from modelloop.clock import from_ms, iso
from modelloop.monitoring.monitor import Monitor
from modelloop.serving.predictions import predictions
from modelloop.settings import Settings


def count_answers(
    policy: Policy, start: int, end: int, version: int | None, *, role: str, settings: Settings
) -> int:
    """How many requests ``version`` scored as ``role`` (``shadow``...) in ``[start, end)``."""
    frame = predictions(
        policy.model,
        from_ms(start),
        from_ms(end),
        with_labels=False,
        deployment=policy.deployment,
        settings=settings,
    )
    return int(((frame["model_version"] == version) & (frame["role"] == role)).sum())


def paired_shadow(
    policy: Policy, state: PolicyState, start: int, end: int, *, settings: Settings
) -> dict[str, Any] | None:
    """Both versions on the same transactions: the shadow period, labels matured. The
    interval is a paired bootstrap of the difference, as at the gate. None when too few
    labels (or one class) came back."""
    import numpy as np

    frame = predictions(
        policy.model, from_ms(start), from_ms(end), deployment=policy.deployment, settings=settings
    )
    champion = frame[
        (frame["role"] != "shadow") & (frame["model_version"] == state.champion_version)
    ]
    shadow = frame[
        (frame["role"] == "shadow") & (frame["model_version"] == state.challenger_version)
    ]
    both = champion.merge(
        shadow[["prediction_id", "score"]],
        on="prediction_id",
        suffixes=("_champion", "_challenger"),
    )
    both = both[both["label"].notna()]
    if len(both) < policy.rollout.min_labels or both["label"].nunique() < 2:
        return None
    metric = policy.gate.metric
    boot = paired_bootstrap(
        both["label"],
        both["score_champion"],
        both["score_challenger"],
        metric=metric,
        n_bootstrap=policy.gate.bootstrap,
    )
    low, high = np.quantile(boot.differences, [0.025, 0.975]).tolist()
    return {
        "metric": metric,
        "window": [iso(start), iso(end)],
        "paired": True,
        "challenger": boot.challenger_value,
        "champion": boot.champion_value,
        "interval": [low, high],
        "labelled": len(both),
    }


def live_comparison(
    policy: Policy,
    monitor: Monitor,
    state: PolicyState,
    start: int,
    end: int,
    *,
    now: int,
    settings: Settings,
) -> dict[str, Any]:
    """Each version's matured metric on the predictions it answered in ``[start, end)``."""
    from modelloop.monitoring.performance import performance

    rollout, perf = policy.rollout, monitor.performance
    frame = predictions(
        policy.model, from_ms(start), from_ms(end), deployment=policy.deployment, settings=settings
    )
    answered = frame[frame["role"] != "shadow"]
    metric = policy.gate.metric
    result: dict[str, Any] = {"metric": metric, "window": [iso(start), iso(end)]}
    for who, version in (
        ("challenger", state.challenger_version),
        ("champion", state.champion_version),
    ):
        part = answered[answered["model_version"] == version]
        report = performance(
            part,
            threshold=perf.threshold,
            min_labels=rollout.min_labels,
            label_delay=perf.label_delay,
            as_of=from_ms(now),
        )
        result[who] = getattr(report, metric)
        result[f"{who}_predictions"] = report.n_predictions
        result[f"{who}_labelled"] = report.n_labelled
    return result
