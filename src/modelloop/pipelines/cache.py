"""Content-addressed step caching: when may a step's earlier outputs stand in for running it?

The cache key is the sha256 of canonical JSON over

- the step's name and output names,
- its source (``inspect.getsource``, dedented, trailing whitespace and blank lines dropped),
- the sources of the functions and classes it references by name in its module globals that
  live in the same top-level package (or module) as the step: **one level deep**, so a helper
  that the helper calls is not included (a change there needs ``cache=False`` or ``--no-cache``),
- its params (canonical JSON: a value must be JSON-able),
- its inputs' content digests,
- the declared environment: Python's major.minor and the installed versions of the packages in
  ``@step(env=[...])``, plus :data:`CACHE_FORMAT`.

Library code outside the project (pandas, lightgbm ...) is not hashed: declare it in ``env``.
A hit is only trusted when every output blob still exists in the artifact store.

Datasets a step reads itself (``ml.load_dataset("fraud")``) are not known before it runs, and a
list declared beside the code would be one more thing to forget (a forgotten dataset silently
serves stale outputs). So they are recorded as they are read
(:func:`~modelloop.datasets.fluent.recording_reads`: each reference as asked for, ``"fraud"`` or
``"fraud@2"``, with the version it gave; kept in the run's ``step.json``) and an execution is
stored twice: under the key (the first one wins: it tells later lookups which references the step
reads) and under its **entry key**, the key plus those references and versions. A lookup finds
the first execution, resolves its references again now and looks up the entry for the versions
they give now. So a new version of a dataset read by name is a miss, a pinned read never
changes, and an execution is reused only where the step would read exactly what it read. A step
whose data decides which dataset it reads next may miss where it could hit, never the other way
round. Reads from threads the step starts itself are not seen (``ml.active_run()`` does not
reach them either).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import platform
import textwrap
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any

from modelloop.clock import now_ms
from modelloop.errors import InvalidArgument, NotFound
from modelloop.pipelines.step import StepSpec

if TYPE_CHECKING:
    from modelloop.store.database import Database
    from modelloop.tracking.client import Client

CACHE_FORMAT = 2  # 2: entries keyed by the dataset versions they read
# What an executed step's run records: target, params, inputs, outputs, datasets read.
STEP_FILE = "step.json"


@dataclass(frozen=True)
class Entry:
    """An earlier successful execution: its run, its outputs' references and the datasets it
    read (reference as asked for -> version)."""

    run_id: str
    outputs: dict[str, Any]
    datasets: dict[str, int] = field(default_factory=dict)


def cache_key(
    fn: Callable[..., Any],
    spec: StepSpec,
    params: Mapping[str, Any],
    input_digests: Mapping[str, str],
) -> str:
    document = {
        "format": CACHE_FORMAT,
        "step": spec.name,
        "outputs": list(spec.outputs),
        "code": code_fingerprint(fn),
        "params": canonical_params(spec.name, params),
        "inputs": dict(sorted(input_digests.items())),
        "env": environment_fingerprint(spec.env),
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def canonical_params(step: str, params: Mapping[str, Any]) -> str:
    try:
        return json.dumps(dict(params), sort_keys=True, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"step {step}: params must be JSON-able to be cached: {exc}") from exc


def code_fingerprint(fn: Callable[..., Any]) -> dict[str, str]:
    """Normalised source of ``fn`` and of the project functions it names (one level deep)."""
    sources = {"": _source(fn)}
    package = fn.__module__.split(".")[0]
    for name in sorted(_referenced_names(fn.__code__)):
        value = fn.__globals__.get(name)
        if value is fn or not (inspect.isfunction(value) or inspect.isclass(value)):
            continue
        if str(getattr(value, "__module__", "")).split(".")[0] == package:
            sources[name] = _source(value)
    return {k: hashlib.sha256(v.encode()).hexdigest() for k, v in sources.items()}


@functools.cache
def environment_fingerprint(packages: tuple[str, ...]) -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": ".".join(platform.python_version_tuple()[:2])}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def entry_key(key: str, datasets: Mapping[str, int]) -> str:
    """The key of an execution that read ``datasets`` (the key itself when it read none)."""
    if not datasets:
        return key
    document = {"key": key, "datasets": dict(sorted(datasets.items()))}
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def lookup(client: Client, db: Database, key: str) -> Entry | None:
    """The earlier execution with this key that read the versions its datasets give now."""
    from modelloop.datasets.fluent import current_versions

    first = _row(db, key)
    if first is None:
        return None
    try:
        recorded = json.loads(client.read_artifact(first[0], STEP_FILE)).get("datasets") or {}
    except NotFound:
        return None  # the first execution's record is gone: run again
    if not recorded:
        return Entry(*first)
    now = current_versions(recorded, client)
    if any(v is None for v in now.values()):
        return None  # a dataset it read is gone: running says so
    versions = {ref: v for ref, v in now.items() if v is not None}
    found = _row(db, entry_key(key, versions))
    return None if found is None else Entry(*found, versions)


def remember(
    db: Database,
    key: str,
    step: str,
    run_id: str,
    outputs: Mapping[str, Any],
    datasets: Mapping[str, int] | None = None,
) -> None:
    """Record a successful execution under its key and its entry key (the first execution
    for a key wins; later ones are equal)."""
    from sqlalchemy import insert, select

    from modelloop.store.tables import step_cache

    keys = dict.fromkeys([key, entry_key(key, datasets or {})])
    with db.write() as conn:
        for k in keys:
            exists = conn.execute(
                select(step_cache.c.cache_key).where(step_cache.c.cache_key == k)
            ).first()
            if exists is None:
                conn.execute(
                    insert(step_cache).values(
                        cache_key=k,
                        step_name=step,
                        run_id=run_id,
                        outputs=json.dumps(dict(outputs), sort_keys=True),
                        created_at=now_ms(),
                    )
                )


def _row(db: Database, key: str) -> tuple[str, dict[str, Any]] | None:
    from sqlalchemy import select

    from modelloop.store.tables import step_cache

    with db.read() as conn:
        row = conn.execute(
            select(step_cache.c.run_id, step_cache.c.outputs).where(step_cache.c.cache_key == key)
        ).first()
    return None if row is None else (str(row.run_id), dict(json.loads(row.outputs)))


def _source(obj: Any) -> str:
    try:
        text = textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError):  # no source file (REPL, C): fall back to the bytecode
        code = getattr(obj, "__code__", None)
        return repr(code.co_code) if code is not None else repr(obj)
    return "\n".join(line.rstrip() for line in text.splitlines() if line.strip())


def _referenced_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _referenced_names(const)
    return names
