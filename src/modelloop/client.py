"""``ml.Client``: the one handle on a modelloop store or server.

It is the tracking client (experiments, runs, metrics, artifacts) and it opens every other
domain's store from the same settings on first use: ``client.registry``, ``client.datasets``,
``client.deployments``, ``client.monitors``, ``client.policies`` and ``client.users``. Each domain
decides SQL or HTTP in its own ``open_*_store`` from ``MODELLOOP_TRACKING_URI``; this class only
holds them, so local and remote work through the same object and ``close`` releases them all.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from modelloop.tracking import fluent
from modelloop.tracking.client import Client as TrackingClient

if TYPE_CHECKING:
    from modelloop.auth import UserStore
    from modelloop.automation.store import PolicyStore
    from modelloop.datasets.store import DatasetStore
    from modelloop.monitoring.store import MonitorStore
    from modelloop.registry.client import Registry
    from modelloop.serving.store import DeploymentStore

_DOMAINS = ("registry", "datasets", "deployments", "monitors", "policies", "users")


class Client(TrackingClient):
    """Tracking here, and each domain's store from the same settings, opened when first used."""

    @cached_property
    def registry(self) -> Registry:
        """Registered models, versions, aliases, approvals and the audit trail."""
        from modelloop.registry.client import Registry

        return Registry(self)

    @cached_property
    def datasets(self) -> DatasetStore:
        """Dataset versions, their data, validations and the runs that read them."""
        from modelloop.datasets.store import open_dataset_store

        return open_dataset_store(self.settings)

    @cached_property
    def deployments(self) -> DeploymentStore:
        """Declared serving configurations."""
        from modelloop.serving.store import open_deployment_store

        return open_deployment_store(self.settings)

    @cached_property
    def monitors(self) -> MonitorStore:
        """Monitors, their window results and alerts."""
        from modelloop.monitoring.client import open_monitor_store

        return open_monitor_store(self.settings)

    @cached_property
    def policies(self) -> PolicyStore:
        """Automation policies, their state and decisions."""
        from modelloop.automation.store import open_policy_store

        return open_policy_store(self.settings)

    @cached_property
    def users(self) -> UserStore:
        """Who may use a server (admins only, through a server)."""
        from modelloop.auth import open_user_store

        return open_user_store(self.settings)

    def close(self) -> None:
        for name in _DOMAINS:
            opened = self.__dict__.pop(name, None)
            if opened is not None:
                opened.close()
        super().close()


fluent.make_default_clients(Client)


def get_client() -> Client:
    """The process-wide handle for the current settings, remade when they change."""
    client = fluent.get_client()
    assert isinstance(client, Client)  # installed above
    return client
