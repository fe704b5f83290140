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

from typing import TYPE_CHECKING, Any

from modelloop.automation.bootstrap import paired_bootstrap
from modelloop.automation.entities import Policy, PolicyState
from modelloop.automation.policy import logged
from modelloop.automation.scoring import score_frame
from modelloop.clock import from_ms, iso
from modelloop.monitoring.monitor import Monitor
from modelloop.settings import Settings

if TYPE_CHECKING:
    from modelloop.flavors import LoadedModel


def paired_shadow(
    policy: Policy, state: PolicyState, start: int, end: int, *, settings: Settings
) -> dict[str, Any] | None:
    """Both versions on the same transactions: the shadow period, labels matured. The
    interval is a paired bootstrap of the difference, as at the gate. None when too few
    labels (or one class) came back."""
    import numpy as np

    frame = logged(policy, start, end, settings=settings)
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
    frame = logged(policy, start, end, settings=settings)
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
    replay_quantiles: dict[str, dict[str, list[float]]] | None,
    model: LoadedModel | None = None,
    settings: Settings,
) -> dict[str, Any]:
    """The challenger's ``role`` (``shadow`` or ``canary``) traffic in ``[start, end)`` against
    the rollout's budgets: ``{"ready": False}`` while it has scored fewer than ``min_requests``,
    else every check with its numbers and ``passed``, ``reasons`` (the failed ones, in words).
    ``replay_quantiles`` (``challenger`` and ``champion``, per hour) are the replay's score
    distributions; ``model`` is the challenger, to check its live scores are its offline ones."""
    import numpy as np

    from modelloop.serving.stats import counted
    from modelloop.store import open_database

    rollout = policy.rollout
    frame = logged(policy, start, end, with_labels=False, settings=settings)
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
    if model is not None:  # the live scores are the model's on the logged features
        offline = score_frame(model, ours, version=None)[0]
        gap = float(np.abs(offline - scores).max())
        checks.append(
            (
                "consistency",
                gap <= 1e-6,
                f"live scores vs the same requests scored offline: largest gap {gap:.1e} "
                "(at most 1e-06)",
            )
        )
    answered = frame[
        (frame["role"] != "shadow") & (frame["model_version"] == state.champion_version)
    ]
    if replay_quantiles and len(answered):
        moved = score_shift(ours["timestamp"], scores, replay_quantiles["challenger"])
        theirs = score_shift(answered["timestamp"], answered["score"], replay_quantiles["champion"])
        checks.append(
            (
                "score_shift",
                moved - theirs <= rollout.max_score_shift,
                f"live scores vs the replay's at the same hours: KS distance {moved:.3f}, the "
                f"champion's {theirs:.3f} (the challenger's at most {rollout.max_score_shift:g} "
                "more: the traffic itself may have moved)",
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


def hourly_quantiles(timestamps: Any, scores: Any, n: int = 20) -> dict[str, list[float]]:
    """``n + 1`` evenly spaced quantiles of ``scores`` per hour of the day (UTC) of
    ``timestamps``: the replay's distribution, kept in the gate's evidence. Per hour, because
    traffic mixes by hour (night and day requests score differently), and a rollout stage of a
    few hours must be compared with the same hours of the replay."""
    import numpy as np
    import pandas as pd

    hours = pd.to_datetime(pd.Series(timestamps), utc=True).dt.hour.to_numpy()
    values = np.asarray(scores, dtype=np.float64)
    levels = np.linspace(0, 1, n + 1)
    return {
        str(hour): [round(float(q), 6) for q in np.quantile(values[hours == hour], levels)]
        for hour in sorted(set(hours.tolist()))
    }


def score_shift(timestamps: Any, scores: Any, quantiles: dict[str, list[float]]) -> float:
    """The Kolmogorov-Smirnov distance between live ``scores`` and the replay's distribution
    mixed by the live traffic's hours (each hour's CDF interpolated between its quantiles;
    hours the replay never saw are left out)."""
    import numpy as np
    import pandas as pd

    hours = pd.to_datetime(pd.Series(timestamps), utc=True).dt.hour.astype(str).to_numpy()
    values = np.asarray(scores, dtype=np.float64)
    seen = np.isin(hours, list(quantiles))
    hours, values = hours[seen], np.sort(values[seen]) if seen.any() else values[:0]
    if not len(values):
        return 0.0
    counts = pd.Series(hours).value_counts(normalize=True)
    grid = np.unique(np.concatenate([values, *[np.asarray(quantiles[h]) for h in counts.index]]))
    mixed = np.zeros(len(grid))
    for hour, weight in counts.items():
        q = np.asarray(quantiles[str(hour)])
        mixed += weight * np.interp(grid, q, np.linspace(0, 1, len(q)), left=0.0, right=1.0)
    live = np.searchsorted(values, grid, side="right") / len(values)
    return float(np.abs(live - mixed).max())


def _spearman(a: Any, b: Any) -> float:
    import numpy as np
    from scipy.stats import rankdata

    ra, rb = rankdata(a), rankdata(b)
    if ra.std() == 0 or rb.std() == 0:
        return 1.0 if np.array_equal(ra, rb) else 0.0
    return float(np.corrcoef(ra, rb)[0, 1])
