"""The storage interface of datasets, a few small protocols, and the one place that picks one.

Implementations: :class:`modelloop.datasets.sql.SqlDatasetStore` (SQLite/PostgreSQL and the blob
store) and :class:`modelloop.datasets.http.HttpDatasetStore` (a modelloop server). One contract
suite, ``tests/datasets/test_dataset_store_contract.py``, runs against all of them.
:func:`open_dataset_store` decides which from the settings: a server when
``MODELLOOP_TRACKING_URI`` is set, else the local store.

Data travels as Parquet (:mod:`modelloop.datasets.content`), never pickle. Every change names
its ``actor``: the SQL store records it as given; the HTTP store sends it as
``X-Modelloop-User``, which only a server without authentication believes (a server with
authentication records the user whose token the request carries).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from modelloop.datasets.entities import Dataset, DatasetValidation, DatasetVersion, VersionRuns

if TYPE_CHECKING:
    import pandas as pd

    from modelloop.datasets.contracts import Contract, ValidationReport
    from modelloop.settings import Settings


class VersionStore(Protocol):
    def log_version(
        self,
        name: str,
        frame: pd.DataFrame,
        *,
        actor: str,
        description: str | None = None,
        run_id: str | None = None,
        contract: Contract | None = None,
    ) -> DatasetVersion:
        """The version holding ``frame``'s content: the one that already does, or the next
        one. ``run_id`` is the run that logged it (lineage); with ``contract``, a frame that
        breaks it raises ContractViolation and nothing is stored, one that keeps it is stored
        with the passing report."""
        ...

    def get_version(self, name: str, version: int | None = None) -> DatasetVersion:
        """A version, or the latest one when ``version`` is None."""
        ...

    def list_versions(self, name: str) -> list[DatasetVersion]: ...
    def list_datasets(self) -> list[Dataset]: ...
    def latest_versions(self) -> list[DatasetVersion]:
        """The newest version of every dataset, by name."""
        ...

    def versions_with_digests(self, digests: Iterable[str]) -> list[DatasetVersion]:
        """The versions holding any of these contents, by name and version."""
        ...


class DataStore(Protocol):
    def load(self, version: DatasetVersion) -> pd.DataFrame:
        """The frame as logged (dtypes included), with a RangeIndex."""
        ...

    def head(self, version: DatasetVersion, rows: int) -> pd.DataFrame:
        """The first ``rows`` rows as logged, without reading the rest."""
        ...

    def data_size(self, version: DatasetVersion) -> int | None:
        """The size in bytes of the stored Parquet file; None when it is missing."""
        ...


class ValidationStore(Protocol):
    def add_validation(
        self,
        version: DatasetVersion,
        contract: Contract,
        report: ValidationReport,
        *,
        actor: str,
    ) -> DatasetValidation:
        """Keep a check of a stored version (passed or failed); a contract's custom Python
        checks are kept by name."""
        ...

    def validations(
        self, version: DatasetVersion, *, limit: int | None = None
    ) -> list[DatasetValidation]:
        """The stored checks of a version, newest first."""
        ...

    def latest_validations(self) -> dict[str, DatasetValidation]:
        """Per dataset, the newest check of its newest version (absent when it has none)."""
        ...


class LineageStore(Protocol):
    def record_read(self, version: DatasetVersion, run_id: str) -> None:
        """Note that run ``run_id`` read ``version``."""
        ...

    def version_runs(self, version: DatasetVersion, limit: int = 1000) -> VersionRuns:
        """The runs that logged and that read ``version``, at most ``limit`` of each."""
        ...


class DatasetStore(VersionStore, DataStore, ValidationStore, LineageStore, Protocol):
    """Everything the datasets SDK, the CLI and the UI need from a backend."""

    def close(self) -> None: ...


def open_dataset_store(settings: Settings) -> DatasetStore:
    """The dataset backend the settings name: the server at ``tracking_uri`` when set, else
    the local database and blob store."""
    if settings.tracking_uri is not None:
        from modelloop.datasets.http import HttpDatasetStore

        return HttpDatasetStore(settings.tracking_uri, token=settings.token)
    from modelloop.artifacts import BlobStore
    from modelloop.datasets.sql import SqlDatasetStore
    from modelloop.store import open_database

    return SqlDatasetStore(open_database(settings.database_url), BlobStore(settings.artifact_uri))
