"""Follow-up trainings after a change: only while its learning paid by more than ``min_gain``."""

from __future__ import annotations

from modelloop.automation.decision import Decision
from modelloop.automation.policy import parse_policy
from modelloop.automation.triggers import _follow_up
from modelloop.clock import DAY_MS, iso

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
