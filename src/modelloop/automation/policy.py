"""Automation policies for the SDK: declare, read and delete them, locally or through a server.

What a policy is (its YAML document, validated whole) lives in
:mod:`modelloop.automation.entities`; where policies are stored, in
:mod:`modelloop.automation.store`. These functions open the store the settings name
(:func:`~modelloop.automation.store.open_policy_store`: the server at ``MODELLOOP_TRACKING_URI``
when it is set, else the metadata database), so they work alike on both; a change is recorded as
``actor`` (default ``MODELLOOP_USER`` or the OS user; a server with authentication records its
token's user instead).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from modelloop.automation.entities import (
    Policy,
    PolicyState,
    load_policy_file,
    parse_policy,
    policy_not_found,
)
from modelloop.automation.store import PolicyStore, open_policy_store
from modelloop.settings import Settings, load_settings
from modelloop.tracking.source import current_user

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "Policy",
    "PolicyState",
    "apply_policy",
    "delete_policy",
    "get_policy",
    "list_policies",
    "load_policy_file",
    "logged",
    "parse_policy",
    "policy_state",
    "policy_store",
]


@contextmanager
def policy_store(settings: Settings | None = None) -> Iterator[PolicyStore]:
    """The policy store the settings (default: the environment's) name, closed on exit."""
    store = open_policy_store(settings or load_settings())
    try:
        yield store
    finally:
        store.close()


def apply_policy(
    policy: Policy | Mapping[str, Any],
    *,
    settings: Settings | None = None,
    actor: str | None = None,
) -> bool:
    """Create or replace the stored policy of that name (audited); False if unchanged.

    The deployment, registered model and monitor it names must exist now (NotFound with one
    detail per missing one), so a typo fails here rather than at the loop's first step."""
    with policy_store(settings) as store:
        return store.apply(policy, actor=actor or current_user())


def get_policy(name: str, *, settings: Settings | None = None) -> Policy:
    with policy_store(settings) as store:
        return store.get(name)


def list_policies(*, settings: Settings | None = None) -> list[Policy]:
    with policy_store(settings) as store:
        return store.list()


def delete_policy(name: str, *, settings: Settings | None = None, actor: str | None = None) -> None:
    """Delete a policy and its loop's state (audited; its decisions stay in the audit trail);
    NotFound if there is none, as for monitors and deployments. A rollout in progress is left
    as it stands: the deployment keeps its current mode."""
    with policy_store(settings) as store:
        if not store.delete(name, actor=actor or current_user()):
            raise policy_not_found(name)


def policy_state(name: str, *, settings: Settings | None = None) -> PolicyState:
    """Where the policy's loop stands (``idle`` before its first step); NotFound for a policy
    that is not stored."""
    with policy_store(settings) as store:
        return store.state(name)


def logged(
    policy: Policy, start: int, end: int, *, settings: Settings, with_labels: bool = True
) -> pd.DataFrame:
    """The predictions the policy's deployment logged in ``[start, end)`` (ms), oldest first,
    with the labels that came back unless ``with_labels`` is False: what the loop reads."""
    from modelloop.clock import from_ms
    from modelloop.serving.predictions import load_predictions

    return load_predictions(
        policy.model,
        from_ms(start),
        from_ms(end),
        deployment=policy.deployment,
        with_labels=with_labels,
        settings=settings,
    )
