"""The closed loop on a small synthetic stream, through a real serving app on a simulated clock:
a new fraud pattern appears, the policy retrains until a challenger beats the champion at the
gate, rolls it out through shadow and canary, and promotes it; a bad model forced into canary is
rolled back. Every step is an audit event with its evidence."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

import modelloop as ml
from modelloop import audit
from modelloop.automation.loop import start_rollout, step_policy, timeline
from modelloop.automation.policy import apply_policy, policy_state
from modelloop.automation.training import TrainingContext
from modelloop.monitoring.monitor import apply_monitor
from modelloop.monitoring.runner import run_monitor
from modelloop.monitoring.scheduler import Scheduler
from modelloop.serving.deployment import apply_deployment, get_deployment, parse_deployment
from modelloop.serving.server import ServeSpec, build_app
from modelloop.settings import load_settings
from modelloop.store import open_database

from ..serving.conftest import Live, live_app

FEATURES = ["amount", "hour", "velocity"]
MODEL, DEPLOYMENT = "fraud-detector", "fraud-online"
DAY_MS = 86_400_000
START = datetime(2026, 1, 1, tzinfo=UTC)


def transactions(n: int, seed: int, pattern: bool) -> pd.DataFrame:
    """Card transactions; with ``pattern``, a fraud ring also strikes at night-like hours."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 3)), columns=FEATURES)
    risk = frame["amount"] + frame["velocity"] + rng.normal(scale=0.4, size=n)
    fraud = risk > 2.0
    if pattern:
        ring = rng.random(n) < 0.08
        frame.loc[ring, "hour"] = rng.normal(2.5, 0.3, ring.sum())
        fraud |= ring
    frame["label"] = fraud.astype(float)
    return frame


def train(data: pd.DataFrame, context: TrainingContext) -> Any:
    """The policy's training function (imported by name, as a user's would be)."""
    model = lgb.LGBMClassifier(n_estimators=40, num_leaves=15, verbose=-1, random_state=0)
    return model.fit(data[context.features], data["label"])


@dataclass
class Stream:
    live: Live
    now: dict[str, int]
    pattern_from: int

    def day(self, d: int, n: int = 1200) -> None:
        """Serve day ``d``'s transactions, send day d-2's labels, run the monitor and policy."""
        frame = transactions(n, seed=d, pattern=d >= self.pattern_from)
        for i, part in enumerate(np.array_split(np.arange(n), 3)):
            self.now["ms"] = _ms(d) + (i * 8 + 1) * 3_600_000
            rows = frame.iloc[part]
            answer = self.live.post("/predict", {c: rows[c].tolist() for c in FEATURES})
            assert answer.status_code == 200, answer.text
            labels = [
                {"prediction_id": p, "label": y}
                for p, y in zip(answer.json()["prediction_id"], rows["label"], strict=True)
            ]
            _pending.setdefault(d + 2, []).extend(labels)  # fmt: skip
        self.live.flush()
        self.now["ms"] = _ms(d + 1) + 60_000
        for batch in (_pending.pop(d + 1, []),):
            if batch:
                assert self.live.post("/feedback", batch).is_success

    def close_day(self, d: int) -> list[str]:
        at = datetime.fromtimestamp((_ms(d + 1) + 600_000) / 1000, UTC)
        run_monitor("fraud-watch", now=at)
        return [decision.action for decision in step_policy("fraud-loop", now=at)]

    def wait_for_mode(self, mode: str) -> None:
        for _ in range(200):
            if self.live.get("/ready").json()["mode"] == mode:
                return
            import time

            time.sleep(0.05)
        raise AssertionError(f"the server did not switch to {mode}")


_pending: dict[int, list[dict[str, Any]]] = {}


def _ms(day: int) -> int:
    return int((START + timedelta(days=day - 1)).timestamp() * 1000)


