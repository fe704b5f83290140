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
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from modelloop.automation.policy import Policy, PolicyState, get_policy, policy_state
from modelloop.errors import Forbidden, InvalidArgument, ModelloopError
from modelloop.settings import Settings, load_settings

if TYPE_CHECKING:
    import pandas as pd

    from modelloop.monitoring.monitor import Monitor
    from modelloop.registry.client import Registry

log = logging.getLogger("modelloop.automation")

IDLE, SHADOW, CANARY, APPROVAL = "idle", "shadow", "canary", "awaiting_approval"
_DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Decision:
    """One transition of the loop, as recorded in the audit trail."""

    action: str  # policy.trigger | policy.trained | policy.gate | policy.shadow | ...
    time: int  # ms since the epoch (the step's ``now``)
    evidence: dict[str, Any]


@dataclass
class TrainingContext:
    """What a training function is told besides its data."""

    policy: Policy
    features: list[str]
    label: str
    start: datetime  # the labelled window used (holdout excluded)
    end: datetime
    now: datetime
    params: dict[str, Any] = field(default_factory=dict)


def step_policy(
    name: str, *, now: datetime | None = None, settings: Settings | None = None
) -> list[Decision]:
    """Advance the policy's loop as far as ``now`` (default: the clock) allows; the decisions
    taken, oldest first (none when nothing was due)."""
    settings = settings or load_settings()
    policy = get_policy(name, settings=settings)
    at = _ms(now or datetime.now(UTC))
    loop = _Loop(policy, settings, at)
    try:
        return loop.step()
    finally:
        loop.close()


def timeline(name: str, *, settings: Settings | None = None) -> list[Decision]:
    """The policy's decisions, oldest first, read back from the audit trail."""
    from modelloop import audit
    from modelloop.automation.policy import policy_database

    get_policy(name, settings=settings)  # NotFound for an unknown policy
    events = audit.events(policy_database(settings), object_type="policy", object_id=name)
    return [Decision(e.action, e.time, dict(e.after or {})) for e in events
            if e.action != "policy.apply"]  # fmt: skip


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
    from modelloop.errors import Conflict
    from modelloop.tracking.source import current_user

    if stage not in (SHADOW, CANARY):
        raise InvalidArgument(f"a rollout starts in shadow or canary, not {stage!r}")
    settings = settings or load_settings()
    loop = _Loop(get_policy(name, settings=settings), settings, _ms(now or datetime.now(UTC)))
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
        state = replace(state, stage=stage, challenger_version=version, champion_version=champion,
                        stage_started_at=loop.now)  # fmt: skip
        decision = Decision("policy.rollout_started", loop.now,
                            {"version": version, "stage": stage, "by": current_user()})  # fmt: skip
        loop._record(state, decision)
        return decision
    finally:
        loop.close()


