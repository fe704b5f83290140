"""The module-level datasets SDK: ``ml.log_dataset``, ``ml.load_dataset``, ``ml.check_skew``...

Each function works on the dataset store named by the default client's settings
(``ml.get_client()``), chosen by :func:`~modelloop.datasets.store.open_dataset_store`: the
metadata database and the blob store, or a modelloop server when ``MODELLOOP_TRACKING_URI`` is
set. Both behave alike, the run/lineage link included: a version logged inside a run names the
run, and a version loaded inside a run is noted as read by it.

Inside :func:`recording_reads` every reference that is resolved (``get_dataset``,
``load_dataset``, ``dataset_versions``, ``skew``) is noted as it was asked for (``"fraud"``: the
latest, ``"fraud@2"``: pinned) with the version it gave, and a version object loaded there
counts as pinned unless its name was resolved there first (then that read decided it). A
pipeline step's cached outputs hold only while each of its reads still gives the same version
(:func:`current_versions`).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from modelloop.datasets.entities import Dataset, DatasetVersion, check_dataset_name, parse_ref
from modelloop.datasets.profile import DatasetProfile, compute_profile
from modelloop.datasets.skew import SkewReport, Tolerances, compare_profiles
from modelloop.datasets.store import DatasetStore, open_dataset_store
from modelloop.errors import InvalidArgument, NotFound
from modelloop.tracking.fluent import active_run, get_client
from modelloop.tracking.source import current_user

if TYPE_CHECKING:
    import pandas as pd

    from modelloop.datasets.contracts import Contract
    from modelloop.tracking.client import Client
    from modelloop.tracking.run import ActiveRun

_stores: weakref.WeakKeyDictionary[Client, DatasetStore] = weakref.WeakKeyDictionary()
_stores_lock = threading.Lock()
_reads: ContextVar[dict[str, int] | None] = ContextVar("modelloop_dataset_reads", default=None)


@contextmanager
def recording_reads() -> Iterator[dict[str, int]]:
    """Collect the dataset references resolved in this block (in this thread or task):
    reference as asked for -> the version it gave."""
    reads: dict[str, int] = {}
    token = _reads.set(reads)
    try:
        yield reads
    finally:
        _reads.reset(token)


def _note_read(ref: str, version: int) -> None:
    reads = _reads.get()
    if reads is not None:
        reads[ref] = version


def dataset_store(client: Client | None = None) -> DatasetStore:
    """The dataset store beside ``client``'s (default: the default client's) tracking store:
    the same database and blob store, or the same server. One per client, closed when the
    client is collected."""
    client = client or get_client()
    with _stores_lock:
        store = _stores.get(client)
        if store is None:
            store = _stores[client] = open_dataset_store(client.settings)
            weakref.finalize(client, store.close)
        return store


def log_dataset(
    df: pd.DataFrame,
    name: str,
    *,
    description: str | None = None,
    run: ActiveRun | str | None = None,
    contract: Contract | None = None,
) -> DatasetVersion:
    """Store ``df`` as a version of ``name`` (Parquet, schema, profile), or return the version
    that already holds the same content. Linked to ``run`` (default: the active run, if any).
    With ``contract``, a frame that breaks it raises ContractViolation and nothing is stored;
    one that keeps it is stored with the passing report (``dataset_store().validations``).
    ``description`` is the version's (``DatasetVersion.description``); the first version's
    describes the dataset too.

    The index is not stored: :func:`load_dataset` returns a RangeIndex.
    """
    if run is None:
        run = active_run()
    client = run.client if run is not None and not isinstance(run, str) else None
    run_id = run if isinstance(run, str) or run is None else run.run_id
    store = dataset_store(client)  # lineage: the store notes the run that logged it
    return store.log_version(
        name, df, actor=current_user(), description=description, run_id=run_id, contract=contract
    )


def get_dataset(ref: str) -> DatasetVersion:
    """``"name"`` (the latest version) or ``"name@3"``."""
    name, version = parse_ref(ref)
    found = dataset_store().get_version(name, version)
    _note_read(name if version is None else found.ref, found.version)
    return found


def current_versions(refs: Iterable[str], client: Client | None = None) -> dict[str, int | None]:
    """The version each reference (``"fraud"``, ``"fraud@2"``) gives now, resolved as
    :func:`get_dataset` does; None for one that no longer resolves."""
    store = dataset_store(client)
    found: dict[str, int | None] = {}
    for ref in refs:
        try:
            found[ref] = store.get_version(*parse_ref(ref)).version
        except NotFound:
            found[ref] = None
    return found


def load_dataset(ref: str | DatasetVersion) -> pd.DataFrame:
    """The frame as logged: same columns, dtypes (categoricals included) and values, with a
    fresh RangeIndex (missing values of plain ``object`` string columns come back as None)."""
    version = ref if isinstance(ref, DatasetVersion) else get_dataset(ref)
    reads = _reads.get()
    if reads is not None and isinstance(ref, DatasetVersion) and version.name not in reads:
        reads[version.ref] = version.version  # not a version got by name here: a pinned read
    store = dataset_store()
    frame = store.load(version)
    reader = active_run()
    if reader is not None:  # lineage: the active run consumed this version
        store.record_read(version, reader.run_id)
    return frame


def list_datasets() -> list[Dataset]:
    return dataset_store().list_datasets()


def dataset_versions(name: str) -> list[DatasetVersion]:
    versions = dataset_store().list_versions(check_dataset_name(name))
    if versions:  # what the listing shows changes with the latest version
        _note_read(name, versions[-1].version)
    return versions


def check_skew(
    reference: str | DatasetVersion | DatasetProfile,
    current: pd.DataFrame | DatasetVersion | DatasetProfile | str,
    *,
    tolerances: Tolerances | None = None,
) -> SkewReport:
    """Compare ``current`` (a frame, a dataset reference or a profile) against ``reference``
    (a dataset reference such as ``"train@3"``, a version or a profile)."""
    return compare_profiles(_profile(reference), _profile(current), tolerances=tolerances)


def _profile(value: object) -> DatasetProfile:
    import pandas as pd

    if isinstance(value, DatasetProfile):
        return value
    if isinstance(value, DatasetVersion):
        return value.profile
    if isinstance(value, str):
        return get_dataset(value).profile
    if isinstance(value, pd.DataFrame):
        return compute_profile(value)
    raise InvalidArgument(
        f"Cannot compare a {type(value).__name__}: expected a DataFrame, a dataset reference "
        "or a profile"
    )
