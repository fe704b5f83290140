"""Serving: ``modelloop serve`` vs ``mlflow models serve``, same run, same machine, by ratio.

    .venv/bin/python benchmarks/serving.py [--quick] [--workers 1,2] [--sides mlflow,modelloop]

The same LightGBM classifier on both sides (the anchor's data: 50k rows x 30 numeric features,
200 trees, 31 leaves, seed 0), trained once in each project's environment. MLflow logs it with
``mlflow.lightgbm.log_model`` into a file store under ``.bench/`` and serves it with
``mlflow models serve --env-manager local`` (its default workers) from ``.bench/mlflow-venv``
(``_mlflow_serving.py``); modelloop registers it, points the ``challenger`` alias at it and serves
it with ``modelloop serve bench-fraud@challenger --workers N``, prediction logging on (its
default). Load comes from ``hey`` on 127.0.0.1, bounded in time; for each scenario the two sides
are measured back to back, alternating which goes first, and the ratio of their 2xx req/s is
reported next to the target. Prints the table and writes its section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from _common import (
    BENCH_DIR,
    _group_cpu_seconds,
    command_line,
    emit,
    ensure_peer_venv,
    fmt_num,
    fraud_dataset,
    free_port,
    log,
    machine_busy_seconds,
    machine_info,
    markdown_table,
    package_version,
    publish,
    python_version,
    run_hey,
    run_worker,
    running_server,
    wait_machine_quiet,
)

HERE = Path(__file__).resolve().parent
ML_PYTHON = Path(sys.executable)
MLFLOW_REQUIREMENTS = ["mlflow>=3,<4"]  # as in tracking.py: same venv, same marker
MODEL_NAME, ALIAS = "bench-fraud", "challenger"
TOP_K = 3
CHECK_ROWS = 100  # rows scored by both servers to check they serve the same model


class Scenario(NamedTuple):
    key: str
    label: str
    rows: int  # rows per request
    concurrency: int
    ml_route: str = "predict"  # modelloop route; MLflow always calls /invocations
    min_ratio: float | None = None
    max_p99_ms: float | None = None


SCENARIOS = [
    Scenario("r1_c1", "1 row/request, concurrency 1", 1, 1),
    Scenario("r1_c8", "1 row/request, concurrency 8", 1, 8, min_ratio=20, max_p99_ms=10),
    Scenario("r100_c4", "100 rows/request, concurrency 4", 100, 4),
    Scenario("r1000_c4", "1000 rows/request, concurrency 4", 1000, 4),
    Scenario(
        "explain_c8",
        f"modelloop `/explain` top-{TOP_K} vs MLflow predict, 1 row, concurrency 8",
        1,
        8,
        ml_route="explain",
        min_ratio=10,
    ),
]


@dataclass(frozen=True)
class Sizes:
    duration_s: float  # per measurement, hey -z
    warmup_s: float  # per side and scenario before each measurement, not reported
    repeats: int
    retries: int  # extra attempts when other jobs loaded the machine during a measurement
    quiet_wait_s: float = 30  # at most this long waiting for a quiet machine before each


FULL = Sizes(duration_s=10, warmup_s=1, repeats=2, retries=1, quiet_wait_s=10)
QUICK = Sizes(duration_s=3, warmup_s=0.5, repeats=1, retries=1, quiet_wait_s=10)
# A measurement during which the rest of the machine used more than this is retried / flagged.
OTHER_MAX_CORES = 0.25


# -- modelloop worker (runs in a subprocess of this interpreter) ------------------------------


def ml_setup() -> dict:
    """Train the anchor's model, register it as ``bench-fraud``, alias ``challenger`` to it."""
    import lightgbm as lgb
    import pandas as pd

    import modelloop as ml

    x, y, cols = fraud_dataset()
    df = pd.DataFrame(x, columns=cols)
    t = time.perf_counter()
    model = lgb.LGBMClassifier(n_estimators=200, num_leaves=31, verbose=-1).fit(df, y)
    train_s = time.perf_counter() - t
    with ml.start_run(experiment="bench") as run:
        mv = ml.register_model(run, MODEL_NAME, model, training_data=df)
    version = getattr(mv, "version", mv)
    ml.set_alias(MODEL_NAME, ALIAS, version, reason="bench")
    return {
        "version": str(version),
        "train_s": train_s,
        "proba": model.predict_proba(df.head(CHECK_ROWS))[:, 1].tolist(),
        "lightgbm": lgb.__version__,
        "floors": booster_floors(model.booster_, x),
    }


