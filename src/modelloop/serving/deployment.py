"""A deployment: which model(s) a serving process answers with, and how.

    name: fraud-online                # who answered; stored with every logged prediction
    model: fraud-detector@champion    # registered model @ alias (or /version)
    challenger: fraud-detector@challenger
    mode: canary                      # single | shadow | canary
    canary_percent: 20                # canary: share of traffic the challenger answers
    sticky_key: card_id               # canary: a given card always meets the same model
    explain_top_k: 3                  # reason codes per row on /explain
    log_predictions: true

It comes from a YAML file, from a record in the ``deployments`` table (``modelloop deployments
apply``), or from a bare model URI (``modelloop serve fraud-detector@champion``). Whatever the
source, it is validated here, whole, with one message per problem, before a model is loaded.
Loading pickled models is deliberately not a deployment setting: only the person starting the
server can allow it (``--allow-pickle``).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from modelloop.errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    from modelloop.settings import Settings
    from modelloop.store import Database

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
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


class Deployment(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    model: ModelRef
    challenger: ModelRef | None = None
    mode: Mode = Mode.single
    canary_percent: float | None = Field(default=None, ge=0, le=100)
    sticky_key: str | None = Field(default=None, min_length=1, max_length=256)
    explain_top_k: int = Field(default=3, ge=0, le=_MAX_TOP_K)
    log_predictions: bool = True

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                "a deployment name is 1-128 letters, digits, '_', '.', '-', starting with a "
                "letter or digit"
            )
        return value

    @field_validator("model", "challenger", mode="before")
    @classmethod
    def _parse_ref(cls, value: Any) -> Any:
        return ModelRef.parse(value) if isinstance(value, str) else value

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
        record["model"] = str(self.model)
        if self.challenger is not None:
            record["challenger"] = str(self.challenger)
        return record


def parse_deployment(data: Any, source: str = "deployment") -> Deployment:
    """Validate a config mapping; every problem becomes one line of an InvalidArgument."""
    if not isinstance(data, dict):
        raise InvalidArgument(
            f"{source}: expected a mapping of settings, got {type(data).__name__}"
        )
    if "allow_pickle" in data:
        raise InvalidArgument(
            f"{source}: allow_pickle cannot be set by a deployment; only the person starting "
            "the server can allow pickled models, with 'modelloop serve --allow-pickle'",
            [{"field": "allow_pickle", "message": "not a deployment setting"}],
        )
    try:
        return Deployment.model_validate(data)
    except ValidationError as exc:
        details = [
            {
                "field": ".".join(str(p) for p in error["loc"]) or "deployment",
                "message": _message(error),
            }
            for error in exc.errors()
        ]
        lines = "; ".join(f"{d['field']}: {d['message']}" for d in details)
        raise InvalidArgument(f"{source} is not a valid deployment: {lines}", details) from None


def _message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown setting (known: " + ", ".join(Deployment.model_fields) + ")"
    return str(error["msg"]).removeprefix("Value error, ")


def load_deployment_file(path: str | Path) -> Deployment:
    """A deployment from a YAML (or JSON) file."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidArgument(f"Cannot read the deployment file {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"{path} is not valid YAML: {exc}") from exc
    return parse_deployment(data, str(path))


def deployment_for_model(uri: str, name: str | None = None) -> Deployment:
    """The single-model deployment ``modelloop serve fraud@champion`` means."""
    try:
        ref = ModelRef.parse(uri)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None
    default = ref.name if _NAME.match(ref.name) else "default"
    return parse_deployment({"name": name or default, "model": str(ref)}, uri)


# -- deployments stored in the registry database ------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredDeployment:
    deployment: Deployment
    updated_at: int  # ms since the epoch
    updated_by: str


def apply_deployment(
    deployment: Deployment, *, settings: Settings | None = None, actor: str | None = None
) -> bool:
    """Create or replace the stored deployment of that name (audited); False if unchanged.
    Servers started with ``--deployment NAME`` pick the change up at their next poll."""
    from sqlalchemy import insert, select, update

    from modelloop import audit
    from modelloop.store import tables as t
    from modelloop.tracking.source import current_user

    db = _database(settings)
    actor = actor or current_user()
    now = time.time_ns() // 1_000_000
    after = deployment.to_record()
    table = t.deployments
    with db.write() as conn:
        audit.lock(conn)
        row = conn.execute(select(table.c.config).where(table.c.name == deployment.name)).first()
        before = None if row is None else json.loads(row.config)
        if before == after:
            return False
        values = {
            "config": json.dumps(after, sort_keys=True),
            "updated_at": now,
            "updated_by": actor,
        }
        if row is None:
            conn.execute(insert(table).values(name=deployment.name, **values))
        else:
            conn.execute(update(table).where(table.c.name == deployment.name).values(**values))
        audit.append(
            conn,
            time=now,
            actor=actor,
            action="deployment.apply",
            object_type="deployment",
            object_id=deployment.name,
            before=before,
            after=after,
        )
    return True


def get_deployment(name: str, *, settings: Settings | None = None) -> StoredDeployment:
    from sqlalchemy import select

    from modelloop.store import tables as t

    table = t.deployments
    with _database(settings).read() as conn:
        row = conn.execute(select(table).where(table.c.name == name)).first()
    if row is None:
        raise NotFound(
            f"No deployment named {name!r}: create it with 'modelloop deployments apply'"
        )
    return _stored(row)


def list_deployments(*, settings: Settings | None = None) -> list[StoredDeployment]:
    from sqlalchemy import select

    from modelloop.store import tables as t

    with _database(settings).read() as conn:
        rows = conn.execute(select(t.deployments).order_by(t.deployments.c.name)).all()
    return [_stored(row) for row in rows]


def _stored(row: Any) -> StoredDeployment:
    config = parse_deployment(json.loads(row.config), f"stored deployment {row.name!r}")
    return StoredDeployment(config, row.updated_at, row.updated_by)


def _database(settings: Settings | None) -> Database:
    from modelloop.settings import load_settings
    from modelloop.store import open_database

    settings = settings or load_settings()
    if settings.is_remote:
        raise InvalidArgument(
            "Deployments are stored in the metadata database: unset MODELLOOP_TRACKING_URI and "
            "set MODELLOOP_DATABASE_URL to the server's database"
        )
    return open_database(settings.database_url)
