"""Read the prediction log back, with the labels that arrived since: ``ml.load_predictions(...)``.

Only the model's partitions of the days in ``[start, end)`` are opened (the folder layout is the
index), then rows are filtered by time. Labels come from the ``feedback`` table in one range
query: prediction ids sort by time, so the ids of a window are a contiguous key range.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from modelloop.errors import InvalidArgument
from modelloop.serving.prediction_log import META_COLUMNS, escape_partition, open_log_filesystem
from modelloop.settings import Settings, load_settings

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow.fs as pafs

TimeLike = datetime | date | str | None
_MAX_DAYS = 3660
_LABEL_COLUMNS = ("label", "label_text", "labelled_at")


def load_predictions(
    model: str,
    start: TimeLike = None,
    end: TimeLike = None,
    *,
    deployment: str | None = None,
    version: int | None = None,
    with_labels: bool = True,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """The logged predictions of ``model`` made in ``[start, end)``, oldest first.

    ``start``/``end`` are datetimes (naive ones are UTC), dates (midnight UTC) or ISO strings;
    None means unbounded. Columns: the log's (``prediction_id``, ``timestamp``, ``deployment``,
    ``model_name``, ``model_version``, ``role``, ``latency_ms``, ``score``, sticky key and input
    features) and, with labels, ``label`` (numeric), ``label_text`` and ``labelled_at`` (NaN/None
    where no label arrived yet).

    With ``MODELLOOP_TRACKING_URI`` set, the server answers: it reads its own prediction log
    and feedback, and sends the same frame back (as Parquet).
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    settings = settings or load_settings()
    lo, hi = parse_instant(start, "start"), parse_instant(end, "end")
    if lo is not None and hi is not None and hi < lo:
        raise InvalidArgument(f"end ({hi.isoformat()}) is before start ({lo.isoformat()})")
    if settings.tracking_uri is not None:  # the server reads its log and joins its labels
        from modelloop.serving.http import read_predictions

        return read_predictions(
            settings.tracking_uri,
            model,
            lo,
            hi,
            token=settings.token,
            deployment=deployment,
            version=version,
            with_labels=with_labels,
        )
    fs, root = open_log_filesystem(settings.prediction_log_uri)
    files = log_files(fs, root, model=model, dates=_dates(lo, hi))
    if not files:
        return _empty(with_labels)
    schemas = [ds.dataset(f, format="parquet", filesystem=fs).schema for f in files]
    dataset = ds.dataset(
        files, schema=pa.unify_schemas(schemas, promote_options="permissive"), filesystem=fs
    )
    where = pc.field("model_name") == model
    if lo is not None:
        where &= pc.field("timestamp") >= pa.scalar(lo, pa.timestamp("ms", tz="UTC"))
    if hi is not None:
        where &= pc.field("timestamp") < pa.scalar(hi, pa.timestamp("ms", tz="UTC"))
    if deployment is not None:
        where &= pc.field("deployment") == deployment
    if version is not None:
        where &= pc.field("model_version") == version
    table = dataset.to_table(filter=where)
    ordered = table.sort_by([("prediction_id", "ascending"), ("role", "ascending")])
    frame: pd.DataFrame = ordered.to_pandas().reset_index(drop=True)
    if with_labels:
        frame = _join_labels(frame, settings)
    return frame


def logged_dates(model: str, settings: Settings | None = None) -> list[str]:
    """The days (``YYYY-MM-DD``, ascending) on which ``model`` has logged predictions."""
    settings = settings or load_settings()
    fs, root = open_log_filesystem(settings.prediction_log_uri)
    files = log_files(fs, root, model=model, dates=None)
    return sorted({f.rsplit("/date=", 1)[1].split("/", 1)[0] for f in files})


