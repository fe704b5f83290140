"""Tracking: modelloop vs MLflow 3.x, same run, same machine, compared by ratio.

    .venv/bin/python benchmarks/tracking.py [--quick] [--modes local,server] [--reseed]

Measures, against a local SQLite store and through each project's own server:
per-call ``log_metric`` (end to end: durable after the final flush), MLflow's async mode, the
enqueue-only rate, ``log_batch`` in chunks of 1000, reading a 100k-point metric history, and a
run search over 10k runs (5 metrics x 5 params; filter on a metric and a param, order by a metric).
Each side runs in its own process: MLflow in ``.bench/mlflow-venv`` (``_mlflow_side.py``),
modelloop in this interpreter (``tracking.py worker ...``). Ingest runs alternate between the
sides, 3 repeats, median. Prints the table and writes its section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from _common import (
    BENCH_DIR,
    ROOT,
    SEARCH_EXPERIMENT,
    SEARCH_FILTER,
    SEARCH_MAX_RESULTS,
    SEARCH_ORDER_BY,
    command_line,
    emit,
    ensure_peer_venv,
    fmt_num,
    free_port,
    log,
    machine_info,
    markdown_table,
    package_version,
    publish,
    python_version,
    run_worker,
    running_server,
    search_dataset,
    timed_reads,
)

if TYPE_CHECKING:
    import modelloop as ml

HERE = Path(__file__).resolve().parent
ML_PYTHON = Path(sys.executable)
MLFLOW_REQUIREMENTS = ["mlflow>=3,<4"]
BATCH = 1000


@dataclass(frozen=True)
class Sizes:
    """How many points each measurement logs; MLflow's per-call loops are slow, so smaller."""

    repeats: int
    mlflow_sync: dict[str, int]  # per mode
    mlflow_async: dict[str, int]
    per_call: int  # modelloop per-call loop, both modes
    batch: int  # both sides, both modes
    history: int = 100_000
    search_runs: int = 10_000


FULL = Sizes(3, {"local": 2000, "server": 200}, {"local": 2000, "server": 1000}, 20_000, 20_000)
QUICK = Sizes(1, {"local": 500, "server": 50}, {"local": 500, "server": 200}, 5000, 5000)


# -- modelloop worker (runs in a subprocess of this interpreter) ------------------------------


def _ml_log_points(client: ml.Client, run_id: str, key: str, n: int) -> None:
    ts = int(time.time() * 1000)
    for k in range(0, n, BATCH):
        metrics = [(key, 1.0 / (i + 1), i, ts) for i in range(k, min(k + BATCH, n))]
        client.log_batch(run_id, metrics=metrics)


def ml_ingest(n_call: int, n_batch: int) -> dict:
    """Per-call loop timed to the end of ``run.flush()``, enqueue-only rate, log_batch of 1000."""
    import modelloop as ml

    with ml.start_run(experiment=f"ingest-{uuid.uuid4().hex[:8]}") as run:
        t = time.perf_counter()
        for i in range(n_call):
            run.log_metric("loss", 1.0 / (i + 1), step=i)
        enqueue_s = time.perf_counter() - t
        run.flush()
        total_s = time.perf_counter() - t
        durable = len(run.metric_history("loss"))

        t = time.perf_counter()
        _ml_log_points(run.client, run.run_id, "acc", n_batch)
        batch_s = time.perf_counter() - t
        batch_durable = len(run.metric_history("acc"))
    return {
        "per_call": {"n": n_call, "rate": n_call / total_s, "durable": durable},
        "enqueue": {"n": n_call, "rate": n_call / enqueue_s},
        "batch": {"n": n_batch, "rate": n_batch / batch_s, "durable": batch_durable},
    }


def ml_history(points: int) -> dict:
    """Read a ``points``-long metric history: cold, then 3 warm reads (logging not timed)."""
    import modelloop as ml

    with ml.start_run(experiment=f"history-{uuid.uuid4().hex[:8]}") as run:
        _ml_log_points(run.client, run.run_id, "loss", points)
        run.flush()
        timing, df = timed_reads(lambda: run.metric_history("loss"))
    return {"history": {"n": len(df), **timing}}


