"""``modelloop.__all__`` is the SDK's deliberate public surface: exactly what it exports."""

from __future__ import annotations

import subprocess
import sys
import types

import modelloop


def test_all_is_sorted_and_unique() -> None:
    assert list(modelloop.__all__) == sorted(modelloop.__all__)
    assert len(set(modelloop.__all__)) == len(modelloop.__all__)


def test_every_name_in_all_is_importable() -> None:
    for name in modelloop.__all__:
        assert hasattr(modelloop, name), name
    namespace: dict[str, object] = {}
    exec("from modelloop import *", namespace)
    assert set(modelloop.__all__) <= set(namespace)


def test_every_public_name_is_in_all() -> None:
    """A name imported into ``modelloop/__init__.py`` without a ``_`` is public: list it."""
    public = {
        name
        for name, value in vars(modelloop).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public <= set(modelloop.__all__), sorted(public - set(modelloop.__all__))


def test_the_version_is_exported() -> None:
    assert "__version__" in modelloop.__all__
    assert modelloop.__version__.count(".") >= 2


def test_importing_modelloop_stays_light() -> None:
    """``import modelloop`` (and so ``modelloop --help``) pulls in no heavy library."""
    heavy = ("pandas", "numpy", "sqlalchemy", "fastapi", "uvicorn", "lightgbm", "pyarrow")
    code = f"import sys, modelloop; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "", f"import modelloop imported: {done.stdout.strip()}"


def test_every_error_class_is_exported() -> None:
    """Remote users must catch ServerUnavailable, ConnectionLost and Unauthorized too."""
    from modelloop import errors

    classes = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.ModelloopError)
    }
    assert classes <= set(modelloop.__all__), sorted(classes - set(modelloop.__all__))