def booster_floors(booster: Any, x: Any, calls: int = 300) -> dict[str, float]:
    """In-process LightGBM cost of one row (µs): what a server cannot go below per request."""
    out = {}
    one = x[:1]
    for label, kwargs in (
        ("predict", {}),
        ("predict_1thread", {"num_threads": 1}),
        ("contrib", {"pred_contrib": True}),
        ("contrib_1thread", {"pred_contrib": True, "num_threads": 1}),
    ):
        booster.predict(one, **kwargs)
        times = []
        for _ in range(3):
            t = time.perf_counter()
            for _ in range(calls):
                booster.predict(one, **kwargs)
            times.append((time.perf_counter() - t) / calls * 1e6)
        out[label] = min(times)
    return out


def ml_count_log(path: str) -> dict:
    """Rows in the prediction log at ``path``: ``ml.load_predictions`` and plain pandas agree?"""
    import pandas as pd

    import modelloop as ml

    files = [f for f in Path(path).rglob("*.parquet") if not f.name.startswith(".")]
    raw_rows = sum(len(pd.read_parquet(f)) for f in files)
    read = getattr(ml, "predictions", None)
    if read is None:  # not exported at the top level (yet)
        from modelloop.serving.predictions import load_predictions as read
    df = read(MODEL_NAME, with_labels=False)
    versions = sorted(str(v) for v in df["model_version"].unique()) if len(df) else []
    return {
        "log": {
            "files": len(files),
            "rows": len(df),
            "parquet_rows": raw_rows,
            "versions": versions,
        }
    }


def worker_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="serving.py worker")
    p.add_argument("what", choices=["setup", "count-log"])
    p.add_argument("--path", default="")
    a = p.parse_args(argv)
    result = ml_setup() if a.what == "setup" else ml_count_log(a.path)
    import modelloop

    emit({"modelloop": modelloop.__version__, **result})


# -- HTTP helpers -----------------------------------------------------------------------------


