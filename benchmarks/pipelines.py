"""Pipelines: per-step overhead of modelloop vs Prefect 3, same run, same machine, by ratio.

    .venv/bin/python benchmarks/pipelines.py [--quick] [--no-ray] [--with-prefect] [--no-docs]

A chain of N trivial steps (each adds 1 to an int, stored as a JSON output) and the same chain
with 1 step; per-step overhead = (T_N - T_1) / (N - 1), so the per-run fixed cost (pipeline run,
``environment.json``, flow-run bookkeeping) cancels out. Three cases per side:

- uncached, ``cache=False`` (Prefect: ``cache_policy=NO_CACHE``, results not persisted);
- uncached first run with caching on (new params: every step misses, runs and is remembered;
  Prefect: ``INPUTS + TASK_SOURCE``, results persisted);
- fully cached second run (same params again: every step a hit).

modelloop runs with ``executor="local"`` and, if ``import ray`` works, ``executor="ray"`` (the
executor starts a local Ray instance), each in a fresh subprocess of this interpreter
(``pipelines.py worker ...``) with ``MODELLOOP_HOME`` in a temp dir. Prefect 3 runs in
``.bench/prefect-venv`` (``_prefect_side.py``) with ``PREFECT_HOME`` in a temp dir and its
ephemeral local server on SQLite, telemetry off. Workers alternate between the sides; each
worker warms up (imports, database, Ray/Prefect server start) untimed and then repeats the runs.
"""

from __future__ import annotations

import argparse
import linecache
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

from _common import (
    BENCH_DIR,
    command_line,
    emit,
    ensure_peer_venv,
    fmt_num,
    log,
    machine_info,
    markdown_table,
    publish,
    python_version,
    run_worker,
    wait_machine_quiet,
)

HERE = Path(__file__).resolve().parent
ML_PYTHON = Path(sys.executable)
PREFECT_REQUIREMENTS = ["prefect>=3,<4"]
MAX_STEPS = 100
MODES = ("nocache", "first", "cached")


class Sizes(NamedTuple):
    n: int  # steps in the long chain
    repeats: int  # (N, 1) pairs per worker and mode
    rounds: int  # workers per side, alternating


# N = 100: a Prefect 3 flow call takes ~1 s however few tasks it runs (measured here: 1 and 20
# tasks both ~1,050 ms), so a short chain hides Prefect's per-task cost inside that floor.
FULL = Sizes(n=100, repeats=3, rounds=2)
QUICK = Sizes(n=50, repeats=2, rounds=1)


# -- the steps: s0(start) -> s1(s0) -> ... -------------------------------------------------------
# Written out as source (registered with linecache so the cache key hashes real source, as for a
# step in a file) and defined at module level, so a Ray worker imports them as ``pipelines:sK``.

_STEPS_FILE = f"<{__name__}-steps>"
_STEPS_SOURCE = "def s0(start: int) -> int:\n    return start + 1\n" + "".join(
    f"\n\ndef s{i}(s{i - 1}: int) -> int:\n    return s{i - 1} + 1\n" for i in range(1, MAX_STEPS)
)
linecache.cache[_STEPS_FILE] = (len(_STEPS_SOURCE), None, _STEPS_SOURCE.splitlines(True), "")
exec(compile(_STEPS_SOURCE, _STEPS_FILE, "exec"), globals())


def chain(n: int) -> Any:
    from modelloop.pipelines import Pipeline, step

    return Pipeline([step(globals()[f"s{i}"]) for i in range(n)], name=f"chain-{n}")


# -- modelloop worker (a subprocess of this interpreter) -----------------------------------------


