"""MLflow's model registry API: registered models, versions, aliases, tags, search."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter

if TYPE_CHECKING:
    from modelloop.registry.store import RegistryStore
    from modelloop.settings import Settings
    from modelloop.tracking.sql import SqlTrackingStore


def registry_routes(
    registry: RegistryStore, store: SqlTrackingStore, settings: Settings
) -> APIRouter:
    return APIRouter()
