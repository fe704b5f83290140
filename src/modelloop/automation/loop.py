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
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from modelloop.automation.gate import GateOptions, evaluate_gate
from modelloop.automation.policy import (
    Policy,
    PolicyState,
    get_policy,
    policy_database,
    policy_state,
)
from modelloop.automation.rollout import count_answers, live_comparison, paired_shadow
from modelloop.automation.training import labelled_window, train_challenger
from modelloop.automation.triggers import check_triggers
from modelloop.clock import duration_ms, now_ms, to_ms
from modelloop.errors import Conflict, Forbidden, InvalidArgument, ModelloopError, NotFound
from modelloop.monitoring.monitor import Monitor, get_monitor
from modelloop.registry.client import Registry
from modelloop.registry.entities import RequestStatus
from modelloop.serving.deployment import apply_deployment, get_deployment, parse_deployment
from modelloop.settings import Settings, load_settings
from modelloop.tracking.client import Client
from modelloop.tracking.source import current_user

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("modelloop.automation")

IDLE, SHADOW, CANARY, APPROVAL = "idle", "shadow", "canary", "awaiting_approval"


@dataclass(frozen=True, slots=True)
class Decision:
    """One transition of the loop, as recorded in the audit trail."""

    action: str  # policy.trigger | policy.trained | policy.gate | policy.shadow | ...
    time: int  # ms since the epoch (the step's ``now``)
    evidence: dict[str, Any]


def step_policy(
    name: str, *, now: datetime | None = None, settings: Settings | None = None
) -> list[Decision]:
    """Advance the policy's loop as far as ``now`` (default: the clock) allows; the decisions
    taken, oldest first (none when nothing was due)."""
    settings = settings or load_settings()
    policy = get_policy(name, settings=settings)
    loop = _Loop(policy, settings, _at(now))
    try:
        return loop.step()
    finally:
        loop.close()


def timeline(name: str, *, settings: Settings | None = None) -> list[Decision]:
    """The policy's decisions, oldest first, read back from the audit trail."""
    from modelloop import audit

    get_policy(name, settings=settings)  # NotFound for an unknown policy
    events = audit.events(policy_database(settings), object_type="policy", object_id=name)
    return [
        Decision(e.action, e.time, dict(e.after or {}))
        for e in events
        if e.action != "policy.apply"
    ]


def start_rollout(
    name: str,
    version: int,
    *,
    stage: str = "shadow",
    now: datetime | None = None,
    settings: Settings | None = None,
) -> Decision:
    """Put ``version`` under the policy's watch by hand, in ``shadow`` or straight in
    ``canary``: from there the policy promotes or rolls it back as one it trained itself."""
    if stage not in (SHADOW, CANARY):
        raise InvalidArgument(f"a rollout starts in shadow or canary, not {stage!r}")
    settings = settings or load_settings()
    loop = _Loop(get_policy(name, settings=settings), settings, _at(now))
    try:
        state = policy_state(name, settings=settings)
        if state.stage != IDLE:
            raise Conflict(
                f"Policy {name!r} is rolling out v{state.challenger_version} ({state.stage}); "
                "wait for it to be promoted or rolled back"
            )
        model = loop.policy.model
        champion = loop._registry().store.get_version_by_alias(model, "champion").version
        loop._set_alias("challenger", version, f"rollout started by {current_user()}")
        loop._deploy(mode=stage)
        state = replace(
            state,
            stage=stage,
            challenger_version=version,
            champion_version=champion,
            stage_started_at=loop.now,
        )
        decision = Decision(
            "policy.rollout_started",
            loop.now,
            {"version": version, "stage": stage, "by": current_user()},
        )
        loop._record(state, decision)
        return decision
    finally:
        loop.close()


