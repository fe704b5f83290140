"""Web UI: server time of each page with 10k runs and 1M metric points in the store.

    .venv/bin/python benchmarks/ui.py [--quick] [--reseed] [--no-docs]

No peer: the target is absolute (each page's p95 under 300 ms, the web UI issue's bar). The store
(seeded once by a worker process of this interpreter, cached in ``.bench/cache/``) holds one
experiment of 10,000 runs with 5 metrics and 5 params each (``_common.search_dataset``, the
tracking benchmark's data) and, among them, 10 runs with a 100,000-point ``loss`` curve: 1.05M
metric points; then the fraud demo's eight weeks (a pipeline, model versions, a monitor with 56
daily windows, a policy's timeline and ~100k logged predictions) for the other pages, and three
versions of a 1M-row x 25-column dataset for the datasets pages. A copy
is served by ``modelloop server`` (SQLite, default settings, scheduler
off); each page is requested sequentially over one keep-alive connection, 5 warm-up requests
and then 40 timed ones (10 with ``--quick``), and the table gives p50/p95/max of the time from
sending the request to the last byte of the answer on 127.0.0.1, an upper bound of the server
time. Prints the table and writes the ``ui`` section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx

from _common import (
    BENCH_DIR,
    ROOT,
    SEARCH_FILTER,
    SEARCH_ORDER_BY,
    command_line,
    emit,
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
    wait_machine_quiet,
)

EXPERIMENT = "ui-10k"
RUNS = 10_000
CURVE_RUNS = 10
CURVE_POINTS = 100_000
TARGET_MS = 300.0
DATASET = "transactions"
DATASET_ROWS = 1_000_000
DATASET_VERSIONS = 3
SMALL_DATASETS = 30
PYTHON = Path(sys.executable)


# -- worker (a subprocess of this interpreter, with modelloop) ----------------------------------


def seed(home: Path) -> dict:
    """The store: RUNS runs (the last CURVE_RUNS with a long ``loss`` curve). Not timed."""
    from modelloop.settings import load_settings
    from modelloop.tracking.client import open_store
    from modelloop.tracking.entities import Metric, RunSpec, RunStatus

    store = open_store(load_settings({"MODELLOOP_HOME": str(home)}))
    experiment = store.create_experiment(EXPERIMENT, "10k runs for the UI benchmark")
    t, ts, points = time.perf_counter(), 1_700_000_000_000, 0
    curves = []
    for r, (metrics, params) in enumerate(search_dataset(RUNS)):
        run = store.create_run(
            RunSpec(experiment.experiment_id, name=f"run-{r:05d}", params=params)
        )
        batch = [Metric(k, v, 0, ts) for k, v in metrics.items()]
        if r >= RUNS - CURVE_RUNS:
            batch += [
                Metric("loss", 1.0 / (s + 1) + (r % 7) * 1e-3, s, ts + s)
                for s in range(CURVE_POINTS)
            ]
            curves.append(run.run_id)
        store.log_batch(run.run_id, batch)
        store.end_run(run.run_id, RunStatus.FINISHED)
        points += len(batch)
        if (r + 1) % 1000 == 0:
            log(f"seed: {r + 1}/{RUNS} runs, {time.perf_counter() - t:.0f}s")
    return {"seconds": time.perf_counter() - t, "points": points, "curves": curves,
            **seed_fraud_loop(home), **seed_datasets()}  # fmt: skip


def seed_fraud_loop(home: Path) -> dict:
    """The rest of the UI's pages need a model's life: the fraud demo's eight weeks (a pipeline,
    five versions, a monitor with 56 daily windows, a policy's timeline, ~100k predictions)."""
    import os

    os.environ["MODELLOOP_HOME"] = str(home)
    import modelloop as ml
    from modelloop.examples.fraud import demo

    started = time.perf_counter()
    result = demo.run_demo(demo.DemoConfig())
    runs = ml.get_client().find_runs("fraud-champion")
    pipeline = next(r.run_id for r in runs if r.parent_run_id is None)  # not one of its steps
    last_day = result.served["time"].max()
    log(f"seed: the fraud loop in {time.perf_counter() - started:.0f}s")
    return {"pipeline_run": pipeline, "last_day": str(last_day)[:10],
            "versions": int(result.served["version"].max())}  # fmt: skip


def seed_datasets() -> dict:
    """The datasets pages need datasets: DATASET_VERSIONS versions of DATASET_ROWS rows x 25
    columns (20 numbers, 5 categories), the last read by a run, and SMALL_DATASETS small ones
    of two versions each for the list (after the fraud loop, on its store)."""
    import numpy as np
    import pandas as pd

    import modelloop as ml

    started = time.perf_counter()
    rng = np.random.default_rng(0)
    for v in range(DATASET_VERSIONS):
        rows = DATASET_ROWS + v * 1000
        frame = pd.DataFrame({f"x{i:02d}": rng.normal(i, 1 + i, rows) for i in range(20)})
        for i in range(5):
            values = [f"c{i}-{k}" for k in range(3 + 40 * i)]
            frame[f"cat{i}"] = pd.Categorical(rng.choice(values, rows), categories=values)
        with ml.start_run(experiment="datasets", name=f"log v{v + 1}"):
            ml.log_dataset(frame, DATASET, description="1M rows x 25 columns for the UI benchmark")
    with ml.start_run(experiment="datasets", name="read"):
        ml.load_dataset(DATASET)
    for d in range(SMALL_DATASETS):
        for v in range(2):
            ml.log_dataset(pd.DataFrame({"a": np.arange(100 + v), "b": rng.random(100 + v)}),
                           f"small-{d:02d}")  # fmt: skip
    log(f"seed: datasets in {time.perf_counter() - started:.0f}s")
    return {"dataset_version": DATASET_VERSIONS}


