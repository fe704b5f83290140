"""The gate's holdout: where it is read from, its 0/1 labels, and a digest naming it exactly.

Standard library only at import time; pandas and numpy load on first use.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelloop.datasets import get_dataset, load_dataset
from modelloop.errors import InvalidArgument

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    FloatArray = np.ndarray[Any, np.dtype[np.float64]]


def read_holdout(source: str) -> tuple[pd.DataFrame, str]:
    """A Parquet or CSV file, or a registered dataset ``NAME[@VERSION]``; with its description.

    An existing path wins; a name ending in ``.parquet``/``.pq``/``.csv`` (or with a ``/``)
    that does not exist is a bad argument (InvalidArgument: a path the caller typed, not
    something missing from the store) rather than looked up as a dataset, so a typo says what
    it is. A dataset name that is not registered is NotFound.
    """
    import pandas as pd

    path = Path(source).expanduser()
    suffix = path.suffix.lower()
    if path.is_file():
        try:
            if suffix == ".csv":
                return pd.read_csv(path), f"file {path.resolve()}"
            return pd.read_parquet(path), f"file {path.resolve()}"
        except (OSError, ValueError) as exc:
            raise InvalidArgument(
                f"Cannot read {path} as {suffix[1:] or 'Parquet'}: {exc}"
            ) from None
    if suffix in (".parquet", ".pq", ".csv") or "/" in source:
        raise InvalidArgument(f"No such file: {source}")
    version = get_dataset(source)
    return load_dataset(version), f"dataset {version.ref}"


def holdout_labels(holdout: pd.DataFrame, label: str) -> FloatArray:
    """The ``label`` column as 0.0/1.0; InvalidArgument when it is missing, empty, has gaps
    or other values."""
    import numpy as np
    import pandas as pd

    if label not in holdout.columns:
        raise InvalidArgument(
            f"The holdout has no label column {label!r} (columns: "
            f"{', '.join(map(str, holdout.columns[:20]))}); pass the right one with label= "
            "(CLI --label)"
        )
    if holdout.empty:
        raise InvalidArgument("The holdout is empty")
    y = pd.to_numeric(holdout[label], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    missing = int(np.isnan(y).sum())
    if missing:
        raise InvalidArgument(
            f"{missing} of {len(y)} holdout rows have no label in {label!r}: the gate needs a "
            "labeled holdout (drop the unlabeled rows first)"
        )
    if not np.isin(y, (0.0, 1.0)).all():
        raise InvalidArgument(f"Labels in {label!r} must be 0 or 1")
    return y


def holdout_entities(holdout: pd.DataFrame, column: str) -> Any:
    """The card (or customer) of each row, from ``column``; InvalidArgument when it is missing
    or has gaps."""
    values = _column(holdout, column, "entity")
    missing = int(values.isna().sum())
    if missing:
        raise InvalidArgument(f"{missing} of {len(values)} holdout rows have no {column!r}")
    return values.to_numpy()


def holdout_days(holdout: pd.DataFrame, column: str) -> Any:
    """The day of each row, from ``column``: numbers (e.g. ``TX_TIME_DAYS``) are the days as
    they are; datetimes, dates or text in ISO 8601 (``2018-04-01``, ``2018-04-01 00:00:31``)
    count their UTC calendar date (``YYYY-MM-DD``; naive times are UTC). InvalidArgument for
    gaps or other values."""
    import pandas as pd

    values = _column(holdout, column, "day")
    missing = int(values.isna().sum())
    if missing:
        raise InvalidArgument(f"{missing} of {len(values)} holdout rows have no day in {column!r}")
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.to_numpy()
    try:
        moments = pd.to_datetime(values, utc=True, format="ISO8601")
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(
            f"The day column {column!r} holds neither numbers nor dates or times: {exc}"
        ) from None
    return moments.dt.strftime("%Y-%m-%d").to_numpy()


def holdout_amounts(holdout: pd.DataFrame, column: str) -> FloatArray:
    """The amount of each row, from ``column``, as floats; InvalidArgument when it is missing,
    has gaps or non-numbers."""
    import numpy as np
    import pandas as pd

    values = _column(holdout, column, "amount")
    amounts = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = int((~np.isfinite(amounts)).sum())
    if bad:
        raise InvalidArgument(
            f"{bad} of {len(amounts)} holdout rows have no numeric amount in {column!r}"
        )
    return amounts


def _column(holdout: pd.DataFrame, column: str, role: str) -> pd.Series[Any]:
    if column not in holdout.columns:
        raise InvalidArgument(
            f"The holdout has no {role} column {column!r} (columns: "
            f"{', '.join(map(str, holdout.columns[:20]))}); pass the right one with {role}= "
            f"(CLI --{role})"
        )
    return holdout[column]


def holdout_digest(holdout: pd.DataFrame, columns: list[str]) -> str:
    """sha256 of the values the gate read (row order included), to name the holdout exactly."""
    import pandas as pd

    hashed = pd.util.hash_pandas_object(holdout[columns], index=False)
    return hashlib.sha256(hashed.to_numpy().tobytes()).hexdigest()
