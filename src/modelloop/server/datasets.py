"""The dataset routes under ``/api/v1``: HTTP in, dataset store calls, versions out.

A version's data travels as Parquet, both ways: an upload is the request body (sent as
``application/vnd.apache.parquet`` or ``application/octet-stream``, at most the server's upload
limit), read back here and logged as the local store logs a frame, so the same content is the same
version however it arrives; with ``digest`` the body must hold that very content. A download is
the stored Parquet file, or with ``rows`` a file of the first rows. Nothing is unpickled.

The actor of every change is the request's principal (the token's user; without authentication,
the ``X-Modelloop-User`` header). Reads need the viewer role and changes the editor role, both
checked by the middleware. Every other rule is the store's, so a call through the server fails
as the same call on the local store does, with the same message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, BinaryIO, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse

from modelloop.artifacts import BlobStore
from modelloop.auth import Principal
from modelloop.datasets.content import check_candidate, read_upload, to_parquet
from modelloop.datasets.contracts import Check, Contract, ValidationReport
from modelloop.datasets.entities import DatasetVersion, check_dataset_name
from modelloop.datasets.http import PARQUET, validation_to_json, version_to_json
from modelloop.datasets.sql import SqlDatasetStore
from modelloop.errors import InvalidArgument, ModelloopError
from modelloop.server.schemas import (
    INT64_MAX,
    INTEGRAL,
    RUN_ID,
    Checked,
    ErrorOut,
    JsonObject,
    RunIdText,
    Value,
    blame,
)
from modelloop.server.tracking import _OrjsonRoute
from modelloop.store import Database
from modelloop.web.middleware import request_principal
from modelloop.web.responses import OrjsonResponse

_BLOCK = 1024 * 1024  # bytes per chunk of a streamed download
DATASET_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,255}$"  # datasets.entities.check_dataset_name
DIGEST = r"^[0-9a-f]{64}$"
MAX_DIGESTS = 100  # per lookup: each is a query parameter
_NAME_RULES = "1-256 letters, digits, '_', '.' or '-', starting with a letter or digit"
_MEDIA_TYPES = (PARQUET, "application/octet-stream")
_BINARY = {"schema": {"type": "string", "format": "binary"}}

Name = Annotated[
    str,
    Path(description=f"Dataset name: {_NAME_RULES}", examples=["fraud-train"]),
    *Checked(DATASET_NAME, check_dataset_name),
]
Version = Annotated[int, Path(ge=1, lt=2**31, description="Version number, from 1")]
Limit = Annotated[int | None, Query(ge=1, le=INT64_MAX, description="At most this many")]
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in (401, 403, 404, 409, 413, 422)
}
Actor = Annotated[Principal, Depends(request_principal)]


# -- requests ----------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Read(_Body):
    run_id: RunIdText


Scalar = Annotated[
    str | int | float | bool | None, Field(description="A value (a list or mapping is no value)")
]


class ExpectIn(_Body):
    """One column's rules, as :class:`~modelloop.datasets.contracts.Expect` reads them."""

    dtype: str | None = Field(
        default=None,
        description="A kind (float, int, numeric, bool, category, string, datetime) or a "
        "pandas dtype name (int32, datetime64[ns, UTC])",
    )
    min: Annotated[float, Field(allow_inf_nan=False)] | None = None
    max: Annotated[float, Field(allow_inf_nan=False)] | None = None
    nullable: bool = True
    max_null_rate: Annotated[float, Field(ge=0, le=1)] | None = None
    allowed: list[Scalar] | None = None
    allow_inf: bool = False


RowBound = Annotated[int, Field(ge=0, le=INT64_MAX), INTEGRAL] | None


class ContractIn(_Body):
    """A contract as its configuration (:meth:`~modelloop.datasets.contracts.Contract.to_dict`);
    its custom Python checks travel by name, beside it."""

    columns: dict[str, ExpectIn] = Field(default_factory=dict)
    unique: list[str] = Field(default_factory=list, description="Columns that identify a row")
    rows: list[RowBound] = Field(
        default=[None, None], min_length=2, max_length=2, description="[min, max]; null: none"
    )
    allow_extra_columns: bool = True


