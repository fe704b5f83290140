"""MLflow's artifact proxy (``/api/2.0/mlflow-artifacts``) and logged models (MLflow 3).

A run's ``artifact_uri`` is ``mlflow-artifacts:/<experiment_id>/<run_id>/artifacts`` and a logged
model's ``mlflow-artifacts:/<experiment_id>/models/<model_id>/artifacts``; the client turns
either into URLs under ``/api/2.0/mlflow-artifacts/artifacts/``. Both land in modelloop's one
artifact store: a run's files are its artifacts, a logged model's are artifacts of the run that
holds it, under ``models/<model_id>/`` (:mod:`modelloop.tracking.logged_models`). Artifacts are
immutable and content-addressed, as everywhere in modelloop: uploading other content to a path
that has some is refused (``INVALID_STATE``), the same content again is a no-op.

Uploads stream into the blob store (no temporary file, bounded by ``max_upload_bytes``).
Multipart uploads and presigned URLs exist for cloud object stores behind an MLflow server; the
client uses them only when the server advertises them, which modelloop does not, and their
routes answer 501 naming the plain upload instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse

from modelloop.artifacts import canonical_path
from modelloop.auth import Principal
from modelloop.errors import AlreadyExists, InvalidArgument, NotFound
from modelloop.server.mlflow.errors import NotSupported
from modelloop.server.mlflow.requests import page_offset, page_token
from modelloop.server.mlflow.tracking import json_number
from modelloop.server.schemas import blame
from modelloop.server.tracking import _blob_chunks, _body_blocks
from modelloop.tracking.client import DEFAULT_EXPERIMENT
from modelloop.tracking.entities import check_run_id
from modelloop.tracking.logged_models import (
    DatasetRef,
    LoggedModel,
    LoggedModels,
    LoggedModelSpec,
    LoggedModelStatus,
    ModelMetric,
    OrderBy,
)
from modelloop.web.middleware import request_principal
from modelloop.web.responses import OrjsonResponse

if TYPE_CHECKING:
    from modelloop.settings import Settings
    from modelloop.tracking.sql import SqlTrackingStore

_RUN_ROOT = "artifacts"  # <experiment_id>/<run_id>/artifacts/<path>
_MODELS = "models"  # <experiment_id>/models/<model_id>/artifacts/<path>
_NOSNIFF = {"X-Content-Type-Options": "nosniff"}
DEFAULT_EXPERIMENT_ID = "0"  # what MLflow clients send when no experiment is set

# MLflow's status enum on the wire <-> the domain's
_STATUS_OUT = {
    LoggedModelStatus.PENDING: "LOGGED_MODEL_PENDING",
    LoggedModelStatus.READY: "LOGGED_MODEL_READY",
    LoggedModelStatus.FAILED: "LOGGED_MODEL_UPLOAD_FAILED",
}
_STATUS_IN = {v: k for k, v in _STATUS_OUT.items()}

Actor = Annotated[Principal, Depends(request_principal)]


# -- the artifact proxy ------------------------------------------------------------------------


def artifacts_routes(store: SqlTrackingStore, settings: Settings) -> APIRouter:
    """``/artifacts/<uri path>``: upload (PUT), download (GET), list (GET ``?path=``)."""
    router = APIRouter()
    models = LoggedModels(store)
    limit = settings.max_upload_bytes

    def locate(uri_path: str) -> tuple[str, str]:
        """(run id, logical folder) of a run's or logged model's artifact root in ``uri_path``
        (``<experiment_id>/<run_id>/artifacts`` or ``<experiment_id>/models/<model_id>/
        artifacts``), checking that the run or model belongs to that experiment."""
        parts = uri_path.split("/")
        if len(parts) == 3 and parts[2] == _RUN_ROOT:
            experiment_id, run_id = parts[0], parts[1]
            run = store.get_run(check_run_id(run_id))
            owner, folder = run.experiment_id, ""
        elif len(parts) == 4 and parts[1] == _MODELS and parts[3] == _RUN_ROOT:
            experiment_id = parts[0]
            model = models.get(parts[2])
            run_id, owner, folder = model.run_id, model.experiment_id, model.artifact_path
        else:
            raise InvalidArgument(
                f"Artifact path {uri_path!r} names no run or logged model: expected "
                "'<experiment_id>/<run_id>/artifacts/<path>' or "
                "'<experiment_id>/models/<model_id>/artifacts/<path>'",
                [{"field": "path", "message": "a run's or logged model's artifact path"}],
            )
        if owner != experiment_id:
            raise NotFound(f"Experiment {experiment_id!r} has no artifacts at {uri_path!r}")
        return run_id, folder

    def resolve(artifact_path: str) -> tuple[str, str]:
        """(run id, logical path) of one file: the root's prefix, then a contained path."""
        with blame("path"):
            logical = canonical_path(artifact_path)  # refuses '..', absolute, '%', ...
            head, root, rest = _split_root(logical)
            if not rest:
                raise InvalidArgument(f"Artifact path {artifact_path!r} names no file")
            run_id, folder = locate(f"{head}/{root}")
        return run_id, f"{folder}/{rest}" if folder else rest

    @router.put("/artifacts/{artifact_path:path}")
    async def upload_artifact(artifact_path: str, request: Request) -> Response:
        run_id, logical = await run_in_threadpool(resolve, artifact_path)  # before the body
        digest, size = await run_in_threadpool(store.blobs.put_stream, _body_blocks(request), limit)
        await run_in_threadpool(store.index_artifact, run_id, logical, digest, size)
        return OrjsonResponse({})

    @router.get("/artifacts/{artifact_path:path}")
    def download_artifact(artifact_path: str) -> Response:
        run_id, logical = resolve(artifact_path)
        digest = store.artifact_digest(run_id, logical)
        local = store.blobs.local_path(digest)
        if local is not None:
            return FileResponse(local, media_type="application/octet-stream", headers=_NOSNIFF)
        return StreamingResponse(
            _blob_chunks(store.blobs, digest),
            media_type="application/octet-stream",
            headers=_NOSNIFF,
        )

    @router.get("/artifacts")
    def list_artifacts(path: Annotated[str, Query(max_length=2048)] = "") -> Response:
        """The files and folders directly in ``path`` (names only, as MLflow answers)."""
        with blame("path"):
            if not path:
                raise InvalidArgument(
                    "path is required: '<experiment_id>/<run_id>/artifacts[/<folder>]'"
                )
            head, root, rest = _split_root(canonical_path(path))
            run_id, folder = locate(f"{head}/{root}")
        prefix = "/".join(p for p in (folder, rest) if p)
        return OrjsonResponse({"files": _children(store.list_artifacts(run_id), prefix)})

    @router.delete("/artifacts/{artifact_path:path}")
    def delete_artifact(artifact_path: str) -> None:
        raise NotSupported(
            "Deleting artifacts is not supported: modelloop's artifacts are immutable and "
            "content-addressed (a registered version may point at them); log under a new path"
        )

    for action in ("create", "complete", "abort"):
        router.add_api_route(
            f"/mpu/{action}/{{artifact_path:path}}", _no_multipart, methods=["POST"]
        )
    router.add_api_route("/presigned/{artifact_path:path}", _no_presigned, methods=["GET"])
    return router


