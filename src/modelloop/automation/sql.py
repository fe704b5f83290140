"""Policies on a SQL database (SQLite or PostgreSQL): :class:`SqlPolicyStore`.

A policy is a declared configuration (:mod:`modelloop.configs`): one JSON document per name in
``policies``, every change an audit event with the document before and after. Where its loop
stands is a row of ``policy_state``, written only by the loop (:meth:`SqlPolicyStore.record`) in
the transaction that appends the audit event explaining it; so the loop's decisions are read
back from the audit trail.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select, update

from modelloop import audit, configs
from modelloop.automation.decision import Decision
from modelloop.automation.entities import (
    Policy,
    PolicyState,
    check_limit,
    is_policy_name,
    parse_policy,
    policy_not_found,
)
from modelloop.errors import InvalidArgument, NotFound
from modelloop.store import tables as t

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from modelloop.settings import Settings

_STATE = PolicyState.__slots__
_DECLARED = ("policy.apply", "policy.delete")  # audited on the policy, but no decision of its loop


class SqlPolicyStore:
    """Implements :class:`~modelloop.automation.store.PolicyStore` on the metadata database the
    settings name (the deployments, models and monitors a policy names are looked up there)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = configs.local_database(settings, "Policies")

    def __repr__(self) -> str:
        return f"SqlPolicyStore({self.db!r})"

    def close(self) -> None:
        """The database is shared process-wide (see ``open_database``); nothing to release."""

    def apply(self, policy: Policy | Mapping[str, Any], *, actor: str) -> bool:
        checked = parse_policy(dict(policy) if isinstance(policy, Mapping) else policy)
        actor = audit.check_actor(actor)

        def document(_: object) -> dict[str, Any]:
            # Checked under the save's audit lock, which a delete of what it names also takes:
            # nothing it names can go between the check and the save.
            check_references(checked, self.settings)
            return checked.to_record()

        return configs.save(self.db, t.policies, checked.name, document, actor=actor, kind="policy")

    def get(self, name: str) -> Policy:
        rows = configs.stored(self.db, t.policies, name) if is_policy_name(name) else []
        if not rows:
            raise policy_not_found(name)
        return _policy(rows[0])

    def list(self) -> list[Policy]:
        return [_policy(row) for row in configs.stored(self.db, t.policies)]

    def delete(self, name: str, *, actor: str) -> bool:
        actor = audit.check_actor(actor)
        if not is_policy_name(name):
            return False

        def its_state(conn: Connection) -> None:
            conn.execute(delete(t.policy_state).where(t.policy_state.c.name == name))

        return configs.remove(
            self.db, t.policies, name, actor=actor, kind="policy", before_delete=its_state
        )

    def state(self, name: str) -> PolicyState:
        found = self._states(name) if is_policy_name(name) else {}
        if name not in found:
            raise policy_not_found(name)
        return found[name]

    def states(self) -> dict[str, PolicyState]:
        return self._states(None)

    def decisions(self, name: str, limit: int | None = None) -> builtins.list[Decision]:
        limit = check_limit(limit)
        e = t.audit_events.c
        query = (
            select(e.action, e.time, e.after)
            .where(e.object_type == "policy", e.object_id == name, e.action.not_in(_DECLARED))
            .order_by(e.seq.desc())
        )
        if limit is not None:
            query = query.limit(limit)
        with self.db.read() as conn:
            if not is_policy_name(name) or not _exists(conn, name):
                raise policy_not_found(name)
            rows = conn.execute(query).all()
        return [_decision(row) for row in reversed(rows)]

    # -- the loop's own write (not part of PolicyStore: the loop runs where the data is) --------

    def record(
        self, name: str, state: PolicyState, decision: Decision | None, *, actor: str
    ) -> None:
        """Store where the policy's loop stands and append the decision's audit event (action
        ``policy.*``, its evidence as strict JSON), in one transaction."""
        from modelloop.monitoring.store import json_safe

        s = t.policy_state
        values = state.to_record()
        with self.db.write() as conn:
            audit.lock(conn)
            if not _exists(conn, name):
                raise policy_not_found(name)  # deleted meanwhile: nothing to record on
            if conn.execute(select(s.c.name).where(s.c.name == name)).first() is None:
                conn.execute(insert(s).values(name=name, **values))
            else:
                conn.execute(update(s).where(s.c.name == name).values(**values))
            if decision is not None:
                audit.append(
                    conn,
                    time=decision.time,
                    actor=actor,
                    action=decision.action,
                    object_type="policy",
                    object_id=name,
                    before=None,
                    after=json_safe(decision.evidence),
                )

    def _states(self, name: str | None) -> dict[str, PolicyState]:
        p, s = t.policies, t.policy_state
        query = select(p.c.name, *(s.c[k] for k in _STATE)).select_from(
            p.outerjoin(s, s.c.name == p.c.name)
        )
        if name is not None:
            query = query.where(p.c.name == name)
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return {
            row.name: PolicyState("idle")
            if row.stage is None
            else PolicyState(**{k: getattr(row, k) for k in _STATE})
            for row in rows
        }


def check_references(policy: Policy, settings: Settings) -> None:
    """NotFound unless the deployment, registered model and monitor the policy names exist,
    with one ``{field, message}`` detail for each that does not (an InvalidArgument naming the
    field for a name none can have)."""
    from modelloop.monitoring.fluent import get_monitor
    from modelloop.registry.client import Registry
    from modelloop.serving.fluent import get_deployment
    from modelloop.tracking.client import Client

    registry = Registry(Client(settings=settings))
    lookups: dict[str, Callable[[], object]] = {
        "deployment": lambda: get_deployment(policy.deployment, settings=settings),
        "model": lambda: registry.get_model(policy.model),
        "monitor": lambda: get_monitor(policy.monitor, settings=settings),
    }
    problems = []
    try:
        for field, lookup in lookups.items():
            try:
                lookup()
            except NotFound as exc:
                problems.append({"field": field, "message": exc.message})
            except InvalidArgument as exc:  # e.g. a model name no model can have
                details = [{"field": field, "message": exc.message}]
                raise InvalidArgument(exc.message, details) from None
    finally:
        registry.close()
        registry.client.close()
    if problems:
        lines = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        raise NotFound(f"Policy {policy.name!r} names what does not exist: {lines}", problems)


def _exists(conn: Connection, name: str) -> bool:
    p = t.policies
    return conn.execute(select(p.c.name).where(p.c.name == name)).first() is not None


def _policy(row: Any) -> Policy:
    return parse_policy(json.loads(row.config), f"stored policy {row.name!r}")


def _decision(row: Any) -> Decision:
    return Decision(row.action, row.time, json.loads(row.after) if row.after else {})
