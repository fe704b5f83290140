"""The tracking routes under ``/api/v1``: translate HTTP into store calls and back, nothing more.

Every decision (names, keys, param immutability, filters, artifact paths) is the store's, so a
call through the server fails exactly as the same call on the local store. Blocking store calls
run in the thread pool (sync routes); the artifact upload is the one async route, because it
streams the request body into the blob store instead of buffering it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Annotated, Any

import anyio.from_thread
import orjson
from fastapi import APIRouter, Path, Query
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.convertors import StringConvertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse

from modelloop.artifacts import BlobStore, canonical_path
from modelloop.artifacts.paths import MAX_PATH_CHARS
from modelloop.auth import Principal
from modelloop.errors import NotFound
from modelloop.server.schemas import (
    ARTIFACT_PATH,
    KEY,
    KEY_RULES,
    PATH_RULES,
    PATH_SCHEMA,
    RUN_ID,
    ArtifactList,
    ArtifactOut,
    Batch,
    ErrorOut,
    ExperimentCreate,
    ExperimentList,
    ExperimentOut,
    ExperimentSearch,
    InputList,
    InputsLog,
    Lifecycle,
    MetricHistory,
    Pattern,
    Rename,
    RunCreate,
    RunEnd,
    RunList,
    RunOut,
    RunSearch,
    TagsSet,
    TextName,
    blame,
    decode_metrics,
    encode_run,
    encode_values,
)
from modelloop.tracking.entities import DatasetInput, RunSpec, RunStatus
from modelloop.tracking.sql import SqlTrackingStore
from modelloop.web.responses import OrjsonResponse

_UPLOAD_BLOCK = 1024 * 1024  # bytes handed to the blob store per hop out of the event loop

RunId = Annotated[str, Path(pattern=RUN_ID, description="32 lowercase hex characters")]
ArtifactPath = Annotated[
    str,
    Query(description=PATH_RULES, examples=["model.txt"], json_schema_extra=PATH_SCHEMA),
]
Prefix = Annotated[
    str,
    Query(
        description="A folder to list; empty: all artifacts",
        json_schema_extra={
            "pattern": rf"^(?:{ARTIFACT_PATH.strip('^$')})?$",
            "maxLength": MAX_PATH_CHARS,
        },
    ),
]
MetricKey = Annotated[
    str, Path(description="Metric key", examples=["loss"]), *Pattern(KEY, KEY_RULES)
]
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in (401, 404, 409, 413, 422)
}


class _RunIdConvertor(StringConvertor):
    """A run id segment that is not ``search``: ``GET /runs/search`` is then the wrong method
    on ``POST /runs/search`` (405) rather than an invalid run id."""

    regex = "(?!search$)[^/]+"


class _OrjsonRequest(Request):
    """Parses JSON bodies with orjson: faster, and strict (no NaN literals, no lone
    surrogates, at most 1024 levels deep), so what it accepts can always be stored and
    rendered back. Its errors subclass ``json.JSONDecodeError``, which FastAPI reports."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = orjson.loads(await self.body())
        return self._json


class _OrjsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def orjson_handler(request: Request) -> Response:
            return await handler(_OrjsonRequest(request.scope, request.receive))

        return orjson_handler