def worker_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="pipelines.py worker")
    p.add_argument("--executor", choices=["local", "ray"], default="local")
    p.add_argument("--n", type=int, default=FULL.n)
    p.add_argument("--repeats", type=int, default=FULL.repeats)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    # Import this file as the module ``pipelines`` so the steps are ``pipelines:sK``, not
    # ``__main__:sK``, which a Ray worker could not import.
    import modelloop
    import pipelines as bench

    pipes = {n: bench.chain(n) for n in (a.n, 1)}

    def timed(n: int, start: int, cache: bool) -> dict:
        t = time.perf_counter()
        run = pipes[n].run(params={"start": start}, executor=a.executor, cache=cache)
        ms = (time.perf_counter() - t) * 1000
        states = [s.state for s in run.steps.values()]
        if run.status != "FINISHED" or run.value(f"s{n - 1}") != start + n:
            raise RuntimeError(f"chain-{n} {run.status}: {states}")
        return {"n": n, "ms": ms, "cache_hits": states.count("CACHED")}

    t = time.perf_counter()
    timed(a.n, -(10**9), False)  # warm-up: imports, database, Ray start and its workers
    timed(a.n, -(10**9), True)
    timed(a.n, -(10**9), True)
    warmup_s = time.perf_counter() - t
    samples = []
    for rep in range(a.repeats):
        for n in (a.n, 1) if rep % 2 == 0 else (1, a.n):
            start = a.seed + rep * 10_000 + n * 100  # new params: no cache hits across runs
            samples.append({"mode": "nocache", **timed(n, start, False)})
            samples.append({"mode": "first", **timed(n, start, True)})
            samples.append({"mode": "cached", **timed(n, start, True)})
    extra = {}
    if a.executor == "ray":
        import ray

        extra = {"ray": ray.__version__, "ray_cpus": ray.cluster_resources().get("CPU")}
    emit({"modelloop": modelloop.__version__, "warmup_s": warmup_s, "samples": samples, **extra})


# -- driver ---------------------------------------------------------------------------------------


def ray_available() -> bool:
    code = "import ray"
    return run_quiet([str(ML_PYTHON), "-c", code]) == 0


def run_quiet(cmd: list[str]) -> int:
    import subprocess

    return subprocess.run(cmd, capture_output=True).returncode


def ml_worker(executor: str, sz: Sizes, seed: int, tmp: Path) -> dict:
    home = Path(tempfile.mkdtemp(prefix=f"ml-{executor}-", dir=tmp))
    env = {
        "MODELLOOP_HOME": str(home),
        "MODELLOOP_TRACKING_URI": "",
        "MODELLOOP_DATABASE_URL": "",
        "MODELLOOP_ARTIFACT_URI": "",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_ADDRESS": "",
        "MODELLOOP_RAY_ADDRESS": "",
    }
    cmd = [ML_PYTHON, Path(__file__).resolve(), "worker", "--executor", executor]
    cmd += ["--n", sz.n, "--repeats", sz.repeats, "--seed", seed]
    return run_worker([str(c) for c in cmd], env=env, cwd=home)


def prefect_worker(python: Path, sz: Sizes, seed: int, tmp: Path) -> dict:
    home = Path(tempfile.mkdtemp(prefix="prefect-", dir=tmp))
    env = {
        "PREFECT_HOME": str(home),
        "PREFECT_LOCAL_STORAGE_PATH": str(home / "storage"),
        "PREFECT_SERVER_EPHEMERAL_ENABLED": "true",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "DO_NOT_TRACK": "1",
    }
    cmd = [python, HERE / "_prefect_side.py", "--n", sz.n, "--repeats", sz.repeats]
    cmd += ["--seed", seed]
    saved = os.environ.pop("PREFECT_API_URL", None)  # unset: the ephemeral local server
    try:
        return run_worker([str(c) for c in cmd], env=env, cwd=home)
    finally:
        if saved is not None:
            os.environ["PREFECT_API_URL"] = saved


def per_step(samples: list[dict], mode: str, n: int) -> dict:
    """Per-step ms of one mode: pair the k-th N-step run with the k-th 1-step run; median."""
    long = [s["ms"] for s in samples if s["mode"] == mode and s["n"] == n]
    short = [s["ms"] for s in samples if s["mode"] == mode and s["n"] == 1]
    diffs = [(a - b) / (n - 1) for a, b in zip(long, short, strict=True)]
    return {
        "ms": statistics.median(diffs) if diffs else None,
        "all": [round(d, 3) for d in diffs],
        "t1_ms": statistics.median(short) if short else None,
        "tn_ms": statistics.median(long) if long else None,
    }


class Row(NamedTuple):
    label: str
    mode: str
    target_ms: float | None


ROWS = [
    Row("trivial step, uncached (`cache=False`)", "nocache", 30),
    Row("trivial step, uncached first run (cache on, all misses)", "first", 30),
    Row("trivial step, fully cached second run (all hits)", "cached", 5),
]


