"""A step-cache row is data like any other: a tampered one cannot make a step write outside."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from modelloop.errors import UnsafePath
from modelloop.examples import training_pipeline as ex
from modelloop.pipelines import outputs
from modelloop.pipelines.lineage import database_of
from modelloop.store.tables import step_cache
from modelloop.tracking.fluent import get_client
from tests.artifacts.hostile_paths import HOSTILE_PATHS


def test_a_tampered_package_file_name_is_refused_and_writes_nothing(
    home: Path, tmp_path: Path
) -> None:
    assert ex.pipeline.run().steps["evaluate"].state == "SUCCEEDED"
    escape = tmp_path / "escaped.txt"
    db = database_of(get_client())
    with db.write() as conn:
        rows = conn.execute(
            select(step_cache.c.cache_key, step_cache.c.outputs).where(
                step_cache.c.step_name == "train"
            )
        ).all()
        assert rows
        for key, text in rows:
            refs = json.loads(text)
            files = refs["model"]["files"]
            files[str(escape)] = files.pop(sorted(files)[0])  # an absolute name from the row
            conn.execute(
                update(step_cache)
                .where(step_cache.c.cache_key == key)
                .values(outputs=json.dumps(refs, sort_keys=True))
            )
        conn.execute(delete(step_cache).where(step_cache.c.step_name == "evaluate"))
    again = ex.pipeline.run()
    assert again.steps["train"].state == "CACHED"
    assert not escape.exists()
    evaluate = again.steps["evaluate"]
    assert evaluate.state == "FAILED"
    assert evaluate.reason is not None
    assert "UnsafePath" in evaluate.reason
    assert str(escape) in evaluate.reason


@pytest.mark.parametrize(
    "name", [p for p, _ in HOSTILE_PATHS] + ["sub/model.txt"], ids=lambda p: repr(p)[:40]
)
def test_decode_refuses_every_hostile_package_file_name(name: str) -> None:
    with pytest.raises(UnsafePath):
        outputs.decode("model", {name: b"written through a hostile name"})
