"""Prefect 3's half of ``pipelines.py``; runs with ``.bench/prefect-venv/bin/python``.

    _prefect_side.py --n 20 --repeats 3 --seed 1000

A flow calls one trivial ``@task`` (``x + 1``, an int) ``n`` times in a chain, and the same flow
with one call; per-task overhead is ``(T_n - T_1) / (n - 1)``. Three modes, as in modelloop:

- ``nocache``: ``cache_policy=NO_CACHE``, results not persisted (Prefect 3's plain task);
- ``first``: ``cache_policy=INPUTS + TASK_SOURCE``, results persisted, new inputs (cache miss);
- ``cached``: the ``first`` flow again with the same inputs (every task a cache hit).

The caller sets ``PREFECT_HOME`` to a temp dir, leaves ``PREFECT_API_URL`` unset (Prefect then
starts its ephemeral local server on SQLite) and turns telemetry off. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import time

from prefect import flow, task
from prefect.cache_policies import INPUTS, NO_CACHE, TASK_SOURCE

from _common import emit


@task(cache_policy=NO_CACHE, persist_result=False)
def inc_nocache(x: int) -> int:
    return x + 1


@task(cache_policy=INPUTS + TASK_SOURCE, persist_result=True)
def inc_cached(x: int) -> int:
    return x + 1


@flow(name="chain", persist_result=False, validate_parameters=False)
def chain(start: int, n: int, cached: bool) -> tuple[int, int]:
    """``start + n`` and how many of the ``n`` task runs were cache hits."""
    inc = inc_cached if cached else inc_nocache
    x, hits = start, 0
    for _ in range(n):
        state = inc(x, return_state=True)
        hits += state.name == "Cached"
        x = state.result()
    return x, hits


def timed(start: int, n: int, cached: bool) -> dict:
    t = time.perf_counter()
    out, hits = chain(start, n, cached)
    ms = (time.perf_counter() - t) * 1000
    if out != start + n:
        raise RuntimeError(f"chain({start}, {n}) returned {out}, expected {start + n}")
    return {"n": n, "ms": ms, "cache_hits": hits}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0, help="offset of the chains' start values")
    a = p.parse_args()
    import prefect

    t = time.perf_counter()
    timed(-(10**9), a.n, False)  # warm-up: starts the ephemeral server, imports, DB
    timed(-(10**9), a.n, True)
    warmup_s = time.perf_counter() - t
    samples: list[dict] = []
    for rep in range(a.repeats):
        sizes = (a.n, 1) if rep % 2 == 0 else (1, a.n)
        for n in sizes:
            start = a.seed + rep * 10_000 + n * 100  # new inputs: no cache hits across runs
            samples.append({"mode": "nocache", **timed(start, n, False)})
            samples.append({"mode": "first", **timed(start, n, True)})
            samples.append({"mode": "cached", **timed(start, n, True)})
    emit({"prefect": prefect.__version__, "warmup_s": warmup_s, "samples": samples})


if __name__ == "__main__":
    main()
