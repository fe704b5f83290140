"""Triggers' judgements: a fall in the matured performance beyond the tolerance and the days'
noise, and follow-up trainings after a change that hurt or whose learning paid."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelloop.automation.decision import Decision
from modelloop.automation.policy import parse_policy
from modelloop.automation.triggers import _follow_up, _futility, _holds
from modelloop.clock import DAY_MS, iso
from modelloop.monitoring.fluent import apply_monitor, get_monitor
from modelloop.monitoring.sql import SqlMonitorStore
from modelloop.monitoring.store import monitor_database
from modelloop.monitoring.windows import ScopeResult, Window
from modelloop.settings import load_settings

from .test_policy import GOOD

CHANGE = 1_530_000_000_000 - 1_530_000_000_000 % DAY_MS


def _history(lower_bound: float) -> list[Decision]:
    """A training for the change at day 8 whose gate interval starts at ``lower_bound``."""
    trained = CHANGE + 8 * DAY_MS
    return [
        Decision("policy.trained", trained, {"version": 2, "change_start": iso(CHANGE)}),
        Decision("policy.shadow", trained, {"version": 2, "interval": [lower_bound, 0.05]}),
    ]


def test_follow_ups_need_a_gain_beyond_min_gain() -> None:
    policy = parse_policy(
        {**GOOD, "triggers": {"follow_up": {"every": "5d", "within": "42d", "min_gain": 0.01}}}
    )
    assert policy.triggers.follow_up is not None
    assert policy.to_record()["triggers"]["follow_up"]["min_gain"] == 0.01
    last, now = CHANGE + 8 * DAY_MS, CHANGE + 13 * DAY_MS
    due = _follow_up(policy, _history(0.02), last, now)
    assert due is not None
    assert due[1] == CHANGE
    assert "by more than 0.01" in due[0]
    # Beyond noise (> 0) but not by the material gain asked for: the change is not chased.
    assert _follow_up(policy, _history(0.004), last, now) is None
    # Without min_gain any gain beyond noise pays, as before.
    lenient = parse_policy({**GOOD, "triggers": {"follow_up": {"every": "5d", "within": "42d"}}})
    assert _follow_up(lenient, _history(0.004), last, now) is not None
    assert _follow_up(lenient, _history(-0.001), last, now) is None
    # Not yet due (4 of every 5 days), or past ``within`` of the change's start.
    assert _follow_up(policy, _history(0.02), last, now - DAY_MS) is None
    assert _follow_up(policy, _history(0.02), last, CHANGE + 43 * DAY_MS) is None


def _hurt_history() -> list[Decision]:
    """A trigger for the change that found the performance fallen; its challenger did not pay."""
    trained = CHANGE + 8 * DAY_MS
    return [
        Decision("policy.trigger", trained, {"change_start": iso(CHANGE), "hurt": True}),
        *_history(-0.02),
    ]


def test_a_change_that_hurt_is_followed_even_when_its_first_replay_did_not_pay() -> None:
    # The first training after a change sees a day of it; its replay holds a day of it too, so
    # it rarely shows a gain beyond noise. A change that made the champion fall is followed.
    policy = parse_policy(
        {**GOOD, "triggers": {"follow_up": {"every": "5d", "within": "42d", "min_gain": 0.01}}}
    )
    last, now = CHANGE + 8 * DAY_MS, CHANGE + 13 * DAY_MS
    due = _follow_up(policy, _hurt_history(), last, now)
    assert due is not None
    assert "after a change that hurt the matured performance" in due[0]
    assert _follow_up(policy, _history(-0.02), last, now) is None  # neither hurt nor paid


DAILY_AP = [0.80, 0.72, 0.86, 0.75, 0.83, 0.70, 0.84]  # the week before: noisy days, mean 0.786


@pytest.mark.parametrize(
    ("since", "holds"),
    [
        ([0.72], True),  # -0.066: beyond the tolerance 0.05, within one day's noise
        ([0.55], False),  # -0.236: beyond both
        ([0.73, 0.72, 0.71, 0.72, 0.73, 0.72, 0.71], False),  # -0.066 on 7 days: noise is small
        ([0.76, 0.77], True),  # within the tolerance
    ],
)
def test_the_performance_holds_unless_it_fell_beyond_tolerance_and_noise(
    home: Path, since: list[float], holds: bool
) -> None:
    settings = load_settings()
    apply_monitor({"name": "watch", "deployment": "online", "model": "m", "window": "1d"})
    monitor = get_monitor("watch")
    store = SqlMonitorStore(monitor_database(settings))
    days = [(d - 7, ap) for d, ap in enumerate(DAILY_AP)] + list(enumerate(since))
    for day, ap in days:
        start = CHANGE + day * DAY_MS
        scope = ScopeResult(0, "ok", 100, {"performance.average_precision": ap})
        store.record_window(monitor, "performance", Window(start, start + DAY_MS), [scope], start)
    policy = parse_policy({**GOOD, "triggers": {"tolerance": 0.05}})
    now = CHANGE + (len(since) + 8) * DAY_MS
    held = _holds(policy, monitor, CHANGE, now, settings, [])
    assert held is not None
    assert held["holds"] is holds, held["detail"]
    assert held["bound"] >= 0.05
    spread = 0.0627  # the week before's standard deviation
    n = len(since)
    assert held["bound"] == pytest.approx(
        max(0.05, 1.645 * spread * (1 / 7 + 1 / n) ** 0.5), abs=1e-3
    )


def _trainings(*lower_bounds: float) -> list[Decision]:
    """Trainings for the change (after a trigger that found it hurt), one every 5 days from
    day 8, each gated with its interval's lower bound."""
    history = [Decision("policy.trigger", CHANGE, {"change_start": iso(CHANGE), "hurt": True})]
    for i, low in enumerate(lower_bounds):
        at, version = CHANGE + (8 + 5 * i) * DAY_MS, i + 2
        history += [
            Decision("policy.trained", at, {"version": version, "change_start": iso(CHANGE)}),
            Decision("policy.shadow", at, {"version": version, "interval": [low, low + 0.05]}),
        ]
    return history


