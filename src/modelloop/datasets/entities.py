"""The nouns of datasets, as immutable values shared by the SDK, the store and the CLI.

A dataset is a name (same rules as a registered model's: letters, digits, ``_ . -``, no ``/`` or
``@``) with numbered versions; each version is one distinct content. A reference is ``NAME``
(the latest version) or ``NAME@VERSION``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelloop.errors import InvalidArgument

if TYPE_CHECKING:
    import pandas as pd

    from modelloop.datasets.contracts import ValidationReport
    from modelloop.datasets.profile import DatasetProfile

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,255}$")
_REF = re.compile(r"^(?P<name>[^@]+)(?:@(?P<version>[^@]*))?$")


def check_dataset_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidArgument(
            f"Invalid dataset name {name!r}: 1-256 letters, digits, '_', '.', '-', "
            "starting with a letter or digit"
        )
    return name


def parse_ref(ref: object) -> tuple[str, int | None]:
    """``"name"`` -> (name, None) meaning the latest; ``"name@3"`` -> (name, 3)."""
    match = _REF.match(ref) if isinstance(ref, str) else None
    if match is None:
        raise InvalidArgument(f"Invalid dataset reference {ref!r}: expected NAME or NAME@VERSION")
    name = check_dataset_name(match["name"])
    version = match["version"]
    if version is None:
        return name, None
    if not version.isascii() or not version.isdigit() or int(version) < 1:
        raise InvalidArgument(f"Invalid dataset reference {ref!r}: the version is a number from 1")
    return name, int(version)


def check_dataset_version(version: object) -> int:
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version < 2**31:
        raise InvalidArgument(f"Invalid dataset version {version!r}: a number from 1")
    return version


def check_rows(rows: object) -> int:
    """A number of rows to read (a preview's)."""
    if not isinstance(rows, int) or isinstance(rows, bool) or not 0 <= rows < 2**63:
        raise InvalidArgument(f"rows must be a non-negative integer, got {rows!r}")
    return rows


def check_limit(limit: object) -> int:
    """At most how many of something to list."""
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit < 2**63:
        raise InvalidArgument(f"limit must be a positive integer, got {limit!r}")
    return limit


@dataclass(frozen=True, slots=True)
class Schema:
    """Column names in order with their pandas dtypes (``str(dtype)``, e.g. ``float64``,
    ``category``, ``datetime64[us, UTC]``) and, for categoricals, the categories in order (as
    text: the schema is for people and contracts; the Parquet file keeps the real values)."""

    columns: dict[str, str]
    categories: dict[str, list[str]]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> Schema:
        columns = {str(name): str(dtype) for name, dtype in frame.dtypes.items()}
        categories = {
            str(name): [str(c) for c in frame[name].cat.categories]
            for name, dtype in frame.dtypes.items()
            if str(dtype) == "category"
        }
        return cls(columns, categories)

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": [{"name": k, "dtype": v} for k, v in self.columns.items()],
            "categories": self.categories,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schema:
        columns = {c["name"]: c["dtype"] for c in data["columns"]}
        return cls(columns, dict(data.get("categories", {})))


@dataclass(frozen=True, slots=True)
class Dataset:
    name: str
    description: str | None
    created_at: int
    latest_version: int | None
    num_versions: int


@dataclass(frozen=True, slots=True)
class DatasetVersion:
    """One stored content of a dataset: ``digest`` identifies the content (see
    :func:`modelloop.datasets.content.content_digest`), ``artifact_digest`` the Parquet blob."""

    name: str
    version: int
    digest: str
    artifact_digest: str
    num_rows: int
    num_columns: int
    schema: Schema
    profile: DatasetProfile
    created_at: int
    created_by: str
    run_id: str | None
    description: str | None = None  # of this version; the dataset's is its first version's

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True, slots=True)
class DatasetValidation:
    """One stored check of a version against a contract: the contract as its configuration
    (:meth:`~modelloop.datasets.contracts.Contract.to_dict`), the names of its custom checks
    (Python functions, which only their names can stand for), the report, who checked, when."""

    validation_id: int
    name: str
    version: int
    contract: dict[str, Any]
    checks: list[str]
    report: ValidationReport
    ok: bool
    created_at: int
    created_by: str

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True, slots=True)
class VersionRuns:
    """The runs a version's lineage names, oldest edge first: the runs that logged it (the
    first logger, then any that logged the same content again) and the runs that read it."""

    logged_by: list[str]
    read_by: list[str]
