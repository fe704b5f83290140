"""MLflow's model registry API: registered models, versions, aliases, tags, search.

What an MLflow client writes here is modelloop's registry: the same versions ``client.registry``
lists, the same audit events, the same rules. So where MLflow and modelloop differ, modelloop's
rule wins and the answer says how to get what was asked:

- a protected alias (``champion``) moves only through an approved request: MLflow's
  ``set_registered_model_alias`` answers 403 PERMISSION_DENIED naming the request/approve steps;
- a model with aliases cannot be renamed or deleted, nor a version an alias points at (400
  INVALID_STATE): deployments name models by their aliases;
- stages are deprecated in MLflow and absent from modelloop: a version is READY (stage ``None``)
  or archived (stage ``Archived``); ``transition-stage`` is left to the catch-all's 501, which
  points to aliases, and ``get-latest-versions`` answers for ``None`` and ``Archived`` only
  (without stages, ``None``: ``models:/NAME/latest`` is the highest READY version, as in
  modelloop);
- a version's source is a run's artifacts: ``runs:/RUN/PATH``, ``mlflow-artifacts:/EXP/RUN/
  artifacts/PATH``, (MLflow 3) a logged model ``models:/m-...`` or another version
  ``models:/NAME/VERSION``; it is answered as ``runs:/RUN/PATH`` (or ``models:/m-...``), and
  its download URI is the ``mlflow-artifacts:/`` URI the artifact proxy serves.

Searching filters and orders the registry's entities by MLflow's registry filter syntax
(:mod:`.registry_search`); writes name the request's principal as their actor.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from modelloop.errors import Forbidden, InvalidArgument, NotFound
from modelloop.registry.client import resolve_model_uri
from modelloop.registry.entities import (
    ModelVersion,
    ModelVersionSpec,
    RegisteredModel,
    VersionStatus,
)
from modelloop.server.mlflow.errors import NotSupported
from modelloop.server.mlflow.registry_search import Fields, Page, search
from modelloop.tracking.logged_models import (
    MODELS_FOLDER,
    describe_mlflow_model,
    logged_model_location,
)
from modelloop.web.middleware import request_principal
from modelloop.web.responses import OrjsonResponse

if TYPE_CHECKING:
    from modelloop.registry.store import RegistryStore
    from modelloop.settings import Settings
    from modelloop.tracking.sql import SqlTrackingStore

_RUNS_URI = re.compile(r"^runs:/(?P<run_id>[^/]+)/(?P<path>.+)$")
_PROXY_URI = re.compile(
    r"^mlflow-artifacts:/{1,3}(?:[^/]*/)?(?P<exp>[^/]+)/(?P<run_id>[0-9a-f]{32})/artifacts/"
    r"(?P<path>.+)$"
)
_LOGGED_MODEL_URI = re.compile(r"^models:/(?P<model_id>m-[0-9a-f]{32})/?$")
_LOGGED_MODEL_PATH = re.compile(rf"{MODELS_FOLDER}/(?P<model_id>m-[0-9a-f]{{32}})")
_STAGES = {VersionStatus.READY: "None", VersionStatus.ARCHIVED: "Archived"}
_MODELS_MAX_RESULTS = (100, 1000)  # default, largest allowed
_VERSIONS_MAX_RESULTS = (10_000, 200_000)

Handler = Callable[["_Args", str], dict[str, Any]]


class _Args:
    """A request's arguments: the query string of a GET, the JSON body of anything else."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    @classmethod
    async def read(cls, request: Request) -> _Args:
        if request.method == "GET":
            query = request.query_params
            return cls(
                {k: query.getlist(k) if len(query.getlist(k)) > 1 else query[k] for k in query}
            )
        raw = await request.body()
        if not raw.strip():
            return cls({})
        try:
            body = json.loads(raw)
        except ValueError:
            raise InvalidArgument("The request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise InvalidArgument("The request body must be a JSON object")
        return cls(body)

    def text(self, key: str) -> str:
        value = self.optional(key)
        if value is None or value == "":
            raise InvalidArgument(f"Missing value for required parameter '{key}'")
        return value

    def optional(self, key: str) -> str | None:
        value = self.values.get(key)
        if value is not None and not isinstance(value, str):
            raise InvalidArgument(f"Invalid value {value!r} for parameter '{key}': not a string")
        return value

    def version(self, key: str = "version") -> int:
        value = self.values.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if value is None or value == "":
            raise InvalidArgument(f"Missing value for required parameter '{key}'")
        if not isinstance(value, str) or not value.isascii() or not value.isdigit():
            raise InvalidArgument(
                f"Invalid value {value!r} for parameter '{key}': versions are integers from 1"
            )
        number = int(value)
        if not 1 <= number < 2**31:
            raise InvalidArgument(
                f"Invalid value {value!r} for parameter '{key}': versions are integers from 1"
            )
        return number

    def texts(self, key: str) -> list[str]:
        value = self.values.get(key)
        if value is None:
            return []
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise InvalidArgument(f"Invalid value {value!r} for parameter '{key}': not strings")
        return items

    def max_results(self, limits: tuple[int, int]) -> int:
        value = self.values.get("max_results")
        default, largest = limits
        if value is None or value == "":
            return default
        if isinstance(value, str) and value.isascii() and value.isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= largest:
            raise InvalidArgument(
                f"Invalid value {value!r} for parameter 'max_results': "
                f"expected an integer from 1 to {largest}"
            )
        return value

    def tags(self) -> dict[str, str]:
        value = self.values.get("tags") or []
        if not isinstance(value, list):
            raise InvalidArgument("Invalid value for parameter 'tags': expected a list")
        tags: dict[str, str] = {}
        for tag in value:
            text = tag.get("value", "") if isinstance(tag, dict) else None
            if not isinstance(tag, dict) or not isinstance(tag.get("key"), str):
                raise InvalidArgument(f"Invalid tag {tag!r}: expected {{'key', 'value'}}")
            if not isinstance(text, str):
                raise InvalidArgument(f"Invalid tag {tag!r}: its value must be a string")
            tags[tag["key"]] = text
        return tags


class _Answers:
    """Entities in MLflow's JSON shapes; a run's experiment is looked up once per answer."""

    def __init__(self, registry: RegistryStore, store: SqlTrackingStore) -> None:
        self.registry, self.store = registry, store
        self._experiments: dict[str, str | None] = {}

    def download_uri(self, version: ModelVersion) -> str:
        experiment = self._experiment(version.run_id)
        if experiment is None:
            return f"runs:/{version.run_id}/{version.artifact_path}"
        return f"mlflow-artifacts:/{experiment}/{version.run_id}/artifacts/{version.artifact_path}"

    def _experiment(self, run_id: str) -> str | None:
        if run_id not in self._experiments:
            try:
                self._experiments[run_id] = self.store.get_run(run_id).experiment_id
            except NotFound:
                self._experiments[run_id] = None
        return self._experiments[run_id]

    def version(self, v: ModelVersion) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "name": v.name,
            "version": str(v.version),
            "creation_timestamp": v.created_at,
            "last_updated_timestamp": v.created_at,
            "user_id": v.created_by,
            "current_stage": _STAGES[v.status],
            "source": _source(v),
            "run_id": v.run_id,
            "status": "READY",
            "tags": _pairs(v.tags),
            "aliases": list(v.aliases),
        }
        if v.description is not None:
            answer["description"] = v.description
        logged = _LOGGED_MODEL_PATH.fullmatch(v.artifact_path)
        if logged is not None:
            answer["model_id"] = logged["model_id"]
        return answer

    def model(self, m: RegisteredModel, versions: Sequence[ModelVersion] = ()) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "name": m.name,
            "creation_timestamp": m.created_at,
            "last_updated_timestamp": m.updated_at,
            "tags": _pairs(m.tags),
            "aliases": [{"alias": a, "version": str(v)} for a, v in m.aliases.items()],
            "latest_versions": [self.version(v) for v in latest_per_stage(versions)],
        }
        if m.description is not None:
            answer["description"] = m.description
        return answer

    def model_with_versions(self, name: str) -> dict[str, Any]:
        model = self.registry.get_registered_model(name)
        return self.model(model, self.registry.list_model_versions(name))