def test_two_trainings_for_a_change_that_neither_paid_end_the_chase() -> None:
    # A change that hurt every model alike (harder data, not a stale model): the first
    # training after it is tried, a follow-up too, then no trigger trains for it again.
    policy = parse_policy(
        {**GOOD, "triggers": {"follow_up": {"every": "5d", "within": "42d", "min_gain": 0.01}}}
    )
    now = CHANGE + 30 * DAY_MS
    last = now - 5 * DAY_MS
    assert _follow_up(policy, _trainings(-0.001), last, now) is not None  # one miss: try again
    assert _follow_up(policy, _trainings(-0.001, 0.008), last, now) is None
    # Once one paid the change is learnable: later misses say the champion knows it already.
    assert _follow_up(policy, _trainings(0.05, -0.001), last, now) is not None
    assert _follow_up(policy, _trainings(-0.001, 0.05, -0.001, 0.002), last, now) is not None
    assert _futility(policy, _trainings(-0.001), CHANGE, now) is None
    assert _futility(policy, _trainings(0.05, -0.001, 0.002), CHANGE, now) is None
    why = _futility(policy, _trainings(-0.001, 0.008), CHANGE, now)
    assert why is not None
    assert "none of the 2 trainings for the change" in why
    assert "beat the champion on the replay by more than 0.01" in why
    # Only within ``follow_up.within`` of the change's start, and only with follow_up at all.
    assert _futility(policy, _trainings(-0.001, 0.008), CHANGE, CHANGE + 43 * DAY_MS) is None
    plain = parse_policy(GOOD)
    assert plain.triggers.follow_up is None
    assert _futility(plain, _trainings(-0.001, 0.008), CHANGE, now) is None