def post_json(url: str, body: object, timeout: float = 30) -> object:
    data = json.dumps(body).encode()
    req = urllib.request.Request(url, data, {"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def _scores(answer: object) -> list[float] | None:
    """The per-row scores of a multi-row answer of either server, or None if unexpected.

    MLflow: ``{"predictions": [...]}``; modelloop, columnar input: ``{"prediction": [...]}``.
    """
    if not isinstance(answer, dict):
        return None
    values = answer.get("predictions", answer.get("prediction"))
    if isinstance(values, list) and all(isinstance(v, int | float) for v in values):
        return [float(v) for v in values]
    return None


# -- the two sides, seen from the driver ------------------------------------------------------


class MlflowSide:
    """``mlflow models serve`` in ``.bench/mlflow-venv``; file store under the run's tmp dir."""

    name = "MLflow"

    def __init__(self, python: Path, work: Path) -> None:
        self.python = python
        self.bin = python.parent
        self.version = package_version(python, "mlflow")
        self.work = work / "mlflow"
        self.work.mkdir(parents=True)
        self.tracking_uri = (self.work / "mlruns").as_uri()
        # MLflow 3.x refuses the file store unless asked; the model loads from local files
        # either way, so the store kind does not touch the request path.
        self.env = {
            "MLFLOW_ALLOW_FILE_STORE": "true",
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}",  # it execs uvicorn
        }
        self.setup_info: dict = {}

    def setup(self) -> dict:
        cmd = [self.python, HERE / "_mlflow_serving.py", "setup", "--uri", self.tracking_uri]
        self.setup_info = run_worker(cmd, env=self.env, cwd=self.work)
        return self.setup_info

    def payload(self, cols: list[str], rows: list[list[float]], route: str) -> dict:
        return {"dataframe_split": {"columns": cols, "data": rows}}

    def url(self, base: str, route: str) -> str:
        return f"{base}/invocations"

    @contextlib.contextmanager
    def server(self) -> Iterator[tuple[str, int]]:
        port = free_port()
        cmd = [self.bin / "mlflow", "models", "serve", "-m", self.setup_info["model_uri"]]
        cmd += ["--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)]
        base = f"http://127.0.0.1:{port}"
        log_path = self.work / "server.log"
        with running_server(
            cmd, f"{base}/ping", env=self.env, cwd=self.work, log_path=log_path
        ) as proc:
            yield base, proc.pid


class ModelloopSide:
    """``modelloop serve`` from this interpreter's venv; one MODELLOOP_HOME for the run."""

    name = "modelloop"

    def __init__(self, work: Path) -> None:
        self.python = ML_PYTHON
        self.version = package_version(ML_PYTHON, "modelloop")
        self.work = work / "modelloop"
        self.work.mkdir(parents=True)
        self.home = self.work / "home"
        self.setup_info: dict = {}

    def env(self, prediction_log: Path | None = None) -> dict[str, str]:
        env = {
            "MODELLOOP_HOME": str(self.home),
            "MODELLOOP_TRACKING_URI": "",
            "MODELLOOP_DATABASE_URL": "",
            "MODELLOOP_ARTIFACT_URI": "",
        }
        if prediction_log is not None:
            env["MODELLOOP_PREDICTION_LOG"] = str(prediction_log)
        return env

    def setup(self) -> dict:
        cmd = [self.python, Path(__file__).resolve(), "worker", "setup"]
        self.setup_info = run_worker(cmd, env=self.env(), cwd=self.work)
        return self.setup_info

    def count_log(self, path: Path) -> dict:
        cmd = [self.python, Path(__file__).resolve(), "worker", "count-log", "--path", path]
        return run_worker(cmd, env=self.env(path), cwd=self.work)["log"]

    def payload(self, cols: list[str], rows: list[list[float]], route: str) -> dict:
        if len(rows) == 1:
            body: dict = dict(zip(cols, rows[0], strict=True))
        else:  # columnar, its most compact form
            body = {c: [r[i] for r in rows] for i, c in enumerate(cols)}
        return body  # /explain takes the same bodies as /predict

    def url(self, base: str, route: str) -> str:
        return f"{base}/explain?top_k={TOP_K}" if route == "explain" else f"{base}/{route}"

    @contextlib.contextmanager
    def server(self, workers: int, prediction_log: Path) -> Iterator[tuple[str, int]]:
        port = free_port()
        cmd = [self.python.parent / "modelloop", "serve", f"{MODEL_NAME}@{ALIAS}"]
        cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
        base = f"http://127.0.0.1:{port}"
        log_path = self.work / f"server-w{workers}.log"
        env = self.env(prediction_log)
        with running_server(cmd, f"{base}/ready", env=env, cwd=self.work, log_path=log_path) as p:
            yield base, p.pid


Side = MlflowSide | ModelloopSide


def group_size(pgid: int) -> int:
    """How many live processes belong to process group ``pgid``."""
    n = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) == pgid:
                n += 1
    return n


# -- driver -----------------------------------------------------------------------------------


def write_payloads(sides: list[Side], tmp: Path) -> dict[tuple[str, str], Path]:
    """One JSON body per (side, scenario), all cut from the first rows of the training data."""
    x, _, cols = fraud_dataset()
    bodies = {}
    for s in sides:
        for sc in SCENARIOS:
            path = tmp / f"{s.name}-{sc.key}.json"
            path.write_text(json.dumps(s.payload(cols, x[: sc.rows].tolist(), sc.ml_route)))
            bodies[(s.name, sc.key)] = path
    return bodies


def check_same_model(bases: dict[str, str], sides: list[Side]) -> dict:
    """Score the first ``CHECK_ROWS`` rows on both servers and compare with each other."""
    x, _, cols = fraud_dataset()
    rows = x[:CHECK_ROWS].tolist()
    out: dict = {}
    for s in sides:
        answer = post_json(s.url(bases[s.name], "predict"), s.payload(cols, rows, "predict"))
        out[s.name] = _scores(answer)
    mf, mlp = out.get("MLflow"), out.get("modelloop")
    procs = [s.setup_info.get("proba") for s in sides if s.setup_info.get("proba")]
    check: dict = {"answers": out}
    if len(procs) == 2:
        check["in_process_max_abs_diff"] = max(abs(a - b) for a, b in zip(*procs, strict=True))
    if mf and mlp and len(mf) == len(mlp):
        # MLflow's pyfunc answers LGBMClassifier.predict (labels); modelloop a probability.
        labels = [int(p > 0.5) for p in mlp] if any(0 < p < 1 for p in mlp) else mlp
        check["label_mismatches"] = sum(int(a != b) for a, b in zip(mf, labels, strict=True))
    ml = next((s for s in sides if s.name == "modelloop"), None)
    if ml is not None and mlp and ml.setup_info.get("proba"):
        diffs = [abs(a - b) for a, b in zip(mlp, ml.setup_info["proba"], strict=True)]
        check["served_vs_in_process"] = max(diffs)
    if ml is not None:
        one = ml.payload(cols, rows[:1], "explain")
        answer = post_json(ml.url(bases[ml.name], "explain"), one)
        reasons = (
            answer.get("reason_codes", answer.get("reasons")) if isinstance(answer, dict) else None
        )
        check["explain_reason_codes"] = len(reasons) if isinstance(reasons, list) else None
        check["explain_keys"] = sorted(answer) if isinstance(answer, dict) else None
    return check


def measure_once(side: Side, base: str, pgid: int, sc: Scenario, body: Path, sz: Sizes) -> dict:
    """Wait for a quiet machine, warm up, then one hey run; adds who used the CPU meanwhile."""
    url = side.url(base, sc.ml_route if side.name == "modelloop" else "predict")
    wait_machine_quiet(OTHER_MAX_CORES, timeout=sz.quiet_wait_s)
    warm = run_hey(url, body, concurrency=sc.concurrency, duration_s=sz.warmup_s)
    cpu0, kids0 = _group_cpu_seconds(pgid), resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0 = machine_busy_seconds()
    res = run_hey(url, body, concurrency=sc.concurrency, duration_s=sz.duration_s)
    busy1 = machine_busy_seconds()
    cpu1, kids1 = _group_cpu_seconds(pgid), resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = res["total_s"] or sz.duration_s
    res["server_cpu"] = (cpu1 - cpu0) / wall  # cores busy in the server's processes
    hey_cpu = (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
    res["hey_cpu"] = hey_cpu / wall
    # everything else on the machine: other people's jobs, the idle peer server, this driver
    res["other_cpu"] = max(0.0, (busy1 - busy0) / wall - res["server_cpu"] - res["hey_cpu"])
    res["warmup_ok"] = warm["ok"]
    res["rows"] = sc.rows
    if not res["errors"] + res["non_2xx"]:
        res.pop("raw", None)
    return res


def measure(
    side: Side, base: str, pgid: int, sc: Scenario, body: Path, sz: Sizes, phase: str
) -> dict:
    """One sample; measured again (up to ``sz.retries`` times) while other jobs load the machine.

    The sample kept is the one with the least foreign load; ``answered_ok`` counts the 2xx
    answers of every attempt and warm-up, for the prediction log check.
    """
    best, answered, attempts = None, 0, 0
    for attempt in range(1 + sz.retries):
        res = measure_once(side, base, pgid, sc, body, sz)
        attempts += 1
        answered += res["ok"] + res["warmup_ok"]
        if best is None or res["other_cpu"] < best["other_cpu"]:
            best = res
        bad = res["errors"] + res["non_2xx"]
        log(
            f"{phase} {sc.key:>10} {side.name:>9}: {fmt_num(res['ok_rps'])} req/s, "
            f"p50 {fmt_num(res['p50_ms'])} p99 {fmt_num(res['p99_ms'])} ms"
            + (f", {bad} FAILED" if bad else "")
            + f"; cores: server {res['server_cpu']:.2f}, hey {res['hey_cpu']:.2f}, "
            f"other {res['other_cpu']:.2f}" + (f" (attempt {attempt + 1})" if attempt else "")
        )
        if res["other_cpu"] <= OTHER_MAX_CORES:
            break
    assert best is not None
    best["attempts"] = attempts
    best["answered_ok"] = answered
    return best


Results = dict[str, dict[str, dict[str, list[dict]]]]  # phase -> side -> scenario -> samples


def run_phase(
    phase: str,
    sides: list[Side],
    servers: dict[str, tuple[str, int]],
    bodies: dict[tuple[str, str], Path],
    sz: Sizes,
) -> dict[str, dict[str, list[dict]]]:
    out: dict[str, dict[str, list[dict]]] = {s.name: {} for s in sides}
    for rep in range(sz.repeats):
        for i, sc in enumerate(SCENARIOS):
            order = sides if (rep + i) % 2 == 0 else sides[::-1]
            for s in order:
                base, pgid = servers[s.name]
                sample = measure(s, base, pgid, sc, bodies[(s.name, sc.key)], sz, phase)
                out[s.name].setdefault(sc.key, []).append(sample)
    return out


def _med(samples: list[dict] | None, field: str) -> float | None:
    vals = [s[field] for s in samples or [] if s.get(field) is not None]
    return statistics.median(vals) if vals else None


def _cell(samples: list[dict] | None) -> str:
    if not samples:
        return "—"
    rps = _med(samples, "ok_rps")
    text = (
        f"{fmt_num(rps)} ({fmt_num(_med(samples, 'p50_ms'))} / {fmt_num(_med(samples, 'p99_ms'))})"
    )
    if any(s["other_cpu"] > OTHER_MAX_CORES for s in samples):
        text += " †"
    bad = sum(s["errors"] + s["non_2xx"] for s in samples)
    return text + (f" **{bad} failed**" if bad else "")


def build_rows(res: dict[str, dict[str, list[dict]]], log_ok: bool | None) -> list[list[str]]:
    mf, ml = res.get("MLflow", {}), res.get("modelloop", {})
    rows = []
    for sc in SCENARIOS:
        a, b = mf.get(sc.key), ml.get(sc.key)
        ra, rb = _med(a, "ok_rps"), _med(b, "ok_rps")
        ratio = rb / ra if ra and rb else None
        targets, met = [], []
        failed = any(s["errors"] + s["non_2xx"] for s in (a or []) + (b or []))
        if sc.min_ratio is not None:
            targets.append(f"≥ {sc.min_ratio:g}x")
            if ratio is not None:
                met.append(ratio >= sc.min_ratio)
        if sc.max_p99_ms is not None:
            targets.append(f"p99 ≤ {sc.max_p99_ms:g} ms")
            p99 = _med(b, "p99_ms")
            if p99 is not None:
                met.append(p99 <= sc.max_p99_ms)
        if not targets:
            verdict = "—"
        elif failed:
            verdict = "no (errors)"
        elif len(met) < len(targets):
            verdict = "—"
        elif sc.key == "r1_c8" and log_ok is False:
            verdict = "no (log incomplete)"
        else:
            verdict = "yes" if all(met) else "no"
        ratio_s = "—" if ratio is None else f"{ratio:,.1f}x"
        target = " and ".join(targets) or "—"
        rows.append([sc.label, _cell(a), _cell(b), ratio_s, target, verdict])
    return rows


def answered_rows(res: dict[str, list[dict]]) -> int:
    """Rows modelloop answered (2xx) in a phase, warm-ups included."""
    return sum(s["answered_ok"] * s["rows"] for samples in res.values() for s in samples)


def render(results: Results, logs: dict, info: dict, check: dict, command: str, sz: Sizes) -> str:
    headers = ["scenario", "MLflow req/s (p50 / p99 ms)", "modelloop req/s (p50 / p99 ms)"]
    headers += ["ratio", "target", "met"]
    parts = [
        "## Serving: `modelloop serve` vs `mlflow models serve`",
        "",
        f"Measured {info['date']} on {info['nproc']} cores ({info['cpu']}), {info['os']}. "
        f"modelloop {info['modelloop']} (Python {info['ml_python']}, LightGBM "
        f"{info['ml_lightgbm']}, uvicorn {info['ml_uvicorn']}); MLflow {info['mlflow']} "
        f"(Python {info['mlflow_python']}, LightGBM {info['mlflow_lightgbm']}, uvicorn "
        f"{info['mlflow_uvicorn']}), in `.bench/mlflow-venv`; hey {info['hey']}.",
        "",
        f"Reproduce: `{command}` from the repository root.",
    ]
    for phase, res in results.items():
        lg = logs.get(phase)
        log_ok = None if lg is None else lg["rows"] >= lg["answered"]
        parts += ["", f"### {info['phases'][phase]}", ""]
        parts += [markdown_table(headers, build_rows(res, log_ok)), ""]
        if lg is not None:
            parts += [
                f"- Prediction log after this phase: {lg['rows']:,} rows in {lg['files']} "
                f"Parquet file(s); modelloop answered {lg['answered']:,} rows with a 2xx "
                "(`/predict` and `/explain`, warm-ups and the same-model check included)"
                + ("." if log_ok else " — **fewer rows logged than answered**."),
            ]
            if lg["parquet_rows"] != lg["rows"]:
                parts.append(
                    f"- note: `ml.load_predictions` read {lg['rows']:,} rows but the Parquet files "
                    f"hold {lg['parquet_rows']:,}."
                )
        for name, scen in res.items():
            for key, samples in scen.items():
                for smp in samples:
                    if smp["errors"] or smp["non_2xx"]:
                        what = ", ".join(smp["error_lines"][:3]) or f"statuses {smp['statuses']}"
                        parts.append(
                            f"- **failed requests**, {name} {key}: {smp['errors']} without an "
                            f"answer, {smp['non_2xx']} non-2xx ({what})."
                        )
        cpu = []
        for key in ("r1_c8", "explain_c8"):
            for name, scen in res.items():
                if scen.get(key):
                    cpu.append(
                        f"{key} {name} {_med(scen[key], 'server_cpu'):.2f} / "
                        f"{_med(scen[key], 'hey_cpu'):.2f} / {_med(scen[key], 'other_cpu'):.2f}"
                    )
        if cpu:
            parts += [
                "- Cores used during the concurrency-8 runs, server / hey / rest of the machine: "
                + "; ".join(cpu)
                + "."
            ]
    repeats = f"median of {sz.repeats} repeats" if sz.repeats > 1 else "one run"
    parts += [
        "",
        f"- Each cell: `hey -z {sz.duration_s:g}s` after a {sz.warmup_s:g} s warm-up, {repeats}; "
        "req/s counts 2xx answers only; a run with failed requests (no answer or non-2xx) is "
        "flagged and cannot meet its target. Both sides of a scenario run back to back, "
        "alternating which goes first; the ratio is modelloop / MLflow req/s.",
        "- Requests: MLflow `POST /invocations` with `dataframe_split`; modelloop `POST /predict` "
        "with one record (1 row) or columnar JSON (100 and 1000 rows), and `POST /explain` with "
        f"one record and top-{TOP_K} reason codes. Rows are the first rows of the training data.",
        f"- Same model: {check_note(check)}",
        f"- MLflow at its default workers ({info['mlflow_procs']} processes in its group: the CLI "
        "and one uvicorn worker). hey runs on the same cores as the servers: the faster side pays "
        "more for its load generator.",
        "- Shared machine: before each measurement the script waits (up to "
        f"{sz.quiet_wait_s:g} s) for the machine to go quiet, and measures again (up to "
        f"{sz.retries} more times, keeping the least disturbed run) when the rest of the machine "
        f"used more than {OTHER_MAX_CORES:g} cores meanwhile. † marks a cell whose kept run was "
        "still disturbed that much: read it with care.",
    ]
    floors = info.get("floors")
    if floors:
        parts.append(
            "- In-process floor, one 1-row `Booster.predict` call in this run (best of 3 x 300): "
            f"{floors['predict']:.0f} µs ({floors['predict_1thread']:.0f} µs with "
            f"`num_threads=1`); with `pred_contrib=True` (the TreeSHAP behind `/explain`) "
            f"{floors['contrib']:,.0f} µs ({floors['contrib_1thread']:,.0f} µs with "
            "`num_threads=1`)."
        )
    parts += [f"- note: {n}" for n in info.get("notes", [])]
    return "\n".join(parts)


def check_note(check: dict) -> str:
    bits = []
    if "in_process_max_abs_diff" in check:
        bits.append(
            "both trainings give the same probabilities on the first "
            f"{CHECK_ROWS} rows (max abs diff {check['in_process_max_abs_diff']:.1e})"
        )
    if "served_vs_in_process" in check:
        bits.append(
            "modelloop's answers match its in-process `predict_proba` (max abs diff "
            f"{check['served_vs_in_process']:.1e})"
        )
    if "label_mismatches" in check:
        bits.append(
            f"the servers' answers on those rows disagree on {check['label_mismatches']} "
            "labels (MLflow's pyfunc answers the class, modelloop the probability, thresholded "
            "at 0.5 here)"
        )
    if check.get("explain_keys") is not None:
        bits.append(
            f"`/explain?top_k={TOP_K}` answers {check['explain_reason_codes']} reason codes per "
            f"row (keys: {', '.join(check['explain_keys'])})"
        )
    return "; ".join(bits) + "." if bits else "not checked."


def mlflow_python() -> Path:
    """The MLflow venv's python, with the project's LightGBM version added to it if missing."""
    python = ensure_peer_venv("mlflow", MLFLOW_REQUIREMENTS)
    want = package_version(ML_PYTHON, "lightgbm")
    if package_version(python, "lightgbm") != want:
        log(f"installing lightgbm=={want} into {python.parent.parent}")
        pin = f"lightgbm=={want}" if want != "?" else "lightgbm"
        subprocess.run([str(python), "-m", "pip", "install", "-q", pin], check=True)
    return python


def hey_version() -> str:
    out = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "hey"], capture_output=True, text=True
    )
    return out.stdout.strip() or "?"


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwind the context managers: every server gets stopped


