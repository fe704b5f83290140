"""The module-level registry SDK: ``ml.register_model``, ``ml.set_alias``, ``ml.load_model``...

Each function uses the default :class:`Registry`, built on the default tracking client
(``ml.get_client()``) and rebuilt when that client is (the settings changed). Changes are
recorded as ``MODELLOOP_USER`` or the OS user; through a server with authentication, as the
user whose token is configured.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelloop.registry.client import Registry
from modelloop.registry.entities import (
    Alias,
    AliasRequest,
    ModelLineage,
    ModelVersion,
    VersionStatus,
)
from modelloop.tracking.fluent import get_client

if TYPE_CHECKING:
    import pandas as pd

    from modelloop.audit import AuditEvent, AuditVerification
    from modelloop.datasets.reference import ColumnReference
    from modelloop.flavors import LoadedModel
    from modelloop.tracking.run import ActiveRun

_registry: Registry | None = None
_registry_lock = threading.Lock()


def get_registry() -> Registry:
    """The process-wide registry for the current settings."""
    global _registry
    client = get_client()
    with _registry_lock:
        if _registry is None or _registry.client is not client:
            if _registry is not None:
                _registry.close()
            _registry = Registry(client)
        return _registry


def register_model(
    run: ActiveRun | str,
    name: str,
    model: object | None = None,
    *,
    artifact_path: str = "model",
    training_data: pd.DataFrame | str | None = None,
    signature: Any = None,
    description: str | None = None,
    tags: Mapping[str, object] | None = None,
    metrics: Mapping[str, float] | None = None,
    dataset_digests: Mapping[str, str] | None = None,
    allow_pickle: bool = False,
) -> ModelVersion:
    """Save ``model`` (no pickle unless allowed) as a package in the run's artifacts and
    register it as the next version of ``name``, which is created on first use.

    ``model=None`` registers the package already logged at ``artifact_path`` of the run. The
    version's drift reference is fitted on ``training_data`` (a frame or a dataset reference
    such as ``"fraud@3"``) or, without it, on the dataset the run trained on according to
    lineage; when there is none, a ``NoDriftReference`` warning says so and how to add one
    (see :mod:`modelloop.registry.reference`).
    """
    registry = get_registry()
    own = not isinstance(run, str) and run.client is not registry.client
    if own:  # a run of another client: its artifacts live where that client writes
        assert not isinstance(run, str)
        registry = Registry(run.client)
    try:
        return registry.register_model(
            run,
            name,
            model,
            artifact_path=artifact_path,
            training_data=training_data,
            signature=signature,
            description=description,
            tags=tags,
            metrics=metrics,
            dataset_digests=dataset_digests,
            allow_pickle=allow_pickle,
        )
    finally:
        if own:
            registry.close()


def load_model(uri: str, *, allow_pickle: bool = False) -> LoadedModel:
    """``ml.load_model("models:/fraud-detector@champion")`` (or ``/3``, or ``/latest``)."""
    return get_registry().load_model(uri, allow_pickle=allow_pickle)


def resolve_model_uri(uri: str) -> ModelVersion:
    """The version a ``models:/`` URI names now."""
    return get_registry().resolve_model_uri(uri)


def reference_profile(uri: str) -> dict[str, ColumnReference]:
    """The drift reference of a version (inputs and score of its training data); NotFound,
    saying how to add one, for a version without."""
    return get_registry().reference_profile(uri)


def set_reference_profile(
    name: str, version: int, training_data: pd.DataFrame | str, *, allow_pickle: bool = False
) -> ModelVersion:
    """Fit the drift reference of a version registered without one on ``training_data`` (a
    frame or a dataset reference such as ``"fraud@3"``); once set, it is fixed."""
    return get_registry().set_reference_profile(
        name, version, training_data, allow_pickle=allow_pickle
    )


def download_model(version: ModelVersion) -> Path:
    """The version's package as a local (cached) directory."""
    return get_registry().download_model(version)


def get_model_version(name: str, version: int) -> ModelVersion:
    return get_registry().get_version(name, version)


def set_alias(
    name: str, alias: str, version: int, *, reason: str, expected_version: int | None = None
) -> Alias:
    """Point ``alias`` at ``version``, atomically.

    ``expected_version`` is compare-and-set: ``None`` (default) no precondition, ``0`` the alias
    must not exist yet, ``n`` it must point at version ``n`` now; otherwise Conflict. Protected
    aliases (``MODELLOOP_PROTECTED_ALIASES``, default ``champion``) raise Forbidden: use
    :func:`request_alias` and have another user :func:`approve_request`.
    """
    return get_registry().set_alias(
        name, alias, version, reason=reason, expected_version=expected_version
    )


def delete_alias(
    name: str, alias: str, *, reason: str, expected_version: int | None = None
) -> None:
    get_registry().delete_alias(name, alias, reason=reason, expected_version=expected_version)


def request_alias(name: str, alias: str, version: int, reason: str) -> AliasRequest:
    """Ask for ``alias`` to point at ``version``; another user approves or rejects it."""
    return get_registry().request_alias(name, alias, version, reason)


def approve_request(request_id: str, reason: str | None = None) -> AliasRequest:
    """Approve someone else's request: the alias moves (with the request's reason)."""
    return get_registry().approve_request(request_id, reason)


def reject_request(request_id: str, reason: str) -> AliasRequest:
    return get_registry().reject_request(request_id, reason)


def set_version_status(
    name: str, version: int, status: VersionStatus | str, *, reason: str
) -> ModelVersion:
    """``ARCHIVED`` or ``READY``; a version an alias points at cannot be archived."""
    return get_registry().set_version_status(name, version, status, reason=reason)


def model_lineage(name: str, version: int) -> ModelLineage:
    """The version, its run, the run's code version and environment, and its data digests."""
    return get_registry().lineage(name, version)


def audit_log(model: str | None = None, limit: int | None = None) -> list[AuditEvent]:
    """Registry changes, oldest first (``model``: only those about one registered model)."""
    return get_registry().audit_log(model, limit)


def verify_audit(anchor: tuple[int, str] | None = None) -> AuditVerification:
    """Recompute the audit hash chain; ``ok`` is False with the first bad event otherwise."""
    return get_registry().verify_audit(anchor)
