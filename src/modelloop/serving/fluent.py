"""The deployments SDK: ``ml.apply_deployment``, ``ml.get_deployment``, ``ml.list_deployments``,
``ml.delete_deployment``, on the local store or through a server (``MODELLOOP_TRACKING_URI``)
alike: :func:`~modelloop.serving.store.open_deployment_store` decides which, nowhere else.

Changes are recorded as ``actor``, by default ``MODELLOOP_USER`` or the OS user; through a server
with authentication, as the user whose token is configured. Servers started with
``modelloop serve --deployment NAME`` pick a change up at their next poll.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from modelloop.errors import NotFound
from modelloop.serving.deployment import (
    Deployment,
    StoredDeployment,
    load_deployment_file,
    parse_deployment,
)
from modelloop.serving.store import DeploymentStore, open_deployment_store
from modelloop.settings import Settings, load_settings
from modelloop.tracking.source import current_user


def apply_deployment(
    deployment: Deployment | Mapping[str, Any] | str | Path,
    *,
    settings: Settings | None = None,
    actor: str | None = None,
) -> bool:
    """Create or replace a stored deployment from a :class:`Deployment`, a mapping or a YAML
    file (audited); False when it was stored like this already. Its models must resolve now
    (NotFound naming each one that does not), so a typo fails here rather than in ``serve``."""
    if isinstance(deployment, Deployment):
        config = deployment
    elif isinstance(deployment, str | Path):
        config = load_deployment_file(deployment)
    else:
        config = parse_deployment(
            dict(deployment) if isinstance(deployment, Mapping) else deployment
        )
    with _store(settings) as store:
        return store.apply(config, actor=actor or current_user())


def get_deployment(name: str, *, settings: Settings | None = None) -> StoredDeployment:
    """The stored deployment (``.deployment``, ``.updated_at``, ``.updated_by``); NotFound
    when none has that name."""
    with _store(settings) as store:
        return store.get(name)


def list_deployments(*, settings: Settings | None = None) -> list[StoredDeployment]:
    """Every stored deployment, by name."""
    with _store(settings) as store:
        return store.list()


def delete_deployment(
    name: str, *, settings: Settings | None = None, actor: str | None = None
) -> None:
    """Delete a stored deployment (audited); NotFound if there is none. Servers following it
    keep serving what they loaded."""
    with _store(settings) as store:
        if not store.delete(name, actor=actor or current_user()):
            raise NotFound(f"No deployment named {name!r}")


@contextmanager
def _store(settings: Settings | None) -> Iterator[DeploymentStore]:
    store = open_deployment_store(settings or load_settings())
    try:
        yield store
    finally:
        store.close()