class _Loop:
    def __init__(self, policy: Policy, settings: Settings, now: int) -> None:
        self.policy = policy
        self.settings = settings
        self.now = now
        self.monitor: Monitor = get_monitor(policy.monitor, settings=settings).monitor
        self.actor = f"policy:{policy.name}"
        self.decisions: list[Decision] = []
        self._opened: Registry | None = None

    def close(self) -> None:
        if self._opened is not None:
            self._opened.close()
            self._opened.client.close()

    @property
    def label_delay_ms(self) -> int:
        return duration_ms(self.monitor.performance.label_delay)

    def step(self) -> list[Decision]:
        state = policy_state(self.policy.name, settings=self.settings)
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
        triggered = check_triggers(
            self.policy, self.monitor, state, now=self.now, settings=self.settings
        )
        if triggered is None:
            return
        state = replace(state, last_trained_at=self.now, trainings=state.trainings + 1)
        self._record(state, Decision("policy.trigger", self.now, triggered))
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
        self._record(state, Decision("policy.trained", self.now, trained.evidence))
        try:
            gate = self._gate(version, window.holdout)
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
        champion = (
            self._registry().store.get_version_by_alias(self.policy.model, "champion").version
        )
        self._set_alias("challenger", version, f"passed the gate: {gate['summary']}")
        self._deploy(mode="shadow")
        state = replace(
            state,
            stage=SHADOW,
            challenger_version=version,
            champion_version=champion,
            stage_started_at=self.now,
        )
        self._record(state, Decision("policy.shadow", self.now, evidence))

    def _gate(self, version: int, holdout: pd.DataFrame) -> dict[str, Any]:
        gate = self.policy.gate
        options = GateOptions(
            metric=gate.metric,
            margin=gate.margin,
            confidence=gate.confidence,
            n_bootstrap=gate.bootstrap,
            max_latency_ms=gate.max_latency_ms,
            max_size_bytes=None if gate.max_size_mb is None else int(gate.max_size_mb * 2**20),
        )
        result = evaluate_gate(
            f"models:/{self.policy.model}/{version}",
            f"models:/{self.policy.model}@champion",
            holdout,
            options,
            label="label",
            reason=f"policy {self.policy.name}",
            data=f"predictions of {self.policy.deployment}, newest matured days",
        )
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
        }

    # -- rollout --------------------------------------------------------------------------------

    def _shadow(self, state: PolicyState) -> None:
        started = state.stage_started_at or self.now
        if self.now < started + duration_ms(self.policy.rollout.shadow):
            return
        scored = count_answers(
            self.policy,
            started,
            self.now,
            state.challenger_version,
            role="shadow",
            settings=self.settings,
        )
        if scored == 0:
            self._rollback(state, {"reason": "the challenger scored no request in shadow"})
            return
        self._deploy(mode="canary")
        state = replace(state, stage=CANARY, stage_started_at=self.now)
        evidence = {
            "version": state.challenger_version,
            "shadow_predictions": scored,
            "canary_percent": self.policy.rollout.canary_percent,
        }
        self._record(state, Decision("policy.canary", self.now, evidence))

    def _canary(self, state: PolicyState) -> None:
        rollout = self.policy.rollout
        started = state.stage_started_at or self.now
        ended = started + duration_ms(rollout.canary)
        matured = self.label_delay_ms + duration_ms(self.monitor.grace)
        if self.now < max(ended, started + matured):
            return  # the canary runs its course, and the shadow's labels arrive meanwhile
        live = paired_shadow(
            self.policy,
            state,
            started - duration_ms(rollout.shadow),
            started,
            settings=self.settings,
        )
        if live is None:  # straight into canary: each version on its share of the traffic
            if self.now < ended + matured:
                return  # wait for the canary's own labels
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
            return
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
            return
        self._promote(state, live)

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
        reason = f"policy {self.policy.name}: canary kept up on live traffic"
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
        from sqlalchemy import insert, select, update

        from modelloop import audit
        from modelloop.monitoring.store import json_safe
        from modelloop.store import tables as t

        s = t.policy_state
        values = {k: getattr(state, k) for k in PolicyState.__slots__}
        with policy_database(self.settings).write() as conn:
            audit.lock(conn)
            exists = conn.execute(select(s.c.name).where(s.c.name == self.policy.name)).first()
            if exists is None:
                conn.execute(insert(s).values(name=self.policy.name, **values))
            else:
                conn.execute(update(s).where(s.c.name == self.policy.name).values(**values))
            if decision is not None:
                audit.append(
                    conn,
                    time=decision.time,
                    actor=self.actor,
                    action=decision.action,
                    object_type="policy",
                    object_id=self.policy.name,
                    before=None,
                    after=json_safe(decision.evidence),
                )
        if decision is not None:
            self.decisions.append(decision)
            log.info("policy %s: %s %s", self.policy.name, decision.action, decision.evidence)


def _at(now: datetime | None) -> int:
    """``now`` (default: the clock) in ms since the epoch."""
    return now_ms() if now is None else to_ms(now)