async def _no_multipart(artifact_path: str) -> None:
    raise NotSupported(
        "Multipart artifact uploads are not supported by modelloop server: upload with a plain "
        "PUT (unset MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD); it streams files of any size up to "
        "the server's MODELLOOP_MAX_UPLOAD_MB"
    )


async def _no_presigned(artifact_path: str) -> None:
    raise NotSupported(
        "Presigned artifact downloads are not supported by modelloop server: download through "
        "the proxy (unset MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD)"
    )


def _split_root(logical: str) -> tuple[str, str, str]:
    """``(experiment, root, rest)``: root is ``<run_id>/artifacts`` or
    ``models/<model_id>/artifacts``; rest the path inside it (may be empty)."""
    parts = logical.split("/")
    size = 4 if len(parts) > 1 and parts[1] == _MODELS else 3
    if len(parts) < size:
        raise InvalidArgument(
            f"Artifact path {logical!r} names no run or logged model: expected "
            "'<experiment_id>/<run_id>/artifacts/...' or "
            "'<experiment_id>/models/<model_id>/artifacts/...'"
        )
    return parts[0], "/".join(parts[1:size]), "/".join(parts[size:])


def _children(artifacts: list[Any], prefix: str, shown: str = "") -> list[dict[str, Any]]:
    """MLflow's listing of one folder: its files with sizes and its subfolders, by name (each
    path ``shown/name``). A path naming a file lists nothing, as MLflow's own stores answer."""
    start = f"{prefix}/" if prefix else ""
    files: dict[str, dict[str, Any]] = {}
    for info in artifacts:
        if not info.path.startswith(start):
            continue
        name, _, deeper = info.path[len(start) :].partition("/")
        path = f"{shown}/{name}" if shown else name
        if deeper:
            files.setdefault(name, {"path": path, "is_dir": True})
        else:
            files[name] = {"path": path, "is_dir": False, "file_size": info.size}
    return [files[name] for name in sorted(files)]


def _folder(path: str | None) -> str:
    """A folder inside a run's or model's artifacts, contained ('' for the root)."""
    if not path:
        return ""
    with blame("path"):
        return canonical_path(path)


