"""The wire contract of the REST API: the server's constraints, pydantic models, the compact
metric form, JSON encoding.

The OpenAPI document is the contract: what it declares valid, the server accepts, and what it
declares invalid, the server refuses with a 422 naming the field. So the rules the stores enforce
on names, keys and reasons are written here as JSON Schema patterns and bounds (``Pattern``
checks each with Python's ``re`` under the same expression, so the two cannot drift), and the
contract test (``tests/server/test_openapi_contract.py``) holds the server to them.

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
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from modelloop.artifacts.paths import MAX_PATH_CHARS
from modelloop.errors import InvalidArgument
from modelloop.registry.entities import check_model_name
from modelloop.tracking.entities import MAX_VALUE_LENGTH, Metric, Run, RunStatus, check_metric
from modelloop.tracking.filter import MAX_FILTER_LENGTH
from modelloop.tracking.sql import MAX_SEARCH_RESULTS

MAX_NESTING = 64  # JSON objects below this depth render through orjson (its limit is 255)
NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
INT64_MAX = 2**63 - 1


# -- the server's constraints ------------------------------------------------------------------


def _spelled_out(*classes: str) -> list[str]:
    """Python's ``\\w`` and ``\\s`` as the characters they match: JSON Schema's are ASCII or
    differ at the edges, the stores' are Python's, and a contract says what the server accepts."""
    every = "".join(map(chr, range(sys.maxunicode + 1)))
    spelled = []
    for cls in classes:
        spans = []
        for run in re.finditer(cls + "+", every):
            first, last = run.group()[0], run.group()[-1]
            spans.append(first if first == last else f"{first}-{last}")
        spelled.append("".join(spans))
    return spelled


(_SPACE,) = _spelled_out(r"\s")
_CONTROL = r"\x00-\x1f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # and bidi: tracking.sql

# Each mirrors the check named beside it; the contract test sends what these allow and refuse.
RUN_ID = r"^[0-9a-f]{32}$"  # tracking.entities.check_run_id
# ``\w`` as Python reads it (letters and digits of any script, as MLflow's keys): JSON Schema
# tools built on Python's ``re`` (hypothesis, schemathesis) read it the same; ECMA-262 ones read
# ASCII, a subset of what the server takes.
_K = r"\w\-./:"
KEY = rf"^[{_K}](?:[{_K} ]{{0,248}}[{_K}])?$"  # tracking.entities.check_key
VALUE = r"^[^\x00]*$"  # tracking.entities.check_value (with MAX_VALUE_LENGTH)
TEXT_NAME = rf"^[^{_CONTROL}]*[^{_CONTROL}{_SPACE}][^{_CONTROL}]*$"  # tracking.sql._check_name
MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,255}$"  # registry.entities.check_model_name
ALIAS = r"^(?!latest$)(?!v[0-9]+$)[a-z][a-z0-9_\-]{0,63}$"  # registry.entities.check_alias
REASON = rf"^[^\x00]*[^\x00{_SPACE}][^\x00]*$"  # registry.entities.check_reason: not blank
ANCHOR = r"^[0-9]+:[0-9A-Fa-f]{64}$"  # audit.parse_anchor
CONFIG_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"  # monitoring.monitor._check_name


def Pattern(regex: str, hint: str, **schema: Any) -> Any:
    """A string matching ``regex`` (searched with ``$`` meaning the end, as JSON Schema reads
    it), else a 422 saying ``hint``; ``schema`` (``maxLength`` ...) is documented beside it."""
    compiled = re.compile(regex.removesuffix("$") + r"\Z" if regex.endswith("$") else regex)

    def check(value: str) -> str:
        if not compiled.search(value):
            raise ValueError(hint)
        return value

    return [Field(json_schema_extra={"pattern": regex, **schema}), AfterValidator(check)]


def Checked(regex: str, check: Callable[[str], object], **schema: Any) -> Any:
    """A string the domain's own ``check`` accepts, documented as matching ``regex``: the
    domain's error (message and field) is the answer, the same as from a local store."""

    def checked(value: str) -> str:
        check(value)  # InvalidArgument passes through pydantic to the error handler
        return value

    return [Field(json_schema_extra={"pattern": regex, **schema}), AfterValidator(checked)]