def ml_seed(runs: int) -> dict:
    """Create the search experiment: one run + one log_batch per run (not timed in the table)."""
    import modelloop as ml

    ts = int(time.time() * 1000)
    t = time.perf_counter()
    for r, (metrics, params) in enumerate(search_dataset(runs)):
        with ml.start_run(experiment=SEARCH_EXPERIMENT) as run:
            points = [(k, v, 0, ts) for k, v in metrics.items()]
            run.client.log_batch(run.run_id, metrics=points, params=params)
        if (r + 1) % 1000 == 0:
            log(f"modelloop seed: {r + 1}/{runs} runs, {time.perf_counter() - t:.0f}s")
    return {"seeded": runs, "seconds": time.perf_counter() - t}


def ml_search() -> dict:
    """``ml.search_runs`` over the seeded experiment: cold, then 3 warm calls."""
    import modelloop as ml

    timing, df = timed_reads(
        lambda: ml.search_runs(
            SEARCH_EXPERIMENT,
            filter=SEARCH_FILTER,
            order_by=SEARCH_ORDER_BY,
            max_results=SEARCH_MAX_RESULTS,
        )
    )
    top = float(df["metrics.m1"].iloc[0]) if len(df) and "metrics.m1" in df else None
    return {"search": {"n": len(df), **timing, "top_m1": top}}


def worker_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="tracking.py worker")
    p.add_argument("what", choices=["ingest", "history", "seed", "search"])
    p.add_argument("--n-call", type=int, default=20_000)
    p.add_argument("--n-batch", type=int, default=20_000)
    p.add_argument("--points", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=10_000)
    a = p.parse_args(argv)
    if a.what == "ingest":
        result = ml_ingest(a.n_call, a.n_batch)
    elif a.what == "history":
        result = ml_history(a.points)
    elif a.what == "seed":
        result = ml_seed(a.runs)
    else:
        result = ml_search()
    import modelloop

    emit({"modelloop": modelloop.__version__, **result})


# -- the two sides, seen from the driver ------------------------------------------------------


class MlflowSide:
    """MLflow in its own venv; a store is one SQLite file, a target is a tracking URI."""

    name = "MLflow"
    cache_glob = "mlflow-*-search.db"

    def __init__(self, python: Path) -> None:
        self.python = python
        self.version = package_version(python, "mlflow")

    def worker(self, what: str, target: str, cwd: Path, *args: object) -> dict:
        cmd = [self.python, HERE / "_mlflow_side.py", what, "--uri", target, *map(str, args)]
        return run_worker(cmd, cwd=cwd)

    def ingest_args(self, mode: str, sz: Sizes) -> list[object]:
        return [
            "--n-sync",
            sz.mlflow_sync[mode],
            "--n-async",
            sz.mlflow_async[mode],
            "--n-batch",
            sz.batch,
        ]

    def cache_path(self) -> Path:
        return BENCH_DIR / "cache" / f"mlflow-{self.version}-search.db"

    def sqlite_file(self, store: Path) -> Path:
        return store

    def seed(self, store: Path, runs: int) -> dict:
        return self.worker("seed", f"sqlite:///{store}", store.parent, "--runs", runs)

    def copy_store(self, src: Path, dst: Path) -> Path:
        dst.mkdir(parents=True)
        shutil.copy2(src, dst / "mlflow.db")
        return dst / "mlflow.db"

    def local_target(self, store: Path) -> str:
        return f"sqlite:///{store}"

    @contextlib.contextmanager
    def server(self, store: Path) -> Iterator[str]:
        port = free_port()
        cmd = [self.python.parent / "mlflow", "server", "--backend-store-uri", f"sqlite:///{store}"]
        cmd += ["--default-artifact-root", store.parent / "artifacts"]
        cmd += ["--host", "127.0.0.1", "--port", str(port)]
        url = f"http://127.0.0.1:{port}"
        log_path = store.parent / "server.log"
        with running_server(cmd, f"{url}/health", cwd=store.parent, log_path=log_path):
            yield url


