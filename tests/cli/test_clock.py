"""``modelloop clock`` shows and moves the store's clock; the monitor and policy commands take
it as their "now"."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import modelloop as ml
from modelloop.automation.policy import apply_policy, policy_state
from modelloop.clock import to_ms
from modelloop.monitoring.fluent import apply_monitor
from modelloop.settings import load_settings
from tests.cli_helpers import invoke
from tests.server.test_policy_references import seed_references

SIMULATED = "2018-05-01T00:10:00+00:00"


def test_the_clock_command_shows_sets_and_resets_the_clock(home: Path) -> None:
    assert invoke("clock").output == "wall clock\n"

    done = invoke("clock", "--simulated", "2018-05-01T00:10Z")
    assert done.exit_code == 0, done.output
    assert done.output == f"simulated clock: {SIMULATED}\n"
    shown = json.loads(invoke("clock", "--output", "json").output)
    assert shown == {"kind": "simulated", "now": to_ms(ml.store_clock().now)}
    assert ml.store_clock().now.isoformat() == SIMULATED

    both = invoke("clock", "--simulated", "2018-05-01", "--wall")
    assert both.exit_code == 2
    assert "not both" in both.output
    assert invoke("clock", "--wall").output == "wall clock\n"


def test_monitor_run_and_policy_step_default_now_to_the_store_clock(home: Path) -> None:
    seed_references(load_settings())  # what the policy names must exist
    watched = {"deployment": "fraud-online", "model": "fraud-detector"}
    apply_monitor(
        watched | {"name": "watch", "since": "2018-04-28", "performance": {"enabled": False}}
    )
    training = {"function": "tests.automation.test_loop:train"}
    apply_policy(watched | {"name": "loop", "monitor": "watch", "training": training})
    invoke("clock", "--simulated", SIMULATED)

    ran = invoke("monitor", "run", "watch", "--output", "json")
    assert ran.exit_code == 0, ran.output
    starts = [w["window_start"] for w in json.loads(ran.output)]
    assert starts == [to_ms(datetime(2018, 4, d, tzinfo=UTC)) for d in (28, 29, 30)]

    stepped = invoke("policy", "step", "loop")
    assert stepped.exit_code == 0, stepped.output
    assert policy_state("loop").stage_started_at == to_ms(ml.store_clock().now)


def test_the_audit_log_says_its_times_are_wall_clock_on_a_simulated_store(home: Path) -> None:
    invoke("clock", "--simulated", SIMULATED)  # audited: store.clock
    shown = invoke("audit", "log")
    assert shown.exit_code == 0, shown.output
    assert "store.clock" in shown.output
    note = (
        "Times are wall-clock, when each change was recorded; this store's data runs on a "
        f"simulated clock: {SIMULATED}"
    )
    assert note in " ".join(shown.output.split())
    invoke("clock", "--wall")  # a live store again: one clock, nothing to say
    shown = invoke("audit", "log")
    assert shown.exit_code == 0, shown.output
    assert shown.output.count("store.clock") == 2
    assert "Times are wall-clock" not in shown.output