def worker_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="ui.py worker")
    p.add_argument("what", choices=["seed"])
    p.add_argument("--home", type=Path, required=True)
    a = p.parse_args(argv)
    emit(seed(a.home))


# -- driver -----------------------------------------------------------------------------------


def cache_path() -> Path:
    """Keyed on the store's code (schema, SQL store): the layout may change while young."""
    src = ROOT / "src" / "modelloop"
    digest = hashlib.sha1(usedforsecurity=False)
    code = [*(src / "store").rglob("*.py"), src / "tracking" / "sql.py"]
    code += [*(src / "examples" / "fraud").glob("*.py"), *(src / "automation").glob("*.py")]
    code += [*(src / "monitoring").glob("*.py"), *(src / "datasets").glob("*.py")]
    for f in sorted(code):
        digest.update(f.relative_to(src).as_posix().encode() + f.read_bytes())
    return BENCH_DIR / "cache" / f"ui-{digest.hexdigest()[:10]}-10k"


def seeded_cache(reseed: bool) -> tuple[Path, dict]:
    cache = cache_path()
    meta = cache / "seed.json"
    if cache.exists() and meta.exists() and not reseed:
        return cache, json.loads(meta.read_text())
    for old in cache.parent.glob("ui-*-10k"):
        shutil.rmtree(old)
    cache.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache.parent) as tmp:
        home = Path(tmp) / "home"
        log(f"seeding {RUNS:,} runs and {CURVE_RUNS} curves of {CURVE_POINTS:,} points ({cache})")
        result = run_worker([PYTHON, Path(__file__).resolve(), "worker", "seed", "--home", home])
        log(f"seeded in {result['seconds']:.0f}s")
        (home / "seed.json").write_text(json.dumps(result))
        home.rename(cache)
    return cache, result


def pages(seeded: dict) -> list[tuple[str, str]]:
    """(label, path) of each measured page."""
    curves = seeded["curves"]
    runs_query = {"experiment": EXPERIMENT, "filter": SEARCH_FILTER, "order_by": SEARCH_ORDER_BY[0]}
    end = seeded["last_day"] + "T23:59:59"
    window = seeded["last_day"]
    return [
        ("experiments (`/ui/`)", "/ui/"),
        ("runs, page 1, filter + order", "/ui/runs?" + urlencode(runs_query)),
        ("runs, page 1, no filter", "/ui/runs?" + urlencode({"experiment": EXPERIMENT})),
        ("runs, page 20, filter + order", "/ui/runs?" + urlencode({**runs_query, "page": 20})),
        ("run page", f"/ui/runs/{curves[0]}"),
        (
            f"metric JSON, {CURVE_POINTS // 1000}k points -> 2,000",
            "/ui/api/metric?" + urlencode({"run": curves[0], "key": "loss", "max_points": 2000}),
        ),
        ("compare 3 runs", "/ui/compare?runs=" + ",".join(curves[:3])),
        ("datasets", "/ui/datasets"),
        ("dataset (versions)", f"/ui/datasets/{DATASET}"),
        ("dataset version, 1M rows x 25 columns", f"/ui/datasets/{DATASET}/versions/"
            f"{seeded['dataset_version']}"),
        ("pipelines", "/ui/pipelines"),
        ("pipeline run (DAG)", f"/ui/pipelines/{seeded['pipeline_run']}"),
        ("models", "/ui/models"),
        ("model (versions, audit history)", "/ui/models/fraud-detector"),
        ("model card", f"/ui/models/fraud-detector/versions/{seeded['versions']}/card"),
        ("approvals", "/ui/models/approvals"),
        ("deployments", "/ui/deployments"),
        ("deployment, 24 h of traffic", "/ui/deployments/fraud-online?" + urlencode(
            {"period": "24h", "end": end})),
        ("traffic JSON, 24 h", "/ui/api/deployments/fraud-online/traffic?" + urlencode(
            {"period": "24h", "end": end})),
        ("monitors", "/ui/monitoring"),
        ("monitor (56 windows)", "/ui/monitoring/fraud-watch"),
        ("drift heatmap JSON", "/ui/api/monitoring/fraud-watch/drift"),
        ("performance JSON", "/ui/api/monitoring/fraud-watch/performance"),
        ("distribution overlay JSON", "/ui/api/monitoring/fraud-watch/distribution?" + urlencode(
            {"feature": "TX_AMOUNT", "window": window})),
        ("policies", "/ui/automation"),
        ("policy timeline", "/ui/automation/fraud-loop"),
    ]  # fmt: skip