RunIdText = Annotated[str, *Pattern(RUN_ID, "expected 32 lowercase hex characters")]
KEY_RULES = "use 1-250 letters, digits, '_', '-', '.', '/', ':' or inner spaces"
Key = Annotated[str, *Pattern(KEY, KEY_RULES)]
Value = Annotated[
    str,
    Field(max_length=MAX_VALUE_LENGTH),
    *Pattern(VALUE, "contains a NUL character"),
]
# Experiment, run and user names: the store checks them (naming the field and the character).
TextName = Annotated[str, Field(max_length=256, json_schema_extra={"pattern": TEXT_NAME})]
ModelName = Annotated[str, *Checked(MODEL_NAME, check_model_name)]
Reason = Annotated[
    str,
    Field(max_length=MAX_VALUE_LENGTH, description="Why: required, not blank"),
    *Pattern(REASON, "a reason is required (not blank, no NUL character): say why"),
]


def keyed(values: dict[str, Any]) -> dict[str, Any]:
    """The schema of an object whose keys are keys (``KEY``) and whose values are ``values``
    (pydantic writes key patterns as patternProperties, which let any other key through)."""
    return {"type": "object", "propertyNames": {"pattern": KEY}, "additionalProperties": values}


Pairs = Annotated[
    dict[Key, Value],
    WithJsonSchema(keyed({"type": "string", "maxLength": MAX_VALUE_LENGTH, "pattern": VALUE})),
]


def _integral(value: object) -> object:
    """``3.0`` as ``3``: JSON Schema's integers include it, a strict int refuses the float.
    Only where a float is exact (2**53): a larger one is not the integer that was written."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
        return int(value)
    return value


# After the bounds in an Annotated (``Annotated[int, Field(ge=1), INTEGRAL]``), or pydantic
# cannot write them into the schema.
INTEGRAL = BeforeValidator(_integral)

# What canonical_path also refuses (a segment longer than 255 bytes, a look-alike that NFKC folds
# into '..') no pattern can say; it is a 422 naming the path all the same.
_PATH_CHARS = r"[^\x00-\x1f\x7f-\x9f%:\\;#?]"
_SEGMENTS = r"(?![./]*$)(?!(?:[^/]*/)*(?:[ ][. ]*|\.[. ]+)(?:/|$))"  # '..', ' .', only '.'
ARTIFACT_PATH = rf"^(?!/)(?!~){_SEGMENTS}{_PATH_CHARS}+$"  # artifacts.canonical_path
PATH_RULES = (
    "a relative path (model/model.txt): no control characters, '%', ':', '\\', ';', '#' or "
    "'?', not starting with '/' or '~', no segment of only dots and spaces but '.'"
)
# Documented, and checked by canonical_path itself: its refusals are UnsafePath (422).
PATH_SCHEMA: dict[str, Any] = {"pattern": ARTIFACT_PATH, "maxLength": MAX_PATH_CHARS}
ArtifactPathText = Annotated[str, Field(json_schema_extra=PATH_SCHEMA)]


@contextmanager
def blame(field: str) -> Iterator[None]:
    """Name ``field`` in the details of an InvalidArgument raised inside (its class, so its
    ``error_code``, stays): the domain checks one value, the edge knows which field it was."""
    try:
        yield
    except InvalidArgument as exc:
        if exc.details:
            raise
        raise type(exc)(exc.message, [{"field": field, "message": exc.message}]) from None


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

DURATION = r"^\s*[0-9]+\s*[smhd]\s*$"  # monitoring.monitor.parse_duration, or seconds


def config_body(model: type[BaseModel], what: str) -> dict[str, Any]:
    """The ``openapi_extra`` of a PUT that takes a declared configuration (``model``, validated
    by its domain module for the messages it gives) and whose URL names it."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(defs[node["$ref"].rsplit("/", 1)[-1]])
            if node.get("format") == "duration":  # read by parse_duration, not ISO 8601
                return {"anyOf": [{"type": "string", "pattern": DURATION}, {"type": "number"}]}
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    schema = inline(schema)
    schema["required"] = [field for field in schema.get("required", []) if field != "name"]
    schema["properties"]["name"] = {
        "type": "string",
        "pattern": CONFIG_NAME,
        "description": f"Optional: the URL names the {what}; a name given here must be the same",
    }
    content = {"application/json": {"schema": schema}}
    return {"requestBody": {"required": True, "content": content}}