def build_rows(side: str, res: dict, peer: dict | None, published: bool) -> list[list[str]]:
    rows = []
    for row in ROWS:
        ml = res[row.mode]["ms"]
        pf = peer[row.mode]["ms"] if peer else None
        ratio = "—"
        if ml and pf is not None:
            ratio = f"{pf / ml:,.1f}x" if ml > 0 else "∞"
        target = f"≤ {row.target_ms:g} ms" if row.target_ms and side == "local" else "—"
        met = "—"
        if target != "—" and ml is not None:
            met = "yes" if ml <= row.target_ms else "no"
        rows.append([row.label, fmt_ms(ml), fmt_ms(pf), ratio, target, met])
    if published:
        ml = res["nocache"]["ms"]
        for label, ms in (("Prefect 2, published", 400), ("Metaflow, published", 1200)):
            ratio = f"{ms / ml:,.0f}x" if ml and ml > 0 else "—"
            rows.append(
                [f"trivial task vs {label} (prefect#5977)", fmt_ms(ml), f"~{ms:,}", ratio, "—", "—"]
            )
    return rows


def fmt_ms(x: float | None) -> str:
    if x is None:
        return "—"
    return fmt_num(x) if x >= 0 else f"{x:.2f}"


def render(res: dict, info: dict, command: str, sz: Sizes, notes: list[str]) -> str:
    peer = res.get("prefect")
    peer_name = f"Prefect {info['prefect']}" if peer else "Prefect (not measured)"
    headers = ["case", "modelloop ms/step", f"{peer_name} ms/task", "ratio (peer / modelloop)"]
    headers += ["target", "met"]
    versions = f"modelloop {info['modelloop']} (Python {info['ml_python']})"
    if peer:
        versions += f"; Prefect {info['prefect']} (Python {info['prefect_python']}) in "
        versions += "`.bench/prefect-venv`, ephemeral local server on SQLite"
    if "ray" in res:
        versions += f"; Ray {info['ray']} (local instance, {info['ray_cpus']:g} CPUs)"
    parts = [
        "## Pipelines: per-step overhead, modelloop vs Prefect 3",
        "",
        f"Measured {info['date']} on {info['nproc']} cores ({info['cpu']}), {info['os']}. "
        f"{versions}.",
        "",
        f"Reproduce: `{command}` from the repository root.",
        "",
        '### modelloop `executor="local"` vs Prefect (default task runner, in process)',
        "",
        markdown_table(headers, build_rows("local", res["local"], peer, True)),
    ]
    if "ray" in res:
        parts += [
            "",
            '### modelloop `executor="ray"` (steps as Ray tasks on a local instance)',
            "",
            "Peer column: the same Prefect figures as above (Prefect's in-process runner), for "
            "scale only; the targets are stated for local runs.",
            "",
            markdown_table(headers, build_rows("ray", res["ray"], peer, False)),
        ]
    fixed = []
    for key, label in (("local", "modelloop local"), ("ray", "modelloop ray"), ("prefect", "")):
        if key in res:
            t1 = res[key]["nocache"]["t1_ms"]
            fixed.append(f"{label or peer_name} {fmt_num(t1)} ms")
    runs = sz.rounds * sz.repeats
    parts += [
        "",
        f"- Per step = (T_{sz.n} - T_1) / {sz.n - 1}: a chain of {sz.n} steps vs a chain of 1, "
        f"timed around `Pipeline.run(...)` / the flow call; median of {runs} pairs "
        f"({sz.rounds} fresh worker process(es) per side x {sz.repeats}, alternating sides and "
        "chain lengths). Each worker warms up first (imports, store, Ray start / Prefect's "
        "ephemeral server start), untimed.",
        "- Steps: `s0(start) -> s0 + 1`, `sK(s{K-1}) -> s{K-1} + 1`, wired by output name, each "
        "a child run with its JSON output in the artifact store, lineage edges and a cache "
        "entry. Prefect: one `@task` `inc(x) -> x + 1` called N times in a `@flow`; `nocache` "
        "= `cache_policy=NO_CACHE`, cached rows = `cache_policy=INPUTS + TASK_SOURCE`, "
        "`persist_result=True` (local result storage under `PREFECT_HOME`).",
        "- Fixed cost of a 1-step run (`cache=False`), not in the per-step figures: "
        + "; ".join(fixed)
        + ".",
        "- Medians of T_1 / T_N per case (ms): "
        + "; ".join(
            f"{side} {m} {fmt_num(r[m]['t1_ms'])} / {fmt_num(r[m]['tn_ms'])}"
            for side, r in res.items()
            for m in MODES
        )
        + ". A Prefect flow call has a ~1 s floor (a 1-task and a 20-task flow both took ~1,050 "
        "ms in a trial run), so its per-task figure is only meaningful for a long chain.",
        "- Published peer figures (BENCHMARKS.md, prefect#5977; not measured here): Prefect 2 "
        "~400 ms per task, Metaflow ~1,200 ms per trivial local task.",
    ]
    parts += [f"- note: {n}" for n in notes]
    return "\n".join(parts)


