"""Nothing that can run code on load is loaded without an explicit opt-in, whatever the
manifest claims: pickle, joblib, and skops types nobody vouched for."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from modelloop.errors import InvalidArgument, UnsafeFormat
from modelloop.flavors import MANIFEST_NAME, infer_signature, load_model, save_model
from tests.flavors import numeric, transactions

FRAME = numeric(transactions()[0])
LABEL = transactions()[1]


class ScoreByAmount:
    """A plain-Python model: only the opt-in ``python`` flavor can store it."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(frame["amount"] / 100.0)


class RunsCodeWhenUnpickled:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def clip_amounts(X: Any) -> Any:
    """Module-level, so skops stores it as a type to trust: ``tests.flavors...clip_amounts``."""
    return X.clip(upper=1000.0)


CLIP = f"{__name__}.clip_amounts"


def package(tmp_path: Path, flavor: str, file: str, content: bytes) -> Path:
    """A hand-made package whose manifest claims ``flavor`` for ``file``."""
    directory = tmp_path / "pkg"
    directory.mkdir()
    (directory / file).write_bytes(content)
    manifest = {
        "flavor": flavor,
        "model_files": [file],
        "signature": infer_signature(FRAME).to_dict(),
        "libraries": {},
        "metadata": {},
    }
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest))
    return directory


def test_the_python_flavor_is_opt_in_both_ways(tmp_path: Path) -> None:
    with pytest.raises(UnsafeFormat, match="allow_pickle=True"):
        save_model(ScoreByAmount(), tmp_path / "refused", training_data=FRAME)
    assert not any((tmp_path / "refused").glob("*")) if (tmp_path / "refused").exists() else True
    manifest = save_model(ScoreByAmount(), tmp_path / "m", training_data=FRAME, allow_pickle=True)
    assert manifest.flavor == "python"
    with pytest.raises(UnsafeFormat) as caught:
        load_model(tmp_path / "m")
    message = caught.value.message
    assert "allow_pickle=True" in message
    assert "CVE-2024-37052" in message
    assert "CVE-2025-27520" in message
    loaded = load_model(tmp_path / "m", allow_pickle=True)
    np.testing.assert_array_equal(loaded.predict(FRAME), FRAME.amount / 100.0)
    X = loaded.signature.to_matrix(FRAME.head(3).to_dict("records"))
    np.testing.assert_array_equal(loaded.predict_matrix(X), FRAME.amount.head(3) / 100.0)


def test_a_pickle_posing_as_lightgbm_is_refused(tmp_path: Path) -> None:
    model = LogisticRegression().fit(FRAME, LABEL)
    directory = package(tmp_path, "lightgbm", "model.txt", pickle.dumps(model, protocol=4))
    for allow in (False, True):  # a pickle never belongs in a safe flavor
        with pytest.raises(UnsafeFormat, match="is a pickle"):
            load_model(directory, allow_pickle=allow)


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_a_pickle_posing_as_skops_is_refused(tmp_path: Path, protocol: int) -> None:
    model = LogisticRegression().fit(FRAME, LABEL)
    directory = package(tmp_path, "sklearn", "model.skops", pickle.dumps(model, protocol))
    with pytest.raises(UnsafeFormat, match=r"refusing 'model\.skops'"):
        load_model(directory)


@pytest.mark.parametrize("compress", [0, 3])
def test_a_joblib_file_is_refused(tmp_path: Path, compress: int) -> None:
    model = LogisticRegression().fit(FRAME, LABEL)
    joblib.dump(model, tmp_path / "model.joblib", compress=compress)
    content = (tmp_path / "model.joblib").read_bytes()
    with pytest.raises(UnsafeFormat, match="pickle/joblib"):
        load_model(package(tmp_path, "sklearn", "model.joblib", content))
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    with pytest.raises(UnsafeFormat, match=r"refusing 'model\.skops'"):
        load_model(package(renamed, "sklearn", "model.skops", content))


def test_code_in_a_pickle_never_runs_without_opt_in(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(RunsCodeWhenUnpickled(marker))
    cases = [("python", "model.pkl"), ("lightgbm", "model.txt"), ("sklearn", "model.skops")]
    for i, (flavor, file) in enumerate(cases):
        (tmp_path / str(i)).mkdir()
        directory = package(tmp_path / str(i), flavor, file, payload)
        with pytest.raises(UnsafeFormat):
            load_model(directory)
        assert not marker.exists(), f"the payload ran when loading a {flavor!r} package"
    # The payload is live: opting in on the python flavor does run it.
    with pytest.raises(InvalidArgument, match="cannot predict"):  # os.system returned an int
        load_model(tmp_path / "0" / "pkg", allow_pickle=True)
    assert marker.exists()


def test_untrusted_skops_types_need_naming(tmp_path: Path) -> None:
    model = make_pipeline(FunctionTransformer(clip_amounts), LogisticRegression()).fit(FRAME, LABEL)
    with pytest.raises(UnsafeFormat, match=CLIP):
        save_model(model, tmp_path / "refused", training_data=FRAME)
    manifest = save_model(model, tmp_path / "m", training_data=FRAME, trusted_types=[CLIP])
    assert manifest.flavor_config["skops_untrusted_types"] == [CLIP]
    with pytest.raises(UnsafeFormat) as caught:
        load_model(tmp_path / "m")
    assert f"trusted_types=['{CLIP}']" in caught.value.message
    with pytest.raises(UnsafeFormat):
        load_model(tmp_path / "m", trusted_types=["sklearn.tree._tree.Tree"])
    loaded = load_model(tmp_path / "m", trusted_types=[CLIP])
    np.testing.assert_allclose(loaded.predict(FRAME), model.predict_proba(FRAME)[:, 1])


def test_the_manifest_cannot_vouch_for_types(tmp_path: Path) -> None:
    """Editing the manifest's recorded types changes nothing: the file itself is checked."""
    model = make_pipeline(FunctionTransformer(clip_amounts), LogisticRegression()).fit(FRAME, LABEL)
    save_model(model, tmp_path / "m", training_data=FRAME, trusted_types=[CLIP])
    path = tmp_path / "m" / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    manifest["flavor_config"]["skops_untrusted_types"] = []
    path.write_text(json.dumps(manifest))
    with pytest.raises(UnsafeFormat, match=CLIP):
        load_model(tmp_path / "m")


@pytest.mark.parametrize("name", ["../model.txt", "/etc/passwd", "sub/model.txt", ".hidden"])
def test_model_files_stay_inside_the_package(tmp_path: Path, name: str) -> None:
    directory = package(tmp_path, "lightgbm", "model.txt", b"tree\n")
    manifest = json.loads((directory / MANIFEST_NAME).read_text())
    (directory / MANIFEST_NAME).write_text(json.dumps({**manifest, "model_files": [name]}))
    with pytest.raises(UnsafeFormat, match="not a plain file"):
        load_model(directory)


def test_a_symlinked_model_file_is_refused(tmp_path: Path) -> None:
    directory = package(tmp_path, "lightgbm", "elsewhere.txt", b"tree\n")
    (directory / "model.txt").symlink_to(directory / "elsewhere.txt")
    manifest = json.loads((directory / MANIFEST_NAME).read_text())
    (directory / MANIFEST_NAME).write_text(json.dumps({**manifest, "model_files": ["model.txt"]}))
    with pytest.raises(UnsafeFormat, match="not a plain file"):
        load_model(directory)


def test_an_unknown_flavor_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="unknown model flavor"):
        load_model(package(tmp_path, "tensorflow", "model.txt", b"tree\n"))