def latest_per_stage(
    versions: Sequence[ModelVersion], stages: Sequence[str] | None = None
) -> list[ModelVersion]:
    """The highest version in each stage asked for (every stage when none is)."""
    latest: dict[str, ModelVersion] = {}
    for v in versions:
        stage = _STAGES[v.status]
        if stage not in latest or v.version > latest[stage].version:
            latest[stage] = v
    wanted = stages or list(latest)
    return sorted((latest[s] for s in wanted if s in latest), key=lambda v: v.version)


_MODEL_FIELDS: Fields[RegisteredModel] = Fields(
    attributes={
        "name": lambda m: m.name,
        "creation_timestamp": lambda m: m.created_at,
        "last_updated_timestamp": lambda m: m.updated_at,
    },
    numeric=frozenset({"creation_timestamp", "last_updated_timestamp"}),
    tags=lambda m: m.tags,
    default_order=("name ASC",),
)


def _source(version: ModelVersion) -> str:
    """Where the version's files are, as an MLflow client names them without a lookup: the
    logged model (MLflow 3) or the run's folder. The download URI is the proxy's."""
    logged = _LOGGED_MODEL_PATH.fullmatch(version.artifact_path)
    if logged is not None:
        return f"models:/{logged['model_id']}"
    return f"runs:/{version.run_id}/{version.artifact_path}"


