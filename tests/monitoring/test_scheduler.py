"""The scheduler of ``modelloop server`` runs on the store's clock and catches up a bounded
backlog: a simulated store gets no window past its simulated now, a store back from a long
pause computes at most ``catch_up`` of missed windows, says once what it left, and replaces no
stored window."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest

import modelloop as ml
from modelloop.automation.policy import apply_policy, policy_state
from modelloop.automation.scheduler import Scheduler
from modelloop.clock import DAY_MS, now_ms, to_ms
from modelloop.monitoring.runner import check_windows
from modelloop.monitoring.sql import window_rows
from modelloop.monitoring.store import monitor_database
from modelloop.serving.deployment import parse_deployment
from modelloop.serving.fluent import apply_deployment

from .conftest import DEPLOYMENT, MODEL, ON_EVERY_DATABASE, Watched, day

GRACE_MS = 5 * 60_000  # the monitors' default grace


def _by_scope(rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {(r["kind"], r["window_start"], r["model_version"]): r for r in rows}


def _ends(watched: Watched, name: str, kind: str) -> list[int]:
    rows = window_rows(monitor_database(watched.settings), name, kind=kind)
    return [to_ms(r["window_start"]) + DAY_MS for r in rows]


@ON_EVERY_DATABASE
def test_a_tick_on_a_simulated_store_stores_no_window_past_the_simulated_now(
    watched: Watched,
) -> None:
    for d in (1, 2, 3):
        watched.send_labels(watched.log_predictions(day(d), 300, seed=d), at=day(d + 1))
    name = watched.monitor()  # daily windows since 2026-01-01, labels mature in 2 days
    training = {"function": "tests.automation.test_loop:train"}
    policy = {"name": "loop", "deployment": DEPLOYMENT, "model": MODEL, "monitor": name}
    served = {"name": DEPLOYMENT, "model": f"models:/{MODEL}/{watched.version}"}
    apply_deployment(parse_deployment(served), settings=watched.settings)  # a policy's must exist
    apply_policy(policy | {"training": training}, settings=watched.settings)
    simulated = day(4) + timedelta(hours=1)
    ml.set_store_clock(simulated, settings=watched.settings)
    scheduler = Scheduler(watched.settings)

    assert scheduler.tick() == 4  # drift of days 1-3, performance of day 1
    assert _ends(watched, name, "drift") == [to_ms(day(d)) for d in (2, 3, 4)]
    assert _ends(watched, name, "performance") == [to_ms(day(2))]  # day 2's labels: not yet
    assert policy_state("loop", settings=watched.settings).stage_started_at == to_ms(simulated)
    assert scheduler.tick() == 0  # the clock stands still: nothing more is due

    ml.set_store_clock(simulated + timedelta(days=1), settings=watched.settings)
    assert scheduler.tick() == 2  # the simulation's next day: one window of each kind
    assert _ends(watched, name, "drift")[-1] == to_ms(day(5))
    assert _ends(watched, name, "performance")[-1] == to_ms(day(3))


def test_after_a_long_pause_a_tick_catches_up_at_most_catch_up_and_replaces_nothing(
    watched: Watched, caplog: pytest.LogCaptureFixture
) -> None:
    for d in (2, 20):
        watched.log_predictions(day(d), 300, seed=d, shift=0.5 * (d == 20))
    name = watched.monitor(performance={"enabled": False})  # since 2026-01-01, catch_up 7d
    for d in (2, 20):  # checked by hand before the pause
        check_windows(
            name, window=day(d), now=day(21) + timedelta(hours=1), settings=watched.settings
        )
    db = monitor_database(watched.settings)
    before = _by_scope(window_rows(db, name, model_version=None))
    assert len(before) == 4  # two windows, each as a whole and for version 1
    scheduler = Scheduler(watched.settings)
    caplog.set_level(logging.WARNING, logger="modelloop.automation.scheduler")

    stored = scheduler.tick(now=day(24) + timedelta(hours=1))  # a real-clock store, 3 weeks on

    # Due within the last 7 days: the windows of days 17-23 (day 20's already stored).
    assert stored == 6
    starts = [to_ms(r["window_start"]) for r in window_rows(db, name, kind="drift")]
    assert starts == [to_ms(day(d)) for d in (2, 17, 18, 19, 20, 21, 22, 23)]
    after = _by_scope(window_rows(db, name, model_version=None))
    assert {k: after[k] for k in before} == before  # values, reports, computed_at unchanged
    said = [r.getMessage() for r in caplog.records if "catch_up" in r.getMessage()]
    assert said == [
        "monitor fraud-watch: 15 drift window(s) in [2026-01-01T00:00:00+00:00, "
        "2026-01-17T00:00:00+00:00) became due more than 7d ago (its catch_up) and are not "
        "computed; check one with 'modelloop monitor run fraud-watch --window 2026-01-01'"
    ]

    assert scheduler.tick(now=day(25) + timedelta(hours=1)) == 1  # a day later: day 24
    assert scheduler.tick(now=day(25) + timedelta(hours=2)) == 0
    assert len([r for r in caplog.records if "catch_up" in r.getMessage()]) == 1  # said once


def test_checking_a_stored_window_again_replaces_nothing(watched: Watched) -> None:
    watched.log_predictions(day(2), 300, seed=2)
    name = watched.monitor(performance={"enabled": False})
    [first] = check_windows(name, window=day(2), now=day(4), settings=watched.settings)
    assert first.stored
    db = monitor_database(watched.settings)
    before = window_rows(db, name, model_version=None)
    watched.log_predictions(day(2) + timedelta(hours=1), 300, seed=3, shift=2.0)  # late data

    [again] = check_windows(name, window=day(2), now=day(5), settings=watched.settings)

    assert not again.stored
    assert window_rows(db, name, model_version=None) == before


def test_on_the_wall_clock_a_tick_catches_up_at_most_catch_up(watched: Watched) -> None:
    clock = ml.store_clock(settings=watched.settings)
    assert not clock.simulated
    since = clock.now - timedelta(days=30)
    name = watched.monitor(since=since, performance={"enabled": False})

    Scheduler(watched.settings).tick()

    ends = _ends(watched, name, "drift")
    assert 7 <= len(ends) <= 8  # a window may close while the tick runs
    assert min(ends) + GRACE_MS >= clock.now_ms - 7 * DAY_MS  # none due before the catch-up
    assert max(ends) + GRACE_MS <= now_ms()  # none not due yet
