"""What a dataset version holds, independent of where it is stored: the frame that can be
stored, its content digest, and its Parquet form.

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

The Parquet form (:func:`to_parquet`) is what the blob store keeps and what travels to and from
a server. Parquet alone loses what the digest counts (unused and non-string categories, plain
``object`` string columns), so the file's metadata carries each categorical's categories and
every column's pandas dtype: :func:`from_parquet` rebuilds the frame as logged from the file
alone. A file from elsewhere (without that metadata) reads as pandas reads it. Reading never
unpickles anything: Parquet is data, and pyarrow's pickle-based extension types are not used.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from modelloop.datasets.contracts import Contract, ValidationReport
from modelloop.datasets.entities import Schema, check_dataset_name
from modelloop.errors import InvalidArgument, PayloadTooLarge
from modelloop.tracking.entities import MAX_VALUE_LENGTH, check_run_id

if TYPE_CHECKING:
    import pandas as pd

_MAGIC = b"modelloop-dataset-v1\n"
# An upload may expand this much when decoded, beyond a floor every honest file stays under:
# a few KB of zstd can declare gigabytes of zeros (a decompression bomb).
MAX_EXPANSION = 100
EXPANSION_FLOOR = 256 * 1024 * 1024
_CATEGORIES = b"modelloop.categories"
_DTYPES = b"modelloop.dtypes"


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
    """Parquet (zstd) with each categorical's categories, order flag and their dtype, and every
    column's pandas dtype, in the file's metadata (see the module docstring)."""
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
    dtypes = {str(name): str(dtype) for name, dtype in frame.dtypes.items()}
    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = {
        **(table.schema.metadata or {}),
        _CATEGORIES: json.dumps(categories).encode(),
        _DTYPES: json.dumps(dtypes).encode(),
    }
    buffer = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(metadata), buffer, compression="zstd")
    return buffer.getvalue()


def from_parquet(data: bytes, schema: Schema | None = None) -> pd.DataFrame:
    """The frame as logged: categoricals are rebuilt from the file's metadata, and plain
    ``object`` string columns (which come back as ``str``) are turned back, nulls as None. The
    dtypes are the ``schema``'s when given (a stored version's), else the file's own."""
    import pyarrow.parquet as pq

    return table_to_frame(pq.read_table(io.BytesIO(data)), schema)


def read_upload(data: bytes) -> pd.DataFrame:
    """The frame a Parquet file from elsewhere (a request's body) holds, or InvalidArgument
    saying why it cannot be read: the bytes are untrusted, so any failure to decode them is
    the sender's, never the reader's."""
    if not data:
        raise InvalidArgument("The body is empty: expected a Parquet file")
    if not data.startswith(b"PAR1") or not data.endswith(b"PAR1"):
        raise InvalidArgument("The body is not a Parquet file (it must start and end with PAR1)")
    try:
        _check_expansion(data)
        return from_parquet(data)
    except (MemoryError, PayloadTooLarge):
        raise
    except Exception as exc:  # pyarrow, pandas or the metadata: whatever the bytes provoke
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise InvalidArgument(
            f"The body cannot be read as Parquet: {type(exc).__name__}"
            + (f": {reason}" if reason else "")
        ) from None


def _check_expansion(data: bytes) -> None:
    """PayloadTooLarge if the file declares more decoded bytes than an upload may expand to,
    read from its footer before anything is decompressed."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    declared = sum(
        meta.row_group(g).column(c).total_uncompressed_size
        for g in range(meta.num_row_groups)
        for c in range(meta.num_columns)
    )
    limit = max(EXPANSION_FLOOR, MAX_EXPANSION * len(data))
    if declared > limit:
        raise PayloadTooLarge(
            f"The Parquet body ({len(data):,} bytes) declares {declared:,} bytes once decoded, "
            f"more than the {limit:,} an upload may expand to ({MAX_EXPANSION}x its size, at "
            f"least {EXPANSION_FLOOR // 2**20} MiB): split it into smaller uploads"
        )


def table_to_frame(table: Any, schema: Schema | None = None) -> pd.DataFrame:
    """The frame a Parquet table (with :func:`to_parquet`'s metadata) was written from; the
    dtypes are ``schema``'s when given, else those the table's metadata names."""
    import pandas as pd

    frame: pd.DataFrame = table.to_pandas()
    metadata = table.schema.metadata or {}
    raw = metadata.get(_CATEGORIES, b"{}")
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
    dtypes = schema.columns if schema is not None else json.loads(metadata.get(_DTYPES, b"{}"))
    for name, dtype in dtypes.items():
        if dtype == "object" and str(frame[name].dtype) != "object":
            column = frame[name].astype(object)
            frame[name] = column.where(column.notna(), None)
    return frame


@dataclass(frozen=True, slots=True)
class Candidate:
    """A frame about to be logged as a version of ``name``, its arguments checked as every
    store checks them before storing anything: ``frame`` is the one to store (index dropped),
    ``digest`` its content, ``report`` the contract's passing report (when one was given)."""

    name: str
    frame: pd.DataFrame
    digest: str
    description: str | None
    run_id: str | None
    contract: Contract | None
    report: ValidationReport | None


def check_candidate(
    name: str,
    frame: object,
    *,
    description: str | None,
    run_id: str | None,
    contract: Contract | None,
) -> Candidate:
    """The checked arguments of a log call; InvalidArgument (or ContractViolation, when
    ``frame`` breaks ``contract``) saying what is wrong."""
    name = check_dataset_name(name)
    if run_id is not None:
        run_id = check_run_id(run_id)
    if description is not None:
        description = _check_description(description)
    if contract is not None and not isinstance(contract, Contract):
        raise InvalidArgument(f"contract must be a Contract, got {type(contract).__name__}")
    checked = check_frame(frame)
    report = None
    if contract is not None:  # on the frame as given: examples name its own row labels
        report = contract.validate(cast("pd.DataFrame", frame))
        report.raise_if_failed()
    digest = content_digest(checked)
    return Candidate(name, checked, digest, description, run_id, contract, report)


def parquet_of(candidate: Candidate) -> bytes:
    """The candidate's Parquet form, checked to read back as the same content."""
    data = to_parquet(candidate.frame)
    if content_digest(from_parquet(data)) != candidate.digest:
        raise InvalidArgument(
            f"Dataset {candidate.name!r} does not survive a Parquet round trip unchanged; "
            "convert unusual dtypes (e.g. object columns) to plain ones"
        )
    return data


def _check_description(description: object) -> str:
    if not isinstance(description, str):
        raise InvalidArgument(f"description must be text, got {type(description).__name__}")
    if len(description) > MAX_VALUE_LENGTH:
        raise InvalidArgument(
            f"description is {len(description)} characters long; the limit is {MAX_VALUE_LENGTH}"
        )
    if "\x00" in description:
        raise InvalidArgument("description contains a NUL character")
    return description