class ViolationIn(_Body):
    rule: Annotated[str, Field(min_length=1, max_length=64, examples=["not_null"])]
    column: str | None
    failed_count: Annotated[int, Field(ge=0, le=INT64_MAX), INTEGRAL]
    total: Annotated[int, Field(ge=0, le=INT64_MAX), INTEGRAL]
    examples: list[JsonObject] = Field(max_length=100, description="{row, value} (+ count)")
    message: str


class ReportIn(_Body):
    num_rows: Annotated[int, Field(ge=0, le=INT64_MAX), INTEGRAL]
    violations: list[ViolationIn]


class ValidationIn(_Body):
    contract: ContractIn
    checks: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list, description="The names of the contract's custom Python checks"
    )
    report: ReportIn


# -- responses (documentation only) ------------------------------------------------------------


class DatasetOut(BaseModel):
    name: str
    description: str | None = Field(description="Its first version's")
    created_at: int
    latest_version: int | None
    num_versions: int


class DatasetList(BaseModel):
    datasets: list[DatasetOut]


class ColumnOut(BaseModel):
    name: str
    dtype: str = Field(examples=["float64", "category", "datetime64[us, UTC]"])


class SchemaOut(BaseModel):
    columns: list[ColumnOut] = Field(description="In order")
    categories: dict[str, list[str]] = Field(description="A categorical's categories, as text")


class HistogramOut(BaseModel):
    edges: list[float]
    counts: list[int]


class ColumnProfileOut(BaseModel):
    name: str
    dtype: str
    kind: Literal["numeric", "categorical", "datetime", "other"]
    count: int = Field(description="Non-null values")
    null_count: int
    null_rate: float
    distinct: int
    min: float | str | None = None
    max: float | str | None = None
    mean: float | None = None
    std: float | None = None
    inf_count: int = 0
    quantiles: dict[str, float] | None = None
    histogram: HistogramOut | None = None
    top: dict[str, float] | None = Field(default=None, description="Value -> share")
    other_share: float | None = None
    value_counts: dict[str, int] | None = None


class ProfileOut(BaseModel):
    num_rows: int
    columns: list[ColumnProfileOut]


class DatasetVersionOut(BaseModel):
    name: str
    version: int
    digest: str = Field(description="sha256 of the content (modelloop.datasets.content)")
    artifact_digest: str = Field(description="sha256 of the stored Parquet file")
    num_rows: int
    num_columns: int
    schema_: SchemaOut = Field(alias="schema")
    profile: ProfileOut
    created_at: int
    created_by: str
    run_id: str | None = Field(description="The run that logged it first")
    description: str | None


class DatasetVersionList(BaseModel):
    versions: list[DatasetVersionOut]


class ViolationOut(BaseModel):
    rule: str
    column: str | None
    failed_count: int
    total: int
    examples: list[dict[str, Any]]
    message: str


class ReportOut(BaseModel):
    num_rows: int
    ok: bool
    violations: list[ViolationOut]


class ValidationOut(BaseModel):
    validation_id: int
    name: str
    version: int
    contract: dict[str, Any]
    checks: list[str]
    report: ReportOut
    ok: bool
    created_at: int
    created_by: str


class ValidationList(BaseModel):
    validations: list[ValidationOut]


class VersionRunsOut(BaseModel):
    logged_by: list[str] = Field(description="The runs that logged it, the first one first")
    read_by: list[str]


class DataSize(BaseModel):
    bytes: int | None = Field(description="null: the Parquet file is missing from the store")


# -- routes ------------------------------------------------------------------------------------