class ModelloopSide:
    """modelloop in this interpreter; a store is a MODELLOOP_HOME directory."""

    name = "modelloop"
    cache_glob = "modelloop-*-search"

    def __init__(self) -> None:
        self.python = ML_PYTHON
        self.version = package_version(ML_PYTHON, "modelloop")

    def _env(self, target: str, cwd: Path) -> dict[str, str]:
        remote = target.startswith("http")
        return {
            "MODELLOOP_HOME": str(cwd / "client-home") if remote else target,
            "MODELLOOP_TRACKING_URI": target if remote else "",
            "MODELLOOP_DATABASE_URL": "",
            "MODELLOOP_ARTIFACT_URI": "",
        }

    def worker(self, what: str, target: str, cwd: Path, *args: object) -> dict:
        cmd = [self.python, Path(__file__).resolve(), "worker", what, *map(str, args)]
        return run_worker(cmd, env=self._env(target, cwd), cwd=cwd)

    def ingest_args(self, mode: str, sz: Sizes) -> list[object]:
        return ["--n-call", sz.per_call, "--n-batch", sz.batch]

    def sqlite_file(self, store: Path) -> Path:
        return store / "modelloop.db"

    def cache_path(self) -> Path:
        # The store layout may change while the package is young: key the cache on the code.
        src = ROOT / "src" / "modelloop"
        digest = hashlib.sha1(usedforsecurity=False)
        for f in sorted(src.rglob("*")):
            if f.is_file() and "__pycache__" not in f.parts:
                digest.update(f.relative_to(src).as_posix().encode() + f.read_bytes())
        return BENCH_DIR / "cache" / f"modelloop-{self.version}-{digest.hexdigest()[:10]}-search"

    def seed(self, store: Path, runs: int) -> dict:
        store.mkdir(parents=True)
        return self.worker("seed", str(store), store.parent, "--runs", runs)

    def copy_store(self, src: Path, dst: Path) -> Path:
        shutil.copytree(src, dst / "home")
        return dst / "home"

    def local_target(self, store: Path) -> str:
        return str(store)

    @contextlib.contextmanager
    def server(self, store: Path) -> Iterator[str]:
        port = free_port()
        cmd = [self.python.parent / "modelloop", "server", "--host", "127.0.0.1"]
        cmd += ["--port", str(port)]
        url = f"http://127.0.0.1:{port}"
        env = self._env(str(store), store.parent)
        log_path = store.parent / "server.log"
        with running_server(cmd, f"{url}/health", env=env, cwd=store.parent, log_path=log_path):
            yield url


Side = MlflowSide | ModelloopSide


def seeded_cache(side: Side, runs: int, reseed: bool) -> Path:
    """The cached store holding the 10k-run search experiment; seeded once, reused after."""
    cache = side.cache_path()
    if cache.exists() and not reseed:
        return cache
    for old in cache.parent.glob(side.cache_glob):  # stale versions and this one
        if old.is_dir():
            shutil.rmtree(old)
        else:
            old.unlink()
    cache.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache.parent) as tmp:
        store = Path(tmp) / cache.name
        log(f"{side.name}: seeding {runs} runs for the search benchmark (cached in {cache})")
        result = side.seed(store, runs)
        log(f"{side.name}: seeded in {result['seconds']:.0f}s")
        store.rename(cache)
    return cache


def journal_mode(db: Path) -> str:
    """SQLite journal mode as recorded in the file header (byte 18: 1 rollback, 2 WAL)."""
    with open(db, "rb") as f:
        header = f.read(20)
    return "WAL" if len(header) == 20 and header[18] == 2 else "rollback journal"


# -- driver -----------------------------------------------------------------------------------


Results = dict[str, dict[str, list[dict]]]  # side name -> measurement -> one dict per sample


def measure_mode(
    mode: str, sides: list[Side], caches: dict[str, Path], sz: Sizes, tmp: Path
) -> Results:
    """All measurements of one mode, "local" or "server"."""
    out: Results = {s.name: {} for s in sides}
    with contextlib.ExitStack() as stack:
        targets, cwds = {}, {}
        for s in sides:
            cwds[s.name] = tmp / mode / s.name
            store = s.copy_store(caches[s.name], cwds[s.name])
            if mode == "server":
                log(f"{mode}: starting the {s.name} server")
                targets[s.name] = stack.enter_context(s.server(store))
            else:
                targets[s.name] = s.local_target(store)

        def run(s: Side, what: str, *args: object) -> None:
            result = s.worker(what, targets[s.name], cwds[s.name], *args)
            for key, value in result.items():
                if isinstance(value, dict):
                    out[s.name].setdefault(key, []).append(value)

        for rep in range(sz.repeats):
            for s in sides if rep % 2 == 0 else sides[::-1]:
                log(f"{mode}: ingest, {s.name}, repeat {rep + 1}/{sz.repeats}")
                run(s, "ingest", *s.ingest_args(mode, sz))
        for s in sides:
            log(f"{mode}: history ({sz.history} points) and search, {s.name}")
            run(s, "history", "--points", sz.history)
            run(s, "search")
    return out


