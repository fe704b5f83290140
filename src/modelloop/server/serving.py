"""Serving routes under ``/api/v1``: stored deployments and the prediction log.

Deployments are declared (PUT, audited; its models must exist), read and deleted through
:class:`~modelloop.serving.sql.SqlDeploymentStore`, as ``ml.apply_deployment`` does locally:
:class:`~modelloop.serving.http.HttpDeploymentStore` is the client of these routes. Reads need the
viewer role and changes (PUT, DELETE) the editor role, both checked by the auth middleware.
``GET /api/v1/predictions`` is ``ml.load_predictions`` answered by the server: its own
prediction log with the labels that came back, as one Parquet file.
"""

from __future__ import annotations

import io
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field
from starlette.responses import Response

from modelloop.errors import InvalidArgument, NotFound
from modelloop.registry.entities import check_model_name
from modelloop.server.monitoring import Instant
from modelloop.server.registry import _ERRORS, Actor
from modelloop.server.schemas import (
    CONFIG_NAME,
    MODEL_NAME,
    Checked,
    JsonObject,
    Pattern,
    blame,
    config_body,
)
from modelloop.server.tracking import _OrjsonRoute
from modelloop.serving.deployment import NAME_RULES, Deployment, Mode, parse_deployment
from modelloop.serving.http import PARQUET
from modelloop.serving.predictions import load_predictions
from modelloop.serving.sql import SqlDeploymentStore
from modelloop.settings import Settings
from modelloop.store import open_database
from modelloop.web.responses import OrjsonResponse

DeploymentName = Annotated[
    str,
    Path(description=f"Deployment name: {NAME_RULES}", examples=["fraud-online"]),
    *Pattern(CONFIG_NAME, NAME_RULES),
]
DeploymentText = Annotated[str, *Pattern(CONFIG_NAME, NAME_RULES)]
ModelText = Annotated[str, *Checked(MODEL_NAME, check_model_name)]
_REF = "NAME@ALIAS (follows the alias) or NAME/VERSION (one version)"


class DeploymentOut(BaseModel):
    """A stored deployment: its document (``Deployment.to_record``) and who stored it when."""

    name: str = Field(examples=["fraud-online"])
    model: str = Field(description=_REF, examples=["fraud-detector@champion"])
    challenger: str | None = Field(default=None, description=f"{_REF}; absent in mode single")
    mode: Mode
    canary_percent: float | None = Field(default=None, description="Absent unless mode canary")
    sticky_key: str | None = Field(default=None, description="Absent unless set (canary)")
    log_keys: list[str] = Field(default_factory=list, description="Absent when none")
    explain_top_k: int
    log_predictions: bool
    updated_at: int = Field(description="ms since the epoch")
    updated_by: str


class DeploymentList(BaseModel):
    deployments: list[DeploymentOut]


class DeploymentApplied(BaseModel):
    changed: bool = Field(description="False: the stored deployment was this one already")
    deployment: DeploymentOut


def serving_router(settings: Settings) -> APIRouter:
    router = APIRouter(
        prefix="/api/v1", tags=["serving"], route_class=_OrjsonRoute, responses=_ERRORS
    )
    store = SqlDeploymentStore(open_database(settings.database_url))

    @router.get("/deployments", response_model=DeploymentList)
    def list_deployments() -> Response:
        return OrjsonResponse({"deployments": [s.to_record() for s in store.list()]})

    @router.put(
        "/deployments/{name}",
        response_model=DeploymentApplied,
        openapi_extra=config_body(Deployment, "deployment"),
    )
    def apply_deployment(name: DeploymentName, body: JsonObject, actor: Actor) -> Response:
        """Create or replace the deployment (audited). The models it names must resolve now
        (404 naming each that does not, with the aliases or versions that model has); rules
        beyond the schema (a challenger exactly when the mode is shadow or canary,
        ``canary_percent`` exactly in mode canary) are 422s naming the field. Serving processes
        following it pick the change up at their next poll."""
        config = parse_deployment({**body, "name": body.get("name", name)})
        if config.name != name:
            raise InvalidArgument(
                f"The body names deployment {config.name!r} but the URL {name!r}",
                [{"field": "name", "message": "must match the URL"}],
            )
        changed = store.apply(config, actor=actor.name)
        return OrjsonResponse({"changed": changed, "deployment": store.get(name).to_record()})

    @router.get("/deployments/{name}", response_model=DeploymentOut)
    def get_deployment(name: DeploymentName) -> Response:
        return OrjsonResponse(store.get(name).to_record())

    @router.delete("/deployments/{name}", status_code=204, response_class=Response)
    def delete_deployment(name: DeploymentName, actor: Actor) -> Response:
        """Delete the deployment (audited). Serving processes following it keep serving what
        they loaded."""
        if not store.delete(name, actor=actor.name):
            raise NotFound(f"No deployment named {name!r}")
        return Response(status_code=204)

    @router.get(
        "/predictions",
        response_class=Response,
        responses={
            200: {
                "description": "The predictions as one Parquet file (pandas metadata included)",
                "content": {PARQUET: {"schema": {"type": "string", "format": "binary"}}},
            }
        },
    )
    def read_predictions(
        model: Annotated[ModelText, Query(description="Registered model name")],
        start: Annotated[Instant | None, Query(description="Made at or after")] = None,
        end: Annotated[Instant | None, Query(description="Made before; not before start")] = None,
        deployment: Annotated[
            DeploymentText | None, Query(description="Only this deployment's")
        ] = None,
        version: Annotated[
            int | None, Query(ge=1, lt=2**31, description="Only this model version's")
        ] = None,
        with_labels: Annotated[
            bool, Query(description="Join the labels that arrived (label, label_text, ...)")
        ] = True,
    ) -> Response:
        """``ml.load_predictions``: the model's logged predictions made in ``[start, end)``, oldest
        first, with the labels that arrived since; an empty table when there are none."""
        with blame("query.end"):
            frame = load_predictions(
                model,
                start,
                end,
                deployment=deployment,
                version=version,
                with_labels=with_labels,
                settings=settings,
            )
        return Response(_parquet(frame), media_type=PARQUET)

    return router


def _parquet(frame: Any) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()
