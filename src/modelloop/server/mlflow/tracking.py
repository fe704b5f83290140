"""MLflow's tracking API: experiments, runs, params, metrics, tags, search, inputs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter

if TYPE_CHECKING:
    from modelloop.settings import Settings
    from modelloop.tracking.sql import SqlTrackingStore


def tracking_routes(store: SqlTrackingStore, settings: Settings) -> APIRouter:
    return APIRouter()
