"""The nouns of experiment tracking, as immutable values shared by the SDK, stores and server."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from modelloop.clock import now_ms as now_ms  # the stores' timestamps (many import it here)
from modelloop.errors import InvalidArgument

if TYPE_CHECKING:
    import numpy as np


# A run that stands for another: a pipeline step answered from its cache logs nothing itself and
# names the run whose outputs it reused (followed by the registry to find a model package).
TAG_CACHED_FROM = "modelloop.cached_from"


class RunStatus(StrEnum):
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"

    @property
    def is_terminal(self) -> bool:
        return self is not RunStatus.RUNNING


# Which runs or experiments a search or listing shows: deleted ones are kept (restorable) but
# hidden unless asked for.
Lifecycle = Literal["active", "deleted", "all"]
LIFECYCLES: tuple[Lifecycle, ...] = ("active", "deleted", "all")


@dataclass(frozen=True, slots=True)
class Experiment:
    experiment_id: str
    name: str
    created_at: int
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    deleted_at: int | None = None  # ms since the epoch; None: not deleted
    updated_at: int | None = None  # last renamed, tagged, deleted or restored; None: created_at


@dataclass(frozen=True, slots=True)
class DatasetInput:
    """A dataset a run took as input, as the caller described it (an MLflow client's
    ``log_input``): named by ``(name, digest)`` per run; ``tags`` say how (its context)."""

    name: str
    digest: str
    source_type: str
    source: str
    schema: str | None = None
    profile: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


class Metric(NamedTuple):
    """One point of a metric's history. A tuple so that batches of them stay cheap."""

    key: str
    value: float
    step: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class MetricSeries:
    """The full history of one metric of one run, column by column, in (step, time) order."""

    key: str
    steps: np.ndarray[Any, np.dtype[np.int64]]
    values: np.ndarray[Any, np.dtype[np.float64]]
    timestamps: np.ndarray[Any, np.dtype[np.int64]]

    def __len__(self) -> int:
        return len(self.steps)


@dataclass(frozen=True, slots=True)
class RunSpec:
    """What it takes to create a run; the store adds the id and status, and the start time
    unless given (a run imported or created by an MLflow client keeps its own)."""

    experiment_id: str
    name: str | None = None
    parent_run_id: str | None = None
    user: str = "unknown"
    params: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    source: Mapping[str, Any] = field(default_factory=dict)
    environment: Mapping[str, Any] = field(default_factory=dict)
    start_time: int | None = None  # ms since the epoch; None: now


@dataclass(frozen=True, slots=True)
class Run:
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
    metrics: dict[str, float]  # the latest value of each metric
    deleted_at: int | None = None  # ms since the epoch; None: not deleted


@dataclass(frozen=True, slots=True)
class ArtifactInfo:
    path: str
    digest: str
    size: int


def new_id() -> str:
    return uuid.uuid4().hex


_KEY = re.compile(r"^[\w\-./: ]{1,250}$")
_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_VALUE_LENGTH = 8000


def check_key(key: object, what: str) -> str:
    """Metric, param and tag keys: 1-250 letters and digits of any script (as MLflow's), ``_``,
    ``-./:`` and inner spaces."""
    if not isinstance(key, str) or not _KEY.fullmatch(key) or key.strip() != key:
        raise InvalidArgument(
            f"Invalid {what} key {key!r}: use 1-250 letters, digits, '_', '-', '.', '/', ':' "
            "or inner spaces"
        )
    return key


def check_value(value: object, what: str, key: str) -> str:
    """Param and tag values are stored as text, at most 8000 characters."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_VALUE_LENGTH:
        raise InvalidArgument(
            f"Value of {what} {key!r} is {len(text)} characters long; the limit is "
            f"{MAX_VALUE_LENGTH}"
        )
    if "\x00" in text:
        raise InvalidArgument(f"Value of {what} {key!r} contains a NUL character")
    return text


def check_metric(key: object, value: object, step: object, timestamp: object) -> Metric:
    """Validate one point; NaN is allowed (a diverged loss is worth recording)."""
    name = check_key(key, "metric")
    if isinstance(value, bool | str | bytes):
        raise InvalidArgument(f"Metric {name!r}: value must be a number, got {value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]  # ints, numpy scalars, Decimal, ...
    except (TypeError, ValueError, OverflowError):
        raise InvalidArgument(
            f"Metric {name!r}: value must be a number, got {type(value).__name__}"
        ) from None
    if isinstance(step, bool) or not isinstance(step, int) or not -(2**63) <= step < 2**63:
        raise InvalidArgument(f"Metric {name!r}: step must be a 64-bit integer, got {step!r}")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or not 0 <= timestamp < 2**63:
        raise InvalidArgument(f"Metric {name!r}: timestamp must be integer ms, got {timestamp!r}")
    return Metric(name, number, step, timestamp)


def check_time(value: object, what: str) -> int:
    """A time in integer milliseconds since the epoch (a run's start or end)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise InvalidArgument(
            f"{what} must be integer milliseconds since the epoch, got {value!r}",
            [{"field": what, "message": "an integer of milliseconds, 0 or more"}],
        )
    return value


def check_lifecycle(value: object) -> Lifecycle:
    for lifecycle in LIFECYCLES:
        if value == lifecycle:
            return lifecycle
    raise InvalidArgument(
        f"Invalid lifecycle {value!r}: expected one of {', '.join(LIFECYCLES)}",
        [{"field": "lifecycle", "message": f"one of {', '.join(LIFECYCLES)}"}],
    )


def check_run_id(run_id: object) -> str:
    if not isinstance(run_id, str) or not _ID.fullmatch(run_id):
        raise InvalidArgument(f"Invalid run id {run_id!r}: expected 32 lowercase hex characters")
    return run_id
