"""How step outputs become artifacts and back, without pickle unless a step opts in.

    pandas DataFrame      -> ``parquet``   (pyarrow)
    numpy ndarray         -> ``npy``       (``allow_pickle=False``: object arrays are refused)
    JSON-able value       -> ``json``      (None, bool, numbers, str, lists, str-keyed dicts)
    ModelOutput / model   -> ``model``     (a :func:`modelloop.flavors.save_model` package)
    anything else         -> ``pickle`` only with ``@step(allow_pickle=True)``, else an error

A reference to a stored output is plain JSON (``{"kind", "digest"[, "files"]}``); a model
package is several files, so its ``digest`` is that of a small JSON blob listing the files'
digests, which makes one content address for the whole package.
"""

from __future__ import annotations

import io
import json
import math
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelloop.artifacts.paths import canonical_path, contained_path
from modelloop.errors import InvalidArgument, UnsafeFormat, UnsafePath

Ref = dict[str, Any]
SUFFIX = {"parquet": ".parquet", "npy": ".npy", "json": ".json", "pickle": ".pkl"}


@dataclass(frozen=True)
class ModelOutput:
    """A model returned by a step, with what :func:`save_model` needs to write its signature."""

    model: Any
    training_data: Any = None
    signature: Any = None


@dataclass(frozen=True)
class Encoded:
    kind: str
    files: dict[str, bytes]  # a single unnamed file is under "" (suffix from the kind)


def encode(value: Any, *, allow_pickle: bool = False) -> Encoded:
    """The bytes of ``value`` in the safest format that holds it."""
    import numpy as np
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        buffer = io.BytesIO()
        value.to_parquet(buffer, engine="pyarrow")
        return Encoded("parquet", {"": buffer.getvalue()})
    if isinstance(value, np.ndarray) and value.dtype != object:
        buffer = io.BytesIO()
        np.save(buffer, value, allow_pickle=False)
        return Encoded("npy", {"": buffer.getvalue()})
    text = _json_text(value)
    if text is not None:
        return Encoded("json", {"": text.encode()})
    if isinstance(value, ModelOutput) or _is_model(value):
        return _encode_model(value)
    if allow_pickle:
        return Encoded("pickle", {"": pickle.dumps(value)})
    raise UnsafeFormat(
        f"a step returned a {type(value).__qualname__}, which only pickle could store: return a "
        "DataFrame, ndarray, JSON-able value or model (ModelOutput), or opt in with "
        "@step(allow_pickle=True)"
    )


def decode(kind: str, files: dict[str, bytes], *, allow_pickle: bool = False) -> Any:
    """The value :func:`encode` stored (a model comes back as a ``LoadedModel``)."""
    if kind == "parquet":
        import pandas as pd

        return pd.read_parquet(io.BytesIO(files[""]), engine="pyarrow")
    if kind == "npy":
        import numpy as np

        return np.load(io.BytesIO(files[""]), allow_pickle=False)
    if kind == "json":
        return json.loads(files[""])
    if kind == "model":
        from modelloop.flavors import load_model

        with tempfile.TemporaryDirectory(prefix="modelloop-step-") as tmp:
            for name, data in files.items():
                _package_file(Path(tmp), name).write_bytes(data)
            return load_model(tmp)
    if kind == "pickle":
        if not allow_pickle:
            raise UnsafeFormat(
                "this input is a pickle; the consuming step must opt in with allow_pickle=True"
            )
        return pickle.loads(files[""])  # noqa: S301 - opted in above
    raise InvalidArgument(f"unknown step output kind {kind!r}")


def _package_file(directory: Path, name: str) -> Path:
    """Where a package file goes; its name comes from a stored row, so it is checked like a
    name from the network: one plain file name (packages are flat), contained in ``directory``."""
    if not isinstance(name, str) or canonical_path(name) != name or "/" in name:
        raise UnsafePath(f"unsafe model package file name {name!r}: not a plain file name")
    return contained_path(directory, name)


def numbers(value: Any) -> dict[str, float]:
    """The numbers in an output: ``{"": x}`` for a number, ``{"auc": x, "by_class.fraud": y}``
    for a dict of them (nested keys joined by dots); booleans, text and lists are not numbers."""
    if _is_number(value):
        return {"": float(value)}
    if not isinstance(value, dict):
        return {}
    found: dict[str, float] = {}
    for key, item in value.items():
        if isinstance(key, str):
            found.update({f"{key}.{k}" if k else key: v for k, v in numbers(item).items()})
    return found


def _is_number(value: Any) -> bool:
    import numpy as np

    if type(value) in (int, float):
        return True
    return isinstance(value, np.floating | np.integer) and not isinstance(value, np.bool_)


def tree_blob(files: dict[str, str]) -> bytes:
    """The JSON listing of a model package's files and digests (its own digest names it)."""
    return json.dumps({"kind": "model", "files": files}, sort_keys=True).encode()


def _encode_model(value: Any) -> Encoded:
    from modelloop.flavors import save_model

    out = value if isinstance(value, ModelOutput) else ModelOutput(value)
    if out.training_data is None and out.signature is None:
        raise InvalidArgument(
            f"a step returned a {type(out.model).__qualname__} model without a signature: return "
            "ModelOutput(model, training_data=X) so its package can describe its inputs"
        )
    with tempfile.TemporaryDirectory(prefix="modelloop-step-") as tmp:
        package = Path(tmp) / "model"
        save_model(out.model, package, training_data=out.training_data, signature=out.signature)
        files = {p.name: p.read_bytes() for p in sorted(package.iterdir()) if p.is_file()}
    return Encoded("model", files)


def _is_model(value: Any) -> bool:
    roots = {cls.__module__.split(".")[0] for cls in type(value).__mro__}
    return bool(roots & {"lightgbm", "xgboost", "sklearn"})


def _json_text(value: Any) -> str | None:
    if not _json_safe(value):
        return None
    return json.dumps(value, sort_keys=True, allow_nan=False, default=_scalar)


def _json_safe(value: Any, depth: int = 0) -> bool:
    import numpy as np

    if depth > 50:
        return False
    if value is None or isinstance(value, bool | int | str):
        return True
    if isinstance(value, float | np.floating):
        return math.isfinite(float(value))
    if isinstance(value, np.integer | np.bool_):
        return True
    if isinstance(value, list | tuple):
        return all(_json_safe(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_safe(v, depth + 1) for k, v in value.items())
    return False


def _scalar(value: Any) -> Any:
    return value.item()  # numpy scalars, the only non-JSON leaves _json_safe lets through
