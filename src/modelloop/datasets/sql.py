"""Dataset versions on a SQL database, their Parquet files in the blob store.

Versions number from 1 per dataset. Logging reads the current versions and inserts the next one in
one write transaction that first takes a lock (SQLite: ``Database.write``; PostgreSQL: an advisory
transaction lock), so concurrent loggers of one dataset never race for a number, and logging a
content that already exists returns its version (content identity: :mod:`.content`).

Contract checks are kept with the version they checked (``dataset_validations``): logging with a
contract stores the passing report in the same transaction as the version (a frame that breaks
it is refused and leaves nothing: there is no version to keep a report for), and
:meth:`SqlDatasetStore.add_validation` keeps a check of a stored version, passed or failed.

Every change is audited in its own transaction: a new version (``dataset_version.log``), a
description given to a version that had none (``dataset_version.describe``) and a stored check
(``dataset_version.validate``). The run that logged a version, and each run that logged the same
content again or read it, are lineage edges (run -> dataset ``output``, dataset -> run
``input``); a run that does not exist is NotFound, not an edge to nowhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, insert, select, text, update

from modelloop import audit
from modelloop.clock import now_ms
from modelloop.datasets.content import (
    Candidate,
    check_candidate,
    from_parquet,
    parquet_of,
    table_to_frame,
)
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
from modelloop.datasets.profile import DatasetProfile, compute_profile
from modelloop.errors import InvalidArgument, ModelloopError, NotFound
from modelloop.store import tables as t
from modelloop.tracking.entities import check_run_id

if TYPE_CHECKING:
    import pandas as pd

    from modelloop.artifacts import BlobStore
    from modelloop.store import Database

DV = t.dataset_versions.c
VC = t.dataset_validations.c
_PG_DATASET_LOCK = 0x6D6C6F6F7064  # pg_advisory_xact_lock key: "mloopd"


class SqlDatasetStore:
    """Dataset versions in ``datasets``/``dataset_versions``, the Parquet files in ``blobs``.

    Implements :class:`~modelloop.datasets.store.DatasetStore`."""

    def __init__(self, db: Database, blobs: BlobStore) -> None:
        self.db = db
        self.blobs = blobs

    def close(self) -> None:
        """Nothing to release: the database and the blob store are shared."""

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
        """The version holding ``frame``'s content: the existing one, or a new one. With
        ``contract``, a frame that breaks it raises ContractViolation and nothing is stored;
        one that keeps it is stored with its report (see :meth:`validations`).

        ``description`` is the version's (a new dataset's first one describes the dataset too);
        the same content logged again keeps the description it has, and gets this one only
        when it had none. ``run_id`` is the run that logged it (NotFound when there is none)."""
        candidate = check_candidate(
            name, frame, description=description, run_id=run_id, contract=contract
        )
        return self.store_candidate(candidate, actor=actor)[0]

    def store_candidate(self, candidate: Candidate, *, actor: str) -> tuple[DatasetVersion, bool]:
        """The version holding a checked candidate's content, and whether it is new."""
        audit.check_actor(actor)
        name, digest = candidate.name, candidate.digest
        existing = self._by_digest(name, digest)
        if existing is not None:
            self._logged_again(existing, candidate, actor)
            return self.get_version(name, existing.version), False
        data = parquet_of(candidate)
        artifact = self.blobs.put_bytes(data)
        profile = compute_profile(candidate.frame)
        schema = Schema.from_frame(candidate.frame)
        created = False
        with audit.recording(self.db, actor) as conn:
            _lock(conn)
            _check_run(conn, candidate.run_id)
            found = conn.execute(
                select(DV.version).where(DV.name == name, DV.digest == digest)
            ).scalar()
            if found is None:
                created = True
                found = self._insert_version(conn, candidate, artifact, schema, profile, actor)
            _record_logger(conn, candidate.run_id, f"{name}@{found}")
            if candidate.contract is not None and candidate.report is not None:
                self._insert_validation(
                    conn, name, found, candidate.contract, candidate.report, actor
                )
        return self.get_version(name, found), created

    def _logged_again(self, existing: DatasetVersion, candidate: Candidate, actor: str) -> None:
        """The same content logged again: its run, a description it lacked, a passing check."""
        described = candidate.description is not None and existing.description is None
        checked = candidate.contract is not None and candidate.report is not None
        if not (described or checked or candidate.run_id is not None):
            return
        with audit.recording(self.db, actor) as conn:
            _check_run(conn, candidate.run_id)
            _record_logger(conn, candidate.run_id, existing.ref)
            if described:
                where = (
                    (DV.name == existing.name)
                    & (DV.version == existing.version)
                    & DV.description.is_(None)
                )
                changed = conn.execute(
                    update(t.dataset_versions)
                    .where(where)
                    .values(description=candidate.description)
                ).rowcount
                if changed:
                    audit.append(
                        conn,
                        time=now_ms(),
                        actor=actor,
                        action="dataset_version.describe",
                        object_type="dataset_version",
                        object_id=existing.ref,
                        before={"description": None},
                        after={"description": candidate.description},
                    )
            if candidate.contract is not None and candidate.report is not None:
                self._insert_validation(
                    conn,
                    existing.name,
                    existing.version,
                    candidate.contract,
                    candidate.report,
                    actor,
                )

    def _insert_version(
        self,
        conn: Connection,
        candidate: Candidate,
        artifact: str,
        schema: Schema,
        profile: DatasetProfile,
        actor: str,
    ) -> int:
        name, frame = candidate.name, candidate.frame
        created = now_ms()
        datasets = t.datasets.c
        if conn.execute(select(datasets.name).where(datasets.name == name)).first() is None:
            conn.execute(
                insert(t.datasets).values(
                    name=name, description=candidate.description, created_at=created
                )
            )
        number = int(
            (conn.execute(select(func.max(DV.version)).where(DV.name == name)).scalar() or 0) + 1
        )
        record = {
            "digest": candidate.digest,
            "artifact_digest": artifact,
            "num_rows": len(frame),
            "num_columns": frame.shape[1],
            "run_id": candidate.run_id,
            "description": candidate.description,
        }
        conn.execute(
            insert(t.dataset_versions).values(
                name=name,
                version=number,
                schema=json.dumps(schema.to_dict()),
                profile=json.dumps(profile.to_dict()),
                created_at=created,
                created_by=actor,
                **record,
            )
        )
        audit.append(
            conn,
            time=created,
            actor=actor,
            action="dataset_version.log",
            object_type="dataset_version",
            object_id=f"{name}@{number}",
            before=None,
            after=record,
        )
        return number

    def get_version(self, name: str, version: int | None = None) -> DatasetVersion:
        """A version, or the latest one when ``version`` is None."""
        name = check_dataset_name(name)
        if version is not None:
            version = check_dataset_version(version)
        query = select(t.dataset_versions).where(DV.name == name)
        if version is None:
            query = query.order_by(DV.version.desc()).limit(1)
        else:
            query = query.where(DV.version == version)
        with self.db.read() as conn:
            row = conn.execute(query).first()
            if row is None:
                latest = conn.execute(select(func.max(DV.version)).where(DV.name == name)).scalar()
        if row is None:
            if latest is None:
                raise NotFound(f"No dataset {name!r}: {self._known()}")
            raise NotFound(
                f"No version {version} of dataset {name!r}: it has versions 1 to {latest}"
            )
        return _version(row)

    def _known(self) -> str:
        """The datasets there are, for an error naming one that is not."""
        with self.db.read() as conn:
            names = list(
                conn.execute(
                    select(t.datasets.c.name).order_by(t.datasets.c.name).limit(21)
                ).scalars()
            )
        if not names:
            return "no dataset has been logged yet"
        more = ", ..." if len(names) > 20 else ""
        return f"the datasets are {', '.join(names[:20])}{more}"

    def list_versions(self, name: str) -> list[DatasetVersion]:
        name = check_dataset_name(name)
        with self.db.read() as conn:
            rows = conn.execute(
                select(t.dataset_versions).where(DV.name == name).order_by(DV.version)
            ).all()
        if not rows:
            raise NotFound(f"No dataset {name!r}: {self._known()}")
        return [_version(r) for r in rows]

    def list_datasets(self) -> list[Dataset]:
        D = t.datasets.c
        query = (
            select(
                D.name, D.description, D.created_at, func.max(DV.version), func.count(DV.version)
            )
            .select_from(t.datasets.outerjoin(t.dataset_versions, DV.name == D.name))
            .group_by(D.name, D.description, D.created_at)
            .order_by(D.name)
        )
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [Dataset(r[0], r[1], r[2], r[3], int(r[4])) for r in rows]

    def latest_versions(self) -> list[DatasetVersion]:
        """The newest version of every dataset, by name, in one query (a list of datasets)."""
        newest = select(DV.name, func.max(DV.version).label("version")).group_by(DV.name).subquery()
        query = (
            select(t.dataset_versions)
            .join(newest, (DV.name == newest.c.name) & (DV.version == newest.c.version))
            .order_by(DV.name)
        )
        with self.db.read() as conn:
            return [_version(r) for r in conn.execute(query).all()]

    def versions_with_digests(self, digests: Iterable[str]) -> list[DatasetVersion]:
        """The versions holding any of these contents (e.g. a model version's
        ``dataset_digests``), by name and version; a digest no version holds finds nothing."""
        wanted = sorted({d for d in digests if isinstance(d, str)})
        if not wanted:
            return []
        query = select(t.dataset_versions).where(DV.digest.in_(wanted))
        with self.db.read() as conn:
            rows = conn.execute(query.order_by(DV.name, DV.version)).all()
        return [_version(r) for r in rows]

    # -- data --------------------------------------------------------------------------------

    def load(self, version: DatasetVersion) -> pd.DataFrame:
        return from_parquet(self.blobs.read_bytes(version.artifact_digest), version.schema)

    def head(self, version: DatasetVersion, rows: int) -> pd.DataFrame:
        """The first ``rows`` rows as logged, reading only the start of the Parquet file's
        column chunks (a preview costs the same for a thousand rows or a billion)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = check_rows(rows)
        with self.blobs.open(version.artifact_digest) as blob:
            parquet = pq.ParquetFile(blob, buffer_size=1 << 16, pre_buffer=False)
            schema = parquet.schema_arrow
            first = next(parquet.iter_batches(batch_size=rows), None) if rows else None
            table = (
                schema.empty_table() if first is None else pa.Table.from_batches([first], schema)
            )
        return table_to_frame(table.slice(0, rows), version.schema)

    def data_size(self, version: DatasetVersion) -> int | None:
        """The size of the version's Parquet file, None when the blob store lacks it."""
        try:
            return self.blobs.size(version.artifact_digest)
        except (ModelloopError, OSError):  # missing, or refused (a link swapped in)
            return None

    # -- contract checks ---------------------------------------------------------------------

    def add_validation(
        self,
        version: DatasetVersion,
        contract: Contract,
        report: ValidationReport,
        *,
        actor: str,
    ) -> DatasetValidation:
        """Keep a check of a stored version against ``contract`` (passed or failed)."""
        if not isinstance(contract, Contract) or not isinstance(report, ValidationReport):
            raise InvalidArgument("add_validation needs a Contract and its ValidationReport")
        with audit.recording(self.db, actor) as conn:
            exists = conn.execute(
                select(DV.version).where(DV.name == version.name, DV.version == version.version)
            ).first()
            if exists is None:
                raise NotFound(f"No version {version.version} of dataset {version.name!r}")
            validation_id = self._insert_validation(
                conn, version.name, version.version, contract, report, actor
            )
            row = conn.execute(
                select(t.dataset_validations).where(VC.validation_id == validation_id)
            ).one()
        return _validation(row)

    def _insert_validation(
        self,
        conn: Connection,
        name: str,
        number: int,
        contract: Contract,
        report: ValidationReport,
        actor: str,
    ) -> int:
        created = now_ms()
        checks = [c.name for c in contract.checks]
        result = conn.execute(
            insert(t.dataset_validations).values(
                name=name,
                version=number,
                contract=json.dumps(contract.to_dict()),
                checks=json.dumps(checks),
                report=json.dumps(report.to_dict()),
                ok=report.ok,
                created_at=created,
                created_by=actor,
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        validation_id = int(key[0])
        after = {
            "validation_id": validation_id,
            "ok": report.ok,
            "violations": len(report.violations),
            "checks": checks,
        }
        audit.append(
            conn,
            time=created,
            actor=actor,
            action="dataset_version.validate",
            object_type="dataset_version",
            object_id=f"{name}@{number}",
            before=None,
            after=after,
        )
        return validation_id

    def validations(
        self, version: DatasetVersion, *, limit: int | None = None
    ) -> list[DatasetValidation]:
        """The stored checks of a version, newest first (at most ``limit``)."""
        query = (
            select(t.dataset_validations)
            .where(VC.name == version.name, VC.version == version.version)
            .order_by(VC.validation_id.desc())
        )
        if limit is not None:
            query = query.limit(check_limit(limit))
        with self.db.read() as conn:
            return [_validation(r) for r in conn.execute(query).all()]

    def latest_validations(self) -> dict[str, DatasetValidation]:
        """Per dataset, the newest check of its newest version, in one query (a dataset whose
        newest version was never checked is absent: an older version's check does not speak
        for it)."""
        newest = select(DV.name, func.max(DV.version).label("version")).group_by(DV.name).subquery()
        last = (
            select(func.max(VC.validation_id))
            .join(newest, (VC.name == newest.c.name) & (VC.version == newest.c.version))
            .group_by(VC.name)
        )
        query = select(t.dataset_validations).where(VC.validation_id.in_(last))
        with self.db.read() as conn:
            return {r.name: _validation(r) for r in conn.execute(query).all()}

    # -- lineage -----------------------------------------------------------------------------

    def record_read(self, version: DatasetVersion, run_id: str) -> None:
        """Note that ``run_id`` read ``version`` (a lineage edge dataset -> run ``input``)."""
        run_id = check_run_id(run_id)
        with self.db.write() as conn:
            exists = conn.execute(
                select(DV.version).where(DV.name == version.name, DV.version == version.version)
            ).first()
            if exists is None:
                raise NotFound(f"No version {version.version} of dataset {version.name!r}")
            _check_run(conn, run_id)
            _edge(conn, ("dataset", version.ref, "run", run_id, "input"))

    def version_runs(self, version: DatasetVersion, limit: int = 1000) -> VersionRuns:
        """Who logged and who read ``version``, from its lineage edges (at most ``limit`` of
        each); the run stored with the version comes first even without an edge."""
        limit = check_limit(limit)
        edges = t.lineage_edges.c
        logged = (
            select(edges.source_id)
            .where(
                edges.target_kind == "dataset",
                edges.target_id == version.ref,
                edges.source_kind == "run",
                edges.relation == "output",
            )
            .group_by(edges.source_id)
            .order_by(func.min(edges.edge_id))
            .limit(limit)
        )
        read = (
            select(edges.target_id)
            .where(
                edges.source_kind == "dataset",
                edges.source_id == version.ref,
                edges.target_kind == "run",
                edges.relation == "input",
            )
            .group_by(edges.target_id)
            .order_by(func.min(edges.edge_id))
            .limit(limit)
        )
        with self.db.read() as conn:
            loggers = [str(r[0]) for r in conn.execute(logged).all()]
            readers = [str(r[0]) for r in conn.execute(read).all()]
        if version.run_id is not None:
            loggers = [version.run_id, *(r for r in loggers if r != version.run_id)][:limit]
        return VersionRuns(loggers, readers)

    def _by_digest(self, name: str, digest: str) -> DatasetVersion | None:
        with self.db.read() as conn:
            row = conn.execute(
                select(t.dataset_versions).where(DV.name == name, DV.digest == digest)
            ).first()
        return None if row is None else _version(row)


def _check_run(conn: Connection, run_id: str | None) -> None:
    if run_id is not None:
        found = conn.execute(select(t.runs.c.run_id).where(t.runs.c.run_id == run_id)).first()
        if found is None:
            raise NotFound(f"Run {run_id!r} does not exist")


def _record_logger(conn: Connection, run_id: str | None, ref: str) -> None:
    if run_id is not None:  # lineage: this run produced (or re-logged) this version
        _edge(conn, ("run", run_id, "dataset", ref, "output"))


def _edge(conn: Connection, edge: tuple[str, str, str, str, str]) -> None:
    source_kind, source_id, target_kind, target_id, relation = edge
    conn.execute(
        insert(t.lineage_edges).values(
            source_kind=source_kind,
            source_id=source_id,
            target_kind=target_kind,
            target_id=target_id,
            relation=relation,
            created_at=now_ms(),
        )
    )


def _validation(row: Any) -> DatasetValidation:
    return DatasetValidation(
        validation_id=int(row.validation_id),
        name=row.name,
        version=int(row.version),
        contract=json.loads(row.contract),
        checks=list(json.loads(row.checks)),
        report=ValidationReport.from_dict(json.loads(row.report)),
        ok=bool(row.ok),
        created_at=int(row.created_at),
        created_by=row.created_by,
    )


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_DATASET_LOCK})


def _version(row: Any) -> DatasetVersion:
    return DatasetVersion(
        name=row.name,
        version=row.version,
        digest=row.digest,
        artifact_digest=row.artifact_digest,
        num_rows=row.num_rows,
        num_columns=row.num_columns,
        schema=Schema.from_dict(json.loads(row.schema)),
        profile=DatasetProfile.from_dict(json.loads(row.profile)),
        created_at=row.created_at,
        created_by=row.created_by,
        run_id=row.run_id,
        description=row.description,
    )
