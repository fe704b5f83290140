"""Datasets through a modelloop server: :class:`DatasetStore` over the REST API.

Requests go through :class:`modelloop.transport.Transport`, so errors come back as the same
:mod:`modelloop.errors` classes, with the same messages, as from the local store: arguments are
checked here as the local store checks them, and what only the server knows (NotFound...) is its
store's own message.

A frame travels as Parquet (:func:`~modelloop.datasets.content.to_parquet`, whose metadata keeps
every dtype), never pickle. Logging sends the file with its content digest: the server reads it
back, refuses it unless it holds that very content, and answers the version holding it, new or
not. Logging with a contract checks the frame here (a contract's custom checks are Python) and
then stores the passing report: two requests, so unlike the local store a failure between them
leaves the version without its report. A full download is checked against the Parquet file's
sha256 before it is read.

Each change sends its ``actor`` as ``X-Modelloop-User``: a server without authentication
(loopback development) records that name, trusting whoever can reach it; a server with
authentication ignores the header and records the user whose token the request carries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from modelloop.datasets.content import check_candidate, from_parquet, parquet_of
from modelloop.datasets.contracts import Contract, ValidationReport
from modelloop.datasets.entities import (
    Dataset,
    DatasetValidation,
    DatasetVersion,
    Schema,
    VersionRuns,
    check_dataset_name,
    check_dataset_version,
    check_limit,
    check_rows,
)
from modelloop.datasets.profile import DatasetProfile
from modelloop.errors import InvalidArgument, ModelloopError
from modelloop.tracking.entities import check_run_id
from modelloop.transport import HttpStore, segment

if TYPE_CHECKING:
    import pandas as pd

PARQUET = "application/vnd.apache.parquet"
DIGESTS_PER_REQUEST = 100  # what one lookup by digests carries (the server's bound)
_DIGEST_CHARS = 64


class HttpDatasetStore(HttpStore):
    """Implements :class:`~modelloop.datasets.store.DatasetStore` against a server."""

    # -- versions ----------------------------------------------------------------------------

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
        candidate = check_candidate(
            name, frame, description=description, run_id=run_id, contract=contract
        )
        data = parquet_of(candidate)
        params = {
            "digest": candidate.digest,
            "run_id": candidate.run_id,
            "description": candidate.description,
        }
        answer = self._call(
            "POST",
            f"{_d(candidate.name)}/versions",
            params=params,
            content=data,
            headers={"Content-Type": PARQUET},
            actor=actor,
        )
        version = _version(answer)
        if version.digest != candidate.digest:  # the server checks it: a wrong answer is a bug
            raise ModelloopError(
                f"The server stored {version.ref} with content {version.digest}, not the "
                f"{candidate.digest} that was sent"
            )
        if candidate.contract is not None and candidate.report is not None:
            self.add_validation(version, candidate.contract, candidate.report, actor=actor)
        return version

    def get_version(self, name: str, version: int | None = None) -> DatasetVersion:
        if version is None:
            return _version(self._call("GET", f"{_d(name)}/latest"))
        return _version(self._call("GET", _v(name, version)))

    def list_versions(self, name: str) -> list[DatasetVersion]:
        return [_version(v) for v in self._call("GET", f"{_d(name)}/versions")["versions"]]

    def list_datasets(self) -> list[Dataset]:
        return [Dataset(**d) for d in self._call("GET", "/datasets")["datasets"]]

    def latest_versions(self) -> list[DatasetVersion]:
        return [_version(v) for v in self._call("GET", "/dataset-versions/latest")["versions"]]

    def versions_with_digests(self, digests: Iterable[str]) -> list[DatasetVersion]:
        wanted = sorted(
            {d for d in digests if isinstance(d, str) and len(d) <= _DIGEST_CHARS}
        )  # a longer text is no digest: it finds nothing, as in the local store
        found: list[DatasetVersion] = []
        for start in range(0, len(wanted), DIGESTS_PER_REQUEST):
            query = urlencode([("digest", d) for d in wanted[start : start + DIGESTS_PER_REQUEST]])
            found += [
                _version(v) for v in self._call("GET", f"/dataset-versions?{query}")["versions"]
            ]
        return sorted({(v.name, v.version): v for v in found}.values(), key=_by_ref)

    # -- data --------------------------------------------------------------------------------

    def load(self, version: DatasetVersion) -> pd.DataFrame:
        data = self._download(version)
        if hashlib.sha256(data).hexdigest() != version.artifact_digest:
            raise ModelloopError(
                f"The Parquet file of {version.ref} from {self.url} is not the stored one "
                f"(sha256 {version.artifact_digest}): it was damaged on the way or on the server"
            )
        return from_parquet(data, version.schema)

    def head(self, version: DatasetVersion, rows: int) -> pd.DataFrame:
        rows = check_rows(rows)
        return from_parquet(self._download(version, rows), version.schema)

    def data_size(self, version: DatasetVersion) -> int | None:
        size = self._call("GET", f"{_v(version.name, version.version)}/size")["bytes"]
        return None if size is None else int(size)

    def _download(self, version: DatasetVersion, rows: int | None = None) -> bytes:
        params = None if rows is None else {"rows": str(rows)}
        with self._transport.open(f"{_v(version.name, version.version)}/data", params) as body:
            return body.read()

    # -- contract checks ---------------------------------------------------------------------

    def add_validation(
        self,
        version: DatasetVersion,
        contract: Contract,
        report: ValidationReport,
        *,
        actor: str,
    ) -> DatasetValidation:
        if not isinstance(contract, Contract) or not isinstance(report, ValidationReport):
            raise InvalidArgument("add_validation needs a Contract and its ValidationReport")
        sent = report.to_dict()
        body = {
            "contract": contract.to_dict(),
            "checks": [c.name for c in contract.checks],
            "report": {"num_rows": sent["num_rows"], "violations": sent["violations"]},
        }
        path = f"{_v(version.name, version.version)}/validations"
        return _validation(self._call("POST", path, body, actor=actor))

    def validations(
        self, version: DatasetVersion, *, limit: int | None = None
    ) -> list[DatasetValidation]:
        params = None if limit is None else {"limit": str(check_limit(limit))}
        path = f"{_v(version.name, version.version)}/validations"
        return [_validation(v) for v in self._call("GET", path, params=params)["validations"]]

    def latest_validations(self) -> dict[str, DatasetValidation]:
        found = self._call("GET", "/dataset-validations/latest")["validations"]
        return {v["name"]: _validation(v) for v in found}

    # -- lineage -----------------------------------------------------------------------------

    def record_read(self, version: DatasetVersion, run_id: str) -> None:
        path = f"{_v(version.name, version.version)}/reads"
        self._call("POST", path, {"run_id": check_run_id(run_id)})

    def version_runs(self, version: DatasetVersion, limit: int = 1000) -> VersionRuns:
        params = {"limit": str(check_limit(limit))}
        data = self._call("GET", f"{_v(version.name, version.version)}/runs", params=params)
        return VersionRuns(list(data["logged_by"]), list(data["read_by"]))

    # -- transport ---------------------------------------------------------------------------


def _d(name: str) -> str:
    return f"/datasets/{segment(check_dataset_name(name))}"  # refuse locally what the server would


def _v(name: str, version: int) -> str:
    return f"{_d(name)}/versions/{check_dataset_version(version)}"


def _by_ref(version: DatasetVersion) -> tuple[str, int]:
    return version.name, version.version


def version_to_json(version: DatasetVersion) -> dict[str, Any]:
    """A version as the REST API writes it (the server's answer, this client's reading)."""
    return {
        "name": version.name,
        "version": version.version,
        "digest": version.digest,
        "artifact_digest": version.artifact_digest,
        "num_rows": version.num_rows,
        "num_columns": version.num_columns,
        "schema": version.schema.to_dict(),
        "profile": version.profile.to_dict(),
        "created_at": version.created_at,
        "created_by": version.created_by,
        "run_id": version.run_id,
        "description": version.description,
    }


def validation_to_json(validation: DatasetValidation) -> dict[str, Any]:
    return {
        "validation_id": validation.validation_id,
        "name": validation.name,
        "version": validation.version,
        "contract": validation.contract,
        "checks": validation.checks,
        "report": validation.report.to_dict(),
        "ok": validation.ok,
        "created_at": validation.created_at,
        "created_by": validation.created_by,
    }


def _version(data: dict[str, Any]) -> DatasetVersion:
    return DatasetVersion(
        **{
            **data,
            "schema": Schema.from_dict(data["schema"]),
            "profile": DatasetProfile.from_dict(data["profile"]),
        }
    )


def _validation(data: dict[str, Any]) -> DatasetValidation:
    return DatasetValidation(**{**data, "report": ValidationReport.from_dict(data["report"])})
