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
from importlib import metadata
from typing import TYPE_CHECKING, Any

from modelloop.errors import InvalidArgument
from modelloop.pipelines.step import StepSpec
from modelloop.tracking.entities import now_ms

if TYPE_CHECKING:
    from modelloop.store.database import Database

CACHE_FORMAT = 1


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


def lookup(db: Database, key: str) -> tuple[str, dict[str, Any]] | None:
    """``(original run id, outputs)`` of the earlier successful execution with this key."""
    from sqlalchemy import select

    from modelloop.store.tables import step_cache

    with db.read() as conn:
        row = conn.execute(
            select(step_cache.c.run_id, step_cache.c.outputs).where(step_cache.c.cache_key == key)
        ).first()
    if row is None:
        return None
    return str(row.run_id), dict(json.loads(row.outputs))


def remember(db: Database, key: str, step: str, run_id: str, outputs: Mapping[str, Any]) -> None:
    """Record a successful execution (the first one for a key wins; later ones are equal)."""
    from sqlalchemy import insert, select

    from modelloop.store.tables import step_cache

    with db.write() as conn:
        exists = conn.execute(
            select(step_cache.c.cache_key).where(step_cache.c.cache_key == key)
        ).first()
        if exists is None:
            conn.execute(
                insert(step_cache).values(
                    cache_key=key,
                    step_name=step,
                    run_id=run_id,
                    outputs=json.dumps(dict(outputs), sort_keys=True),
                    created_at=now_ms(),
                )
            )


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
