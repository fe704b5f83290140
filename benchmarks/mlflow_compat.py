"""MLflow's own client against `mlflow server` and against `modelloop server`, same run.

    .venv/bin/python benchmarks/mlflow_compat.py [--quick] [--reseed] [--no-docs]

The same script (``_mlflow_side.py``, the ``mlflow`` client in ``.bench/mlflow-venv``) talks to
each target in turn: what an MLflow user gets by changing only ``MLFLOW_TRACKING_URI``. The
targets are ``mlflow server`` and ``modelloop server`` over ``http://`` (MLflow's REST client),
the same modelloop server over ``modelloop://`` (modelloop's MLflow store plugin, installed into
the client's venv), and, for the logging loops only, a server that answers them at once
(``_instant_server.py``): the floor of MLflow's REST client, which no ``http://`` server beats.
Measures per-call ``MlflowClient.log_metric``, the client's async mode, ``log_batch`` in chunks
of 1000, ``get_metric_history`` of 100k points and ``search_runs`` over 10k runs (the stores
``tracking.py`` seeds and caches in ``.bench/cache``: the same runs on both servers). Ingest
alternates between the targets, 3 repeats, median. Writes its section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from _common import (
    BENCH_DIR,
    ROOT,
    SEARCH_FILTER,
    SEARCH_MAX_RESULTS,
    SEARCH_ORDER_BY,
    command_line,
    ensure_peer_venv,
    fmt_num,
    free_port,
    log,
    machine_info,
    markdown_table,
    publish,
    python_version,
    running_server,
)
from tracking import (
    FULL,
    HERE,
    MLFLOW_REQUIREMENTS,
    QUICK,
    MlflowSide,
    ModelloopSide,
    Sizes,
    seeded_cache,
)

TARGET = 10.0  # issue 15: >= 10x on each row
SERVERS = ("mlflow server", "modelloop server")
PLUGIN = "modelloop://"  # the modelloop server, through modelloop's MLflow store plugin
FLOOR = "instant server"  # answers logging calls at once: MLflow's REST client alone
TARGETS = (*SERVERS, PLUGIN, FLOOR)
# MLflow's server answers ~60 synchronous calls/s: fewer points there, same loop.
PER_CALL = {"mlflow server": (200, 50), "modelloop server": (2000, 500)}  # full, quick
PER_CALL |= {PLUGIN: (5000, 1000), FLOOR: (2000, 500)}


def install_plugin(python: Path) -> None:
    """modelloop's MLflow store plugin into the client's venv (its entry points and orjson; the
    client side needs nothing else of modelloop's dependencies)."""
    log(f"installing modelloop (the modelloop:// store plugin) into {python.parent.parent}")
    pip = [str(python), "-m", "pip", "install", "-q", "--no-deps", "-e", str(ROOT), "orjson"]
    subprocess.run(pip, check=True)


@contextlib.contextmanager
def instant_server(upstream: str, cwd: Path) -> Iterator[str]:
    port = free_port()
    cmd = [sys.executable, HERE / "_instant_server.py", "--upstream", upstream.split("//")[1]]
    cmd += ["--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    with running_server(cmd, f"{url}/health", cwd=cwd, log_path=cwd / "instant.log"):
        yield url


def measure(sz: Sizes, quick: bool, reseed: bool, tmp: Path) -> dict[str, dict[str, list[dict]]]:
    client = MlflowSide(ensure_peer_venv("mlflow", MLFLOW_REQUIREMENTS))
    install_plugin(client.python)
    stores = {"mlflow server": client, "modelloop server": ModelloopSide()}
    caches = {name: seeded_cache(side, sz.search_runs, reseed) for name, side in stores.items()}
    out: dict[str, dict[str, list[dict]]] = {name: {} for name in TARGETS}
    with contextlib.ExitStack() as stack:
        urls, cwds = {}, {}
        for name, side in stores.items():
            cwds[name] = tmp / name.replace(" ", "-")
            store = side.copy_store(caches[name], cwds[name])
            log(f"starting {name}")
            urls[name] = stack.enter_context(side.server(store))
        urls[PLUGIN] = "modelloop://" + urls["modelloop server"].split("//")[1]
        urls[FLOOR] = stack.enter_context(instant_server(urls["modelloop server"], tmp))
        cwds[PLUGIN] = cwds[FLOOR] = cwds["modelloop server"]

        def run(name: str, what: str, *args: object) -> None:
            result = client.worker(what, urls[name], cwds[name], *args)
            for key, value in result.items():
                if isinstance(value, dict):
                    out[name].setdefault(key, []).append(value)

        for rep in range(sz.repeats):
            for name in TARGETS if rep % 2 == 0 else TARGETS[::-1]:
                n_call = PER_CALL[name][1 if quick else 0]
                log(f"ingest, MLflow client -> {name}, repeat {rep + 1}/{sz.repeats}")
                args = ["--n-sync", n_call, "--n-async", n_call * 5, "--n-batch", sz.batch]
                run(name, "ingest", *args)
        for name in (*SERVERS, PLUGIN):
            log(f"history ({sz.history} points) and search, MLflow client -> {name}")
            run(name, "history", "--points", sz.history)
            run(name, "search")
    return out


ROWS = [  # label, result key, field, held to the target (the four rows issue 15 names)
    ("per-call `log_metric` (points/s)", "per_call", "rate", True),
    ("async mode, incl. flush (points/s)", "async", "rate", False),
    ("`log_batch`, chunks of 1000 (points/s)", "batch", "rate", True),
    ("`get_metric_history`, 100k points (ms)", "history", "ms", True),
    ("`search_runs` over 10k runs, filter + order (ms)", "search", "ms", True),
]


def _median(samples: list[dict] | None, field: str) -> float | None:
    return statistics.median(s[field] for s in samples) if samples else None


def _ratio(base: float | None, other: float | None, field: str) -> float | None:
    """How much faster ``other`` is than ``base``: a higher rate, or a shorter time."""
    if not (base and other):
        return None
    return other / base if field == "rate" else base / other


def _x(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio:,.1f}x"


def _met(ratio: float | None) -> str:
    return "—" if ratio is None else ("yes" if ratio >= TARGET else "no")


def render(res: dict[str, dict[str, list[dict]]], info: dict, command: str, sz: Sizes) -> str:
    rows = []
    for label, key, field, targeted in ROWS:
        samples = {name: res[name].get(key) for name in TARGETS}
        value = {name: _median(samples[name], field) for name in TARGETS}
        base = value["mlflow server"]
        http, plugin = (_ratio(base, value[n], field) for n in ("modelloop server", PLUGIN))
        cap = _ratio(base, value[FLOOR], field)
        counts = [f"{samples[n][0]['n']:,}" for n in (*SERVERS, PLUGIN) if samples[n]]
        rows.append(
            [
                label,
                " / ".join(counts) or "—",
                fmt_num(base),
                fmt_num(value["modelloop server"]),
                _x(http),
                fmt_num(value[PLUGIN]),
                _x(plugin),
                fmt_num(value[FLOOR]),
                _x(cap),
                f"≥ {TARGET:g}x" if targeted else "—",
                f"{_met(http)} / {_met(plugin)}" if targeted else "—",
            ]
        )
    headers = ["measurement (MLflow client)", "N (mlflow / http / modelloop://)"]
    headers += ["mlflow server", "modelloop server, http://", "faster by"]
    headers += ["modelloop server, modelloop://", "faster by"]
    headers += ["instant server (client floor)", "most any http:// server reaches"]
    headers += ["target", "met (http:// / modelloop://)"]
    repeats = f"median of {sz.repeats} alternating repeats" if sz.repeats > 1 else "one repeat"
    tops = {s: [x.get("top_m1") for x in res[s].get("search", [])] for s in (*SERVERS, PLUGIN)}
    return "\n".join(
        [
            "## MLflow's client: `mlflow server` vs `modelloop server`",
            "",
            f"Measured {info['date']} on {info['nproc']} cores ({info['cpu']}), {info['os']}. "
            f"The same script, `benchmarks/_mlflow_side.py`, with the `mlflow` {info['mlflow']} "
            f"client (Python {info['mlflow_python']}, `.bench/mlflow-venv`), pointed at "
            f"`mlflow server` {info['mlflow']} and at `modelloop server` {info['modelloop']} "
            "(both on 127.0.0.1 over a SQLite store, default settings): all an MLflow user "
            "changes is `MLFLOW_TRACKING_URI`, to `http://HOST:PORT` (MLflow's REST client) or, "
            "with modelloop installed next to MLflow, `modelloop://HOST:PORT` (modelloop's store "
            "plugin: the hot calls as plain JSON, everything else through MLflow's REST store).",
            "",
            f"Reproduce: `{command}` from the repository root.",
            "",
            markdown_table(headers, rows),
            "",
            f"- Rates: {repeats}, a fresh client process each. Reads: median of 3 warm calls "
            "after one cold call.",
            "- Per call: `MlflowClient.log_metric` in a loop, one request each; async: "
            "`mlflow.log_metric(..., synchronous=False)` then `flush_async_logging()` (shown, not "
            "a target: without `MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS` MLflow's queue still "
            "sends one request per call, so it follows the per-call row).",
            "- Instant server (`benchmarks/_instant_server.py`): answers `log-metric`, "
            "`log-batch`, `log-parameter` and `set-tag` with `{}` at once, so the loop measures "
            "MLflow's REST client alone; its rate over `mlflow server`'s is the most any "
            "server reached over `http://` could give (request-header providers, proxy lookups "
            "and protobuf JSON cost the client milliseconds per call). The `modelloop://` "
            "column is how modelloop gets past it without changing the script.",
            f"- Search: `MlflowClient.search_runs`, filter `{SEARCH_FILTER}`, order by "
            f"`{SEARCH_ORDER_BY[0]}`, at most {SEARCH_MAX_RESULTS:,} rows, over the "
            f"{sz.search_runs:,}-run stores `tracking.py` seeds (top `m1` per target: {tops}).",
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
