"""The storage interface of automation policies: the declared policies, where each one's loop
stands, and the decisions it took.

Implementations: :class:`modelloop.automation.sql.SqlPolicyStore` (SQLite/PostgreSQL) and
:class:`modelloop.automation.http.HttpPolicyStore` (a modelloop server). One contract suite,
``tests/automation/test_policy_store_contract.py``, runs against all of them. Which one the SDK,
the command line and the web UI use is decided in :func:`open_policy_store` and nowhere else.

Read and write only: running the loop (:mod:`modelloop.automation.loop`) is not the store's. The
loop runs where the data is, on the metadata database; through a server, ``step_policy`` and
``start_rollout`` ask the server to run them (its ``step`` and ``rollout`` routes).

Every change names its ``actor``: the SQL store records it as given; the HTTP store sends it as
``X-Modelloop-User``, which only a server without authentication believes (a server with
authentication records the user whose token the request carries).

A name no policy can have is refused where a policy is declared (``apply``: InvalidArgument on
the field ``name``); asked for, it is a policy that is not stored like any other (NotFound;
``delete`` answers False).
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from modelloop.automation.decision import Decision
from modelloop.automation.entities import Policy, PolicyState

if TYPE_CHECKING:
    from modelloop.settings import Settings


class PolicyStore(Protocol):
    def apply(self, policy: Policy | Mapping[str, Any], *, actor: str) -> bool:
        """Create or replace the policy of that name (validated whole, audited as
        ``policy.apply``); False, and nothing recorded, if it is the one stored already. The
        deployment, registered model and monitor it names must exist: NotFound otherwise, with
        one ``{field, message}`` detail for each missing one."""
        ...

    def get(self, name: str) -> Policy: ...
    def list(self) -> builtins.list[Policy]:
        """Every stored policy, by name."""
        ...

    def delete(self, name: str, *, actor: str) -> bool:
        """Delete the policy and its loop's state (audited as ``policy.delete``; its decisions
        stay in the audit trail); False if there was none."""
        ...

    def state(self, name: str) -> PolicyState:
        """Where the policy's loop stands (``idle`` before its first step)."""
        ...

    def states(self) -> dict[str, PolicyState]:
        """Where the loop of every stored policy stands, by name, in one read (a list page)."""
        ...

    def decisions(self, name: str, limit: int | None = None) -> builtins.list[Decision]:
        """The policy's timeline: its loop's decisions, oldest first, read from the audit trail
        (declaring or deleting a policy is no decision); with ``limit``, the newest ones."""
        ...

    def close(self) -> None: ...


def open_policy_store(settings: Settings) -> PolicyStore:
    """The policy store the settings name: the server at ``MODELLOOP_TRACKING_URI`` when it is
    set, else the metadata database."""
    if settings.tracking_uri is not None:
        from modelloop.automation.http import HttpPolicyStore

        return HttpPolicyStore(settings.tracking_uri, token=settings.token)
    from modelloop.automation.sql import SqlPolicyStore

    return SqlPolicyStore(settings)
