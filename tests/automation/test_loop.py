"""The closed loop on a small synthetic stream, through a real serving app on a simulated clock:
a new fraud pattern appears in a feature the champion ignores; the policy skips the drift until
the pattern's labels mature, then retrains, judges the challenger on a replay of the logged
traffic, rolls it out through shadow and canary on operational checks and promotes it; a
retraining is scheduled for when a change's labels mature; the budget skips a training; a bad
model forced into canary is rolled back on matured labels. Every step is an audit event."""

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
from modelloop.automation.loop import timeline as timeline_of
from modelloop.automation.policy import apply_policy, policy_state
from modelloop.automation.scheduler import Scheduler
from modelloop.automation.training import TrainingContext
from modelloop.monitoring.fluent import apply_monitor
from modelloop.monitoring.runner import check_windows
from modelloop.serving.deployment import parse_deployment
from modelloop.serving.fluent import apply_deployment, get_deployment
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
        check_windows("fraud-watch", now=at)
        return [decision.action for decision in step_policy("fraud-loop", now=at)]

    def wait_for_mode(self, mode: str) -> None:
        for _ in range(200):
            if self.live.get("/ready").json()["mode"] == mode:
                return
            import time

            time.sleep(0.05)
        raise AssertionError(f"the server did not switch to {mode}")


_pending: dict[int, list[dict[str, Any]]] = {}


def _policy(**changes: Any) -> dict[str, Any]:
    """The test's policy; ``changes`` replace whole sections or keys of them."""
    policy: dict[str, Any] = {
        "name": "fraud-loop", "deployment": DEPLOYMENT, "model": MODEL, "monitor": "fraud-watch",
        "triggers": {"drifted_features": 1, "cooldown": "2d", "change_labels": "1d"},
        "training": {"function": "tests.automation.test_loop:train", "window": "8d",
                     "holdout": "2d", "holdout_share": 0.5, "min_rows": 1000},
        "gate": {"bootstrap": 200},
        "rollout": {"shadow": "1d", "canary": "1d", "canary_percent": 50, "min_labels": 20},
    }  # fmt: skip
    for section, values in changes.items():
        policy[section] = {**policy[section], **values}
    return policy


def _ms(day: int) -> int:
    return int((START + timedelta(days=day - 1)).timestamp() * 1000)


def _iso_day(day: int) -> str:
    return (START + timedelta(days=day - 1)).date().isoformat()


