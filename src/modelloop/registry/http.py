"""The registry through a modelloop server: :class:`RegistryStore` over the REST API.

Requests go through :class:`modelloop.transport.Transport`, so errors come back as the same
:mod:`modelloop.errors` classes as from the local store. Each change sends its ``actor`` as
``X-Modelloop-User``: a server without authentication (loopback development) records that name,
trusting whoever can reach it; a server with authentication ignores the header and records the
user whose token the request carries.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from modelloop.audit import AuditEvent, AuditVerification
from modelloop.registry.entities import (
    Alias,
    AliasRequest,
    ModelVersion,
    ModelVersionSpec,
    RegisteredModel,
    RequestStatus,
    VersionStatus,
    check_alias,
    check_model_name,
    check_version,
)
from modelloop.transport import HttpStore, segment

_API = "/api/v1"


class HttpRegistryStore(HttpStore):
    """Implements :class:`~modelloop.registry.store.RegistryStore` against a server."""

    # -- registered models and versions ------------------------------------------------------

    def create_registered_model(
        self,
        name: str,
        *,
        actor: str,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> RegisteredModel:
        body = {"name": name, "description": description, "tags": dict(tags or {})}
        return _model(self._call("POST", "/models", body, actor=actor))

    def get_registered_model(self, name: str) -> RegisteredModel:
        return _model(self._call("GET", _m(name)))

    def list_registered_models(self) -> list[RegisteredModel]:
        return [_model(m) for m in self._call("GET", "/models")["models"]]

    def update_registered_model(
        self,
        name: str,
        *,
        actor: str,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        delete_tags: Collection[str] = (),
    ) -> RegisteredModel:
        body = _changes(description, tags, delete_tags)
        return _model(self._call("PATCH", _m(name), body, actor=actor))

    def rename_registered_model(self, name: str, new_name: str, *, actor: str) -> RegisteredModel:
        body = {"new_name": new_name}
        return _model(self._call("POST", f"{_m(name)}/rename", body, actor=actor))

    def delete_registered_model(self, name: str, *, actor: str, reason: str) -> None:
        self._call("DELETE", _m(name), {"reason": reason}, actor=actor)

    def create_model_version(self, spec: ModelVersionSpec, *, actor: str) -> ModelVersion:
        body = {
            "run_id": spec.run_id,
            "artifact_path": spec.artifact_path,
            "flavor": spec.flavor,
            "signature": None if spec.signature is None else dict(spec.signature),
            "description": spec.description,
            "tags": dict(spec.tags),
            "metrics": dict(spec.metrics),
            "dataset_digests": dict(spec.dataset_digests),
        }
        return _version(self._call("POST", f"{_m(spec.name)}/versions", body, actor=actor))

    def get_model_version(self, name: str, version: int) -> ModelVersion:
        return _version(self._call("GET", _v(name, version)))

    def list_model_versions(self, name: str) -> list[ModelVersion]:
        return [_version(v) for v in self._call("GET", f"{_m(name)}/versions")["versions"]]

    def update_model_version(
        self,
        name: str,
        version: int,
        *,
        actor: str,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        delete_tags: Collection[str] = (),
    ) -> ModelVersion:
        body = _changes(description, tags, delete_tags)
        return _version(self._call("PATCH", _v(name, version), body, actor=actor))

    def delete_model_version(self, name: str, version: int, *, actor: str, reason: str) -> None:
        self._call("DELETE", _v(name, version), {"reason": reason}, actor=actor)

    def set_version_status(
        self, name: str, version: int, status: VersionStatus, *, actor: str, reason: str
    ) -> ModelVersion:
        body = {"status": str(status), "reason": reason}
        return _version(self._call("POST", f"{_v(name, version)}/status", body, actor=actor))

    # -- aliases and requests ----------------------------------------------------------------

    def get_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        return _version(self._call("GET", _a(name, alias)))

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        actor: str,
        reason: str,
        expected_version: int | None = None,
    ) -> Alias:
        body = {"version": version, "reason": reason, "expected_version": expected_version}
        return Alias(**self._call("PUT", _a(name, alias), body, actor=actor))

    def delete_alias(
        self,
        name: str,
        alias: str,
        *,
        actor: str,
        reason: str,
        expected_version: int | None = None,
    ) -> None:
        body = {"reason": reason, "expected_version": expected_version}
        self._call("DELETE", _a(name, alias), body, actor=actor)

    def request_alias(
        self, name: str, alias: str, version: int, *, actor: str, reason: str
    ) -> AliasRequest:
        body = {"version": version, "reason": reason}
        return _request(self._call("POST", f"{_a(name, alias)}/requests", body, actor=actor))

    def approve_request(
        self, request_id: str, *, actor: str, reason: str | None = None
    ) -> AliasRequest:
        return self._decide(request_id, "approve", actor, reason)

    def reject_request(self, request_id: str, *, actor: str, reason: str) -> AliasRequest:
        return self._decide(request_id, "reject", actor, reason)

    def cancel_request(self, request_id: str, *, actor: str, reason: str) -> AliasRequest:
        return self._decide(request_id, "cancel", actor, reason)

    def _decide(self, request_id: str, verb: str, actor: str, reason: str | None) -> AliasRequest:
        path = f"/alias-requests/{segment(request_id)}/{verb}"
        return _request(self._call("POST", path, {"reason": reason}, actor=actor))

    def get_request(self, request_id: str) -> AliasRequest:
        return _request(self._call("GET", f"/alias-requests/{segment(request_id)}"))

    def list_requests(
        self, name: str | None = None, status: RequestStatus | None = None
    ) -> list[AliasRequest]:
        params = {"model": name, "status": None if status is None else str(status)}
        data = self._call("GET", "/alias-requests", params=params)
        return [_request(r) for r in data["requests"]]

    # -- audit -------------------------------------------------------------------------------

    def audit_events(self, model: str | None = None, limit: int | None = None) -> list[AuditEvent]:
        params = {"model": model, "limit": None if limit is None else str(limit)}
        return [AuditEvent(**e) for e in self._call("GET", "/audit", params=params)["events"]]

    def verify_audit(self, anchor: tuple[int, str] | None = None) -> AuditVerification:
        params = None if anchor is None else {"anchor": f"{anchor[0]}:{anchor[1]}"}
        data = self._call("GET", "/audit/verify", params=params)
        return AuditVerification(**{**data, "unexplained": tuple(data.get("unexplained", ()))})

    # -- transport ---------------------------------------------------------------------------


def _m(name: str) -> str:
    return f"/models/{segment(check_model_name(name))}"  # refuse locally what the server would


def _v(name: str, version: int) -> str:
    return f"{_m(name)}/versions/{check_version(version)}"


def _a(name: str, alias: str) -> str:
    return f"{_m(name)}/aliases/{segment(check_alias(alias))}"


def _changes(
    description: str | None, tags: Mapping[str, str] | None, delete_tags: Collection[str]
) -> dict[str, Any]:
    # A string is refused by the server's schema, as the local store refuses it.
    deleted = delete_tags if isinstance(delete_tags, str) else list(delete_tags)
    return {"description": description, "tags": dict(tags or {}), "delete_tags": deleted}


def _model(data: dict[str, Any]) -> RegisteredModel:
    return RegisteredModel(**data)


def _version(data: dict[str, Any]) -> ModelVersion:
    return ModelVersion(**{**data, "status": VersionStatus(data["status"])})


def _request(data: dict[str, Any]) -> AliasRequest:
    return AliasRequest(**{**data, "status": RequestStatus(data["status"])})