# -- logged models -----------------------------------------------------------------------------


class _Pair(BaseModel):
    model_config = ConfigDict(extra="ignore")
    key: str
    value: str = ""


class _CreateLoggedModel(BaseModel):
    model_config = ConfigDict(extra="ignore")
    experiment_id: str = Field(min_length=1, max_length=64)
    name: str | None = None
    model_type: str | None = None
    source_run_id: str | None = None
    params: list[_Pair] = Field(default_factory=list, max_length=1000)
    tags: list[_Pair] = Field(default_factory=list, max_length=1000)


class _Finalize(BaseModel):
    model_config = ConfigDict(extra="ignore")
    status: str


class _Tags(BaseModel):
    model_config = ConfigDict(extra="ignore")
    tags: list[_Pair] = Field(default_factory=list, max_length=1000)


class _Params(BaseModel):
    model_config = ConfigDict(extra="ignore")
    params: list[_Pair] = Field(default_factory=list, max_length=1000)


class _OrderBy(BaseModel):
    model_config = ConfigDict(extra="ignore")
    field_name: str
    ascending: bool = True
    dataset_name: str | None = None
    dataset_digest: str | None = None


class _Dataset(BaseModel):
    model_config = ConfigDict(extra="ignore")
    dataset_name: str = Field(min_length=1)
    dataset_digest: str | None = None


class _Search(BaseModel):
    model_config = ConfigDict(extra="ignore")
    experiment_ids: list[str] = Field(default_factory=list, max_length=1000)
    filter: str | None = Field(default=None, max_length=4096)
    datasets: list[_Dataset] = Field(default_factory=list, max_length=100)
    max_results: int | None = Field(default=None, ge=1, le=1000)
    order_by: list[_OrderBy] = Field(default_factory=list, max_length=20)
    page_token: str | None = Field(default=None, max_length=256)


