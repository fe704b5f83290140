"""MLflow's own client against `mlflow server` and against `modelloop server`, same run.

    .venv/bin/python benchmarks/mlflow_compat.py [--quick] [--reseed] [--no-docs]

The same script (``_mlflow_side.py``, the ``mlflow`` client in ``.bench/mlflow-venv``) talks to
each server in turn: what an MLflow user gets by changing only ``MLFLOW_TRACKING_URI``. Measures
per-call ``MlflowClient.log_metric``, the client's async mode, ``log_batch`` in chunks of 1000,
``get_metric_history`` of 100k points and ``search_runs`` over 10k runs (the stores
``tracking.py`` seeds and caches in ``.bench/cache``: the same runs on both sides). Ingest
alternates between the servers, 3 repeats, median. Writes its section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
from pathlib import Path

from _common import (
    BENCH_DIR,
    SEARCH_FILTER,
    SEARCH_MAX_RESULTS,
    SEARCH_ORDER_BY,
    command_line,
    ensure_peer_venv,
    fmt_num,
    log,
    machine_info,
    markdown_table,
    publish,
    python_version,
)
from tracking import (
    FULL,
    MLFLOW_REQUIREMENTS,
    QUICK,
    MlflowSide,
    ModelloopSide,
    Sizes,
    seeded_cache,
)

TARGET = 10.0  # issue 15: >= 10x on each row
SERVERS = ("mlflow server", "modelloop server")
# MLflow's server answers ~20 synchronous calls/s: fewer points there, same loop.
PER_CALL = {"mlflow server": (200, 50), "modelloop server": (2000, 500)}  # full, quick


def measure(sz: Sizes, quick: bool, reseed: bool, tmp: Path) -> dict[str, dict[str, list[dict]]]:
    client = MlflowSide(ensure_peer_venv("mlflow", MLFLOW_REQUIREMENTS))
    stores = {"mlflow server": client, "modelloop server": ModelloopSide()}
    caches = {name: seeded_cache(side, sz.search_runs, reseed) for name, side in stores.items()}
    out: dict[str, dict[str, list[dict]]] = {name: {} for name in SERVERS}
    with contextlib.ExitStack() as stack:
        urls, cwds = {}, {}
        for name, side in stores.items():
            cwds[name] = tmp / name.replace(" ", "-")
            store = side.copy_store(caches[name], cwds[name])
            log(f"starting {name}")
            urls[name] = stack.enter_context(side.server(store))

        def run(name: str, what: str, *args: object) -> None:
            result = client.worker(what, urls[name], cwds[name], *args)
            for key, value in result.items():
                if isinstance(value, dict):
                    out[name].setdefault(key, []).append(value)

        for rep in range(sz.repeats):
            for name in SERVERS if rep % 2 == 0 else SERVERS[::-1]:
                n_call = PER_CALL[name][1 if quick else 0]
                log(f"ingest, MLflow client -> {name}, repeat {rep + 1}/{sz.repeats}")
                args = ["--n-sync", n_call, "--n-async", n_call * 5, "--n-batch", sz.batch]
                run(name, "ingest", *args)
        for name in SERVERS:
            log(f"history ({sz.history} points) and search, MLflow client -> {name}")
            run(name, "history", "--points", sz.history)
            run(name, "search")
    return out


ROWS = [  # label, result key, field
    ("per-call `log_metric` (points/s)", "per_call", "rate"),
    ("async mode, incl. flush (points/s)", "async", "rate"),
    ("`log_batch`, chunks of 1000 (points/s)", "batch", "rate"),
    ("`get_metric_history`, 100k points (ms)", "history", "ms"),
    ("`search_runs` over 10k runs, filter + order (ms)", "search", "ms"),
]


def _median(samples: list[dict] | None, field: str) -> float | None:
    return statistics.median(s[field] for s in samples) if samples else None


def render(res: dict[str, dict[str, list[dict]]], info: dict, command: str, sz: Sizes) -> str:
    rows = []
    for label, key, field in ROWS:
        a_samples, b_samples = res["mlflow server"].get(key), res["modelloop server"].get(key)
        a, b = _median(a_samples, field), _median(b_samples, field)
        ratio = None if not (a and b) else (b / a if field == "rate" else a / b)
        n = "—"
        if a_samples and b_samples:
            n = f"{a_samples[0]['n']:,} / {b_samples[0]['n']:,}"
        met = "—" if ratio is None else ("yes" if ratio >= TARGET else "no")
        ratio_s = "—" if ratio is None else f"{ratio:,.1f}x"
        rows.append([label, n, fmt_num(a), fmt_num(b), ratio_s, f"≥ {TARGET:g}x", met])
    headers = ["measurement (MLflow client)", "N (mlflow / modelloop)", "mlflow server"]
    headers += ["modelloop server", "modelloop faster by", "target", "met"]
    repeats = f"median of {sz.repeats} alternating repeats" if sz.repeats > 1 else "one repeat"
    tops = {s: [x.get("top_m1") for x in res[s].get("search", [])] for s in SERVERS}
    return "\n".join(
        [
            "## MLflow's client: `mlflow server` vs `modelloop server`",
            "",
            f"Measured {info['date']} on {info['nproc']} cores ({info['cpu']}), {info['os']}. "
            f"The same script, `benchmarks/_mlflow_side.py`, with the `mlflow` {info['mlflow']} "
            f"client (Python {info['mlflow_python']}, `.bench/mlflow-venv`), pointed at "
            f"`mlflow server` {info['mlflow']} and at `modelloop server` {info['modelloop']} "
            "(both on 127.0.0.1 over a SQLite store, default settings): all an MLflow user "
            "changes is `MLFLOW_TRACKING_URI`.",
            "",
            f"Reproduce: `{command}` from the repository root.",
            "",
            markdown_table(headers, rows),
            "",
            f"- Rates: {repeats}, a fresh client process each. Reads: median of 3 warm calls "
            "after one cold call.",
            "- Per call: `MlflowClient.log_metric` in a loop, one request each; async: "
            "`mlflow.log_metric(..., synchronous=False)` then `flush_async_logging()`.",
            f"- Search: `MlflowClient.search_runs`, filter `{SEARCH_FILTER}`, order by "
            f"`{SEARCH_ORDER_BY[0]}`, at most {SEARCH_MAX_RESULTS:,} rows, over the "
            f"{sz.search_runs:,}-run stores `tracking.py` seeds (top `m1` per side: {tops}).",
        ]
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer points, one repeat")
    p.add_argument("--reseed", action="store_true", help="rebuild the cached 10k-run stores")
    p.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    a = p.parse_args()
    sz = QUICK if a.quick else FULL
    with tempfile.TemporaryDirectory(prefix="mlflow-compat-", dir=BENCH_DIR) as tmp:
        results = measure(sz, a.quick, a.reseed, Path(tmp))
    client = MlflowSide(ensure_peer_venv("mlflow", MLFLOW_REQUIREMENTS))
    info = machine_info() | {
        "mlflow": client.version,
        "mlflow_python": python_version(client.python),
        "modelloop": ModelloopSide().version,
    }
    text = render(results, info, command_line("mlflow_compat.py"), sz)
    publish("mlflow-compat", text, results, docs=not a.no_docs)


if __name__ == "__main__":
    main()