def datasets_router(db: Database, blobs: BlobStore) -> APIRouter:
    """The routes over the datasets of ``db``, their Parquet files in ``blobs``."""
    store = SqlDatasetStore(db, blobs)
    router = APIRouter(
        prefix="/api/v1", tags=["datasets"], route_class=_OrjsonRoute, responses=_ERRORS
    )

    @router.get("/datasets", response_model=DatasetList)
    def list_datasets() -> Response:
        return OrjsonResponse({"datasets": store.list_datasets()})

    @router.get("/datasets/{name}/versions", response_model=DatasetVersionList)
    def list_versions(name: Name) -> Response:
        return OrjsonResponse({"versions": [version_to_json(v) for v in store.list_versions(name)]})

    @router.post(
        "/datasets/{name}/versions",
        status_code=201,
        response_model=DatasetVersionOut,
        responses={
            200: {"model": DatasetVersionOut, "description": "The version that holds it already"},
            201: {"description": "A new version"},
            415: {"model": ErrorOut, "description": "The body is not sent as Parquet"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "A Parquet file",
                "content": dict.fromkeys(_MEDIA_TYPES, _BINARY),
            }
        },
    )
    async def log_version(
        name: Name,
        request: Request,
        actor: Actor,
        digest: Annotated[
            str | None,
            Query(
                pattern=DIGEST,
                description="The content's digest (modelloop.datasets.content): when given, "
                "the body must hold that content",
            ),
        ] = None,
        run_id: Annotated[
            str | None, Query(pattern=RUN_ID, description="The run that logged it")
        ] = None,
        description: Annotated[Value | None, Query(description="The version's")] = None,
    ) -> Response:
        """Log the Parquet file in the body as a version of ``name``: the version that holds
        its content already (200), or the next one (201)."""
        media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media not in _MEDIA_TYPES:
            raise HTTPException(
                415,
                f"Send the dataset as a Parquet file with Content-Type {PARQUET} (or "
                f"application/octet-stream), not {media or 'no Content-Type'}",
            )
        data = await request.body()
        version, created = await run_in_threadpool(
            _log, store, name, data, digest, run_id, description, actor.name
        )
        return OrjsonResponse(version_to_json(version), 201 if created else 200)

    @router.get("/datasets/{name}/latest", response_model=DatasetVersionOut)
    def get_latest(name: Name) -> Response:
        return OrjsonResponse(version_to_json(store.get_version(name)))

    @router.get("/datasets/{name}/versions/{version}", response_model=DatasetVersionOut)
    def get_version(name: Name, version: Version) -> Response:
        return OrjsonResponse(version_to_json(store.get_version(name, version)))

    @router.get(
        "/datasets/{name}/versions/{version}/data",
        response_class=Response,
        responses={200: {"description": "A Parquet file", "content": {PARQUET: _BINARY}}},
    )
    def get_data(
        name: Name,
        version: Version,
        rows: Annotated[
            int | None, Query(ge=0, le=INT64_MAX, description="Only the first rows")
        ] = None,
    ) -> Response:
        """The version's Parquet file as stored or, with ``rows``, one of its first rows."""
        found = store.get_version(name, version)
        if rows is not None:
            return Response(to_parquet(_head(store, found, rows)), media_type=PARQUET)
        local = store.blobs.local_path(found.artifact_digest)  # NotFound: "no blob ..."
        if local is not None:
            return FileResponse(local, media_type=PARQUET)
        blob = store.blobs.open(found.artifact_digest)  # fails before a byte is sent
        return StreamingResponse(_chunks(blob), media_type=PARQUET)

    @router.get("/datasets/{name}/versions/{version}/size", response_model=DataSize)
    def get_size(name: Name, version: Version) -> Response:
        return OrjsonResponse({"bytes": store.data_size(store.get_version(name, version))})

    @router.get("/datasets/{name}/versions/{version}/validations", response_model=ValidationList)
    def list_validations(name: Name, version: Version, limit: Limit = None) -> Response:
        found = store.validations(store.get_version(name, version), limit=limit)
        return OrjsonResponse({"validations": [validation_to_json(v) for v in found]})

    @router.post(
        "/datasets/{name}/versions/{version}/validations",
        status_code=201,
        response_model=ValidationOut,
    )
    def add_validation(name: Name, version: Version, body: ValidationIn, actor: Actor) -> Response:
        """Keep a check of the version against a contract, passed or failed (the check ran
        where the contract's custom Python checks are: at the client)."""
        found = store.get_version(name, version)
        with _within("body.contract"):
            contract = Contract.from_dict(body.contract.model_dump(), source="body.contract")
        named = dataclasses.replace(
            contract, checks=[Check(n, _known_by_name) for n in body.checks]
        )
        report = ValidationReport.from_dict(body.report.model_dump())
        kept = store.add_validation(found, named, report, actor=actor.name)
        return OrjsonResponse(validation_to_json(kept), 201)

    @router.post(
        "/datasets/{name}/versions/{version}/reads", status_code=204, response_class=Response
    )
    def record_read(name: Name, version: Version, body: Read) -> Response:
        """Note that a run read the version (lineage)."""
        store.record_read(store.get_version(name, version), body.run_id)
        return Response(status_code=204)

    @router.get("/datasets/{name}/versions/{version}/runs", response_model=VersionRunsOut)
    def version_runs(
        name: Name,
        version: Version,
        limit: Annotated[int, Query(ge=1, le=INT64_MAX, description="Of each")] = 1000,
    ) -> Response:
        used = store.version_runs(store.get_version(name, version), limit)
        return OrjsonResponse({"logged_by": used.logged_by, "read_by": used.read_by})

    @router.get("/dataset-versions", response_model=DatasetVersionList)
    def versions_with_digests(
        digest: Annotated[
            list[Annotated[str, Field(max_length=64)]],
            Query(
                max_length=MAX_DIGESTS,
                description="Contents to look for (repeat the parameter); a digest no "
                "version holds finds nothing",
            ),
        ],
    ) -> Response:
        found = store.versions_with_digests(digest)
        return OrjsonResponse({"versions": [version_to_json(v) for v in found]})

    @router.get("/dataset-versions/latest", response_model=DatasetVersionList)
    def latest_versions() -> Response:
        return OrjsonResponse({"versions": [version_to_json(v) for v in store.latest_versions()]})

    @router.get("/dataset-validations/latest", response_model=ValidationList)
    def latest_validations() -> Response:
        found = store.latest_validations().values()
        return OrjsonResponse({"validations": [validation_to_json(v) for v in found]})

    return router