_VERSION_FIELDS: Fields[ModelVersion] = Fields(
    attributes={
        "name": lambda v: v.name,
        "version_number": lambda v: v.version,
        "run_id": lambda v: v.run_id,
        "source_path": _source,
        "user_id": lambda v: v.created_by,
        "creation_timestamp": lambda v: v.created_at,
        "last_updated_timestamp": lambda v: v.created_at,
    },
    numeric=frozenset({"version_number", "creation_timestamp", "last_updated_timestamp"}),
    tags=lambda v: v.tags,
    default_order=("last_updated_timestamp DESC", "name ASC", "version_number DESC"),
)


def _pairs(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in sorted(tags.items())]


def registry_routes(
    registry: RegistryStore, store: SqlTrackingStore, settings: Settings
) -> APIRouter:
    router = APIRouter()

    def route(path: str, method: str, handler: Handler) -> None:
        async def endpoint(request: Request) -> Response:
            args = await _Args.read(request)
            actor = request_principal(request).name
            return OrjsonResponse(await run_in_threadpool(handler, args, actor))

        endpoint.__name__ = f"mlflow_{handler.__name__}"
        router.add_route(path, endpoint, methods=[method])

    def answers() -> _Answers:
        return _Answers(registry, store)

    # -- registered models ---------------------------------------------------------------------

    def create_model(args: _Args, actor: str) -> dict[str, Any]:
        created = registry.create_registered_model(
            args.text("name"),
            actor=actor,
            description=args.optional("description"),
            tags=args.tags(),
        )
        return {"registered_model": answers().model(created)}

    def get_model(args: _Args, actor: str) -> dict[str, Any]:
        return {"registered_model": answers().model_with_versions(args.text("name"))}

    def update_model(args: _Args, actor: str) -> dict[str, Any]:
        name = args.text("name")
        registry.update_registered_model(
            name, actor=actor, description=args.optional("description") or ""
        )
        return {"registered_model": answers().model_with_versions(name)}

    def rename_model(args: _Args, actor: str) -> dict[str, Any]:
        renamed = registry.rename_registered_model(
            args.text("name"), args.text("new_name"), actor=actor
        )
        return {"registered_model": answers().model_with_versions(renamed.name)}

    def delete_model(args: _Args, actor: str) -> dict[str, Any]:
        name = args.text("name")
        registry.delete_registered_model(
            name, actor=actor, reason="deleted through MLflow's delete_registered_model"
        )
        return {}

    def search_models(args: _Args, actor: str) -> dict[str, Any]:
        page: Page[RegisteredModel] = search(
            registry.list_registered_models(),
            _MODEL_FIELDS,
            "registered model",
            args.optional("filter"),
            args.texts("order_by"),
            args.max_results(_MODELS_MAX_RESULTS),
            args.optional("page_token"),
        )
        shaped = answers()
        found = [shaped.model(m, registry.list_model_versions(m.name)) for m in page.items]
        return _paged("registered_models", found, page.next_token)

    def set_model_tag(args: _Args, actor: str) -> dict[str, Any]:
        tags = {args.text("key"): args.optional("value") or ""}
        registry.update_registered_model(args.text("name"), actor=actor, tags=tags)
        return {}

    def delete_model_tag(args: _Args, actor: str) -> dict[str, Any]:
        registry.update_registered_model(
            args.text("name"), actor=actor, delete_tags=[args.text("key")]
        )
        return {}

    def latest_versions(args: _Args, actor: str) -> dict[str, Any]:
        stages = [s.strip().capitalize() for s in args.texts("stages")]
        other = sorted({s for s in stages if s not in ("None", "Archived")})
        if other:
            raise NotSupported(
                f"Stage {other[0]!r} does not exist in modelloop (MLflow deprecated stages): "
                "name versions by alias instead, e.g. models:/NAME@champion, and use "
                "get_model_version_by_alias; a version is READY (stage None) or archived"
            )
        versions = registry.list_model_versions(args.text("name"))
        # Without stages, READY only: the client resolves models:/NAME/latest to the highest
        # version answered, which must never be an archived one (modelloop's latest is READY).
        latest = latest_per_stage(versions, stages or ["None"])
        shaped = answers()
        return {"model_versions": [shaped.version(v) for v in latest]}

    # -- versions ------------------------------------------------------------------------------

    def create_version(args: _Args, actor: str) -> dict[str, Any]:
        name = args.text("name")
        source = args.text("source")
        run_id, artifact_path = _source_location(registry, store, source, args.optional("run_id"))
        # What modelloop loads and serves it as: read off the files an MLflow flavor wrote.
        flavor, signature = describe_mlflow_model(store, run_id, artifact_path)
        spec = ModelVersionSpec(
            name=name,
            run_id=run_id,
            artifact_path=artifact_path,
            flavor=flavor,
            signature=signature,
            description=args.optional("description") or None,
            tags=args.tags(),
        )
        return {
            "model_version": answers().version(registry.create_model_version(spec, actor=actor))
        }

    def get_version(args: _Args, actor: str) -> dict[str, Any]:
        found = registry.get_model_version(args.text("name"), args.version())
        return {"model_version": answers().version(found)}

    def update_version(args: _Args, actor: str) -> dict[str, Any]:
        updated = registry.update_model_version(
            args.text("name"),
            args.version(),
            actor=actor,
            description=args.optional("description") or "",
        )
        return {"model_version": answers().version(updated)}

    def delete_version(args: _Args, actor: str) -> dict[str, Any]:
        registry.delete_model_version(
            args.text("name"),
            args.version(),
            actor=actor,
            reason="deleted through MLflow's delete_model_version",
        )
        return {}

    def search_versions(args: _Args, actor: str) -> dict[str, Any]:
        everything = [
            v
            for m in registry.list_registered_models()
            for v in registry.list_model_versions(m.name)
        ]
        page: Page[ModelVersion] = search(
            everything,
            _VERSION_FIELDS,
            "model version",
            args.optional("filter"),
            args.texts("order_by"),
            args.max_results(_VERSIONS_MAX_RESULTS),
            args.optional("page_token"),
        )
        shaped = answers()
        return _paged("model_versions", [shaped.version(v) for v in page.items], page.next_token)

    def download_uri(args: _Args, actor: str) -> dict[str, Any]:
        found = registry.get_model_version(args.text("name"), args.version())
        return {"artifact_uri": answers().download_uri(found)}

    def set_version_tag(args: _Args, actor: str) -> dict[str, Any]:
        tags = {args.text("key"): args.optional("value") or ""}
        registry.update_model_version(args.text("name"), args.version(), actor=actor, tags=tags)
        return {}

    def delete_version_tag(args: _Args, actor: str) -> dict[str, Any]:
        registry.update_model_version(
            args.text("name"), args.version(), actor=actor, delete_tags=[args.text("key")]
        )
        return {}

    # -- aliases -------------------------------------------------------------------------------

    def set_alias(args: _Args, actor: str) -> dict[str, Any]:
        name, alias, version = args.text("name"), args.text("alias"), args.version()
        try:
            registry.set_alias(
                name,
                alias,
                version,
                actor=actor,
                reason="set through MLflow's set_registered_model_alias",
            )
        except Forbidden:
            if _points_at(registry, name, alias) == version:
                return {}  # already there: nothing moves, so nothing needs approving
            raise Forbidden(_protected(name, alias, version)) from None
        return {}

    def delete_alias(args: _Args, actor: str) -> dict[str, Any]:
        name, alias = args.text("name"), args.text("alias")
        try:
            registry.delete_alias(
                name,
                alias,
                actor=actor,
                reason="deleted through MLflow's delete_registered_model_alias",
            )
        except Forbidden as exc:
            raise Forbidden(
                f"Alias {alias!r} of {name!r} is protected and cannot be deleted, through MLflow "
                f"or otherwise: {exc.message}"
            ) from None
        return {}

    def get_by_alias(args: _Args, actor: str) -> dict[str, Any]:
        found = registry.get_version_by_alias(args.text("name"), args.text("alias"))
        return {"model_version": answers().version(found)}

    for path, method, handler in (
        ("/registered-models/create", "POST", create_model),
        ("/registered-models/get", "GET", get_model),
        ("/registered-models/update", "PATCH", update_model),
        ("/registered-models/rename", "POST", rename_model),
        ("/registered-models/delete", "DELETE", delete_model),
        ("/registered-models/search", "GET", search_models),
        ("/registered-models/set-tag", "POST", set_model_tag),
        ("/registered-models/delete-tag", "DELETE", delete_model_tag),
        ("/registered-models/get-latest-versions", "POST", latest_versions),
        ("/registered-models/get-latest-versions", "GET", latest_versions),
        ("/registered-models/alias", "POST", set_alias),
        ("/registered-models/alias", "DELETE", delete_alias),
        ("/registered-models/alias", "GET", get_by_alias),
        ("/model-versions/create", "POST", create_version),
        ("/model-versions/get", "GET", get_version),
        ("/model-versions/update", "PATCH", update_version),
        ("/model-versions/delete", "DELETE", delete_version),
        ("/model-versions/search", "GET", search_versions),
        ("/model-versions/get-download-uri", "GET", download_uri),
        ("/model-versions/set-tag", "POST", set_version_tag),
        ("/model-versions/delete-tag", "DELETE", delete_version_tag),
    ):
        route(path, method, handler)
    return router


