"""What a rollout's traffic says about the challenger, read from the prediction log.

Since the gate judges a challenger on a replay of matured traffic, shadow and canary guard
*operations*, which take hours, not labels, which take days (:func:`operational_checks`): the
challenger answered (or scored) enough requests, the deployment's error rate stayed within
budget, its latency too, its live scores are distributed as its replay scores were (a broken
feature pipeline or a skew shows here first), and it ranks requests broadly as the champion
does. With ``wait_for_labels`` the rollout is also judged on matured labels, as below.

In shadow the challenger scores the very transactions the champion answers, so once their
labels have matured both are compared on the same rows (:func:`paired_shadow`, a paired
bootstrap as at the gate). Straight into canary, each version answered its own share of the
traffic, so each is measured on its own (:func:`live_comparison`).
"""

from __future__ import annotations

from collections.abc import Sequence
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


def operational_checks(
    policy: Policy,
    state: PolicyState,
    start: int,
    end: int,
    *,
    role: str,
    replay_quantiles: Sequence[float] | None,
    settings: Settings,
) -> dict[str, Any]:
    """The challenger's ``role`` (``shadow`` or ``canary``) traffic in ``[start, end)`` against
    the rollout's budgets: ``{"ready": False}`` while it has scored fewer than ``min_requests``,
    else every check with its numbers and ``passed``, ``reasons`` (the failed ones, in words)."""
    import numpy as np

    from modelloop.serving.stats import counted
    from modelloop.store import open_database

    rollout = policy.rollout
    frame = predictions(
        policy.model,
        from_ms(start),
        from_ms(end),
        with_labels=False,
        deployment=policy.deployment,
        settings=settings,
    )
    mine = frame["model_version"] == state.challenger_version
    if role == "shadow":
        ours = frame[mine & (frame["role"] == "shadow")]
    else:
        ours = frame[mine & (frame["role"] != "shadow")]
    evidence: dict[str, Any] = {
        "role": role,
        "window": [iso(start), iso(end)],
        "requests": len(ours),
    }
    if len(ours) < rollout.min_requests:
        return {**evidence, "ready": False}
    checks: list[tuple[str, bool, str]] = []
    requests, errors = counted(open_database(settings.database_url), policy.deployment, start, end)
    rate = errors / requests if requests else 0.0
    checks.append(
        (
            "errors",
            rate <= rollout.max_error_rate,
            f"{errors} of {requests} requests failed ({rate:.2%}; budget "
            f"{rollout.max_error_rate:.2%})",
        )
    )
    scores = ours["score"].to_numpy(dtype=np.float64)
    if replay_quantiles:
        shift = quantile_distance(scores, replay_quantiles)
        checks.append(
            (
                "score_shift",
                shift <= rollout.max_score_shift,
                f"live scores vs the replay's: KS distance {shift:.3f} (at most "
                f"{rollout.max_score_shift:g})",
            )
        )
    if rollout.max_latency_ms is not None:
        p99 = float(np.quantile(ours["latency_ms"].to_numpy(dtype=np.float64), 0.99))
        checks.append(
            (
                "latency",
                p99 <= rollout.max_latency_ms,
                f"p99 latency {p99:.2f} ms (budget {rollout.max_latency_ms:g} ms)",
            )
        )
    if role == "shadow" and rollout.min_agreement is not None:
        answered = frame[
            (frame["role"] != "shadow") & (frame["model_version"] == state.champion_version)
        ]
        both = answered[["prediction_id", "score"]].merge(
            ours[["prediction_id", "score"]], on="prediction_id"
        )
        if len(both) >= rollout.min_requests:
            rho = _spearman(both["score_x"].to_numpy(), both["score_y"].to_numpy())
            checks.append(
                (
                    "agreement",
                    rho >= rollout.min_agreement,
                    f"rank correlation with the champion's answers {rho:.3f} on "
                    f"{len(both)} requests (at least {rollout.min_agreement:g})",
                )
            )
    return {
        **evidence,
        "ready": True,
        "passed": all(ok for _, ok, _ in checks),
        "checks": {name: {"passed": ok, "detail": detail} for name, ok, detail in checks},
        "reasons": [detail for _, ok, detail in checks if not ok],
    }


def score_quantiles(scores: Any, n: int = 100) -> list[float]:
    """``n + 1`` evenly spaced quantiles of ``scores``: the replay's distribution, kept in the
    gate's evidence for the live scores to be compared with."""
    import numpy as np

    return [
        float(q)
        for q in np.quantile(np.asarray(scores, dtype=np.float64), np.linspace(0, 1, n + 1))
    ]


def quantile_distance(scores: Any, quantiles: Sequence[float]) -> float:
    """The Kolmogorov-Smirnov distance between ``scores`` and the distribution whose evenly
    spaced quantiles are ``quantiles`` (exact at those points, which is what is kept)."""
    import numpy as np

    q = np.asarray(quantiles, dtype=np.float64)
    levels = np.linspace(0, 1, len(q))
    s = np.sort(np.asarray(scores, dtype=np.float64))
    below = np.searchsorted(s, q, side="right") / len(s)  # live ECDF at each quantile
    at_or_below = np.searchsorted(s, q, side="left") / len(s)
    return float(max(np.abs(below - levels).max(), np.abs(at_or_below - levels).max()))


def _spearman(a: Any, b: Any) -> float:
    import numpy as np
    from scipy.stats import rankdata

    ra, rb = rankdata(a), rankdata(b)
    if ra.std() == 0 or rb.std() == 0:
        return 1.0 if np.array_equal(ra, rb) else 0.0
    return float(np.corrcoef(ra, rb)[0, 1])