def tracking_router(store: SqlTrackingStore, *, max_upload_bytes: int) -> APIRouter:
    """The routes over one store; ``max_upload_bytes`` bounds a single artifact."""
    register_url_convertor("run_id", _RunIdConvertor())  # before the routes that use it
    router = APIRouter(
        prefix="/api/v1", tags=["tracking"], route_class=_OrjsonRoute, responses=_ERRORS
    )

    # -- experiments ---------------------------------------------------------------------------

    @router.post("/experiments", status_code=201, response_model=ExperimentOut)
    def create_experiment(body: ExperimentCreate) -> Response:
        return OrjsonResponse(store.create_experiment(body.name, body.description), 201)

    @router.get("/experiments", response_model=ExperimentList)
    def list_experiments(lifecycle: Lifecycle = "active") -> Response:
        return OrjsonResponse({"experiments": store.list_experiments(lifecycle)})

    @router.post("/experiments/search", response_model=ExperimentList)
    def search_experiments(body: ExperimentSearch) -> Response:
        found = store.search_experiments(
            body.filter, body.order_by, body.max_results, body.offset, body.lifecycle
        )
        return OrjsonResponse({"experiments": found})

    @router.get("/experiments/by-name/{name:path}", response_model=ExperimentOut)
    def get_experiment_by_name(name: Annotated[TextName, Path()]) -> Response:
        found = store.get_experiment_by_name(name)
        if found is None:
            raise NotFound(f"Experiment {name!r} does not exist")
        return OrjsonResponse(found)

    @router.get("/experiments/{experiment_id}", response_model=ExperimentOut)
    def get_experiment(experiment_id: str) -> Response:
        return OrjsonResponse(store.get_experiment(experiment_id))

    @router.patch("/experiments/{experiment_id}", response_model=ExperimentOut)
    def rename_experiment(experiment_id: str, body: Rename) -> Response:
        return OrjsonResponse(store.rename_experiment(experiment_id, body.name))

    @router.delete("/experiments/{experiment_id}", response_model=ExperimentOut)
    def delete_experiment(experiment_id: str) -> Response:
        """Hide the experiment and its runs (restorable)."""
        return OrjsonResponse(store.delete_experiment(experiment_id))

    @router.post("/experiments/{experiment_id}/restore", response_model=ExperimentOut)
    def restore_experiment(experiment_id: str) -> Response:
        return OrjsonResponse(store.restore_experiment(experiment_id))

    @router.put("/experiments/{experiment_id}/tags", status_code=204, response_class=Response)
    def set_experiment_tags(experiment_id: str, body: TagsSet) -> Response:
        store.set_experiment_tags(experiment_id, body.tags)
        return Response(status_code=204)

    @router.delete(
        "/experiments/{experiment_id}/tags/{key:path}", status_code=204, response_class=Response
    )
    def delete_experiment_tag(experiment_id: str, key: MetricKey) -> Response:
        store.delete_experiment_tag(experiment_id, key)
        return Response(status_code=204)

    # -- runs ----------------------------------------------------------------------------------

    @router.post("/runs", status_code=201, response_model=RunOut)
    def create_run(body: RunCreate, request: Request) -> Response:
        spec = RunSpec(**body.model_dump())
        principal = request.scope.get("state", {}).get("principal")
        if isinstance(principal, Principal) and principal.verified:
            spec = dataclasses.replace(spec, user=principal.name)  # a token says who, not a body
        return OrjsonResponse(encode_run(store.create_run(spec)), 201)

    @router.post("/runs/search", response_model=RunList)
    def search_runs(body: RunSearch) -> Response:
        runs = store.search_runs(
            body.experiment_ids,
            body.filter,
            body.order_by,
            body.max_results,
            body.offset,
            body.lifecycle,
        )
        return OrjsonResponse({"runs": [encode_run(run) for run in runs]})

    @router.get("/runs/{run_id:run_id}", response_model=RunOut)
    def get_run(run_id: RunId) -> Response:
        return OrjsonResponse(encode_run(store.get_run(run_id)))

    @router.patch("/runs/{run_id:run_id}", response_model=RunOut)
    def rename_run(run_id: RunId, body: Rename) -> Response:
        return OrjsonResponse(encode_run(store.rename_run(run_id, body.name)))

    @router.delete("/runs/{run_id:run_id}", response_model=RunOut)
    def delete_run(run_id: RunId) -> Response:
        """Hide the run from searches (restorable)."""
        return OrjsonResponse(encode_run(store.delete_run(run_id)))

    @router.post("/runs/{run_id}/resume", response_model=RunOut)
    def resume_run(run_id: RunId) -> Response:
        """An ended run RUNNING again, to log more to it."""
        return OrjsonResponse(encode_run(store.resume_run(run_id)))

    @router.post("/runs/{run_id}/restore", response_model=RunOut)
    def restore_run(run_id: RunId) -> Response:
        return OrjsonResponse(encode_run(store.restore_run(run_id)))

    @router.delete("/runs/{run_id}/tags/{key:path}", status_code=204, response_class=Response)
    def delete_tag(run_id: RunId, key: MetricKey) -> Response:
        store.delete_tag(run_id, key)
        return Response(status_code=204)

    @router.post("/runs/{run_id}/inputs", status_code=204, response_class=Response)
    def log_inputs(run_id: RunId, body: InputsLog) -> Response:
        inputs = [
            DatasetInput(
                i.name, i.digest, i.source_type, i.source, i.schema_, i.profile, dict(i.tags)
            )
            for i in body.inputs
        ]
        store.log_inputs(run_id, inputs)
        return Response(status_code=204)

    @router.get("/runs/{run_id}/inputs", response_model=InputList)
    def run_inputs(run_id: RunId) -> Response:
        return OrjsonResponse({"inputs": store.run_inputs(run_id)})

    @router.post("/runs/{run_id}/end", response_model=RunOut)
    def end_run(run_id: RunId, body: RunEnd) -> Response:
        ended = store.end_run(run_id, RunStatus(body.status), body.error, end_time=body.end_time)
        return OrjsonResponse(encode_run(ended))

    @router.post("/runs/{run_id}/batch", status_code=204, response_class=Response)
    def log_batch(run_id: RunId, body: Batch) -> Response:
        store.log_batch(run_id, decode_metrics(body.metrics), body.params, body.tags)
        return Response(status_code=204)

    @router.get("/runs/{run_id}/metrics/{key:path}/history", response_model=MetricHistory)
    def metric_history(run_id: RunId, key: MetricKey) -> Response:
        series = store.metric_history(run_id, key)
        return OrjsonResponse(
            {
                "key": series.key,
                "steps": series.steps,
                "values": encode_values(series.values),
                "timestamps": series.timestamps,
            }
        )

    # -- artifacts -----------------------------------------------------------------------------

    @router.put(
        "/runs/{run_id}/artifact",
        status_code=201,
        response_model=ArtifactOut,
        openapi_extra={
            "requestBody": {
                "required": False,  # no body: an empty artifact
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                },
            }
        },
    )
    async def put_artifact(run_id: RunId, path: ArtifactPath, request: Request) -> Response:
        """Store the raw request body as the run's artifact ``path`` (immutable)."""
        with blame("query.path"):
            logical = canonical_path(path)  # before a byte of the body is read
        await run_in_threadpool(store.get_run, run_id)
        digest, size = await run_in_threadpool(
            store.blobs.put_stream, _body_blocks(request), max_upload_bytes
        )
        info = await run_in_threadpool(store.index_artifact, run_id, logical, digest, size)
        return OrjsonResponse(info, 201)

    @router.get(
        "/runs/{run_id}/artifact",
        response_class=Response,
        responses={200: {"content": {"application/octet-stream": {}}}},
    )
    def get_artifact(run_id: RunId, path: ArtifactPath) -> Response:
        with blame("query.path"):
            digest = store.artifact_digest(run_id, path)
        local = store.blobs.local_path(digest)
        if local is not None:
            return FileResponse(local, media_type="application/octet-stream")
        return StreamingResponse(
            _blob_chunks(store.blobs, digest), media_type="application/octet-stream"
        )

    @router.get("/runs/{run_id}/artifacts", response_model=ArtifactList)
    def list_artifacts(run_id: RunId, prefix: Prefix = "") -> Response:
        with blame("query.prefix"):
            return OrjsonResponse({"artifacts": store.list_artifacts(run_id, prefix)})

    return router


def _body_blocks(request: Request) -> Iterator[bytes]:
    """The request body as a blocking iterator, for the blob store in a worker thread.

    Each step hops into the event loop and back, so it gathers about 1 MiB per hop.
    """
    chunks = request.stream().__aiter__()

    async def next_block() -> bytes | None:
        parts: list[bytes] = []
        size = 0
        while size < _UPLOAD_BLOCK:
            chunk = await _next(chunks)
            if chunk is None:
                break
            if chunk:
                parts.append(chunk)
                size += len(chunk)
        return b"".join(parts) if parts else None

    while (block := anyio.from_thread.run(next_block)) is not None:
        yield block


async def _next(chunks: AsyncIterator[bytes]) -> bytes | None:
    try:
        return await chunks.__anext__()
    except StopAsyncIteration:
        return None


def _blob_chunks(blobs: BlobStore, digest: str) -> Iterator[bytes]:
    with blobs.open(digest) as blob:
        while chunk := blob.read(_UPLOAD_BLOCK):
            yield chunk
