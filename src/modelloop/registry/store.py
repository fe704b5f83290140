"""The storage interfaces of the registry, one small protocol per aggregate.

Implementations: :class:`modelloop.registry.sql.SqlRegistryStore` (SQLite/PostgreSQL) and
:class:`modelloop.registry.http.HttpRegistryStore` (a modelloop server). One contract suite,
``tests/registry/test_registry_contract.py``, runs against all of them.

Every change names its ``actor``. The SQL store records it as given; the HTTP store sends it as
``X-Modelloop-User``, which only a server without authentication believes (trust on loopback):
a server with authentication acts as the user whose token the request carries.

``expected_version`` (alias moves and deletions) is a compare-and-set precondition: ``None``
means none, ``0`` means "the alias must not exist yet", ``n`` means "the alias must point at
version n now"; a mismatch raises Conflict and changes nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Protocol

from modelloop.registry.entities import (
    Alias,
    AliasRequest,
    ModelVersion,
    ModelVersionSpec,
    RegisteredModel,
    RequestStatus,
    VersionStatus,
)

if TYPE_CHECKING:
    from modelloop.audit import AuditEvent, AuditVerification


class ModelStore(Protocol):
    def create_registered_model(
        self,
        name: str,
        *,
        actor: str,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> RegisteredModel: ...
    def get_registered_model(self, name: str) -> RegisteredModel: ...
    def list_registered_models(self) -> list[RegisteredModel]: ...
    def update_registered_model(
        self,
        name: str,
        *,
        actor: str,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        delete_tags: Collection[str] = (),
    ) -> RegisteredModel:
        """Set the description (when given), set or overwrite the given tags and delete the
        ``delete_tags`` keys (a missing key is no change)."""
        ...

    def rename_registered_model(self, name: str, new_name: str, *, actor: str) -> RegisteredModel:
        """Conflict while the model has aliases (what deployments name it by)."""
        ...

    def delete_registered_model(self, name: str, *, actor: str, reason: str) -> None:
        """With its versions; Conflict while it has aliases or pending alias requests."""
        ...

    def create_model_version(self, spec: ModelVersionSpec, *, actor: str) -> ModelVersion:
        """The next version of ``spec.name`` (the registered model is created if missing),
        packaging the run's artifacts under ``spec.artifact_path`` (NotFound when none)."""
        ...

    def get_model_version(self, name: str, version: int) -> ModelVersion: ...
    def list_model_versions(self, name: str) -> list[ModelVersion]: ...
    def update_model_version(
        self,
        name: str,
        version: int,
        *,
        actor: str,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        delete_tags: Collection[str] = (),
    ) -> ModelVersion: ...
    def delete_model_version(self, name: str, version: int, *, actor: str, reason: str) -> None:
        """Conflict while an alias or a pending request names it; its number is never reused."""
        ...

    def set_version_status(
        self, name: str, version: int, status: VersionStatus, *, actor: str, reason: str
    ) -> ModelVersion:
        """Archive or restore a version; archiving one that an alias points at is a Conflict."""
        ...


class AliasStore(Protocol):
    def get_version_by_alias(self, name: str, alias: str) -> ModelVersion: ...
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
        """Move (or create) an alias; Forbidden for a protected alias (request it instead)."""
        ...

    def delete_alias(
        self,
        name: str,
        alias: str,
        *,
        actor: str,
        reason: str,
        expected_version: int | None = None,
    ) -> None: ...
    def request_alias(
        self, name: str, alias: str, version: int, *, actor: str, reason: str
    ) -> AliasRequest: ...
    def approve_request(
        self, request_id: str, *, actor: str, reason: str | None = None
    ) -> AliasRequest:
        """Move the alias as requested; Forbidden when ``actor`` made the request."""
        ...

    def reject_request(self, request_id: str, *, actor: str, reason: str) -> AliasRequest: ...
    def cancel_request(self, request_id: str, *, actor: str, reason: str) -> AliasRequest:
        """Withdraw a pending request; only its requester may."""
        ...

    def get_request(self, request_id: str) -> AliasRequest: ...
    def list_requests(
        self, name: str | None = None, status: RequestStatus | None = None
    ) -> list[AliasRequest]: ...


class AuditLog(Protocol):
    def audit_events(
        self, model: str | None = None, limit: int | None = None
    ) -> list[AuditEvent]: ...
    def verify_audit(self, anchor: tuple[int, str] | None = None) -> AuditVerification: ...


class RegistryStore(ModelStore, AliasStore, AuditLog, Protocol):
    """Everything a :class:`~modelloop.registry.client.Registry` needs from its backend."""

    def close(self) -> None: ...