def sanity_notes(raw: dict, sz: Sizes) -> list[str]:
    notes = []
    for side, samples in raw.items():
        for s in samples:
            want = s["n"] if s["mode"] == "cached" else 0
            if s["cache_hits"] != want:
                notes.append(
                    f"{side} {s['mode']} chain of {s['n']}: {s['cache_hits']} cache hits, "
                    f"expected {want}"
                )
                break
    return notes


def main() -> None:
    if sys.argv[1:2] == ["worker"]:
        worker_main(sys.argv[2:])
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="shorter chain, fewer repeats")
    p.add_argument("--no-ray", action="store_true", help="skip executor='ray'")
    p.add_argument(
        "--with-prefect",
        action="store_true",
        help="also time Prefect 3 (experimental: its flow time does not yet scale with the task "
        "count here, so the per-task figure is not trustworthy)",
    )
    p.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    a = p.parse_args()
    sz = QUICK if a.quick else FULL
    notes: list[str] = []

    prefect_python = None
    if not a.with_prefect:
        notes.append(
            "Prefect 3 is not timed by default: a Prefect 3.9 flow call took ~1 s or ~3 s here "
            "whatever the number of tasks (1, 20 or 100), so (N-task - 1-task) / (N - 1) measured "
            "noise, not a per-task cost. Until the peer side counts from task-run timestamps, "
            "the tables compare with the published figures only (`--with-prefect` runs the "
            "experimental measurement)."
        )
    else:
        try:
            prefect_python = ensure_peer_venv("prefect", PREFECT_REQUIREMENTS)
        except Exception as exc:  # an install failure leaves the published figures
            notes.append(f"Prefect could not be installed ({exc!r:.200}): published figures only")
    executors = ["local"]
    if not a.no_ray:
        if ray_available():
            executors.append("ray")
        else:
            notes.append('`import ray` fails in the project venv: no `executor="ray"` rows')

    raw: dict[str, list[dict]] = {}
    meta: dict[str, dict] = {}
    started = time.perf_counter()
    BENCH_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pipelines-", dir=BENCH_DIR) as tmp:
        jobs: list[tuple[str, Any]] = [(e, None) for e in executors]
        if prefect_python is not None:
            jobs.insert(1, ("prefect", prefect_python))
        for rnd in range(sz.rounds):
            for side, python in jobs if rnd % 2 == 0 else jobs[::-1]:
                seed = 1_000_000 * (rnd + 1)
                wait_machine_quiet(max_cores=0.3, timeout=10)
                log(f"round {rnd + 1}/{sz.rounds}: {side}")
                try:
                    if side == "prefect":
                        out = prefect_worker(python, sz, seed, Path(tmp))
                    else:
                        out = ml_worker(side, sz, seed, Path(tmp))
                except RuntimeError as exc:
                    if side != "prefect":
                        raise
                    notes.append(f"Prefect run failed ({str(exc)[:300]!r}): published only")
                    jobs = [j for j in jobs if j[0] != "prefect"]
                    raw.pop("prefect", None)
                    continue
                raw.setdefault(side, []).extend(out.pop("samples"))
                meta.setdefault(side, {}).update(out)
                meta[side].setdefault("warmups_s", []).append(round(out["warmup_s"], 2))
    elapsed = time.perf_counter() - started

    res = {side: {m: per_step(samples, m, sz.n) for m in MODES} for side, samples in raw.items()}
    notes += sanity_notes(raw, sz)
    warm = ", ".join(f"{k} {v['warmups_s']}" for k, v in meta.items())
    notes.append(f"warm-up per worker (s): {warm}; whole benchmark {elapsed:.0f} s")
    info = machine_info() | {
        "modelloop": meta["local"]["modelloop"],
        "ml_python": python_version(ML_PYTHON),
    }
    if "prefect" in meta:
        info |= {"prefect": meta["prefect"]["prefect"]}
        info |= {"prefect_python": python_version(prefect_python)} if prefect_python else {}
    if "ray" in meta:
        info |= {"ray": meta["ray"]["ray"], "ray_cpus": meta["ray"].get("ray_cpus") or 0}
    text = render(res, info, command_line("pipelines.py"), sz, notes)
    results = {"sizes": sz._asdict(), "per_step": res, "samples": raw, "meta": meta}
    publish("pipelines", text, results, docs=not a.no_docs)


if __name__ == "__main__":
    main()
