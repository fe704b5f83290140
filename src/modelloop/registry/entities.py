"""The nouns of the model registry, as immutable values shared by the SDK, stores and server.

Names and their rules:

- a registered model's name: 1-256 letters, digits, ``_``, ``.``, ``-``, starting with a letter or
  digit (no ``/`` or ``@``, so ``models:/NAME@ALIAS`` and ``models:/NAME/VERSION`` always parse);
- an alias: a lowercase identifier (``[a-z][a-z0-9_-]*``, at most 64), never ``latest`` nor
  shaped like a version (``v3``), so an alias can never be mistaken for a version;
- a version: an integer from 1, assigned by the store per model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from modelloop.errors import InvalidArgument
from modelloop.tracking.entities import check_key, check_value

if TYPE_CHECKING:
    from modelloop.tracking.entities import Run

_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,255}$")
_ALIAS = re.compile(r"^[a-z][a-z0-9_\-]{0,63}$")
_VERSION_LIKE = re.compile(r"^v\d+$")
_URI = re.compile(
    r"^models:/(?P<name>[A-Za-z0-9][A-Za-z0-9_.\-]{0,255})"
    r"(?:@(?P<alias>[^/@]+)|/(?P<version>[^/@]+))$"
)
RESERVED_ALIASES = frozenset({"latest"})
URI_FORMS = "models:/NAME@ALIAS, models:/NAME/VERSION or models:/NAME/latest"


class VersionStatus(StrEnum):
    READY = "READY"
    ARCHIVED = "ARCHIVED"


class RequestStatus(StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"


@dataclass(frozen=True, slots=True)
class RegisteredModel:
    name: str
    description: str | None
    tags: dict[str, str]
    created_at: int
    updated_at: int
    latest_version: int | None  # the highest version number, whatever its status
    aliases: dict[str, int]  # alias -> version


@dataclass(frozen=True, slots=True)
class ModelVersionSpec:
    """What it takes to create a version; the store adds the number, status, digest and times."""

    name: str
    run_id: str
    artifact_path: str = "model"
    flavor: str | None = None
    signature: Mapping[str, Any] | None = None
    description: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    dataset_digests: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ModelVersion:
    name: str
    version: int
    run_id: str
    artifact_path: str
    flavor: str | None
    signature: dict[str, Any] | None
    status: VersionStatus
    description: str | None
    tags: dict[str, str]
    created_at: int
    created_by: str
    metrics: dict[str, float]
    dataset_digests: dict[str, str]  # e.g. {"train": sha256, "valid": sha256}
    package_digest: str  # sha256 over the package's (path, content digest) list
    aliases: list[str]  # the aliases pointing at this version now

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True, slots=True)
class Alias:
    name: str
    alias: str
    version: int
    updated_at: int
    updated_by: str


@dataclass(frozen=True, slots=True)
class AliasRequest:
    """A request to move a (protected) alias, decided by someone other than its requester."""

    request_id: str
    name: str
    alias: str
    version: int
    requested_by: str
    reason: str
    status: RequestStatus
    created_at: int
    decided_by: str | None
    decided_at: int | None
    decision_reason: str | None


@dataclass(frozen=True, slots=True)
class ModelLineage:
    """Where a version came from: version -> run -> code version and environment -> data."""

    version: ModelVersion
    run: Run
    code_version: dict[str, Any]  # git commit, dirty flag, diff sha256, entry point
    environment: dict[str, Any]  # python and key package versions
    dataset_digests: dict[str, str]


@dataclass(frozen=True, slots=True)
class ModelUri:
    """A parsed ``models:/`` URI: exactly one of ``alias`` and ``version`` is set, or neither
    (``latest``: the highest READY version)."""

    name: str
    alias: str | None = None
    version: int | None = None


def check_model_name(name: object) -> str:
    if not isinstance(name, str) or not _MODEL_NAME.fullmatch(name):
        raise InvalidArgument(
            f"Invalid model name {name!r}: use 1-256 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_alias(alias: object) -> str:
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias):
        raise InvalidArgument(
            f"Invalid alias {alias!r}: use a lowercase identifier such as 'champion' or "
            "'challenger' (a-z, 0-9, '_', '-', starting with a letter, at most 64)"
        )
    if alias in RESERVED_ALIASES or _VERSION_LIKE.match(alias):
        raise InvalidArgument(
            f"Invalid alias {alias!r}: it would read as a version; choose a name like 'champion'"
        )
    return alias


def check_version(version: object) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version < 2**31:
        raise InvalidArgument(f"Invalid model version {version!r}: versions are integers from 1")
    return version


def check_version_status(status: object) -> VersionStatus:
    try:
        return VersionStatus(str(status).upper())
    except ValueError:
        raise InvalidArgument(f"Invalid version status {status!r}: use READY or ARCHIVED") from None


def check_request_status(status: object) -> RequestStatus:
    try:
        return RequestStatus(str(status).upper())
    except ValueError:
        names = ", ".join(s.value for s in RequestStatus)
        raise InvalidArgument(f"Invalid request status {status!r}: use one of {names}") from None


def check_reason(reason: object, what: str) -> str:
    """A reason is required for alias moves, decisions and status changes."""
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidArgument(f"A reason is required to {what}: say why, e.g. --reason '...'")
    return check_value(reason, "reason", what)


def check_tags(tags: Mapping[str, object] | None) -> dict[str, str]:
    return {check_key(k, "tag"): check_value(v, "tag", k) for k, v in (tags or {}).items()}


def parse_model_uri(uri: object) -> ModelUri:
    """``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or ``models:/NAME/latest``."""
    match = _URI.match(uri) if isinstance(uri, str) else None
    if match is None:
        raise InvalidArgument(f"Invalid model URI {uri!r}: expected {URI_FORMS}")
    name = match["name"]
    if match["alias"] is not None:
        return ModelUri(name, alias=check_alias(match["alias"]))
    if match["version"] == "latest":
        return ModelUri(name)
    if not re.fullmatch(r"[0-9]{1,10}", match["version"]):
        raise InvalidArgument(f"Invalid model URI {uri!r}: expected {URI_FORMS}")
    return ModelUri(name, version=check_version(int(match["version"])))