# -- requests ----------------------------------------------------------------------------------


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ExperimentCreate(_Request):
    name: TextName
    description: Value | None = None


class Rename(_Request):
    name: TextName


Lifecycle = Literal["active", "deleted", "all"]


class ExperimentSearch(_Request):
    filter: str | None = Field(
        default=None,
        max_length=MAX_FILTER_LENGTH,
        examples=["name LIKE 'fraud%' and tags.team = 'risk'"],
        description="name, experiment_id, created_at and tags.<key>, as in run filters",
    )
    order_by: list[str] = Field(default_factory=list, examples=[["created_at DESC"]])
    max_results: Annotated[int, Field(ge=1, le=MAX_SEARCH_RESULTS), INTEGRAL] = 1000
    offset: Annotated[int, Field(ge=0, le=2**53), INTEGRAL] = 0
    lifecycle: Lifecycle = "active"


class TagsSet(_Request):
    tags: Pairs


InputText = Annotated[str, Field(max_length=1_000_000), *Pattern(VALUE, "contains a NUL character")]


class DatasetInputIn(_Request):
    name: Annotated[str, Field(min_length=1, max_length=500)]
    digest: Annotated[str, Field(min_length=1, max_length=64)]
    source_type: Annotated[str, Field(min_length=1, max_length=64)]
    source: Value
    schema_: InputText | None = Field(default=None, alias="schema")
    profile: InputText | None = None
    tags: Pairs = Field(default_factory=dict)


class InputsLog(_Request):
    inputs: list[DatasetInputIn]


class RunCreate(_Request):
    experiment_id: str
    name: TextName | Literal[""] | None = Field(default=None, description="Default: run-<id>")
    parent_run_id: RunIdText | None = None
    user: TextName = Field(
        default="unknown", description="Ignored when the request authenticates: the token says"
    )
    params: Pairs = Field(default_factory=dict)
    tags: Pairs = Field(default_factory=dict)
    source: JsonObject = Field(default_factory=dict)
    environment: JsonObject = Field(default_factory=dict)
    start_time: Annotated[
        int | None,
        Field(ge=0, le=INT64_MAX, description="ms since the epoch; default: now"),
        INTEGRAL,
    ] = None


class RunEnd(_Request):
    status: Literal["FINISHED", "FAILED", "KILLED"]
    error: Value | None = None
    end_time: Annotated[
        int | None,
        Field(ge=0, le=INT64_MAX, description="ms since the epoch; default: now"),
        INTEGRAL,
    ] = None


_POINT: dict[str, Any] = {
    "type": "array",
    "prefixItems": [
        {"type": "string", "pattern": KEY},
        {
            "anyOf": [
                {"type": "number"},
                {"type": "null"},
                {"type": "string", "enum": list(NON_FINITE)},
            ]
        },
        {"type": "integer", "minimum": -(2**63), "maximum": INT64_MAX},
        {"type": "integer", "minimum": 0, "maximum": INT64_MAX},
    ],
    "minItems": 4,
    "maxItems": 4,
    "description": "[key, value, step, timestamp_ms]",
}


class Batch(_Request):
    metrics: list[list[Any]] = Field(
        default_factory=list,
        description="Points as compact arrays [key, value, step, timestamp_ms]; value is a "
        'number, null (NaN), "NaN", "Infinity" or "-Infinity".',
        examples=[[["loss", 0.25, 1, 1700000000000]]],
        json_schema_extra={"items": _POINT},  # checked by decode_metrics: it is the hot path
    )
    params: Pairs = Field(default_factory=dict)
    tags: Pairs = Field(default_factory=dict)


class RunSearch(_Request):
    experiment_ids: list[str]
    filter: str | None = Field(
        default=None,
        max_length=MAX_FILTER_LENGTH,
        examples=["metrics.auc > 0.9"],
        description="The filter language of modelloop.tracking.filter, e.g. "
        "\"metrics.auc > 0.9 and params.model = 'lgbm'\"",
    )
    order_by: list[str] = Field(
        default_factory=list,
        examples=[["metrics.auc DESC"]],
        description="Items such as 'metrics.auc DESC' (ascending unless DESC)",
    )
    max_results: Annotated[int, Field(ge=1, le=MAX_SEARCH_RESULTS), INTEGRAL] = 1000
    offset: Annotated[
        int, Field(ge=0, le=2**53, description="Runs to skip: the start of a page"), INTEGRAL
    ] = 0
    lifecycle: Lifecycle = "active"