@pytest.fixture
def stream(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stream]:
    monkeypatch.setenv("MODELLOOP_PROTECTED_ALIASES", "")
    _pending.clear()
    old = transactions(4000, seed=1000, pattern=False)
    with ml.start_run(experiment="fraud") as run:
        context = TrainingContext(None, FEATURES, "label", START, START, START)  # type: ignore[arg-type]
        version = ml.register_model(run, MODEL, train(old, context), training_data=old[FEATURES])
    ml.set_alias(MODEL, "champion", version.version, reason="first model")
    apply_deployment(parse_deployment({"name": DEPLOYMENT, "model": f"{MODEL}@champion"}))
    apply_monitor(
        {
            "name": "fraud-watch",
            "deployment": DEPLOYMENT,
            "model": MODEL,
            "since": "2026-01-01",
            "performance": {"label_delay": "2d", "min_labels": 20},
        }
    )
    apply_policy({
        "name": "fraud-loop", "deployment": DEPLOYMENT, "model": MODEL, "monitor": "fraud-watch",
        "triggers": {"drifted_features": 1, "cooldown": "2d"},
        "training": {"function": "tests.automation.test_loop:train", "window": "8d",
                     "holdout": "2d", "min_rows": 1000},
        "gate": {"bootstrap": 200},
        "rollout": {"shadow": "1d", "canary": "1d", "canary_percent": 50, "min_labels": 20},
    })  # fmt: skip
    now = {"ms": _ms(1)}
    spec = ServeSpec(deployment={"name": DEPLOYMENT, "model": f"{MODEL}@champion"}, stored=True,
                     poll_interval=0.05)  # fmt: skip
    with live_app(build_app(spec, load_settings(), clock=lambda: now["ms"])) as live:
        yield Stream(live, now, pattern_from=4)


def test_the_policy_retrains_gates_and_promotes_after_a_new_pattern(stream: Stream) -> None:
    timeline: list[tuple[int, str]] = []
    for d in range(1, 21):
        stream.day(d)
        timeline += [(d, action) for action in stream.close_day(d)]
        if timeline and timeline[-1][1] in ("policy.shadow", "policy.canary"):
            stream.wait_for_mode(timeline[-1][1].split(".")[1])
        if timeline and timeline[-1][1] == "policy.promoted":
            break
    actions = [a for _, a in timeline]
    assert actions[0] == "policy.trigger"
    assert "policy.rejected" in actions  # trained before the pattern's labels: not better
    assert actions[-4:] == ["policy.trained", "policy.shadow", "policy.canary", "policy.promoted"]
    promoted = ml.resolve_model_uri(f"models:/{MODEL}@champion")
    assert promoted.version > 1
    assert get_deployment(DEPLOYMENT).deployment.mode.value == "single"
    state = policy_state("fraud-loop")
    assert (state.stage, state.champion_version) == ("idle", promoted.version)
    assert state.trainings == actions.count("policy.trigger")

    events = audit.events(open_database(load_settings().database_url), object_type="policy")
    shadow = next(e for e in events if e.action == "policy.shadow")
    assert shadow.after is not None
    assert shadow.after["interval"][0] > 0  # the gate's evidence travels with the decision
    assert ml.verify_audit().ok


def test_a_bad_model_forced_into_canary_is_rolled_back(stream: Stream) -> None:
    shuffled = transactions(4000, seed=2000, pattern=False)
    shuffled["label"] = np.random.default_rng(0).permutation(shuffled["label"].to_numpy())
    with ml.start_run(experiment="fraud") as run:
        context = TrainingContext(None, FEATURES, "label", START, START, START)  # type: ignore[arg-type]
        bad = ml.register_model(run, MODEL, train(shuffled, context),
                                training_data=shuffled[FEATURES])  # fmt: skip
    stream.pattern_from = 10_000  # no drift: only the forced rollout happens
    start_rollout("fraud-loop", bad.version, stage="canary",
                  now=datetime.fromtimestamp(_ms(1) / 1000, UTC))  # fmt: skip
    stream.wait_for_mode("canary")
    scheduler = Scheduler(load_settings())  # what `modelloop server` runs every minute
    for d in range(1, 6):
        stream.day(d)
        scheduler.tick(now=datetime.fromtimestamp((_ms(d + 1) + 600_000) / 1000, UTC))
    actions = [d.action for d in timeline("fraud-loop")]
    assert actions == ["policy.rollout_started", "policy.rolled_back"]
    assert ml.resolve_model_uri(f"models:/{MODEL}@champion").version == 1
    assert get_deployment(DEPLOYMENT).deployment.mode.value == "single"
    events = audit.events(open_database(load_settings().database_url), object_type="policy")
    rollback = events[-1].after
    assert rollback is not None
    assert rollback["challenger"] < rollback["champion"]
    assert "below" in rollback["reason"]