def _median(samples: list[dict] | None, field: str) -> float | None:
    return statistics.median(x[field] for x in samples) if samples else None


def _n(samples: list[dict] | None) -> str:
    return f"{samples[0]['n']:,}" if samples else "—"


class Row(NamedTuple):
    """One line of the table: which result of each side, and the target if there is one."""

    label: str
    mlflow_key: str
    modelloop_key: str
    field: str  # "rate" (points/s, higher is better) or "ms"
    min_ratio: float | None = None
    max_ms: float | None = None
    n_unit: str = ""


ROWS = [
    Row("per-call `log_metric`, durable (points/s)", "per_call", "per_call", "rate", 100),
    Row("vs MLflow async mode, incl. flush (points/s)", "async", "per_call", "rate", 100),
    Row("enqueue only, not yet durable (points/s)", "async_enqueue", "enqueue", "rate"),
    Row("`log_batch`, chunks of 1000 (points/s)", "batch", "batch", "rate"),
    Row("metric history read, 100k points (ms)", "history", "history", "ms", max_ms=50),
    Row("search 10k runs, filter + order (ms)", "search", "search", "ms", None, 100, " rows"),
]


def build_rows(res: Results) -> list[list[str]]:
    """Table rows: measurement, N, MLflow, modelloop, ratio, target, met."""
    mf, ml = res["MLflow"], res["modelloop"]
    rows = []
    for row in ROWS:
        a_samples, b_samples = mf.get(row.mlflow_key), ml.get(row.modelloop_key)
        a, b = _median(a_samples, row.field), _median(b_samples, row.field)
        ratio = None
        if a and b:
            ratio = b / a if row.field == "rate" else a / b
        target, met = "—", "—"
        if row.min_ratio is not None:
            target = f"≥ {row.min_ratio:g}x"
            met = "—" if ratio is None else ("yes" if ratio >= row.min_ratio else "no")
        if row.max_ms is not None:
            target = f"< {row.max_ms:g} ms"
            met = "—" if b is None else ("yes" if b < row.max_ms else "no")
        n = f"{_n(a_samples)} / {_n(b_samples)}{row.n_unit}"
        ratio_s = "—" if ratio is None else f"{ratio:,.1f}x"
        rows.append([row.label, n, fmt_num(a), fmt_num(b), ratio_s, target, met])
    return rows


def sanity_notes(res: Results) -> list[str]:
    """Cross-checks that both sides did the same work; anything odd becomes a note."""
    notes = []
    ml = res["modelloop"]
    for key in ("per_call", "batch"):
        for s in ml.get(key, []):
            if s.get("durable") != s["n"]:
                notes.append(f"modelloop {key}: {s['n']} logged but {s.get('durable')} read back")
    for key in ("history", "search"):
        got = {side: [s["n"] for s in res[side].get(key, [])] for side in res}
        if len({n for ns in got.values() for n in ns}) > 1:
            notes.append(f"{key}: result sizes differ between sides: {got}")
    tops = {side: [s.get("top_m1") for s in res[side].get("search", [])] for side in res}
    flat = {round(t, 9) for ts in tops.values() for t in ts if t is not None}
    if len(flat) > 1:
        notes.append(f"search: top metrics.m1 differs between sides: {tops}")
    return notes


def cold_note(res: Results) -> str:
    """The cold first read of each side (lazy imports, empty caches), which the table omits."""
    parts = []
    for key, label in (("history", "history"), ("search", "search")):
        cold = [_median(res[side].get(key), "first_ms") for side in ("MLflow", "modelloop")]
        parts.append(f"{label} {fmt_num(cold[0])} / {fmt_num(cold[1])} ms")
    return "- Cold first call (MLflow / modelloop): " + "; ".join(parts) + "."


