"""The wire contract of the REST API: pydantic models, the compact metric form, JSON encoding.

Request models are strict and forbid unknown fields, so a typo in a client is a 422 naming the
field rather than a silently ignored value. Response models only document: the routes hand
entities (dataclasses, numpy arrays) straight to orjson, which is many times faster than
validating them again through pydantic.

JSON has no NaN or infinity. On the wire a metric value is a number, ``null`` (NaN) or one of the
strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``; :func:`decode_metrics` reads that form and
:func:`encode_values` writes it (``modelloop.tracking.http`` mirrors both on the client side).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.responses import Response

from modelloop.errors import InvalidArgument
from modelloop.tracking.entities import Metric, Run, RunStatus, check_metric
from modelloop.tracking.sql import MAX_SEARCH_RESULTS

MAX_NESTING = 64  # JSON objects below this depth render through orjson (its limit is 255)
NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class OrjsonResponse(Response):
    """JSON rendered by orjson: dataclasses, enums and numpy arrays as they are; NaN as null."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


# -- requests ----------------------------------------------------------------------------------


def _shallow(value: dict[str, Any]) -> dict[str, Any]:
    """Refuse objects too deep to render back (orjson stops at 255 levels), iteratively."""
    level: list[Any] = [value]
    for _ in range(MAX_NESTING):
        level = [
            child
            for item in level
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, dict | list)
        ]
        if not level:
            return value
    raise ValueError(f"nested deeper than {MAX_NESTING} levels")


JsonObject = Annotated[dict[str, Any], AfterValidator(_shallow)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ExperimentCreate(_Request):
    name: str
    description: str | None = None


class RunCreate(_Request):
    experiment_id: str
    name: str | None = None
    parent_run_id: str | None = None
    user: str = "unknown"
    params: dict[str, str] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    source: JsonObject = Field(default_factory=dict)
    environment: JsonObject = Field(default_factory=dict)


class RunEnd(_Request):
    status: Annotated[RunStatus, Field(strict=False)]
    error: str | None = None


class Batch(_Request):
    metrics: list[list[Any]] = Field(
        default_factory=list,
        description="Points as compact arrays [key, value, step, timestamp_ms]; value is a "
        'number, null (NaN), "NaN", "Infinity" or "-Infinity".',
        examples=[[["loss", 0.25, 1, 1700000000000]]],
    )
    params: dict[str, str] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)


class RunSearch(_Request):
    experiment_ids: list[str]
    filter: str | None = Field(default=None, examples=["metrics.auc > 0.9"])
    order_by: list[str] = Field(default_factory=list, examples=[["metrics.auc DESC"]])
    max_results: int = Field(default=1000, ge=1, le=MAX_SEARCH_RESULTS)
    offset: int = Field(default=0, ge=0, description="Runs to skip: the start of a page")


# -- responses (documentation only) ------------------------------------------------------------


class ExperimentOut(BaseModel):
    experiment_id: str
    name: str
    created_at: int
    description: str | None


class ExperimentList(BaseModel):
    experiments: list[ExperimentOut]


class RunOut(BaseModel):
    run_id: str
    experiment_id: str
    name: str
    status: RunStatus
    start_time: int
    end_time: int | None
    parent_run_id: str | None
    user: str
    source: dict[str, Any]
    environment: dict[str, Any]
    error: str | None
    params: dict[str, str]
    tags: dict[str, str]
    metrics: dict[str, float | str | None] = Field(
        description='Latest value per key; NaN as null, infinities as "Infinity"/"-Infinity".'
    )


class RunList(BaseModel):
    runs: list[RunOut]


class MetricHistory(BaseModel):
    key: str
    steps: list[int]
    values: list[float | str | None]
    timestamps: list[int]


class ArtifactOut(BaseModel):
    path: str
    digest: str
    size: int


class ArtifactList(BaseModel):
    artifacts: list[ArtifactOut]


class ErrorOut(BaseModel):
    error_code: str = Field(examples=["NOT_FOUND"])
    message: str


# -- the compact metric form -------------------------------------------------------------------


def decode_value(value: object) -> object:
    """A wire value as a float where it spells NaN/infinity; anything else is left to check."""
    if value is None:
        return math.nan
    if isinstance(value, str) and value in NON_FINITE:
        return NON_FINITE[value]
    return value


def decode_metrics(rows: Sequence[Sequence[Any]]) -> list[Metric]:
    """``[[key, value, step, timestamp], ...]`` as checked points; errors name the row."""
    points = []
    for i, row in enumerate(rows):
        try:
            if len(row) != 4:
                raise InvalidArgument(
                    f"expected [key, value, step, timestamp], got {len(row)} items"
                )
            key, value, step, timestamp = row
            points.append(check_metric(key, decode_value(value), step, timestamp))
        except InvalidArgument as exc:
            raise InvalidArgument(f"body.metrics.{i}: {exc.message}") from None
        except OverflowError:  # an integer too large for a float
            raise InvalidArgument(f"body.metrics.{i}: value is out of range") from None
    return points


def encode_value(value: float) -> float | str | None:
    if math.isfinite(value):
        return value
    return None if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def encode_run(run: Run) -> Any:
    """The run for orjson: itself, unless a latest metric is infinite (see encode_values)."""
    if not any(math.isinf(v) for v in run.metrics.values()):
        return run
    fields = {f.name: getattr(run, f.name) for f in dataclasses.fields(run)}
    fields["metrics"] = {k: encode_value(v) for k, v in run.metrics.items()}
    return fields


def encode_values(values: np.ndarray[Any, np.dtype[np.float64]]) -> Any:
    """Float column for orjson: the array itself unless it holds infinities (orjson writes
    those as null, which would read back as NaN)."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    if not np.isinf(values).any():
        return values
    return [encode_value(v) for v in values.tolist()]
