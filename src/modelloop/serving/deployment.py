"""A deployment: which model(s) a serving process answers with, and how.

    name: fraud-online                # who answered; stored with every logged prediction
    model: fraud-detector@champion    # registered model @ alias (or /version)
    challenger: fraud-detector@challenger
    mode: canary                      # single | shadow | canary
    canary_percent: 20                # canary: share of traffic the challenger answers
    sticky_key: card_id               # canary: a given card always meets the same model
    log_keys: [card_id]               # request fields logged with each prediction, not features
    explain_top_k: 3                  # reason codes per row on /explain
    log_predictions: true

It comes from a YAML file, from a stored record (``ml.apply_deployment``, ``modelloop deployments
apply``; on the local database or through a server, see :mod:`modelloop.serving.store`), or from
a bare model URI (``modelloop serve fraud-detector@champion``). Whatever the
source, it is validated here, whole, with one message per problem, before a model is loaded.
Loading pickled models is deliberately not a deployment setting: only the person starting the
server can allow it (``--allow-pickle``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from modelloop import configs
from modelloop.errors import InvalidArgument

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
NAME_RULES = (
    "a deployment name is 1-128 letters, digits, '_', '.', '-', starting with a letter or digit"
)
_MODEL_REF = re.compile(r"^(?P<name>[^@/\s]+)(?:@(?P<alias>[^@/\s]+)|/(?P<version>[0-9]+))$")
_MAX_TOP_K = 100


class Mode(StrEnum):
    single = "single"
    shadow = "shadow"
    canary = "canary"


class ModelRef(BaseModel):
    """``name@alias`` (follows the alias) or ``name/3`` (one version, never moves)."""

    model_config = ConfigDict(frozen=True)

    name: str
    alias: str | None = None
    version: int | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        match = _MODEL_REF.match(text.strip().removeprefix("models:/"))
        if match is None:
            raise ValueError(
                f"{text!r} is not a model reference: write NAME@ALIAS (e.g. fraud@champion) "
                "or NAME/VERSION (e.g. fraud/3)"
            )
        version = match["version"]
        return cls(name=match["name"], alias=match["alias"], version=version and int(version))

    @property
    def uri(self) -> str:
        return f"models:/{self}"

    def __str__(self) -> str:
        return f"{self.name}@{self.alias}" if self.alias else f"{self.name}/{self.version}"


# How a reference is written (a registered model's name, then @alias or /version), for the
# OpenAPI document; ModelRef.parse reads it, and the registry has the last word on the names.
_REF_SCHEMA = WithJsonSchema(
    {
        "type": "string",
        "pattern": r"^(models:/)?[A-Za-z0-9][A-Za-z0-9_.\-]{0,255}"
        r"(@[a-z][a-z0-9_\-]{0,63}|/[0-9]{1,10})$",
        "description": "NAME@ALIAS (follows the alias) or NAME/VERSION (one version)",
        "examples": ["fraud-detector@champion"],
    }
)


class Deployment(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    model: Annotated[ModelRef, _REF_SCHEMA]
    challenger: Annotated[ModelRef, _REF_SCHEMA] | None = None
    mode: Mode = Mode.single
    canary_percent: float | None = Field(default=None, ge=0, le=100)
    sticky_key: str | None = Field(default=None, min_length=1, max_length=256)
    log_keys: tuple[Annotated[str, Field(min_length=1, max_length=256)], ...] = Field(
        default=(), max_length=20
    )
    explain_top_k: int = Field(default=3, ge=0, le=_MAX_TOP_K)
    log_predictions: bool = True

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError(NAME_RULES)
        return value

    @field_validator("model", "challenger", mode="before")
    @classmethod
    def _parse_ref(cls, value: Any) -> Any:
        if isinstance(value, str):
            return ModelRef.parse(value)
        if value is None or isinstance(value, ModelRef):
            return value
        raise ValueError("expected a string: NAME@ALIAS (e.g. fraud@champion) or NAME/VERSION")

    @model_validator(mode="after")
    def _check_mode(self) -> Deployment:
        if self.mode is Mode.single and self.challenger is not None:
            raise ValueError("a challenger is given but mode is 'single': say shadow or canary")
        if self.mode is not Mode.single and self.challenger is None:
            raise ValueError(f"mode {self.mode.value!r} needs a challenger")
        if self.mode is Mode.canary and self.canary_percent is None:
            raise ValueError("mode 'canary' needs canary_percent (0-100)")
        if self.mode is not Mode.canary and self.canary_percent is not None:
            raise ValueError("canary_percent only applies to mode 'canary'")
        if self.mode is not Mode.canary and self.sticky_key is not None:
            raise ValueError("sticky_key only applies to mode 'canary'")
        return self

    def to_record(self) -> dict[str, Any]:
        """The config as plain JSON-able values (what ``deployments apply`` stores)."""
        record = self.model_dump(mode="json", exclude_none=True)
        if not record.get("log_keys"):
            record.pop("log_keys", None)  # records stored before log_keys existed stay equal
        record["model"] = str(self.model)
        if self.challenger is not None:
            record["challenger"] = str(self.challenger)
        return record


def parse_deployment(data: Any, source: str = "deployment") -> Deployment:
    """Validate a config mapping; every problem becomes one line of an InvalidArgument."""
    if isinstance(data, dict) and "allow_pickle" in data:
        raise InvalidArgument(
            f"{source}: allow_pickle cannot be set by a deployment; only the person starting "
            "the server can allow pickled models, with 'modelloop serve --allow-pickle'",
            [{"field": "allow_pickle", "message": "not a deployment setting"}],
        )
    return configs.validate(Deployment, data, source, "deployment")


def load_deployment_file(path: str | Path) -> Deployment:
    """A deployment from a YAML (or JSON) file."""
    return parse_deployment(configs.read_yaml(path, "deployment"), str(path))


def deployment_for_model(uri: str, name: str | None = None) -> Deployment:
    """The single-model deployment ``modelloop serve fraud@champion`` means."""
    try:
        ref = ModelRef.parse(uri)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None
    default = ref.name if _NAME.fullmatch(ref.name) else "default"
    return parse_deployment({"name": name or default, "model": str(ref)}, uri)


# -- stored deployments --------------------------------------------------------------------------


def check_deployment_name(name: object) -> str:
    """``name`` if a deployment can have it, else InvalidArgument naming the field: the stores
    refuse such names before they look, so a typo never reads as "no such deployment"."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidArgument(
            f"Invalid deployment name {name!r}: {NAME_RULES}",
            [{"field": "name", "message": NAME_RULES}],
        )
    return name


@dataclass(frozen=True, slots=True)
class StoredDeployment:
    deployment: Deployment
    updated_at: int  # ms since the epoch
    updated_by: str

    def to_record(self) -> dict[str, Any]:
        """The deployment's record with when and by whom it was stored (the REST answer)."""
        return {
            **self.deployment.to_record(),
            "updated_at": self.updated_at,
            "updated_by": self.updated_by,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any], source: str = "deployment") -> StoredDeployment:
        config = {k: v for k, v in record.items() if k not in ("updated_at", "updated_by")}
        return cls(parse_deployment(config, source), record["updated_at"], record["updated_by"])
