"""Where stored deployments live: one small protocol, and the one place that picks its backend.

Implementations: :class:`modelloop.serving.sql.SqlDeploymentStore` (the ``deployments`` table of
SQLite/PostgreSQL) and :class:`modelloop.serving.http.HttpDeploymentStore` (a modelloop server).
One contract suite, ``tests/serving/test_deployment_store_contract.py``, runs against all of them:
the same answers, the same exception classes and messages.

Every change names its ``actor``. The SQL store records it as given; the HTTP store sends it as
``X-Modelloop-User``, which only a server without authentication believes (trust on loopback): a
server with authentication records the user whose token the request carries. Applying the same
deployment again changes nothing and records nothing.
"""

from __future__ import annotations

import builtins
from typing import Protocol

from modelloop.serving.deployment import Deployment, StoredDeployment
from modelloop.settings import Settings


class DeploymentStore(Protocol):
    def apply(self, deployment: Deployment, *, actor: str) -> bool:
        """Create or replace the deployment of that name (audited); False if it was stored like
        this already. Its models must resolve now: NotFound naming each one that does not (with
        the aliases or versions that model has), so a typo fails here, not in ``serve``."""
        ...

    def get(self, name: str) -> StoredDeployment:
        """NotFound (saying how to create it) when none has that name."""
        ...

    def list(self) -> builtins.list[StoredDeployment]:
        """Every stored deployment, by name."""
        ...

    def delete(self, name: str, *, actor: str) -> bool:
        """Delete it (audited, with what it was); False if there was none."""
        ...

    def close(self) -> None: ...


def open_deployment_store(settings: Settings) -> DeploymentStore:
    """The deployments backend the settings name: the server at ``MODELLOOP_TRACKING_URI`` when
    it is set, else the local metadata database."""
    if settings.tracking_uri is not None:
        from modelloop.serving.http import HttpDeploymentStore

        return HttpDeploymentStore(settings.tracking_uri, token=settings.token)
    from modelloop.serving.sql import SqlDeploymentStore
    from modelloop.store import open_database

    return SqlDeploymentStore(open_database(settings.database_url))
