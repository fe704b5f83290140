"""The closed loop: one step of a policy, run daily or on schedule (``step_policy``).

    idle --trigger--> train on the labelled log --gate--> shadow --> canary --> promoted
                                                  \\--reject--> idle       \\--> rolled back

From ``idle``, the newest stored monitor windows (or the schedule) may trigger a training: the
deployment's own prediction log joined with its matured labels, minus the newest ``holdout``
days, trains a challenger (a tracked run, registered with its training data); the gate compares
it with the champion on those held-out days. A challenger that passes answers nothing at first
(``shadow``), then a share of traffic (``canary``); once the canary's labels have matured, its
metric is compared with the champion's on the same period: worse by more than the margin rolls
it back, otherwise it becomes the champion (through an approval request when the alias is
protected). Every transition is an audit event (action ``policy.*``, object the policy) carrying
its evidence, written in the transaction that moves the stored state, so the timeline of the
loop is the audit trail.

This module is the state machine; what it reads and runs lives next to it: the triggers
(:mod:`~modelloop.automation.triggers`), the training (:mod:`~modelloop.automation.training`),
the gate (:mod:`~modelloop.automation.gate`) and the rollout's evidence
(:mod:`~modelloop.automation.rollout`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from modelloop.automation.decision import Decision
from modelloop.automation.entities import Policy, PolicyState
from modelloop.automation.gate import GateOptions
from modelloop.automation.replay import judge_replay
from modelloop.automation.rollout import (
    hourly_quantiles,
    live_comparison,
    operational_checks,
    paired_shadow,
)
from modelloop.automation.store import open_policy_store
from modelloop.automation.training import labelled_window, train_challenger
from modelloop.automation.triggers import check_triggers, drift_importance
from modelloop.clock import DAY_MS, duration_ms, to_ms
from modelloop.errors import Conflict, Forbidden, InvalidArgument, ModelloopError, NotFound
from modelloop.monitoring.fluent import get_monitor
from modelloop.monitoring.monitor import Monitor
from modelloop.registry.client import Registry
from modelloop.registry.entities import RequestStatus
from modelloop.serving.deployment import parse_deployment
from modelloop.serving.fluent import apply_deployment, get_deployment
from modelloop.settings import Settings, load_settings
from modelloop.store_clock import store_clock
from modelloop.tracking.client import Client
from modelloop.tracking.source import current_user

if TYPE_CHECKING:
    import pandas as pd

    from modelloop.automation.http import HttpPolicyStore
    from modelloop.automation.sql import SqlPolicyStore

log = logging.getLogger("modelloop.automation")

IDLE, SHADOW, CANARY, APPROVAL = "idle", "shadow", "canary", "awaiting_approval"


def step_policy(
    name: str, *, now: datetime | None = None, settings: Settings | None = None
) -> list[Decision]:
    """Advance the policy's loop as far as ``now`` (default: the store's clock) allows; the
    decisions taken, oldest first (none when nothing was due).

    The loop runs where the data is. Through a server (``MODELLOOP_TRACKING_URI``), the server
    steps it, at its own store clock: ``now`` cannot be given then."""
    settings = settings or load_settings()
    if settings.tracking_uri is not None:
        _refuse_now(now, "steps")
        with _server(settings) as server:
            return server.step(name, actor=current_user())
    store = _local(settings)
    loop = _Loop(store.get(name), settings, _at(now, settings), store=store)
    try:
        return loop.step()
    finally:
        loop.close()


def timeline(
    name: str, *, settings: Settings | None = None, limit: int | None = None
) -> list[Decision]:
    """The policy's decisions, oldest first, read back from the audit trail (the newest
    ``limit`` ones when given); locally or through a server alike."""
    store = open_policy_store(settings or load_settings())
    try:
        return store.decisions(name, limit)
    finally:
        store.close()


def start_rollout(
    name: str,
    version: int,
    *,
    stage: str = "shadow",
    now: datetime | None = None,
    settings: Settings | None = None,
    actor: str | None = None,
) -> Decision:
    """Put ``version`` under the policy's watch by hand, in ``shadow`` or straight in
    ``canary``: from there the policy promotes or rolls it back as one it trained itself.
    Through a server, the server starts it at its own store clock (``now`` cannot be given)."""
    if stage not in (SHADOW, CANARY):
        raise InvalidArgument(f"a rollout starts in shadow or canary, not {stage!r}")
    settings = settings or load_settings()
    actor = actor or current_user()
    if settings.tracking_uri is not None:
        _refuse_now(now, "starts a rollout")
        with _server(settings) as server:
            return server.start_rollout(name, version, stage=stage, actor=actor)
    store = _local(settings)
    loop = _Loop(store.get(name), settings, _at(now, settings), store=store)
    try:
        state = store.state(name)
        if state.stage != IDLE:
            raise Conflict(
                f"Policy {name!r} is rolling out v{state.challenger_version} ({state.stage}); "
                "wait for it to be promoted or rolled back"
            )
        evidence = {"version": version, "stage": stage, "by": actor}
        decision = Decision("policy.rollout_started", loop.now, evidence)
        loop._roll_out(state, version, stage, f"rollout started by {actor}", decision)
        return decision
    finally:
        loop.close()


def _local(settings: Settings) -> SqlPolicyStore:
    """The policies of the metadata database, which the loop reads and records on (imported
    here, not at the top: ``import modelloop`` stays free of SQLAlchemy)."""
    from modelloop.automation.sql import SqlPolicyStore

    return SqlPolicyStore(settings)


@contextlib.contextmanager
def _server(settings: Settings) -> Iterator[HttpPolicyStore]:
    from modelloop.automation.http import HttpPolicyStore

    assert settings.tracking_uri is not None
    server = HttpPolicyStore(settings.tracking_uri, token=settings.token)
    try:
        yield server
    finally:
        server.close()


def _refuse_now(now: datetime | None, what: str) -> None:
    if now is not None:
        raise InvalidArgument(
            f"A server {what} at its own store clock: leave now out (or unset "
            "MODELLOOP_TRACKING_URI to run the loop on the metadata database)",
            [{"field": "now", "message": "not taken through a server"}],
        )


class _Loop:
    def __init__(
        self, policy: Policy, settings: Settings, now: int, *, store: SqlPolicyStore | None = None
    ) -> None:
        self.policy = policy
        self.settings = settings
        self.store = store if store is not None else _local(settings)
        self.now = now
        self.monitor: Monitor = get_monitor(policy.monitor, settings=settings)
        self.actor = f"policy:{policy.name}"
        self.decisions: list[Decision] = []
        self._opened: Registry | None = None
        self._decided: list[Decision] | None = None

    def close(self) -> None:
        if self._opened is not None:
            self._opened.close()
            self._opened.client.close()

    @property
    def label_delay_ms(self) -> int:
        return duration_ms(self.monitor.performance.label_delay)

    def step(self) -> list[Decision]:
        state = self.store.state(self.policy.name)
        if state.stage_started_at is None:  # first look: the schedule counts from now
            state = replace(state, stage_started_at=self.now)
            self._record(state, None)
        if state.stage == IDLE:
            self._idle(state)
        elif state.stage == SHADOW:
            self._shadow(state)
        elif state.stage == CANARY:
            self._canary(state)
        elif state.stage == APPROVAL:
            self._approval(state)
        return self.decisions

    # -- idle: triggers, training, gate ---------------------------------------------------------

    def _idle(self, state: PolicyState) -> None:
        outcome = check_triggers(
            self.policy,
            self.monitor,
            state,
            now=self.now,
            settings=self.settings,
            history=self._history(),
            importance=drift_importance(self._registry(), self.policy, self.settings),
        )
        if outcome is None:
            return
        if outcome.judged is not None:
            state = replace(state, last_checked_at=outcome.judged)
        if outcome.action != "train":
            action = (
                "policy.trigger_skipped" if outcome.action == "skip" else "policy.retrain_scheduled"
            )
            self._record(state, Decision(action, self.now, outcome.evidence))
            return
        state = replace(state, last_trained_at=self.now, trainings=state.trainings + 1)
        self._record(state, Decision("policy.trigger", self.now, outcome.evidence))
        try:
            window = labelled_window(
                self.policy,
                now=self.now,
                label_delay_ms=self.label_delay_ms,
                settings=self.settings,
            )
            trained = train_challenger(self.policy, window, self._registry(), now=self.now)
        except InvalidArgument as exc:
            self._record(
                state, Decision("policy.training_skipped", self.now, {"reason": exc.message})
            )
            return
        version = trained.version
        evidence = {**trained.evidence, "change_start": outcome.evidence.get("change_start")}
        self._record(state, Decision("policy.trained", self.now, evidence))
        try:
            gate = self._gate(version, window.holdout, str(trained.evidence["run_id"]))
        except ModelloopError as exc:  # e.g. a holdout without a single fraud: no verdict
            self._record(
                state,
                Decision("policy.rejected", self.now, {"version": version, "reason": exc.message}),
            )
            return
        evidence = {"version": version, **gate}
        if gate["decision"] != "promote":
            self._record(state, Decision("policy.rejected", self.now, evidence))
            return
        decision = Decision("policy.shadow", self.now, evidence)
        self._roll_out(state, version, SHADOW, f"passed the gate: {gate['summary']}", decision)

    def _roll_out(
        self, state: PolicyState, version: int, stage: str, reason: str, decision: Decision
    ) -> None:
        """``version`` becomes the challenger, served in ``stage`` (shadow or canary)."""
        model = self.policy.model
        champion = self._registry().store.get_version_by_alias(model, "champion").version
        self._set_alias("challenger", version, reason)
        self._deploy(mode=stage)
        state = replace(
            state,
            stage=stage,
            challenger_version=version,
            champion_version=champion,
            stage_started_at=self.now,
        )
        self._record(state, decision)

    def _gate(self, version: int, holdout: pd.DataFrame, run_id: str) -> dict[str, Any]:
        """The replay backtest: the challenger on the held-out logged requests, paired with the
        champion's answers; recorded on the challenger's training run too."""
        gate = self.policy.gate
        options = GateOptions(
            metrics=gate.compared,
            k=gate.k,
            margin=tuple(gate.margin) if isinstance(gate.margin, list) else gate.margin,
            confidence=gate.confidence,
            n_bootstrap=gate.bootstrap,
            max_latency_ms=gate.max_latency_ms,
            max_size_bytes=None if gate.max_size_mb is None else int(gate.max_size_mb * 2**20),
        )
        result, replayed = judge_replay(
            self._registry(),
            self.policy.model,
            version,
            holdout,
            options,
            reason=f"policy {self.policy.name}",
            entity=self.policy.training.holdout_key or self.policy.rollout.sticky_key,
            amount=gate.amount,
        )
        per_day = replayed.per_day(result.metric)
        client = self._registry().client
        client.log_metrics(
            run_id,
            {
                f"replay.{result.metric}": result.challenger.value,
                f"replay.champion_{result.metric}": result.champion.value,
                "replay.difference": result.difference,
                "replay.ci_low": result.ci_low,
                "replay.ci_high": result.ci_high,
                "replay.rows": float(result.n_rows),
                "replay.positives": float(result.n_positive),
            },
        )
        client.log_bytes(run_id, per_day.to_csv(index=False).encode(), "replay/per_day.csv")
        return {
            "decision": result.decision,
            "summary": result.summary(),
            "metric": result.metric,
            "challenger_value": result.challenger.value,
            "champion_value": result.champion.value,
            "difference": result.difference,
            "interval": [result.ci_low, result.ci_high],
            "confidence": result.confidence,
            "margin": result.margin,
            "rows": result.n_rows,
            "positives": result.n_positive,
            "reasons": list(result.reasons),
            "audit_seq": result.audit_seq,
            "metrics": [
                {
                    "metric": m.metric,
                    "challenger": m.challenger,
                    "champion": m.champion,
                    "interval": [m.ci_low, m.ci_high],
                    "margin": m.margin,
                    "passed": m.passed,
                }
                for m in result.metrics
            ],
            "replay": {
                "data": result.data,
                "metric": str(per_day.attrs.get("metric", result.metric)),
                "served_rows": replayed.served_rows,
                "replayed_rows": replayed.replayed_rows,
                "per_day": per_day.to_dict(orient="records"),
                "run_id": run_id,
            },
            "replay_quantiles": {
                side: hourly_quantiles(replayed.rows["timestamp"], replayed.rows[side])
                for side in ("challenger", "champion")
            },
        }

    # -- rollout --------------------------------------------------------------------------------

    def _shadow(self, state: PolicyState) -> None:
        rollout = self.policy.rollout
        started = state.stage_started_at or self.now
        if self.now < started + duration_ms(rollout.shadow):
            return
        checks = self._operations(state, started, role=SHADOW)
        if checks is None:
            return
        self._deploy(mode="canary")
        state = replace(state, stage=CANARY, stage_started_at=self.now)
        evidence = {
            "version": state.challenger_version,
            "shadow_predictions": checks["requests"],
            "canary_percent": rollout.canary_percent,
            "shadow": checks,
        }
        self._record(state, Decision("policy.canary", self.now, evidence))

    def _canary(self, state: PolicyState) -> None:
        rollout = self.policy.rollout
        started = state.stage_started_at or self.now
        if self.now < started + duration_ms(rollout.canary):
            return
        checks = self._operations(state, started, role=CANARY)
        if checks is None:
            return
        if not rollout.wait_for_labels:
            self._promote(state, {"canary": checks})
            return
        live = self._matured_rollout(state, started)
        if live is not None:
            self._promote(state, {"canary": checks, **live})

    def _operations(self, state: PolicyState, started: int, *, role: str) -> dict[str, Any] | None:
        """The stage's operational checks once it has seen enough traffic; None while waiting
        for it (at most a day past the stage's length, then the rollout is abandoned)."""
        rollout = self.policy.rollout
        length = rollout.shadow if role == SHADOW else rollout.canary
        checks = operational_checks(
            self.policy,
            state,
            started,
            self.now,
            role=role,
            replay_quantiles=self._replay_quantiles(state.challenger_version),
            model=self._registry().load_model(
                f"models:/{self.policy.model}/{state.challenger_version}"
            ),
            settings=self.settings,
        )
        if not checks["ready"]:
            if self.now - started < duration_ms(length) + DAY_MS:
                return None
            reason = (
                f"the challenger {'scored' if role == SHADOW else 'answered'} only "
                f"{checks['requests']} requests in {role} (at least {rollout.min_requests})"
            )
            self._rollback(state, {role: checks, "reason": reason})
            return None
        if not checks["passed"]:
            self._rollback(state, {role: checks, "reason": "; ".join(checks["reasons"])})
            return None
        return checks

    def _replay_quantiles(self, version: int | None) -> dict[str, dict[str, list[float]]] | None:
        for decision in reversed(self._history()):
            if decision.action == "policy.shadow" and decision.evidence.get("version") == version:
                return decision.evidence.get("replay_quantiles")
        return None

    def _matured_rollout(self, state: PolicyState, started: int) -> dict[str, Any] | None:
        """(``wait_for_labels``) The rollout judged on matured labels: the shadow period paired,
        else each version on its canary share; rolls back (and returns None) when worse."""
        rollout = self.policy.rollout
        ended = started + duration_ms(rollout.canary)
        matured = self.label_delay_ms + duration_ms(self.monitor.grace)
        if self.now < started + matured:
            return None  # the shadow's labels arrive meanwhile
        live = paired_shadow(
            self.policy,
            state,
            started - duration_ms(rollout.shadow),
            started,
            settings=self.settings,
        )
        if live is None:  # straight into canary: each version on its share of the traffic
            if self.now < ended + matured:
                return None  # wait for the canary's own labels
            live = live_comparison(
                self.policy,
                self.monitor,
                state,
                started,
                ended,
                now=self.now,
                settings=self.settings,
            )
        challenger, champion = live["challenger"], live["champion"]
        if challenger is None or champion is None:
            self._rollback(state, {**live, "reason": "too few labels to judge the rollout"})
            return None
        worse = live.get("interval", [challenger - champion] * 2)[1] < -rollout.rollback_margin
        if worse:
            reason = (
                f"live {live['metric']} of v{state.challenger_version} {challenger:.4f} "
                f"is below v{state.champion_version}'s {champion:.4f} by more than "
                f"{rollout.rollback_margin:g}"
            )
            if "interval" in live:
                low, high = live["interval"]
                reason += f" (95% interval of the difference {low:+.4f} to {high:+.4f})"
            self._rollback(state, {**live, "reason": reason})
            return None
        return live

    def _approval(self, state: PolicyState) -> None:
        assert state.request_id is not None
        request = self._registry().store.get_request(state.request_id)
        if request.status == RequestStatus.PENDING:
            return
        if request.status == RequestStatus.APPROVED:
            self._finish_promotion(state, {"approved_by": request.decided_by})
        else:
            self._rollback(state, {"reason": f"promotion request {request.status.value}"})

    def _promote(self, state: PolicyState, live: dict[str, Any]) -> None:
        assert state.challenger_version is not None
        reason = f"policy {self.policy.name}: passed the replay gate and the rollout's checks" + (
            " and kept up on matured labels" if self.policy.rollout.wait_for_labels else ""
        )
        try:
            self._set_alias("champion", state.challenger_version, reason)
        except Forbidden:
            request = self._registry().store.request_alias(
                self.policy.model,
                "champion",
                state.challenger_version,
                actor=self.actor,
                reason=reason,
            )
            state = replace(
                state, stage=APPROVAL, request_id=request.request_id, stage_started_at=self.now
            )
            evidence = {**live, "request_id": request.request_id}
            self._record(state, Decision("policy.approval_requested", self.now, evidence))
            return
        self._finish_promotion(state, live)

    def _finish_promotion(self, state: PolicyState, evidence: dict[str, Any]) -> None:
        self._deploy(mode="single")
        self._drop_challenger_alias("promoted to champion")
        done = self._back_to_idle(state, champion=state.challenger_version)
        evidence = {"version": state.challenger_version, **evidence}
        self._record(done, Decision("policy.promoted", self.now, evidence))

    def _rollback(self, state: PolicyState, evidence: dict[str, Any]) -> None:
        self._deploy(mode="single")
        self._drop_challenger_alias(str(evidence.get("reason", "rolled back")))
        done = self._back_to_idle(state, champion=state.champion_version)
        evidence = {"version": state.challenger_version, **evidence}
        self._record(done, Decision("policy.rolled_back", self.now, evidence))

    def _back_to_idle(self, state: PolicyState, *, champion: int | None) -> PolicyState:
        return PolicyState(
            IDLE, None, champion, self.now, state.last_trained_at, self.now, state.trainings
        )

    # -- effects --------------------------------------------------------------------------------

    def _history(self) -> list[Decision]:
        """The policy's decisions so far (read once per step, then kept up to date)."""
        if self._decided is None:
            self._decided = self.store.decisions(self.policy.name)
        return self._decided

    def _registry(self) -> Registry:
        """One registry for the whole step, closed with the loop."""
        if self._opened is None:
            self._opened = Registry(Client(settings=self.settings))
        return self._opened

    def _set_alias(self, alias: str, version: int, reason: str) -> None:
        self._registry().store.set_alias(
            self.policy.model, alias, version, actor=self.actor, reason=reason
        )

    def _drop_challenger_alias(self, reason: str) -> None:
        with contextlib.suppress(NotFound):  # already gone: nothing to undo
            self._registry().store.delete_alias(
                self.policy.model, "challenger", actor=self.actor, reason=reason
            )

    def _deploy(self, *, mode: str) -> None:
        current = get_deployment(self.policy.deployment, settings=self.settings).deployment
        record = current.to_record() | {"mode": mode}
        for key in ("challenger", "canary_percent", "sticky_key"):
            record.pop(key, None)
        if mode != "single":
            record["challenger"] = f"{self.policy.model}@challenger"
        if mode == "canary":
            record["canary_percent"] = self.policy.rollout.canary_percent
            if self.policy.rollout.sticky_key:
                record["sticky_key"] = self.policy.rollout.sticky_key
        apply_deployment(parse_deployment(record), settings=self.settings, actor=self.actor)

    def _record(self, state: PolicyState, decision: Decision | None) -> None:
        """Store the state and append the decision's audit event, in one transaction."""
        self.store.record(self.policy.name, state, decision, actor=self.actor)
        if decision is not None:
            self.decisions.append(decision)
            if self._decided is not None:
                self._decided.append(decision)
            log.info("policy %s: %s %s", self.policy.name, decision.action, decision.evidence)


def _at(now: datetime | None, settings: Settings) -> int:
    """``now`` (default: the store's clock, a simulation's instant on a simulated store) in ms
    since the epoch."""
    return store_clock(settings).now_ms if now is None else to_ms(now)