def measure(url: str, path: str, warmup: int, repeats: int) -> dict:
    times = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for i in range(warmup + repeats):
            t = time.perf_counter()
            response = client.get(path)
            elapsed = (time.perf_counter() - t) * 1000
            if response.status_code != 200:
                raise RuntimeError(f"{path} answered {response.status_code}: {response.text[:300]}")
            if i >= warmup:
                times.append(elapsed)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return {
        "p50_ms": statistics.median(times),
        "p95_ms": p95,
        "max_ms": times[-1],
        "n": len(times),
        "bytes": len(response.content),
        "all_ms": [round(x, 2) for x in times],
    }


def render(results: dict[str, dict], info: dict, seeded: dict, command: str) -> str:
    rows = [
        [
            label,
            fmt_num(r["p50_ms"]),
            fmt_num(r["p95_ms"]),
            fmt_num(r["max_ms"]),
            f"{r['bytes']:,}",
            f"< {TARGET_MS:.0f} ms",
            "yes" if r["p95_ms"] < TARGET_MS else "**no**",
        ]
        for label, r in results.items()
    ]
    table = markdown_table(
        ["page", "p50 (ms)", "p95 (ms)", "max (ms)", "bytes", "target p95", "met"], rows
    )
    n = next(iter(results.values()))["n"]
    return "\n".join(
        [
            "## Web UI: server time per page",
            "",
            f"Measured {info['date']} on {info['nproc']} cores ({info['cpu']}), {info['os']}. "
            f"modelloop {info['modelloop']} (Python {info['python']}), `modelloop server` on "
            "SQLite at its default settings, scheduler off.",
            "",
            f"Reproduce: `{command}` from the repository root.",
            "",
            table,
            "",
            f"- Store: {RUNS:,} runs x 5 metrics x 5 params in one experiment, {CURVE_RUNS} of "
            f"them with a {CURVE_POINTS:,}-point `loss` curve: {seeded['points']:,} metric points; "
            "then, in the same store, the fraud demo's eight weeks (`modelloop demo fraud`: a "
            f"pipeline, {seeded['versions']} versions of `fraud-detector`, a monitor with 56 daily "
            "windows, a policy's timeline, ~107k logged predictions) for the pages of the other "
            f"sections, and {DATASET_VERSIONS} versions of a {DATASET_ROWS:,}-row x 25-column "
            f"dataset (the last read by a run) with {SMALL_DATASETS} small ones (seeded once, "
            "cached in `.bench/cache/`).",
            f"- Each page: 5 warm-up requests, then {n} sequential requests over one keep-alive "
            "connection on 127.0.0.1, timed from sending to the last byte (an upper bound of the "
            "server time); HTML only, the browser's scripts and the chart's JSON not included "
            "except in the metric JSON row.",
            f"- Runs filter `{SEARCH_FILTER}`, order `{SEARCH_ORDER_BY[0]}`, 100 runs a page. "
            "A page is an offset into the search (SQL OFFSET), so a deep page still sorts and "
            "skips the runs before it (page 20 row).",
            "- Metric JSON: the full history is read and downsampled to 2,000 points with LTTB "
            "on the server; the chart shows the note of original vs shown points.",
        ]
    )


def main() -> None:
    if sys.argv[1:2] == ["worker"]:
        worker_main(sys.argv[2:])
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="10 timed requests per page, not 40")
    p.add_argument("--reseed", action="store_true", help="rebuild the cached store")
    p.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    a = p.parse_args()
    repeats = 10 if a.quick else 40

    cache, seeded = seeded_cache(a.reseed)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="ui-", dir=BENCH_DIR) as tmp:
        home = Path(tmp) / "home"
        shutil.copytree(cache, home)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [PYTHON.parent / "modelloop", "server", "--port", port, "--monitor-interval", "0"]
        env = {
            "MODELLOOP_HOME": str(home),
            "MODELLOOP_TRACKING_URI": "",
            "MODELLOOP_DATABASE_URL": "",
            "MODELLOOP_ARTIFACT_URI": "",
            "MODELLOOP_TOKEN": "",
        }
        with running_server(cmd, f"{url}/health", env=env, cwd=Path(tmp), log_path=home / "log"):
            for label, path in pages(seeded):
                wait_machine_quiet(max_cores=0.3, timeout=10)
                results[label] = measure(url, path, warmup=5, repeats=repeats)
                log(
                    f"{label}: p50 {results[label]['p50_ms']:.1f} ms, "
                    f"p95 {results[label]['p95_ms']:.1f} ms"
                )

    info = machine_info() | {
        "modelloop": package_version(PYTHON, "modelloop"),
        "python": python_version(PYTHON),
    }
    text = render(results, info, seeded, command_line("ui.py"))
    publish("ui", text, results, docs=not a.no_docs)


if __name__ == "__main__":
    main()