# -- responses (documentation only) ------------------------------------------------------------

MetricValue = Annotated[
    float | Literal["Infinity", "-Infinity"] | None,
    Field(description='NaN as null, infinities as "Infinity"/"-Infinity"'),
]


class ExperimentOut(BaseModel):
    experiment_id: str
    name: str
    created_at: int
    description: str | None
    tags: dict[str, str]
    deleted_at: int | None = Field(description="Set when deleted (restorable)")
    updated_at: int = Field(description="Last renamed, tagged, deleted or restored")


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
    metrics: dict[str, MetricValue] = Field(description="Latest value per key")
    deleted_at: int | None = Field(description="Set when deleted (restorable)")


class RunList(BaseModel):
    runs: list[RunOut]


class DatasetInputOut(BaseModel):
    name: str
    digest: str
    source_type: str
    source: str
    schema_: str | None = Field(alias="schema")
    profile: str | None
    tags: dict[str, str]


class InputList(BaseModel):
    inputs: list[DatasetInputOut]


class MetricHistory(BaseModel):
    key: str
    steps: list[int]
    values: list[MetricValue]
    timestamps: list[int]


class ArtifactOut(BaseModel):
    path: str
    digest: str
    size: int


class ArtifactList(BaseModel):
    artifacts: list[ArtifactOut]


class RegisteredModelOut(BaseModel):
    name: str
    description: str | None
    tags: dict[str, str]
    created_at: int
    updated_at: int
    latest_version: int | None = Field(description="The highest version, whatever its status")
    aliases: dict[str, int] = Field(description="Alias -> version")


class ModelList(BaseModel):
    models: list[RegisteredModelOut]


class ModelVersionOut(BaseModel):
    name: str
    version: int
    run_id: str
    artifact_path: str
    flavor: str | None
    signature: dict[str, Any] | None
    status: Literal["READY", "ARCHIVED"]
    description: str | None
    tags: dict[str, str]
    created_at: int
    created_by: str
    metrics: dict[str, float]
    dataset_digests: dict[str, str]
    package_digest: str
    aliases: list[str] = Field(description="The aliases pointing at this version now")


class VersionList(BaseModel):
    versions: list[ModelVersionOut]


class AliasOut(BaseModel):
    name: str
    alias: str
    version: int
    updated_at: int
    updated_by: str


class AliasRequestOut(BaseModel):
    request_id: str
    name: str
    alias: str
    version: int
    requested_by: str
    reason: str
    status: Literal["PENDING", "APPROVED", "REJECTED", "CANCELLED"]
    created_at: int
    decided_by: str | None
    decided_at: int | None
    decision_reason: str | None


class AliasRequestList(BaseModel):
    requests: list[AliasRequestOut]


class AuditEventOut(BaseModel):
    seq: int
    time: int
    actor: str
    action: str = Field(examples=["alias.move"])
    object_type: str
    object_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str | None
    prev_hash: str
    hash: str


class AuditLog(BaseModel):
    events: list[AuditEventOut]


class AuditVerificationOut(BaseModel):
    """What ``verify`` found; fields may be added (a client ignores those it does not know)."""

    ok: bool
    checked: int = Field(description="Events read")
    first_bad_seq: int | None
    problem: str | None
    head_seq: int | None = Field(description="The newest event: record SEQ:HASH as an anchor")
    head_hash: str | None


class Health(BaseModel):
    status: Literal["ok"]


class Clock(BaseModel):
    kind: Literal["wall", "simulated"]
    now: int = Field(description="ms since the epoch")


class ErrorDetail(BaseModel):
    field: str | None = Field(description="Where: 'name', 'body.metrics.0', 'path.run_id'")
    message: str


class ErrorOut(BaseModel):
    error_code: str = Field(examples=["NOT_FOUND"])
    message: str
    details: list[ErrorDetail] | None = Field(
        default=None, description="One entry per field at fault, when the error is a field's"
    )


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
            step, timestamp = _integral(step), _integral(timestamp)  # 3.0 is an integer too
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