def _ms_iso(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


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
    apply_policy(_policy())
    now = {"ms": _ms(1)}
    spec = ServeSpec(deployment={"name": DEPLOYMENT, "model": f"{MODEL}@champion"}, stored=True,
                     poll_interval=0.05)  # fmt: skip
    with live_app(build_app(spec, load_settings(), clock=lambda: now["ms"])) as live:
        yield Stream(live, now, pattern_from=4)


def test_the_policy_retrains_gates_on_a_replay_and_promotes_after_a_new_pattern(
    stream: Stream,
) -> None:
    timeline: list[tuple[int, str]] = []
    for d in range(1, 21):
        stream.day(d)
        timeline += [(d, action) for action in stream.close_day(d)]
        if timeline and timeline[-1][1] in ("policy.shadow", "policy.canary"):
            stream.wait_for_mode(timeline[-1][1].split(".")[1])
        if timeline and timeline[-1][1] == "policy.promoted":
            break
    actions = [a for _, a in timeline]
    first = actions.index("policy.trigger")
    # The ring strikes at night from day 4: "hour" drifts, but v1 never used it; the policy waits
    # for the ring's labels instead of training blind, and says why each day.
    assert first > 0
    assert set(actions[:first]) == {"policy.trigger_skipped"}
    # Day 6 closes on day 7 at 00:10: 1d of the ring's labels (day 4) has matured (2d delay).
    assert timeline[first][0] == 6
    assert actions[first:] == [
        "policy.trigger", "policy.trained", "policy.shadow", "policy.canary", "policy.promoted"
    ]  # fmt: skip
    promoted = ml.resolve_model_uri(f"models:/{MODEL}@champion")
    assert promoted.version == 2
    assert get_deployment(DEPLOYMENT).deployment.mode.value == "single"
    state = policy_state("fraud-loop")
    assert (state.stage, state.champion_version, state.trainings) == ("idle", 2, 1)

    decisions = timeline_of("fraud-loop")
    skipped = [d for d in decisions if d.action == "policy.trigger_skipped"]
    assert all("of the champion's attention" in d.evidence["skipped"] for d in skipped)
    assert all(d.evidence["importance"]["columns"]["hour"] < 0.2 for d in skipped)
    trigger = next(d for d in decisions if d.action == "policy.trigger")
    assert "performance" in trigger.evidence  # the ring's labels said the champion fell short
    assert not trigger.evidence["performance"]["holds"]
    assert trigger.evidence["hurt"]  # a change that hurt: follow-ups may chase it
    assert trigger.evidence["change_start"].startswith(_iso_day(4))
    trained = next(d for d in decisions if d.action == "policy.trained")
    assert trained.evidence["window"][1] > _iso_day(4)  # it saw the ring's labels
    shadow = next(d for d in decisions if d.action == "policy.shadow")
    replay = shadow.evidence["replay"]
    assert replay["data"].startswith("replay of ")
    assert sum(day["rows"] for day in replay["per_day"]) == shadow.evidence["rows"]
    assert shadow.evidence["interval"][0] > 0  # the replay's evidence travels with the decision
    run = ml.get_client().get_run(replay["run_id"])
    assert run.metrics["replay.rows"] == shadow.evidence["rows"]
    canary = next(d for d in decisions if d.action == "policy.canary")
    assert canary.evidence["shadow"]["passed"]
    assert canary.evidence["shadow"]["checks"]["consistency"]["passed"]
    db = open_database(load_settings().database_url)
    gate = [e for e in audit.events(db, object_type="model_version") if e.action == "gate.decision"]
    assert gate[-1].after is not None
    assert gate[-1].after["data"].startswith("replay of ")
    assert ml.verify_audit().ok


def test_the_replay_pairs_the_champions_answers_with_the_challengers_scores(
    stream: Stream,
) -> None:
    from modelloop.automation.replay import replay

    for d in range(1, 5):
        stream.day(d)
    logged = ml.load_predictions(MODEL, deployment=DEPLOYMENT)
    logged = logged[logged["label"].notna()]
    assert len(logged) > 1000
    fresh = transactions(4000, seed=3000, pattern=True)
    context = TrainingContext(None, FEATURES, "label", START, START, START)  # type: ignore[arg-type]
    model = train(fresh, context)
    with ml.start_run(experiment="fraud") as run:
        challenger = ml.register_model(run, MODEL, model, training_data=fresh[FEATURES])
    registry = ml.get_registry()
    result = replay(
        logged,
        registry.load_model(f"models:/{MODEL}/1"),
        1,
        registry.load_model(f"models:/{MODEL}/{challenger.version}"),
        challenger.version,
    )
    by_hand = model.predict_proba(logged[FEATURES])[:, 1]
    assert result.rows["prediction_id"].tolist() == logged["prediction_id"].tolist()
    assert np.array_equal(result.rows["champion"].to_numpy(), logged["score"].to_numpy())
    assert np.allclose(result.rows["challenger"].to_numpy(), by_hand, rtol=0, atol=1e-12)
    assert (result.served_rows, result.replayed_rows) == (len(logged), 0)
    days = result.per_day()
    assert days["rows"].sum() == len(logged)
    assert days["positives"].sum() == int(logged["label"].sum())


def test_a_retraining_waits_for_the_changes_labels_and_the_budget_holds(
    stream: Stream,
) -> None:
    # Every drift matters here (min_importance 0): the retraining is scheduled, not trained blind;
    # follow-ups every 2 days after a change are asked for, one training per 30 days is all the
    # budget allows.
    apply_policy(_policy(triggers={"min_importance": 0.0,
                                   "follow_up": {"every": "2d", "within": "20d"},
                                   "budget": {"trainings": 1, "per": "30d"}}))  # fmt: skip
    for d in range(1, 13):
        stream.day(d)
        stream.close_day(d)
        if policy_state("fraud-loop").stage in ("shadow", "canary"):
            stream.wait_for_mode(policy_state("fraud-loop").stage)
    decisions = timeline_of("fraud-loop")
    actions = [d.action for d in decisions]
    scheduled = decisions[actions.index("policy.retrain_scheduled")]
    assert scheduled.time == _ms(5) + 600_000  # closing day 4, the ring's first day
    assert scheduled.evidence["change_start"].startswith(_iso_day(4))
    due = scheduled.evidence["at"]
    assert due.startswith(_iso_day(7))  # 1d of the ring's labels, matured 2d later
    assert "policy.trigger" in actions, [(d.action, d.evidence.get("skipped")) for d in decisions]
    trigger = decisions[actions.index("policy.trigger")]
    assert trigger.time >= _ms_iso(due)
    assert "is due" in trigger.evidence["reasons"][0]
    assert actions.count("policy.trained") == 1
    budget = [d for d in decisions if d.action == "policy.trigger_skipped"
              and "budget" in d.evidence["skipped"]]  # fmt: skip
    assert budget, actions  # the follow-up asked again; the budget said no, in words
    assert "following the change" in budget[0].evidence["reasons"][0]
    assert "the budget of 1 trainings per 30d is spent" in budget[0].evidence["skipped"]


def test_a_bad_model_forced_into_canary_is_rolled_back(stream: Stream) -> None:
    shuffled = transactions(4000, seed=2000, pattern=False)
    shuffled["label"] = np.random.default_rng(0).permutation(shuffled["label"].to_numpy())
    with ml.start_run(experiment="fraud") as run:
        context = TrainingContext(None, FEATURES, "label", START, START, START)  # type: ignore[arg-type]
        bad = ml.register_model(run, MODEL, train(shuffled, context),
                                training_data=shuffled[FEATURES])  # fmt: skip
    stream.pattern_from = 10_000  # no drift: only the forced rollout happens
    apply_policy(_policy(rollout={"wait_for_labels": True}))  # judged on matured labels too
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