def _log(
    store: SqlDatasetStore,
    name: str,
    data: bytes,
    digest: str | None,
    run_id: str | None,
    description: str | None,
    actor: str,
) -> tuple[DatasetVersion, bool]:
    with blame("body"):
        frame = read_upload(data)
        candidate = check_candidate(
            name, frame, description=description, run_id=run_id, contract=None
        )
    if digest is not None and candidate.digest != digest:
        message = (
            f"The body holds the content {candidate.digest}, not {digest}: it changed on the "
            "way, or was not written from the frame the digest is of"
        )
        raise InvalidArgument(message, [{"field": "query.digest", "message": message}])
    return store.store_candidate(candidate, actor=actor)


def _head(store: SqlDatasetStore, version: DatasetVersion, rows: int) -> Any:
    try:
        return store.head(version, rows)
    except ModelloopError:
        raise
    except (OSError, ValueError) as exc:  # a damaged file in the store: the server's problem
        raise ModelloopError(f"The Parquet file of {version.ref} cannot be read: {exc}") from None


def _chunks(blob: BinaryIO) -> Iterator[bytes]:
    with blob:
        while chunk := blob.read(_BLOCK):
            yield chunk


def _known_by_name(frame: Any) -> Any:
    raise InvalidArgument("This custom check ran at the client: the server knows only its name")


@contextmanager
def _within(prefix: str) -> Iterator[None]:
    """Name the fields of an InvalidArgument raised inside as under ``prefix``."""
    try:
        yield
    except InvalidArgument as exc:
        details = [
            {**d, "field": f"{prefix}.{d['field']}" if d.get("field") else prefix}
            for d in exc.details or [{"field": None, "message": exc.message}]
        ]
        raise type(exc)(exc.message, details) from None