def render(results: dict[str, Results], info: dict, command: str, sz: Sizes) -> str:
    headers = ["measurement", "N (MLflow / modelloop)", "MLflow", "modelloop"]
    headers += ["modelloop faster by", "target", "met"]
    parts = [
        "## Tracking: modelloop vs MLflow",
        "",
        f"Measured {info['date']} on {info['nproc']} cores ({info['cpu']}), {info['os']}. "
        f"modelloop {info['modelloop']} (Python {info['ml_python']}, SQLAlchemy "
        f"{info['ml_sqlalchemy']}); MLflow {info['mlflow']} (Python {info['mlflow_python']}, "
        f"SQLAlchemy {info['mlflow_sqlalchemy']}), in `.bench/mlflow-venv`. SQLite stores: "
        + ", ".join(f"{k} {v}" for k, v in info["journal"].items())
        + " (each project's own settings).",
        "",
        f"Reproduce: `{command}` from the repository root.",
    ]
    titles = {
        "local": "Local store (SQLite file, in process)",
        "server": "Through each project's server (`mlflow server` / `modelloop server`, SQLite)",
    }
    for mode, res in results.items():
        parts += ["", f"### {titles[mode]}", "", markdown_table(headers, build_rows(res))]
        parts += ["", cold_note(res)]
        parts += [f"- note: {n}" for n in sanity_notes(res)]
    repeats = f"median of {sz.repeats} alternating repeats" if sz.repeats > 1 else "one repeat"
    parts += [
        "",
        f"- Rates: {repeats}, each side in a fresh process. Reads: median of 3 warm calls "
        "after one cold call in the same process.",
        "- modelloop's per-call rate is timed to the return of `run.flush()` (durable points); "
        "MLflow's async row to the return of `mlflow.flush_async_logging()`. BENCHMARKS.md states "
        "the ≥ 100x bar against MLflow's plain loop; the async row holds it to the same bar "
        "against MLflow's own asynchronous mode, the like-for-like comparison.",
        "- History: MLflow `get_metric_history` (list of entities) vs modelloop "
        "`run.metric_history` (DataFrame).",
        f"- Search: `MlflowClient.search_runs` vs `ml.search_runs`, filter `{SEARCH_FILTER}`, "
        f"order by `{SEARCH_ORDER_BY[0]}`, at most {SEARCH_MAX_RESULTS:,} rows, over "
        f"{sz.search_runs:,} runs x 5 metrics x 5 params (seeded once, cached in `.bench/cache/`).",
        "- Servers: both at their default settings, on 127.0.0.1, timed once they are idle.",
    ]
    return "\n".join(parts)


def main() -> None:
    if sys.argv[1:2] == ["worker"]:
        worker_main(sys.argv[2:])
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer points, one repeat")
    p.add_argument("--modes", default="local,server", help="comma-separated: local,server")
    p.add_argument("--reseed", action="store_true", help="rebuild the cached 10k-run stores")
    p.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    a = p.parse_args()
    sz = QUICK if a.quick else FULL
    modes = [m for m in a.modes.split(",") if m]

    mlflow_side = MlflowSide(ensure_peer_venv("mlflow", MLFLOW_REQUIREMENTS))
    sides: list[Side] = [mlflow_side, ModelloopSide()]
    caches = {s.name: seeded_cache(s, sz.search_runs, a.reseed) for s in sides}
    results = {}
    with tempfile.TemporaryDirectory(prefix="tracking-", dir=BENCH_DIR) as tmp:
        for mode in modes:
            results[mode] = measure_mode(mode, sides, caches, sz, Path(tmp))

    info = machine_info() | {
        "modelloop": sides[1].version,
        "ml_python": python_version(ML_PYTHON),
        "ml_sqlalchemy": package_version(ML_PYTHON, "sqlalchemy"),
        "mlflow": mlflow_side.version,
        "mlflow_python": python_version(mlflow_side.python),
        "mlflow_sqlalchemy": package_version(mlflow_side.python, "sqlalchemy"),
        "journal": {s.name: journal_mode(s.sqlite_file(caches[s.name])) for s in sides},
    }
    text = render(results, info, command_line("tracking.py"), sz)
    publish("tracking", text, results, docs=not a.no_docs)


if __name__ == "__main__":
    main()