def main() -> None:
    if sys.argv[1:2] == ["worker"]:
        worker_main(sys.argv[2:])
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="3 s per measurement, one repeat")
    p.add_argument("--workers", default="1,2", help="modelloop worker counts, comma-separated")
    p.add_argument("--sides", default="mlflow,modelloop", help="comma-separated (for debugging)")
    p.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    a = p.parse_args()
    signal.signal(signal.SIGTERM, _sigterm)
    sz = QUICK if a.quick else FULL
    workers = [int(w) for w in a.workers.split(",") if w]
    wanted = {s.strip().lower() for s in a.sides.split(",")}
    if shutil.which("hey") is None:
        sys.exit("hey is not installed: apt-get install -y hey")
    notes = []
    if os.environ.get("MLFLOW_MODELS_WORKERS"):
        notes.append(f"MLFLOW_MODELS_WORKERS={os.environ['MLFLOW_MODELS_WORKERS']} was set")

    BENCH_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="serving-", dir=BENCH_DIR) as tmp_s:
        tmp = Path(tmp_s)
        sides: list[Side] = []
        if "mlflow" in wanted:
            sides.append(MlflowSide(mlflow_python(), tmp))
        if "modelloop" in wanted:
            sides.append(ModelloopSide(tmp))
        for s in sides:
            log(f"{s.name}: training and registering the model")
            info_s = s.setup()
            log(f"{s.name}: trained in {info_s['train_s']:.1f}s")
        bodies = write_payloads(sides, tmp)

        results: Results = {}
        logs: dict[str, dict] = {}
        check: dict = {}
        mlflow_procs = 0
        phases = {}
        with contextlib.ExitStack() as stack:
            servers: dict[str, tuple[str, int]] = {}
            mf = next((s for s in sides if isinstance(s, MlflowSide)), None)
            ml = next((s for s in sides if isinstance(s, ModelloopSide)), None)
            if mf:
                log("starting mlflow models serve")
                servers[mf.name] = stack.enter_context(mf.server())
                mlflow_procs = group_size(servers[mf.name][1])
            for w in workers if ml else [0]:
                phase = f"w{w}" if ml else "mlflow"
                phases[phase] = (
                    f"modelloop `--workers {w}` (prediction logging on) vs MLflow default"
                    if ml
                    else "MLflow only"
                )
                pred_log = tmp / f"predictions-{phase}"
                with contextlib.ExitStack() as phase_stack:
                    if ml:
                        log(f"starting modelloop serve --workers {w}")
                        servers[ml.name] = phase_stack.enter_context(ml.server(w, pred_log))
                    checked_rows = 0
                    if not check:
                        bases = {n: b for n, (b, _) in servers.items()}
                        check = check_same_model(bases, sides)
                        checked_rows = CHECK_ROWS + 1  # 100 rows /predict, 1 row /explain
                        log(f"same-model check: {check_note(check)}")
                    results[phase] = run_phase(phase, sides, servers, bodies, sz)
                if ml:  # server stopped: its log is flushed
                    answered = answered_rows(results[phase]["modelloop"]) + checked_rows
                    logs[phase] = ml.count_log(pred_log) | {"answered": answered}
                    log(f"prediction log {phase}: {logs[phase]}")

    info = machine_info() | {
        "modelloop": package_version(ML_PYTHON, "modelloop"),
        "ml_python": python_version(ML_PYTHON),
        "ml_lightgbm": package_version(ML_PYTHON, "lightgbm"),
        "ml_uvicorn": package_version(ML_PYTHON, "uvicorn"),
        "mlflow": mf.version if mf else "—",
        "mlflow_python": python_version(mf.python) if mf else "—",
        "mlflow_lightgbm": package_version(mf.python, "lightgbm") if mf else "—",
        "mlflow_uvicorn": package_version(mf.python, "uvicorn") if mf else "—",
        "hey": hey_version(),
        "phases": phases,
        "mlflow_procs": mlflow_procs,
        "notes": notes,
        "floors": ml.setup_info.get("floors") if ml else None,
    }
    text = render(results, logs, info, check, command_line("serving.py"), sz)
    raw = {"results": results, "logs": logs, "check": check, "info": info}
    publish("serving", text, raw, docs=not a.no_docs and len(sides) == 2)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        log("interrupted: every server started here was stopped")
        sys.exit(130)