def log_files(
    fs: pafs.FileSystem, root: str, *, model: str | None, dates: Iterable[str] | None
) -> list[str]:
    """The Parquet files of ``model`` (None: every model) on ``dates`` (None: every date)."""
    import pyarrow.fs as pafs

    def listing(path: str) -> list[pafs.FileInfo]:
        try:
            return list(fs.get_file_info(pafs.FileSelector(path, allow_not_found=True)))
        except (FileNotFoundError, NotADirectoryError):
            return []

    if model is None:
        models = [i.path for i in listing(root) if i.base_name.startswith("model=")]
    else:
        models = [f"{root}/model={escape_partition(model)}"]
    wanted = None if dates is None else {f"date={d}" for d in dates}
    files = []
    for folder in models:
        for day in listing(folder):
            if wanted is not None and day.base_name not in wanted:
                continue
            if not day.base_name.startswith("date="):
                continue
            files += [
                f.path
                for f in listing(day.path)
                if f.base_name.startswith("part-") and f.base_name.endswith(".parquet")
            ]
    return sorted(files)


def written_at_ms(path: str) -> int:
    """The write time encoded in a part file's name (0 when the name is not ours)."""
    stamp = path.rsplit("/", 1)[-1].split("-")[1:2]
    return int(stamp[0]) if stamp and stamp[0].isdigit() else 0


def parse_instant(value: TimeLike, what: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidArgument(
                f"{what}={value!r} is not an ISO date or time (e.g. 2026-01-31 or "
                "2026-01-31T12:00:00Z)"
            ) from None
    if not isinstance(value, datetime):
        if not isinstance(value, date):
            raise InvalidArgument(f"{what} must be a datetime, a date or an ISO string")
        value = datetime(value.year, value.month, value.day)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _dates(lo: datetime | None, hi: datetime | None) -> list[str] | None:
    """The partition dates ``[lo, hi)`` touches; None (all) when either end is open."""
    if lo is None or hi is None:
        return None
    first, last = lo.date(), (hi - timedelta(milliseconds=1)).date()
    if (last - first).days > _MAX_DAYS:
        return None
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return [d.isoformat() for d in days]


def _join_labels(frame: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    import pandas as pd
    from sqlalchemy import select

    from modelloop.store import open_database
    from modelloop.store import tables as t

    if frame.empty:
        for column in _LABEL_COLUMNS:
            frame[column] = pd.Series(dtype="float64" if column == "label" else "object")
        return frame
    table = t.feedback
    lo, hi = frame["prediction_id"].min(), frame["prediction_id"].max()
    query = select(
        table.c.prediction_id, table.c.label, table.c.value_text, table.c.received_at
    ).where(table.c.prediction_id >= lo, table.c.prediction_id <= hi)
    with open_database(settings.database_url).read() as conn:
        rows = conn.execute(query).all()
    labels = pd.DataFrame(
        rows, columns=["prediction_id", "label", "label_text", "labelled_at"]
    ).astype({"label": "float64"})
    labels["labelled_at"] = pd.to_datetime(labels["labelled_at"], unit="ms", utc=True)
    return frame.merge(labels, on="prediction_id", how="left")


def require_model(model: str, settings: Settings | None = None) -> None:
    """NotFound for a model the registry does not know and the log never heard of: for a
    command that asked for one by name, a typo is not "no predictions yet". (Monitors read
    no rows for such a model instead: their windows say ``no_data``.)"""
    settings = settings or load_settings()
    import pyarrow.fs as pafs

    from modelloop.registry.client import Registry
    from modelloop.tracking.client import Client

    fs, root = open_log_filesystem(settings.prediction_log_uri)
    folder = fs.get_file_info(f"{root}/model={escape_partition(model)}")
    if folder.type != pafs.FileType.NotFound:
        return
    registry = Registry(Client(settings=settings))
    try:
        registry.get_model(model)  # NotFound: "Registered model ... does not exist"
    finally:
        registry.close()


def _empty(with_labels: bool) -> pd.DataFrame:
    import pandas as pd

    columns: dict[str, Any] = {name: pd.Series(dtype="object") for name in META_COLUMNS}
    if with_labels:
        columns.update({name: pd.Series(dtype="object") for name in _LABEL_COLUMNS})
    return pd.DataFrame(columns)
