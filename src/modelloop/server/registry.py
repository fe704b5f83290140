"""The registry and audit routes under ``/api/v1``: HTTP in, store calls, entities out.

The actor of every change is the request's principal, which the auth middleware decides (the
token's user; on a server without authentication, the ``X-Modelloop-User`` header). Reads need
the viewer role and changes the editor role (both checked by the middleware); deciding an alias
request needs the approver role, checked here. Every other rule is the store's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from starlette.requests import Request
from starlette.responses import Response

from modelloop import audit
from modelloop.artifacts import canonical_path
from modelloop.auth import Principal, Role
from modelloop.errors import Forbidden
from modelloop.registry.entities import (
    ModelVersionSpec,
    RequestStatus,
    VersionStatus,
    check_model_name,
    check_version_status,
)
from modelloop.registry.sql import SqlRegistryStore
from modelloop.server.schemas import (
    ALIAS,
    ANCHOR,
    INT64_MAX,
    INTEGRAL,
    MODEL_NAME,
    AliasOut,
    AliasRequestList,
    AliasRequestOut,
    ArtifactPathText,
    AuditLog,
    AuditVerificationOut,
    Checked,
    ErrorOut,
    JsonObject,
    Key,
    ModelList,
    ModelName,
    ModelVersionOut,
    Pairs,
    Pattern,
    Reason,
    RegisteredModelOut,
    RunIdText,
    Value,
    VersionList,
    blame,
    keyed,
)
from modelloop.server.tracking import _OrjsonRoute
from modelloop.web.middleware import request_principal
from modelloop.web.responses import OrjsonResponse

_NAME_RULES = "use 1-256 letters, digits, '_', '.' or '-', starting with a letter or digit"
_ALIAS_RULES = (
    "a lowercase identifier (a-z, 0-9, '_', '-', starting with a letter, at most 64), "
    "neither 'latest' nor shaped like a version (v3)"
)
Name = Annotated[
    str,
    Path(description=f"Registered model name: {_NAME_RULES}", examples=["fraud-detector"]),
    *Checked(MODEL_NAME, check_model_name),
]
Version = Annotated[int, Path(ge=1, lt=2**31, description="Version number, from 1")]
VersionNumber = Annotated[
    int, Field(ge=1, lt=2**31, description="Version number, from 1"), INTEGRAL
]
AliasName = Annotated[
    str,
    Path(description=f"Alias, e.g. champion: {_ALIAS_RULES}", examples=["champion"]),
    *Pattern(ALIAS, _ALIAS_RULES),
]
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in (401, 403, 404, 409, 422)
}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


ExpectedVersion = Annotated[
    int | None,
    Field(ge=0, lt=2**31, description="Compare-and-set: 0 = must not exist, n = must point at n"),
    INTEGRAL,
]


class ModelCreate(_Body):
    name: ModelName
    description: Value | None = None
    tags: Pairs = Field(default_factory=dict)


class DescriptionAndTags(_Body):
    description: Value | None = None
    tags: Pairs = Field(default_factory=dict)
    delete_tags: list[Key] = Field(default_factory=list, description="Tag keys to delete")


class Rename(_Body):
    new_name: ModelName


class Deletion(_Body):
    reason: Reason


class VersionCreate(_Body):
    run_id: RunIdText
    artifact_path: ArtifactPathText = "model"
    flavor: Annotated[str, Field(min_length=1)] | None = None
    signature: JsonObject | None = None
    description: Value | None = None
    tags: Pairs = Field(default_factory=dict)
    metrics: Annotated[
        dict[Key, Annotated[float, Field(allow_inf_nan=False)]],
        WithJsonSchema(keyed({"type": "number"})),
    ] = Field(default_factory=dict, description="Finite numbers")
    dataset_digests: Pairs = Field(default_factory=dict)


class StatusChange(_Body):
    status: str = Field(
        examples=["ARCHIVED"], json_schema_extra={"enum": [s.value for s in VersionStatus]}
    )
    reason: Reason


class AliasMove(_Body):
    version: VersionNumber
    reason: Reason
    expected_version: ExpectedVersion = None


class AliasDelete(_Body):
    reason: Reason
    expected_version: ExpectedVersion = None


class AliasRequestCreate(_Body):
    version: VersionNumber
    reason: Reason


class Approval(_Body):
    reason: Reason | None = None


class Decision(_Body):
    reason: Reason


def _requires(role: Role) -> Callable[[Request], Principal]:
    def check(request: Request) -> Principal:
        principal = request_principal(request)
        if not principal.role.allows(role):
            raise Forbidden(
                f"User {principal.name!r} has the {principal.role.value} role; this needs "
                f"{role.value} or higher"
            )
        return principal

    return check


Actor = Annotated[Principal, Depends(request_principal)]
Approver = Annotated[Principal, Depends(_requires(Role.approver))]
Admin = Annotated[Principal, Depends(_requires(Role.admin))]


def registry_router(store: SqlRegistryStore) -> APIRouter:
    router = APIRouter(
        prefix="/api/v1", tags=["registry"], route_class=_OrjsonRoute, responses=_ERRORS
    )

    # -- models and versions -------------------------------------------------------------------

    @router.get("/models", response_model=ModelList)
    def list_models() -> Response:
        return OrjsonResponse({"models": store.list_registered_models()})

    @router.post("/models", status_code=201, response_model=RegisteredModelOut)
    def create_model(body: ModelCreate, actor: Actor) -> Response:
        created = store.create_registered_model(
            body.name, actor=actor.name, description=body.description, tags=body.tags
        )
        return OrjsonResponse(created, 201)

    @router.get("/models/{name}", response_model=RegisteredModelOut)
    def get_model(name: Name) -> Response:
        return OrjsonResponse(store.get_registered_model(name))

    @router.patch("/models/{name}", response_model=RegisteredModelOut)
    def update_model(name: Name, body: DescriptionAndTags, actor: Actor) -> Response:
        return OrjsonResponse(
            store.update_registered_model(
                name,
                actor=actor.name,
                description=body.description,
                tags=body.tags,
                delete_tags=body.delete_tags,
            )
        )

    @router.post("/models/{name}/rename", response_model=RegisteredModelOut)
    def rename_model(name: Name, body: Rename, actor: Actor) -> Response:
        """Refused while the model has aliases: deployments name models by them."""
        return OrjsonResponse(store.rename_registered_model(name, body.new_name, actor=actor.name))

    @router.delete("/models/{name}", status_code=204, response_class=Response)
    def delete_model(name: Name, body: Deletion, actor: Actor) -> Response:
        """With its versions; refused while it has aliases or pending alias requests."""
        store.delete_registered_model(name, actor=actor.name, reason=body.reason)
        return Response(status_code=204)

    @router.get("/models/{name}/versions", response_model=VersionList)
    def list_versions(name: Name) -> Response:
        return OrjsonResponse({"versions": store.list_model_versions(name)})

    @router.post("/models/{name}/versions", status_code=201, response_model=ModelVersionOut)
    def create_version(name: Name, body: VersionCreate, actor: Actor) -> Response:
        spec = ModelVersionSpec(name=name, **body.model_dump())
        with blame("body.artifact_path"):
            canonical_path(body.artifact_path)
        return OrjsonResponse(store.create_model_version(spec, actor=actor.name), 201)

    @router.get("/models/{name}/versions/{version}", response_model=ModelVersionOut)
    def get_version(name: Name, version: Version) -> Response:
        return OrjsonResponse(store.get_model_version(name, version))

    @router.patch("/models/{name}/versions/{version}", response_model=ModelVersionOut)
    def update_version(
        name: Name, version: Version, body: DescriptionAndTags, actor: Actor
    ) -> Response:
        updated = store.update_model_version(
            name,
            version,
            actor=actor.name,
            description=body.description,
            tags=body.tags,
            delete_tags=body.delete_tags,
        )
        return OrjsonResponse(updated)

    @router.delete("/models/{name}/versions/{version}", status_code=204, response_class=Response)
    def delete_version(name: Name, version: Version, body: Deletion, actor: Actor) -> Response:
        """Refused while an alias or a pending request names it; its number is not reused."""
        store.delete_model_version(name, version, actor=actor.name, reason=body.reason)
        return Response(status_code=204)

    @router.post("/models/{name}/versions/{version}/status", response_model=ModelVersionOut)
    def set_status(name: Name, version: Version, body: StatusChange, actor: Actor) -> Response:
        changed = store.set_version_status(
            name, version, check_version_status(body.status), actor=actor.name, reason=body.reason
        )
        return OrjsonResponse(changed)

    # -- aliases -------------------------------------------------------------------------------

    @router.get("/models/{name}/aliases/{alias}", response_model=ModelVersionOut)
    def get_alias(name: Name, alias: AliasName) -> Response:
        return OrjsonResponse(store.get_version_by_alias(name, alias))

    @router.put("/models/{name}/aliases/{alias}", response_model=AliasOut)
    def set_alias(name: Name, alias: AliasName, body: AliasMove, actor: Actor) -> Response:
        moved = store.set_alias(
            name,
            alias,
            body.version,
            actor=actor.name,
            reason=body.reason,
            expected_version=body.expected_version,
        )
        return OrjsonResponse(moved)

    @router.delete("/models/{name}/aliases/{alias}", status_code=204, response_class=Response)
    def delete_alias(name: Name, alias: AliasName, body: AliasDelete, actor: Actor) -> Response:
        store.delete_alias(
            name,
            alias,
            actor=actor.name,
            reason=body.reason,
            expected_version=body.expected_version,
        )
        return Response(status_code=204)

    # -- alias requests ------------------------------------------------------------------------

    @router.post(
        "/models/{name}/aliases/{alias}/requests", status_code=201, response_model=AliasRequestOut
    )
    def request_alias(
        name: Name, alias: AliasName, body: AliasRequestCreate, actor: Actor
    ) -> Response:
        created = store.request_alias(
            name, alias, body.version, actor=actor.name, reason=body.reason
        )
        return OrjsonResponse(created, 201)

    @router.get("/alias-requests", response_model=AliasRequestList)
    def list_requests(
        model: Annotated[str | None, Query(description="Only this model's requests")] = None,
        status: Annotated[RequestStatus | None, Query(description="e.g. PENDING")] = None,
    ) -> Response:
        return OrjsonResponse({"requests": store.list_requests(model, status)})

    @router.get("/alias-requests/{request_id}", response_model=AliasRequestOut)
    def get_request(request_id: str) -> Response:
        return OrjsonResponse(store.get_request(request_id))

    @router.post("/alias-requests/{request_id}/approve", response_model=AliasRequestOut)
    def approve(request_id: str, body: Approval, actor: Approver) -> Response:
        return OrjsonResponse(
            store.approve_request(request_id, actor=actor.name, reason=body.reason)
        )

    @router.post("/alias-requests/{request_id}/reject", response_model=AliasRequestOut)
    def reject(request_id: str, body: Decision, actor: Approver) -> Response:
        return OrjsonResponse(
            store.reject_request(request_id, actor=actor.name, reason=body.reason)
        )

    @router.post("/alias-requests/{request_id}/cancel", response_model=AliasRequestOut)
    def cancel(request_id: str, body: Decision, actor: Actor) -> Response:
        return OrjsonResponse(
            store.cancel_request(request_id, actor=actor.name, reason=body.reason)
        )

    # -- audit ---------------------------------------------------------------------------------

    @router.get("/audit", tags=["audit"], response_model=AuditLog)
    def audit_log(
        model: Annotated[str | None, Query(description="Only events about this model")] = None,
        limit: Annotated[
            int | None, Query(ge=1, le=INT64_MAX, description="The newest N events")
        ] = None,
    ) -> Response:
        return OrjsonResponse({"events": store.audit_events(model, limit)})

    @router.get("/audit/verify", tags=["audit"], response_model=AuditVerificationOut)
    def verify(
        anchor: Annotated[
            str | None,
            Query(
                pattern=ANCHOR,
                description="SEQ:HASH (64 hex characters) recorded earlier",
                examples=["42:" + "ab" * 32],
            ),
        ] = None,
    ) -> Response:
        return OrjsonResponse(store.verify_audit(audit.parse_anchor(anchor)))

    return router