def _paged(key: str, items: list[dict[str, Any]], token: str | None) -> dict[str, Any]:
    answer: dict[str, Any] = {key: items}
    if token is not None:
        answer["next_page_token"] = token
    return answer


def _points_at(registry: RegistryStore, name: str, alias: str) -> int | None:
    try:
        return registry.get_version_by_alias(name, alias).version
    except NotFound:
        return None


def _protected(name: str, alias: str, version: int) -> str:
    return (
        f"Alias {alias!r} of {name!r} is protected: it moves only when another user approves a "
        "request, which MLflow's set_registered_model_alias cannot express. Request the move "
        f"(modelloop models request-alias {name} {alias} {version} --reason '...', or "
        f"ml.request_alias, or POST /api/v1/models/{name}/aliases/{alias}/requests), then "
        "another user with the approver role approves it (modelloop models approve "
        "REQUEST_ID); MLflow clients see the alias once it is approved"
    )


def _source_location(
    registry: RegistryStore, store: SqlTrackingStore, source: str, run_id: str | None
) -> tuple[str, str]:
    """The run and artifact path a version's ``source`` names."""
    runs = _RUNS_URI.match(source)
    proxied = _PROXY_URI.match(source)
    logged = _LOGGED_MODEL_URI.match(source)
    found: tuple[str, str] | None = None
    if runs is not None:
        found = runs["run_id"], runs["path"]
    elif proxied is not None:
        found = proxied["run_id"], proxied["path"]
        experiment = store.get_run(found[0]).experiment_id
        if experiment != proxied["exp"]:
            raise InvalidArgument(
                f"Run {found[0]} belongs to experiment {experiment}, not {proxied['exp']}: "
                f"the source {source!r} names no artifacts"
            )
    elif logged is not None:
        found = logged_model_location(store, logged["model_id"])
    elif source.startswith("models:/"):  # another version (copy_model_version)
        version = resolve_model_uri(registry, source)
        found = version.run_id, version.artifact_path
    if found is None:
        raise InvalidArgument(
            f"Unsupported model version source {source!r}: modelloop registers a run's "
            "artifacts, named as runs:/RUN_ID/PATH, mlflow-artifacts:/EXPERIMENT_ID/RUN_ID/"
            "artifacts/PATH, a logged model's models:/m-ID or another version's "
            "models:/NAME/VERSION or models:/NAME@ALIAS"
        )
    if run_id and run_id != found[0]:
        raise InvalidArgument(
            f"The run_id {run_id!r} is not the run of the source {source!r} ({found[0]})"
        )
    return found
