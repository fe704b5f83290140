"""Dataset versions on a SQL database, their Parquet files in the blob store.

Content identity. A version's ``digest`` is the sha256 of a canonical serialisation of the frame,
defined here and independent of Parquet (whose bytes vary with the writer's version, compression
and metadata):

    b"modelloop-dataset-v1\\n" + JSON header {"rows": n, "columns": [[name, str(dtype)], ...]}
    then per column, in order, each part prefixed by its 8-byte little-endian length:
      numbers, booleans, datetimes  the values' little-endian bytes (nullable extension arrays:
                                    a null mask, then the values with nulls as 0)
      strings (str and object)      a null mask, the int64 end offsets and the UTF-8 bytes
      categoricals                  the categories (serialised as a column), the ordered flag,
                                    the int64 codes (-1 for null)

So the same values with the same names and dtypes in the same order are the same version, however
they were built; a different row order, a different dtype (``int64`` vs ``float64``, ``str`` vs
``category``), a renamed column or a different set of categories are a new version. The index is
not part of the content: it is dropped when logging, and a loaded dataset has a RangeIndex.

Versions number from 1 per dataset. Logging reads the current versions and inserts the next one in
one write transaction that first takes a lock (SQLite: ``Database.write``; PostgreSQL: an advisory
transaction lock), so concurrent loggers of one dataset never race for a number, and logging a
content that already exists returns its version.

Contract checks are kept with the version they checked (``dataset_validations``): logging with a
contract stores the passing report in the same transaction as the version (a frame that breaks
it is refused and leaves nothing: there is no version to keep a report for), and
:meth:`SqlDatasetStore.add_validation` keeps a check of a stored version, passed or failed.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Connection, func, insert, select, text, update

from modelloop.clock import now_ms
from modelloop.datasets.contracts import Contract, ValidationReport
from modelloop.datasets.entities import (
    Dataset,
    DatasetValidation,
    DatasetVersion,
    Schema,
    check_dataset_name,
)
from modelloop.datasets.profile import DatasetProfile, compute_profile
from modelloop.errors import InvalidArgument, NotFound
from modelloop.store import tables as t
from modelloop.tracking.entities import check_run_id

if TYPE_CHECKING:
    import pandas as pd

    from modelloop.artifacts import BlobStore
    from modelloop.store import Database

DV = t.dataset_versions.c
VC = t.dataset_validations.c
_PG_DATASET_LOCK = 0x6D6C6F6F7064  # pg_advisory_xact_lock key: "mloopd"
_MAGIC = b"modelloop-dataset-v1\n"
_CATEGORIES = b"modelloop.categories"


def check_frame(frame: object) -> pd.DataFrame:
    """The frame to store (index dropped), or InvalidArgument saying what cannot be stored."""
    import pandas as pd
    from pandas.api import types

    if not isinstance(frame, pd.DataFrame):
        raise InvalidArgument(f"Cannot log a {type(frame).__name__} as a dataset: need a DataFrame")
    names = list(frame.columns)
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise InvalidArgument(f"Dataset column names must be strings, got {bad[:5]!r}")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidArgument(f"Duplicate column names: {dupes!r}")
    for name, dtype in frame.dtypes.items():
        if types.is_object_dtype(dtype):
            kind = types.infer_dtype(frame[name], skipna=True)
            if kind not in ("string", "empty"):
                raise InvalidArgument(
                    f"Column {name!r} holds Python objects ({kind}) that cannot be stored "
                    "faithfully: convert it to a real dtype (e.g. .astype('str') or "
                    "pd.to_numeric)"
                )
        elif not _supported(dtype):
            raise InvalidArgument(f"Column {name!r} has dtype {dtype} which cannot be stored")
    return frame.reset_index(drop=True)


def _supported(dtype: Any) -> bool:
    import pandas as pd
    from pandas.api import types

    if isinstance(dtype, pd.CategoricalDtype):
        return _supported(dtype.categories.dtype) or types.is_object_dtype(dtype.categories)
    if isinstance(dtype, pd.DatetimeTZDtype | pd.StringDtype):
        return True
    if isinstance(dtype, np.dtype):
        return dtype.kind in "biufMm" and dtype != np.float16
    return isinstance(dtype, pd.Int64Dtype | pd.Float64Dtype | pd.BooleanDtype) or str(dtype) in (
        "Int8",
        "Int16",
        "Int32",
        "UInt8",
        "UInt16",
        "UInt32",
        "UInt64",
        "Float32",
    )


def content_digest(frame: pd.DataFrame) -> str:
    """sha256 of the canonical serialisation described in the module docstring."""
    hasher = hashlib.sha256(_MAGIC)
    header = {"rows": len(frame), "columns": [[str(n), str(d)] for n, d in frame.dtypes.items()]}
    _part(hasher, json.dumps(header, separators=(",", ":")).encode())
    for position in range(frame.shape[1]):
        _hash_column(hasher, frame.iloc[:, position])
    return hasher.hexdigest()


def _part(hasher: Any, data: bytes | memoryview) -> None:
    hasher.update(struct.pack("<Q", len(data)))
    hasher.update(data)


def _hash_column(hasher: Any, series: pd.Series[Any]) -> None:
    import pandas as pd
    import pyarrow as pa
    from pandas.api import types

    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        _hash_column(hasher, pd.Series(dtype.categories))
        _part(hasher, b"1" if dtype.ordered else b"0")
        _part(hasher, np.ascontiguousarray(series.cat.codes.to_numpy(), "<i8").data)
    elif types.is_string_dtype(dtype) or types.is_object_dtype(dtype):
        array = pa.array(series, type=pa.large_string(), from_pandas=True)
        offsets = np.frombuffer(array.buffers()[1], "<i8")[
            array.offset : array.offset + 1 + len(array)
        ]
        data = array.buffers()[2]
        _part(hasher, np.asarray(array.is_null()).view(np.uint8).data)
        _part(hasher, np.ascontiguousarray(offsets - offsets[0]).data)
        chunk = b"" if data is None else data.to_pybytes()[offsets[0] : offsets[-1]]
        _part(hasher, chunk)
    elif isinstance(dtype, pd.DatetimeTZDtype):  # the time zone is in the header
        _hash_numpy(hasher, series.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy())
    elif isinstance(dtype, np.dtype):
        _hash_numpy(hasher, series.to_numpy())
    else:  # a nullable (masked) array: Int64, Float64, boolean...
        mask = series.isna().to_numpy()
        _part(hasher, mask.view(np.uint8).data)
        numpy_type = np.dtype(getattr(dtype, "numpy_dtype"))  # noqa: B009
        _hash_numpy(hasher, series.to_numpy(dtype=numpy_type, na_value=numpy_type.type(0)))


def _hash_numpy(hasher: Any, values: np.ndarray[Any, Any]) -> None:
    little = np.ascontiguousarray(values, values.dtype.newbyteorder("<"))
    _part(hasher, little.view(np.uint8).data)


def to_parquet(frame: pd.DataFrame) -> bytes:
    """Parquet (zstd) with each categorical's categories, order flag and their dtype in the
    file's metadata: Parquet alone drops unused categories and non-string ones."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    categories = {}
    for name, dtype in frame.dtypes.items():
        if isinstance(dtype, pd.CategoricalDtype):
            cats = dtype.categories
            datetimes = pd.api.types.is_datetime64_any_dtype(cats.dtype)
            values = [v.isoformat() for v in cats] if datetimes else cats.tolist()
            categories[str(name)] = [values, str(cats.dtype), bool(dtype.ordered)]
    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = {**(table.schema.metadata or {}), _CATEGORIES: json.dumps(categories).encode()}
    buffer = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(metadata), buffer, compression="zstd")
    return buffer.getvalue()


