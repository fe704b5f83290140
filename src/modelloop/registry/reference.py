"""A version's drift reference: what monitoring compares live inputs and scores against.

It is fitted once (per input feature and ``score``, the model's output) from the model's
training data, so checks never read that data again. Where it comes from, in order:

1. ``training_data`` given at registration;
2. else the dataset the run that produced the model trained on, from lineage: the datasets that
   run read or logged or, for a pipeline step fed by other steps, those of the nearest steps
   upstream; used when exactly one of them holds every feature of the model's signature (which
   one is recorded in the version's tag ``modelloop.reference.dataset``);
3. else none, said loudly: a :class:`NoDriftReference` warning names why and how to add one
   later (``ml.set_reference_profile``, or registering again with the data, ``modelloop models
   register ... --dataset NAME@VERSION``), and ``reference_profile`` raises NotFound saying the
   same, which the monitor's window shows (status ``no_reference``).

Where it is stored: fitted while the package is written (a model object was given), it is the
package's ``reference.json``. Fitted for a package that is already logged (``model=None``, or
added later), it goes beside the package (``references/<digest>.json`` in the same run) and the
version's tag ``modelloop.reference`` names it: adding a file inside a package would change the
content that earlier versions registered from it were verified against.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from modelloop.errors import InvalidArgument, ModelloopError, NotFound

if TYPE_CHECKING:
    import pandas as pd

    from modelloop.datasets.entities import DatasetVersion
    from modelloop.store.database import Database
    from modelloop.tracking.client import Client

REFERENCE_FILE = "reference.json"
TAG_REFERENCE = "modelloop.reference"  # artifact path, in the version's run, of its reference
TAG_REFERENCE_DATASET = "modelloop.reference.dataset"  # NAME@VERSION it was fitted on


class NoDriftReference(UserWarning):
    """A version was registered without a drift reference: its drift cannot be monitored until
    one is set."""


def fit(package: Path, training_data: pd.DataFrame, allow_pickle: bool) -> bytes:
    """The reference of a package's inputs and score on ``training_data`` (``reference.json``)."""
    from modelloop import flavors
    from modelloop.datasets.reference import fit_reference, fit_references

    manifest = flavors.read_manifest(package)
    names = list(manifest.signature.names)
    missing = [n for n in names if n not in training_data.columns]
    if missing:
        raise InvalidArgument(
            f"The training data lacks features of the model's signature: {missing[:10]}"
        )
    features = training_data[names]
    references = fit_references(features)
    try:
        scores = flavors.load_model(package, allow_pickle=allow_pickle).predict(features)
    except ModelloopError:  # e.g. skops types that need trusting at load: inputs only
        scores = None
    if scores is not None and scores.ndim == 1:
        references["score"] = fit_reference(scores)
    return json.dumps({name: ref.to_dict() for name, ref in references.items()}).encode()


def beside_path(payload: bytes) -> str:
    """Where a reference fitted for an already logged package goes in its run."""
    return f"references/{hashlib.sha256(payload).hexdigest()[:16]}.json"


def training_dataset(
    client: Client, run_id: str, features: Sequence[str]
) -> tuple[DatasetVersion | None, str]:
    """The dataset version the model of ``run_id`` was trained on, found from lineage (see the
    module docstring), or ``(None, why not)``."""
    from modelloop.datasets.entities import parse_ref
    from modelloop.datasets.fluent import dataset_store
    from modelloop.datasets.sql import SqlDatasetStore

    store = dataset_store(client)
    if not isinstance(store, SqlDatasetStore):  # the lineage walk reads the database
        return None, "the lineage of its run is not readable through a tracking server"
    refs = _nearest_datasets(store.db, run_id)
    if not refs:
        return None, f"its run {run_id} (and the steps upstream of it) read or logged no dataset"
    found: list[DatasetVersion] = []
    problems: list[str] = []
    for ref in refs:
        try:
            version = store.get_version(*parse_ref(ref))
        except (NotFound, InvalidArgument):
            problems.append(f"{ref} is not in the dataset store")
            continue
        missing = [f for f in features if f not in version.schema.columns]
        if missing:
            problems.append(f"{ref} lacks {', '.join(missing[:5])}")
        else:
            found.append(version)
    if len(found) == 1:
        return found[0], ""
    if found:
        listed = ", ".join(v.ref for v in found)
        return None, f"its run read several datasets with its features ({listed})"
    return None, f"no dataset its run read holds its features: {'; '.join(problems)}"


def _nearest_datasets(db: Database, run_id: str) -> list[str]:
    """``NAME@V`` of the datasets the run read or logged or, when none, those of the runs that
    produced the artifacts it read (pipeline steps upstream), nearest first."""
    from sqlalchemy import and_, or_, select

    from modelloop.store.tables import lineage_edges

    e = lineage_edges.c
    runs, seen = {run_id}, set[str]()
    while runs:
        seen |= runs
        with db.read() as conn:
            rows = conn.execute(
                select(e.source_kind, e.source_id, e.target_kind, e.target_id).where(
                    or_(
                        and_(e.target_kind == "run", e.target_id.in_(runs), e.relation == "input"),
                        and_(
                            e.source_kind == "run",
                            e.source_id.in_(runs),
                            e.target_kind == "dataset",
                        ),
                    )
                )
            ).all()
        datasets = {r.source_id for r in rows if r.source_kind == "dataset"}
        datasets |= {r.target_id for r in rows if r.target_kind == "dataset"}
        if datasets:
            return sorted(str(d) for d in datasets)
        artifacts = {str(r.source_id) for r in rows if r.source_kind == "artifact"}
        if not artifacts:
            return []
        with db.read() as conn:
            producers = conn.execute(
                select(e.source_id).where(
                    e.source_kind == "run",
                    e.target_kind == "artifact",
                    e.target_id.in_(artifacts),
                    e.relation == "output",
                )
            ).scalars()
            runs = {str(p) for p in producers} - seen
    return []