class _ModelOutput(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model_id: str
    step: int = Field(default=0, ge=-(2**63), lt=2**63)


class _LogOutputs(BaseModel):
    model_config = ConfigDict(extra="ignore")
    run_id: str
    models: list[_ModelOutput] = Field(default_factory=list, max_length=1000)


def logged_model_routes(store: SqlTrackingStore, settings: Settings) -> APIRouter:
    """``/logged-models``: create, get, finalize, tags, params, search, delete; and
    ``/runs/outputs``, which links a run to the models it produced."""
    router = APIRouter()
    models = LoggedModels(store)

    def experiment_id(given: str) -> str:
        """MLflow's default experiment "0" is modelloop's default experiment, as for runs."""
        if given != DEFAULT_EXPERIMENT_ID:
            return given
        found = store.get_experiment_by_name(DEFAULT_EXPERIMENT)
        if found is not None:
            return found.experiment_id
        try:
            return store.create_experiment(DEFAULT_EXPERIMENT).experiment_id
        except AlreadyExists:  # made by another request in between
            return experiment_id(given)

    @router.post("/logged-models")
    def create_logged_model(body: _CreateLoggedModel, actor: Actor) -> Response:
        spec = LoggedModelSpec(
            experiment_id=experiment_id(body.experiment_id),
            name=body.name or None,
            source_run_id=body.source_run_id or None,
            model_type=body.model_type,
            tags=_pairs(body.tags, "tags"),
            params=_pairs(body.params, "params"),
        )
        return _answer(models.create(spec, user=actor.name))

    @router.post("/logged-models/search")
    def search_logged_models(body: _Search) -> Response:
        order = [o.model_dump() for o in body.order_by]
        datasets = [d.model_dump() for d in body.datasets]
        query = ("logged-models", body.experiment_ids, body.filter, order, datasets)
        offset = page_offset(body.page_token, query)
        with blame("filter"):
            page = models.search(
                [experiment_id(e) for e in body.experiment_ids],
                body.filter,
                order_by=[
                    OrderBy(o.field_name, o.ascending, o.dataset_name, o.dataset_digest)
                    for o in body.order_by
                ],
                datasets=[DatasetRef(d.dataset_name, d.dataset_digest) for d in body.datasets],
                max_results=body.max_results or 100,
                offset=offset,
            )
        answer: dict[str, Any] = {"models": [_model_json(m) for m in page.models]}
        if page.next_offset is not None:
            answer["next_page_token"] = page_token(page.next_offset, query)
        return OrjsonResponse(answer)

    @router.get("/logged-models/{model_id}")
    def get_logged_model(model_id: str, allow_deleted: bool = False) -> Response:
        return _answer(models.get(model_id, allow_deleted=allow_deleted))

    @router.patch("/logged-models/{model_id}")
    def finalize_logged_model(model_id: str, body: _Finalize) -> Response:
        status = _STATUS_IN.get(body.status)
        if status is None:
            raise InvalidArgument(
                f"Invalid status {body.status!r}: use LOGGED_MODEL_READY or "
                "LOGGED_MODEL_UPLOAD_FAILED",
                [
                    {
                        "field": "status",
                        "message": "LOGGED_MODEL_READY or LOGGED_MODEL_UPLOAD_FAILED",
                    }
                ],
            )
        return _answer(models.finalize(model_id, status))

    @router.delete("/logged-models/{model_id}")
    def delete_logged_model(model_id: str) -> Response:
        models.delete(model_id)
        return OrjsonResponse({})

    @router.patch("/logged-models/{model_id}/tags")
    def set_logged_model_tags(model_id: str, body: _Tags) -> Response:
        return _answer(models.set_tags(model_id, _pairs(body.tags, "tags")))

    @router.delete("/logged-models/{model_id}/tags/{tag_key:path}")
    def delete_logged_model_tag(model_id: str, tag_key: str) -> Response:
        models.delete_tag(model_id, tag_key)
        return OrjsonResponse({})

    @router.post("/logged-models/{model_id}/params")
    def log_logged_model_params(model_id: str, body: _Params) -> Response:
        models.log_params(model_id, _pairs(body.params, "params"))
        return OrjsonResponse({})

    @router.get("/artifacts/list")
    def list_run_artifacts(
        run_id: str = "", run_uuid: str = "", path: str | None = None
    ) -> Response:
        """A run's artifacts in one folder, paths from the run's root (the UI's listing)."""
        run = store.get_run(check_run_id(run_id or run_uuid))
        folder = _folder(path)
        return OrjsonResponse(
            {
                "root_uri": f"mlflow-artifacts:/{run.experiment_id}/{run.run_id}/{_RUN_ROOT}",
                "files": _children(store.list_artifacts(run.run_id), folder, folder),
            }
        )

    @router.get("/logged-models/{model_id}/artifacts/directories")
    def list_logged_model_artifacts(
        model_id: str, artifact_directory_path: str | None = None
    ) -> Response:
        """A logged model's files in one folder, paths from the model's root."""
        model = models.get(model_id)
        folder = _folder(artifact_directory_path)
        inside = f"{model.artifact_path}/{folder}" if folder else model.artifact_path
        return OrjsonResponse(
            {
                "root_uri": _model_json(model)["info"]["artifact_uri"],
                "files": _children(store.list_artifacts(model.run_id), inside, folder),
            }
        )

    @router.post("/runs/outputs")
    def log_outputs(body: _LogOutputs) -> Response:
        for output in body.models:
            models.record_output(body.run_id, output.model_id, output.step)
        return OrjsonResponse({})

    return router


def _pairs(pairs: list[_Pair], field: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for i, pair in enumerate(pairs):
        if pair.key in found and found[pair.key] != pair.value:
            raise InvalidArgument(
                f"{field}: key {pair.key!r} is given twice with different values",
                [{"field": f"body.{field}.{i}", "message": "a duplicate key"}],
            )
        found[pair.key] = pair.value
    return found


def _answer(model: LoggedModel) -> Response:
    return OrjsonResponse({"model": _model_json(model)})


def _model_json(model: LoggedModel) -> dict[str, Any]:
    info: dict[str, Any] = {
        "model_id": model.model_id,
        "experiment_id": model.experiment_id,
        "name": model.name,
        "creation_timestamp_ms": model.created_at,
        "last_updated_timestamp_ms": model.updated_at,
        "artifact_uri": f"mlflow-artifacts:/{model.experiment_id}/{_MODELS}/{model.model_id}/"
        f"{_RUN_ROOT}",
        "status": _STATUS_OUT[model.status],
        "tags": [{"key": k, "value": v} for k, v in model.tags.items()],
    }
    if model.model_type:
        info["model_type"] = model.model_type
    if model.source_run_id:
        info["source_run_id"] = model.source_run_id
    if model.status_message:
        info["status_message"] = model.status_message
    params = [{"key": k, "value": v} for k, v in model.params.items()]
    metrics = [_metric_json(m) for m in model.metrics]
    return {"info": info, "data": {"params": params, "metrics": metrics}}


def _metric_json(point: ModelMetric) -> dict[str, Any]:
    """MLflow's ``Metric`` message as a logged model carries it."""
    found: dict[str, Any] = {
        "key": point.key,
        "value": json_number(point.value),
        "timestamp": point.timestamp,
        "step": point.step,
        "run_id": point.run_id,
        "model_id": point.model_id,
    }
    if point.dataset_name is not None:
        found["dataset_name"] = point.dataset_name
        found["dataset_digest"] = point.dataset_digest
    return found
