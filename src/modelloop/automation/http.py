"""Policies through a modelloop server: :class:`PolicyStore` over ``/api/v1/policies``.

Requests go through :class:`modelloop.transport.Transport`, so errors come back as the same
:mod:`modelloop.errors` classes, messages and details as from the SQL store (the server checks a
policy's references with its own store). A policy is validated here before it is sent, and a
name no policy can have is answered here as the SQL store answers it, so a bad document or name
fails alike on every backend without a round trip. Each change sends its ``actor`` as
``X-Modelloop-User``: a server without authentication records that name; a server with
authentication records the user whose token the request carries.

Beyond the store, :meth:`HttpPolicyStore.step` and :meth:`HttpPolicyStore.start_rollout` ask the
server to run its loop (the loop runs where the data is, at the server's store clock).
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any

from modelloop.audit import check_actor
from modelloop.automation.decision import Decision
from modelloop.automation.entities import (
    Policy,
    PolicyState,
    check_limit,
    is_policy_name,
    parse_policy,
    policy_not_found,
)
from modelloop.errors import NotFound
from modelloop.transport import HttpStore, segment


class HttpPolicyStore(HttpStore):
    """Implements :class:`~modelloop.automation.store.PolicyStore` against a server."""

    def apply(self, policy: Policy | Mapping[str, Any], *, actor: str) -> bool:
        checked = parse_policy(dict(policy) if isinstance(policy, Mapping) else policy)
        answer = self._call("PUT", _p(checked.name), checked.to_record(), actor=actor)
        return bool(answer["changed"])

    def get(self, name: str) -> Policy:
        return _policy(self._call("GET", _p(_known(name))))

    def list(self) -> builtins.list[Policy]:
        return [_policy(p) for p in self._call("GET", "/policies")["policies"]]

    def delete(self, name: str, *, actor: str) -> bool:
        check_actor(actor)
        if not is_policy_name(name):
            return False
        try:
            self._call("DELETE", _p(name), actor=actor)
        except NotFound:
            return False
        return True

    def state(self, name: str) -> PolicyState:
        return _state(self._call("GET", _p(_known(name)))["state"])

    def states(self) -> dict[str, PolicyState]:
        return {p["name"]: _state(p["state"]) for p in self._call("GET", "/policies")["policies"]}

    def decisions(self, name: str, limit: int | None = None) -> builtins.list[Decision]:
        limit = check_limit(limit)
        params = None if limit is None else {"limit": str(limit)}
        answer = self._call("GET", f"{_p(_known(name))}/timeline", params=params)
        return [_decision(d) for d in answer["decisions"]]

    # -- the server's loop ---------------------------------------------------------------------

    def step(self, name: str, *, actor: str) -> builtins.list[Decision]:
        """Have the server step the policy's loop once, at its store clock."""
        answer = self._call("POST", f"{_p(_known(name))}/step", actor=actor)
        return [_decision(d) for d in answer["decisions"]]

    def start_rollout(self, name: str, version: int, *, stage: str, actor: str) -> Decision:
        """Have the server put ``version`` under the policy's watch, in ``stage``."""
        body = {"version": version, "stage": stage}
        return _decision(self._call("POST", f"{_p(_known(name))}/rollout", body, actor=actor))

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        actor: str | None = None,
        params: Mapping[str, str | None] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """As every store's, the actor checked here first, as the SQL store checks it."""
        checked = None if actor is None else check_actor(actor)
        return super()._call(
            method, path, body, actor=checked, params=params, content=content, headers=headers
        )


def _known(name: str) -> str:
    """``name``, or NotFound as from the SQL store when no policy can have it (the server's
    route would refuse it as a malformed path instead)."""
    if not is_policy_name(name):
        raise policy_not_found(name)
    return name


def _p(name: str) -> str:
    return f"/policies/{segment(name)}"


def _policy(data: dict[str, Any]) -> Policy:
    record = {k: v for k, v in data.items() if k != "state"}
    return parse_policy(record, f"policy {data.get('name')!r} from the server")


def _state(data: dict[str, Any]) -> PolicyState:
    return PolicyState(**data)


def _decision(data: dict[str, Any]) -> Decision:
    return Decision(str(data["action"]), int(data["time"]), dict(data["evidence"]))
