"""The module-level SDK: ``ml.start_run``, ``ml.search_runs`` and the default client.

The default client is made from the settings on first use and remade when the settings change
(tests and notebooks switch ``MODELLOOP_HOME``); runs started inside another run's ``with`` block
become its children.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from modelloop.settings import Settings, load_settings
from modelloop.tracking.client import DEFAULT_EXPERIMENT, Client
from modelloop.tracking.run import ActiveRun, active_runs

if TYPE_CHECKING:
    import pandas as pd

_clients: dict[Settings, Client] = {}
_clients_lock = threading.Lock()
_client_class: type[Client] = Client


def make_default_clients(client_class: type[Client]) -> None:
    """Build default clients as ``client_class``: the SDK's one handle (``ml.Client``) lives
    above tracking and installs itself here, so ``ml.get_client()`` returns it."""
    global _client_class
    with _clients_lock:
        _client_class = client_class


def get_client() -> Client:
    """The process-wide client for the current settings."""
    settings = load_settings()
    with _clients_lock:
        client = _clients.get(settings)
        if client is None:
            client = _clients[settings] = _client_class(settings=settings)
        return client


def close_clients() -> None:
    """Flush and close every default client (their settings may be about to change)."""
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client.close()


def start_run(
    experiment: str | None = None,
    *,
    name: str | None = None,
    params: Mapping[str, object] | None = None,
    tags: Mapping[str, object] | None = None,
    parent: ActiveRun | str | None = None,
) -> ActiveRun:
    """Start a run; use it as ``with ml.start_run(experiment="fraud") as run:``.

    Without ``parent``, a run started while another is active becomes its child, and inherits
    its experiment when ``experiment`` is not given. Until it ends, this process records a
    heartbeat for it, so a run whose process is killed is marked KILLED by ``modelloop runs
    sweep`` or a server (see :mod:`modelloop.tracking.sweep`).
    """
    stack = active_runs.get()
    enclosing = stack[-1] if stack else None
    if parent is None and enclosing is not None:
        parent = enclosing
    parent_id = parent.run_id if isinstance(parent, ActiveRun) else parent
    client = parent.client if isinstance(parent, ActiveRun) else get_client()
    if experiment is None:
        experiment = (
            client.store.get_experiment(enclosing.experiment_id).name
            if enclosing is not None
            else DEFAULT_EXPERIMENT
        )
    run = ActiveRun(
        client,
        client.create_run(
            experiment,
            name=name,
            params=params,
            tags=tags,
            parent_run_id=parent_id,
            heartbeat=True,
        ),
    )
    active_runs.set((*stack, run))
    return run


def active_run() -> ActiveRun | None:
    """The innermost run started and not yet ended in this context."""
    stack = active_runs.get()
    return stack[-1] if stack else None


@contextlib.contextmanager
def activated(run: ActiveRun) -> Iterator[ActiveRun]:
    """Make ``run`` the active run for a block without ending it (a pipeline step's run:
    ``ml.active_run()``, ``ml.log_dataset`` and nested ``ml.start_run`` inside the step use it)."""
    token = active_runs.set((*active_runs.get(), run))
    try:
        yield run
    finally:
        active_runs.reset(token)


def search_runs(
    experiment: str | Sequence[str] | None = None,
    filter: str | None = None,
    order_by: Sequence[str] | None = None,
    max_results: int = 1000,
) -> pd.DataFrame:
    """Runs matching ``filter`` (e.g. ``"metrics.auc > 0.9 and params.model = 'lgbm'"``)."""
    return get_client().search_runs(experiment, filter, order_by, max_results)