class _Loop:
    def __init__(self, policy: Policy, settings: Settings, now: int) -> None:
        from modelloop.monitoring.monitor import get_monitor

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
        return int(self.monitor.performance.label_delay.total_seconds() * 1000)

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
        triggered = self._trigger(state)
        if triggered is None:
            return
        state = replace(state, last_trained_at=self.now, trainings=state.trainings + 1)
        self._record(state, Decision("policy.trigger", self.now, triggered))
        try:
            version, holdout, trained = self._train()
        except InvalidArgument as exc:
            self._record(state, Decision("policy.training_skipped", self.now,
                                         {"reason": exc.message}))  # fmt: skip
            return
        self._record(state, Decision("policy.trained", self.now, trained))
        try:
            gate = self._gate(version, holdout)
        except ModelloopError as exc:  # e.g. a holdout without a single fraud: no verdict
            self._record(state, Decision("policy.rejected", self.now,
                                         {"version": version, "reason": exc.message}))  # fmt: skip
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
        state = replace(state, stage=SHADOW, challenger_version=version,
                        champion_version=champion, stage_started_at=self.now)  # fmt: skip
        self._record(state, Decision("policy.shadow", self.now, evidence))

    def _trigger(self, state: PolicyState) -> dict[str, Any] | None:
        """Why to train now, or None: newest monitor windows since the last training, schedule;
        never within the cooldown."""
        from modelloop.monitoring.monitor import monitor_database
        from modelloop.monitoring.store import window_rows

        triggers = self.policy.triggers
        last = state.last_trained_at
        if last is not None and self.now - last < _ms_of(triggers.cooldown):
            return None
        # Only windows since the loop came back to idle: older ones judged the previous model.
        since = max(last or 0, state.stage_started_at or 0)
        db = monitor_database(self.settings)
        reasons: list[str] = []
        evidence: dict[str, Any] = {}
        drift = _newest(window_rows(db, self.monitor.name, kind="drift", start=since))
        if drift is not None:
            drifted = list(drift["report"].get("drifted_columns", []))
            need = triggers.drifted_features
            if need is not None and len(drifted) >= need:
                reasons.append(f"{len(drifted)} features drifted (at least {need} trigger)")
            if triggers.score_drift and drift["values"].get("drift.score_drifted") == 1.0:
                reasons.append("the score drifted")
            evidence["drift_window"] = {"start": drift["window_start"].isoformat(),
                                        "drifted_columns": drifted,
                                        "values": _main_values(drift["values"])}  # fmt: skip
        wanted = triggers.performance
        perf = _newest(window_rows(db, self.monitor.name, kind="performance", start=since))
        if wanted is not None and perf is not None:
            value = perf["values"].get(f"performance.{wanted.metric}")
            if value is not None and value < wanted.below:
                reasons.append(f"{wanted.metric} {value:.4f} below {wanted.below:g}")
            evidence["performance_window"] = {"start": perf["window_start"].isoformat(),
                                              "values": _main_values(perf["values"])}  # fmt: skip
        if triggers.every is not None and self.now - since >= _ms_of(triggers.every):
            reasons.append(f"{_days(self.now - since)} since the last training (every "
                           f"{_days(_ms_of(triggers.every))})")  # fmt: skip
        if not reasons:
            return None
        return {"reasons": reasons, **evidence}

    def _train(self) -> tuple[int, pd.DataFrame, dict[str, Any]]:
        """Train on the matured labelled log, register the challenger; its holdout."""
        import modelloop as ml
        from modelloop.serving.predictions import predictions

        training = self.policy.training
        end = self.now - self.label_delay_ms
        start = end - _ms_of(training.window)
        cut = end - _ms_of(training.holdout)
        frame = predictions(self.policy.model, _dt(start), _dt(end),
                            deployment=self.policy.deployment, settings=self.settings)  # fmt: skip
        frame = frame[(frame["role"] != "shadow") & frame["label"].notna()]
        times = frame["timestamp"].map(_ms) if len(frame) else frame["timestamp"]
        train = frame[(times < cut).to_numpy(dtype=bool)].reset_index(drop=True)
        holdout = frame[(times >= cut).to_numpy(dtype=bool)].reset_index(drop=True)
        if len(train) < training.min_rows or holdout.empty:
            raise InvalidArgument(
                f"{len(train)} labelled predictions to train on (at least {training.min_rows}) "
                f"and {len(holdout)} to hold out in {_dt(start):%Y-%m-%d}..{_dt(end):%Y-%m-%d}"
            )
        registry = self._registry()
        champion = registry.store.get_version_by_alias(self.policy.model, "champion")
        features = [f["name"] for f in (champion.signature or {}).get("inputs", [])]
        context = TrainingContext(self.policy, features, "label", _dt(start), _dt(cut),
                                  _dt(self.now))  # fmt: skip
        function = _import(training.function)
        started = time.perf_counter()
        with ml.start_run(
            experiment=f"{self.policy.name}-training",
            params={"window_start": _dt(start).isoformat(), "window_end": _dt(cut).isoformat(),
                    "rows": len(train), "function": training.function},
        ) as run:  # fmt: skip
            model = function(train, context)
            version = ml.register_model(run, self.policy.model, model,
                                        training_data=train[features])  # fmt: skip
        evidence = {
            "version": version.version,
            "run_id": run.run_id,
            "window": [_dt(start).isoformat(), _dt(cut).isoformat()],
            "rows": len(train),
            "positives": int(train["label"].sum()),
            "holdout_rows": len(holdout),
            "seconds": round(time.perf_counter() - started, 3),
        }
        return version.version, holdout, evidence

    def _gate(self, version: int, holdout: pd.DataFrame) -> dict[str, Any]:
        from modelloop.automation.gate import evaluate_gate

        gate = self.policy.gate
        result = evaluate_gate(
            f"models:/{self.policy.model}/{version}",
            f"models:/{self.policy.model}@champion",
            holdout,
            label="label",
            metric=gate.metric,
            margin=gate.margin,
            confidence=gate.confidence,
            n_bootstrap=gate.bootstrap,
            max_latency_ms=gate.max_latency_ms,
            max_size_bytes=None if gate.max_size_mb is None else int(gate.max_size_mb * 2**20),
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
        if self.now < started + _ms_of(self.policy.rollout.shadow):
            return
        scored = self._answers(started, self.now, state.challenger_version, role="shadow")
        if scored == 0:
            self._rollback(state, {"reason": "the challenger scored no request in shadow"})
            return
        self._deploy(mode="canary")
        state = replace(state, stage=CANARY, stage_started_at=self.now)
        self._record(state, Decision("policy.canary", self.now, {
            "version": state.challenger_version, "shadow_predictions": scored,
            "canary_percent": self.policy.rollout.canary_percent}))  # fmt: skip

    def _canary(self, state: PolicyState) -> None:
        rollout = self.policy.rollout
        started = state.stage_started_at or self.now
        ended = started + _ms_of(rollout.canary)
        matured = self.label_delay_ms + int(self.monitor.grace.total_seconds() * 1000)
        if self.now < max(ended, started + matured):
            return  # the canary runs its course, and the shadow's labels arrive meanwhile
        live = self._paired_shadow(started - _ms_of(rollout.shadow), started, state)
        if live is None:  # straight into canary: each version on its share of the traffic
            if self.now < ended + matured:
                return  # wait for the canary's own labels
            live = self._live_comparison(started, ended, state)
        challenger, champion = live["challenger"], live["champion"]
        if challenger is None or champion is None:
            self._rollback(state, {**live, "reason": "too few labels to judge the rollout"})
            return
        worse = live.get("interval", [challenger - champion] * 2)[1] < -rollout.rollback_margin
        if worse:
            reason = (f"live {live['metric']} of v{state.challenger_version} {challenger:.4f} "
                      f"is below v{state.champion_version}'s {champion:.4f} by more than "
                      f"{rollout.rollback_margin:g}")  # fmt: skip
            if "interval" in live:
                low, high = live["interval"]
                reason += f" (95% interval of the difference {low:+.4f} to {high:+.4f})"
            self._rollback(state, {**live, "reason": reason})
            return
        self._promote(state, live)

    def _paired_shadow(self, start: int, end: int, state: PolicyState) -> dict[str, Any] | None:
        """Both versions on the same transactions: the shadow period, labels matured. The
        interval is a paired bootstrap of the difference, as at the gate."""
        import numpy as np

        from modelloop.automation.gate import paired_bootstrap
        from modelloop.serving.predictions import predictions

        frame = predictions(self.policy.model, _dt(start), _dt(end),
                            deployment=self.policy.deployment, settings=self.settings)  # fmt: skip
        champion = frame[(frame["role"] != "shadow")
                         & (frame["model_version"] == state.champion_version)]  # fmt: skip
        shadow = frame[(frame["role"] == "shadow")
                       & (frame["model_version"] == state.challenger_version)]  # fmt: skip
        both = champion.merge(shadow[["prediction_id", "score"]], on="prediction_id",
                              suffixes=("_champion", "_challenger"))  # fmt: skip
        both = both[both["label"].notna()]
        if len(both) < self.policy.rollout.min_labels or both["label"].nunique() < 2:
            return None
        metric = self.policy.gate.metric
        boot = paired_bootstrap(both["label"], both["score_champion"], both["score_challenger"],
                                metric=metric, n_bootstrap=self.policy.gate.bootstrap)  # fmt: skip
        low, high = np.quantile(boot.differences, [0.025, 0.975]).tolist()
        return {"metric": metric, "window": [_iso(start), _iso(end)], "paired": True,
                "challenger": boot.challenger_value, "champion": boot.champion_value,
                "interval": [low, high], "labelled": len(both)}  # fmt: skip

    def _approval(self, state: PolicyState) -> None:
        from modelloop.registry.entities import RequestStatus

        assert state.request_id is not None
        request = self._registry().store.get_request(state.request_id)
        if request.status == RequestStatus.PENDING:
            return
        if request.status == RequestStatus.APPROVED:
            self._finish_promotion(state, {"approved_by": request.decided_by})
        else:
            self._rollback(state, {"reason": f"promotion request {request.status.value}"})

    def _live_comparison(self, start: int, end: int, state: PolicyState) -> dict[str, Any]:
        """Each version's matured metric on the predictions it answered in ``[start, end)``."""
        from modelloop.monitoring.performance import performance
        from modelloop.serving.predictions import predictions

        rollout, perf = self.policy.rollout, self.monitor.performance
        frame = predictions(self.policy.model, _dt(start), _dt(end),
                            deployment=self.policy.deployment, settings=self.settings)  # fmt: skip
        answered = frame[frame["role"] != "shadow"]
        metric = self.policy.gate.metric
        result: dict[str, Any] = {"metric": metric, "window": [_iso(start), _iso(end)]}
        for who, version in (("challenger", state.challenger_version),
                             ("champion", state.champion_version)):  # fmt: skip
            part = answered[answered["model_version"] == version]
            report = performance(part, threshold=perf.threshold, min_labels=rollout.min_labels,
                                 label_delay=perf.label_delay, as_of=_dt(self.now))  # fmt: skip
            result[who] = getattr(report, metric)
            result[f"{who}_predictions"] = report.n_predictions
            result[f"{who}_labelled"] = report.n_labelled
        return result

    def _promote(self, state: PolicyState, live: dict[str, Any]) -> None:
        assert state.challenger_version is not None
        reason = f"policy {self.policy.name}: canary kept up on live traffic"
        try:
            self._set_alias("champion", state.challenger_version, reason)
        except Forbidden:
            request = self._registry().store.request_alias(
                self.policy.model, "champion", state.challenger_version, actor=self.actor,
                reason=reason,
            )  # fmt: skip
            state = replace(state, stage=APPROVAL, request_id=request.request_id,
                            stage_started_at=self.now)  # fmt: skip
            self._record(state, Decision("policy.approval_requested", self.now,
                                         {**live, "request_id": request.request_id}))  # fmt: skip
            return
        self._finish_promotion(state, live)

    def _finish_promotion(self, state: PolicyState, evidence: dict[str, Any]) -> None:
        self._deploy(mode="single")
        self._drop_challenger_alias("promoted to champion")
        done = PolicyState(IDLE, None, state.challenger_version, self.now,
                           state.last_trained_at, self.now, state.trainings)  # fmt: skip
        self._record(done, Decision("policy.promoted", self.now,
                                    {"version": state.challenger_version, **evidence}))  # fmt: skip

    def _rollback(self, state: PolicyState, evidence: dict[str, Any]) -> None:
        self._deploy(mode="single")
        self._drop_challenger_alias(str(evidence.get("reason", "rolled back")))
        done = PolicyState(IDLE, None, state.champion_version, self.now,
                           state.last_trained_at, self.now, state.trainings)  # fmt: skip
        self._record(done, Decision("policy.rolled_back", self.now,
                                    {"version": state.challenger_version, **evidence}))  # fmt: skip

    # -- effects --------------------------------------------------------------------------------

    def _registry(self) -> Registry:
        """One registry for the whole step, closed with the loop."""
        if self._opened is None:
            from modelloop.registry.client import Registry
            from modelloop.tracking.client import Client

            self._opened = Registry(Client(settings=self.settings))
        return self._opened

    def _set_alias(self, alias: str, version: int, reason: str) -> None:
        self._registry().store.set_alias(self.policy.model, alias, version, actor=self.actor,
                                         reason=reason)  # fmt: skip

    def _drop_challenger_alias(self, reason: str) -> None:
        from modelloop.errors import NotFound

        with contextlib.suppress(NotFound):  # already gone: nothing to undo
            self._registry().store.delete_alias(self.policy.model, "challenger", actor=self.actor,
                                                reason=reason)  # fmt: skip

    def _deploy(self, *, mode: str) -> None:
        from modelloop.serving.deployment import apply_deployment, get_deployment

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
        from modelloop.serving.deployment import parse_deployment

        apply_deployment(parse_deployment(record), settings=self.settings, actor=self.actor)

    def _answers(self, start: int, end: int, version: int | None, *, role: str) -> int:
        from modelloop.serving.predictions import predictions

        frame = predictions(self.policy.model, _dt(start), _dt(end), with_labels=False,
                            deployment=self.policy.deployment, settings=self.settings)  # fmt: skip
        return int(((frame["model_version"] == version) & (frame["role"] == role)).sum())

    def _record(self, state: PolicyState, decision: Decision | None) -> None:
        """Store the state and append the decision's audit event, in one transaction."""
        from sqlalchemy import insert, select, update

        from modelloop import audit
        from modelloop.automation.policy import policy_database
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
                audit.append(conn, time=decision.time, actor=self.actor, action=decision.action,
                             object_type="policy", object_id=self.policy.name, before=None,
                             after=_plain(decision.evidence))  # fmt: skip
        if decision is not None:
            self.decisions.append(decision)
            log.info("policy %s: %s %s", self.policy.name, decision.action, decision.evidence)


def _newest(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    ok = [r for r in rows if r["status"] in ("ok", "insufficient_labels")]
    return ok[-1] if ok else None


def _main_values(values: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in values.items() if not k.startswith("drift.column.")}


def _import(path: str) -> Any:
    module, _, attribute = path.partition(":")
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        raise InvalidArgument(f"Cannot import the training function {path!r}: {exc}") from None


def _plain(value: Any) -> Any:
    from modelloop.monitoring.store import json_safe

    return json_safe(value)


def _ms_of(delta: Any) -> int:
    return int(delta.total_seconds() * 1000)


def _ms(moment: Any) -> int:
    from modelloop.monitoring.runner import epoch_ms

    return epoch_ms(moment)


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _iso(ms: int) -> str:
    return _dt(ms).isoformat()


def _days(ms: int) -> str:
    return f"{ms / _DAY_MS:g}d"
