"""MLflow's artifact proxy (``mlflow-artifacts``) and logged models."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter

if TYPE_CHECKING:
    from modelloop.settings import Settings
    from modelloop.tracking.sql import SqlTrackingStore


def artifacts_routes(store: SqlTrackingStore, settings: Settings) -> APIRouter:
    return APIRouter()


def logged_model_routes(store: SqlTrackingStore, settings: Settings) -> APIRouter:
    return APIRouter()