def from_parquet(data: bytes, schema: Schema) -> pd.DataFrame:
    """The frame as logged: categoricals are rebuilt from the file's metadata, and plain
    ``object`` string columns (which come back as ``str``) are turned back, nulls as None."""
    import pyarrow.parquet as pq

    return _restored(pq.read_table(io.BytesIO(data)), schema)


def _restored(table: Any, schema: Schema) -> pd.DataFrame:
    """The frame a Parquet table (with :func:`to_parquet`'s metadata) was written from."""
    import pandas as pd

    frame: pd.DataFrame = table.to_pandas()
    raw = (table.schema.metadata or {}).get(_CATEGORIES, b"{}")
    for name, (values, dtype, ordered) in json.loads(raw).items():
        if dtype.startswith("datetime64"):
            cats = pd.Index(pd.to_datetime(values, utc="UTC" in dtype or "," in dtype))
            cats = (
                cats.astype(dtype)
                if "," not in dtype
                else cats.tz_convert(dtype[dtype.index(",") + 2 : -1])
            )
        else:
            cats = pd.Index(values, dtype=dtype)
        column = frame[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            column = column.astype(object)
        frame[name] = pd.Categorical(column, categories=cats, ordered=ordered)
    for name, dtype in schema.columns.items():
        if dtype == "object" and str(frame[name].dtype) != "object":
            column = frame[name].astype(object)
            frame[name] = column.where(column.notna(), None)
    return frame


@dataclass(frozen=True, slots=True)
class VersionRuns:
    """The runs a version's lineage names, oldest edge first: the runs that logged it (the
    first logger, then any that logged the same content again) and the runs that read it."""

    logged_by: list[str]
    read_by: list[str]


class SqlDatasetStore:
    """Dataset versions in ``datasets``/``dataset_versions``, the Parquet files in ``blobs``."""

    def __init__(self, db: Database, blobs: BlobStore) -> None:
        self.db = db
        self.blobs = blobs

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
        when it had none."""
        name = check_dataset_name(name)
        if run_id is not None:
            run_id = check_run_id(run_id)
        if description is not None and not isinstance(description, str):
            raise InvalidArgument(f"description must be text, got {type(description).__name__}")
        if contract is not None and not isinstance(contract, Contract):
            raise InvalidArgument(f"contract must be a Contract, got {type(contract).__name__}")
        checked = check_frame(frame)
        report = None
        if contract is not None:  # on the frame as given: examples name its own row labels
            report = contract.validate(frame)
            report.raise_if_failed()
        frame = checked
        digest = content_digest(frame)
        existing = self._by_digest(name, digest)
        if existing is not None:
            described = description is not None and existing.description is None
            if described or (contract is not None and report is not None):
                with self.db.write() as conn:
                    if described:
                        where = (DV.name == name) & (DV.version == existing.version)
                        conn.execute(
                            update(t.dataset_versions).where(where).values(description=description)
                        )
                    if contract is not None and report is not None:
                        _insert_validation(conn, name, existing.version, contract, report, actor)
            return self.get_version(name, existing.version) if described else existing
        schema = Schema.from_frame(frame)
        data = to_parquet(frame)
        if content_digest(from_parquet(data, schema)) != digest:
            raise InvalidArgument(
                f"Dataset {name!r} does not survive a Parquet round trip unchanged; "
                "convert unusual dtypes (e.g. object columns) to plain ones"
            )
        artifact = self.blobs.put_bytes(data)
        profile = compute_profile(frame)
        with self.db.write() as conn:
            _lock(conn)
            found = conn.execute(
                select(DV.version).where(DV.name == name, DV.digest == digest)
            ).scalar()
            if found is None:
                created = now_ms()
                if (
                    conn.execute(select(t.datasets.c.name).where(t.datasets.c.name == name)).first()
                    is None
                ):
                    conn.execute(
                        insert(t.datasets).values(
                            name=name, description=description, created_at=created
                        )
                    )
                found = (
                    conn.execute(select(func.max(DV.version)).where(DV.name == name)).scalar() or 0
                ) + 1
                conn.execute(
                    insert(t.dataset_versions).values(
                        name=name,
                        version=found,
                        digest=digest,
                        artifact_digest=artifact,
                        num_rows=len(frame),
                        num_columns=frame.shape[1],
                        schema=json.dumps(schema.to_dict()),
                        profile=json.dumps(profile.to_dict()),
                        created_at=created,
                        created_by=actor,
                        run_id=run_id,
                        description=description,
                    )
                )
            if contract is not None and report is not None:
                _insert_validation(conn, name, found, contract, report, actor)
        return self.get_version(name, found)

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
        with self.db.write() as conn:
            exists = conn.execute(
                select(DV.version).where(DV.name == version.name, DV.version == version.version)
            ).first()
            if exists is None:
                raise NotFound(f"No version {version.version} of dataset {version.name!r}")
            validation_id = _insert_validation(
                conn, version.name, version.version, contract, report, actor
            )
            row = conn.execute(
                select(t.dataset_validations).where(VC.validation_id == validation_id)
            ).one()
        return _validation(row)

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
            if not isinstance(limit, int) or limit < 1:
                raise InvalidArgument(f"limit must be a positive integer, got {limit!r}")
            query = query.limit(limit)
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

    def get_version(self, name: str, version: int | None = None) -> DatasetVersion:
        """A version, or the latest one when ``version`` is None."""
        name = check_dataset_name(name)
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

    def version_runs(self, version: DatasetVersion, limit: int = 1000) -> VersionRuns:
        """Who logged and who read ``version``, from its lineage edges (at most ``limit`` of
        each); the run stored with the version comes first even without an edge."""
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

    def load(self, version: DatasetVersion) -> pd.DataFrame:
        return from_parquet(self.blobs.read_bytes(version.artifact_digest), version.schema)

    def head(self, version: DatasetVersion, rows: int) -> pd.DataFrame:
        """The first ``rows`` rows as logged, reading only the start of the Parquet file's
        column chunks (a preview costs the same for a thousand rows or a billion)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not isinstance(rows, int) or rows < 0:
            raise InvalidArgument(f"rows must be a non-negative integer, got {rows!r}")
        with self.blobs.open(version.artifact_digest) as blob:
            parquet = pq.ParquetFile(blob, buffer_size=1 << 16, pre_buffer=False)
            schema = parquet.schema_arrow
            first = next(parquet.iter_batches(batch_size=rows), None) if rows else None
            table = (
                schema.empty_table() if first is None else pa.Table.from_batches([first], schema)
            )
        return _restored(table.slice(0, rows), version.schema)

    def _by_digest(self, name: str, digest: str) -> DatasetVersion | None:
        with self.db.read() as conn:
            row = conn.execute(
                select(t.dataset_versions).where(DV.name == name, DV.digest == digest)
            ).first()
        return None if row is None else _version(row)


def _insert_validation(
    conn: Connection,
    name: str,
    number: int,
    contract: Contract,
    report: ValidationReport,
    actor: str,
) -> int:
    result = conn.execute(
        insert(t.dataset_validations).values(
            name=name,
            version=number,
            contract=json.dumps(contract.to_dict()),
            checks=json.dumps([c.name for c in contract.checks]),
            report=json.dumps(report.to_dict()),
            ok=report.ok,
            created_at=now_ms(),
            created_by=actor,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


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
