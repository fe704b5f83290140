"""A store knows its clock: the wall clock unless a simulation recorded its own, on SQLite and
PostgreSQL; switching kinds is audited, advancing is not."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

import modelloop as ml
from modelloop import audit
from modelloop.clock import now_ms, to_ms
from modelloop.errors import InvalidArgument
from modelloop.settings import Settings
from modelloop.store import open_database


def test_a_store_without_a_recorded_clock_runs_on_the_wall_clock(settings: Settings) -> None:
    before = now_ms()
    clock = ml.store_clock(settings)
    assert (clock.kind, clock.simulated, str(clock)) == ("wall", False, "wall clock")
    assert before <= clock.now_ms <= now_ms()


def test_the_simulated_clock_round_trips_and_advances(settings: Settings) -> None:
    start = datetime(2018, 5, 1, 0, 10)  # naive: UTC
    recorded = ml.set_store_clock(start, settings=settings, actor="simulator")

    read = ml.store_clock(settings)
    assert read == recorded
    assert (read.kind, read.now) == ("simulated", start.replace(tzinfo=UTC))
    assert str(read) == "simulated clock: 2018-05-01T00:10:00+00:00"

    later = to_ms(datetime(2018, 5, 2, 0, 10, tzinfo=UTC))
    ml.set_store_clock(later, settings=settings, actor="simulator")
    assert ml.store_clock(settings).now_ms == later  # advanced, and stays where it was put

    assert ml.use_wall_clock(settings=settings, actor="operator") is True
    assert ml.use_wall_clock(settings=settings, actor="operator") is False
    assert not ml.store_clock(settings).simulated

    events = audit.events(open_database(settings.database_url), object_type="store")
    assert [(e.actor, e.action, e.after) for e in events] == [
        ("simulator", "store.clock", {"kind": "simulated", "now": to_ms(start)}),
        ("operator", "store.clock", {"kind": "wall"}),
    ]  # the switches, not the advance
    assert audit.verify(open_database(settings.database_url)).ok


def test_a_client_of_a_server_cannot_set_the_clock(settings: Settings) -> None:
    remote = dataclasses.replace(settings, tracking_uri="http://127.0.0.1:9")
    with pytest.raises(InvalidArgument, match="metadata database"):
        ml.set_store_clock(0, settings=remote)
