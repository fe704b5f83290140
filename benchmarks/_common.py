"""Shared plumbing for the benchmarks: peer venvs, servers, subprocess workers, markdown output.

Standard library only: the peer-side scripts (e.g. ``_mlflow_side.py``) import this module from
inside the peer's own virtualenv, where modelloop and its dependencies are not installed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / ".bench"
DOCS = ROOT / "docs" / "benchmarks.md"
DOCS_HEADER = (
    "# Benchmarks\n\n"
    "Each section is written by a script in `benchmarks/`: the peer and modelloop measured in the\n"
    "same run on the same machine, compared by ratio. See `benchmarks/README.md`.\n"
)


def log(msg: str) -> None:
    """Progress goes to stderr so stdout stays clean for results."""
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# -- peer virtualenvs -------------------------------------------------------------------------


def ensure_peer_venv(name: str, requirements: Sequence[str]) -> Path:
    """Create ``.bench/<name>-venv`` with ``requirements`` installed; return its python.

    A marker file records what was installed, so a second call with the same requirements is a
    no-op. The project's own environment is never touched.
    """
    venv = BENCH_DIR / f"{name}-venv"
    python = venv / "bin" / "python"
    marker = venv / ".bench-requirements"
    wanted = "\n".join(requirements)
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    if not python.exists():
        log(f"creating {venv}")
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    log(f"installing {' '.join(requirements)} into {venv} (takes a few minutes the first time)")
    subprocess.run([str(python), "-m", "pip", "install", "-q", *requirements], check=True)
    marker.write_text(wanted)
    return python


def package_version(python: Path | str, dist: str) -> str:
    """Installed version of ``dist`` in the environment of ``python`` (or ``"?"``)."""
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return out.stdout.strip() or "?"


def python_version(python: Path | str) -> str:
    code = "import platform; print(platform.python_version())"
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True).stdout.strip()


# -- subprocess workers -----------------------------------------------------------------------


def run_worker(
    cmd: Sequence[str | Path], env: dict[str, str] | None = None, cwd: Path | None = None
) -> dict:
    """Run a worker that prints one JSON object as its last stdout line; return it."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [str(c) for c in cmd], env=full_env, cwd=cwd, capture_output=True, text=True
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"worker failed ({proc.returncode}): {' '.join(map(str, cmd))}\n"
            f"--- stdout ---\n{proc.stdout[-3000:]}\n--- stderr ---\n{proc.stderr[-3000:]}"
        )
    return json.loads(lines[-1])


def emit(result: dict) -> None:
    """What a worker calls last: one JSON line on stdout."""
    print(json.dumps(result), flush=True)


def timed_reads(fn: Callable[[], object], repeats: int = 3) -> tuple[dict, object]:
    """Time one cold call of ``fn()`` and then ``repeats`` warm ones; return the last value.

    The timing dict holds ``ms`` (median of the warm calls), ``first_ms`` (the cold call, which
    pays lazy imports and empty caches) and ``all_ms``.
    """
    times, value = [], None
    for _ in range(repeats + 1):
        t = time.perf_counter()
        value = fn()
        times.append(round((time.perf_counter() - t) * 1000, 3))
    return {"ms": statistics.median(times[1:]), "first_ms": times[0], "all_ms": times}, value


# -- servers ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http_ok(url: str, timeout: float = 120.0, proc: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers 200; fail early if ``proc`` dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before {url} answered")
        with (
            contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError),
            urllib.request.urlopen(url, timeout=2) as resp,
        ):
            if resp.status == 200:
                return
        time.sleep(0.25)
    raise TimeoutError(f"{url} did not answer 200 within {timeout:.0f}s")


def _group_cpu_seconds(pgid: int) -> float:
    """CPU time (user + system) used so far by the live processes of process group ``pgid``."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:  # pgrp; utime and stime follow at 11 and 12
                total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def wait_idle(pgid: int, timeout: float = 60.0, busy: float = 0.05) -> None:
    """Wait until process group ``pgid`` uses < ``busy`` of a core for two 0.5 s intervals.

    Servers answer their health check before all workers have started; measuring while they
    still import their code would charge the peer's startup to its request latency.
    """
    deadline, quiet = time.monotonic() + timeout, 0
    last = _group_cpu_seconds(pgid)
    while quiet < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
        now = _group_cpu_seconds(pgid)
        quiet = quiet + 1 if now - last < busy * 0.5 else 0
        last = now


def machine_busy_seconds() -> float:
    """CPU time (all cores, all processes) the machine has spent busy since boot, in seconds."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def wait_machine_quiet(max_cores: float = 0.3, window: float = 1.0, timeout: float = 30.0) -> float:
    """Wait until the whole machine uses < ``max_cores`` cores over ``window`` seconds.

    On a shared machine other people's jobs come and go; measuring only in quiet moments keeps
    them out of the figures. Returns the last load seen (cores), which is above ``max_cores``
    if ``timeout`` ran out first.
    """
    deadline, load = time.monotonic() + timeout, float("inf")
    while True:
        before = machine_busy_seconds()
        time.sleep(window)
        load = (machine_busy_seconds() - before) / window
        if load < max_cores or time.monotonic() >= deadline:
            return load


@contextlib.contextmanager
def running_server(
    cmd: Sequence[str | Path],
    health_url: str,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    log_path: Path | None = None,
) -> Iterator[subprocess.Popen]:
    """Start a server in its own process group, wait until healthy and idle; stop it on exit."""
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [str(c) for c in cmd],
        env={**os.environ, **(env or {})},
        cwd=cwd,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        try:
            wait_http_ok(health_url, proc=proc)
        except (RuntimeError, TimeoutError) as exc:
            tail = log_path.read_text(errors="replace")[-3000:] if log_path else ""
            raise RuntimeError(f"{exc}\n--- server log ---\n{tail}") from exc
        wait_idle(proc.pid)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if log_path:
            out.close()


# -- shared workloads -------------------------------------------------------------------------


SEARCH_EXPERIMENT = "search-10k"
SEARCH_FILTER = "metrics.m0 > 0.5 and params.p0 = 'x'"
SEARCH_ORDER_BY = ["metrics.m1 DESC"]
SEARCH_MAX_RESULTS = 1000


def search_dataset(n_runs: int, seed: int = 7) -> Iterator[tuple[dict[str, float], dict[str, str]]]:
    """Metrics ``m0..m4`` and params ``p0..p4`` of each seeded run, identical for every peer."""
    rng = random.Random(seed)
    for r in range(n_runs):
        metrics = {f"m{k}": rng.random() for k in range(5)}
        params = {"p0": "x" if r % 2 == 0 else "y"}
        params.update({f"p{k}": str(rng.randint(0, 99)) for k in range(1, 5)})
        yield metrics, params


FRAUD_ROWS, FRAUD_FEATURES = 50_000, 30


def fraud_dataset(n: int = FRAUD_ROWS, d: int = FRAUD_FEATURES, seed: int = 0):
    """The anchor's fraud-like data (``anchors/mlflow_serving_setup.py``): ``(X, y, columns)``.

    ``X`` is an ``(n, d)`` float array of standard normals, ``y`` a 0/1 label array with ~2%
    positives. Same numbers in every environment with the same NumPy; NumPy is imported here
    so this module stays importable without it.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    logit = 2.5 * x[:, 0] - 1.5 * x[:, 1] * x[:, 2] + x[:, 3] ** 2 - 6
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return x, y, [f"f{i}" for i in range(d)]


# -- HTTP load (hey) ----------------------------------------------------------------------------


HEY = "hey"


def _hey_seconds(text: str, label: str) -> float | None:
    """Seconds after ``label`` in hey's summary (e.g. ``"Average:"``), or None."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and line.strip().startswith(label):
            with contextlib.suppress(ValueError):
                return float(parts[len(label.split())])
    return None


def parse_hey(text: str) -> dict:
    """The figures of one hey run: req/s, latencies (ms), status codes and errors.

    ``ok`` counts 2xx responses, ``non_2xx`` the other statuses, ``errors`` the requests that
    got no response at all (connection errors, timeouts), with their messages in
    ``error_lines``; ``ok_rps`` is 2xx answers per second of the whole run.
    """
    out: dict = {"rps": None, "p50_ms": None, "p90_ms": None, "p99_ms": None}
    out["rps"] = _hey_seconds(text, "Requests/sec:")
    out["total_s"] = _hey_seconds(text, "Total:")
    for key, label in (("avg_ms", "Average:"), ("slowest_ms", "Slowest:")):
        s = _hey_seconds(text, label)
        out[key] = None if s is None else s * 1000
    section, statuses, errors, error_lines = "", {}, 0, []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("Latency distribution"):
            section = "latency"
        elif line.startswith("Status code distribution"):
            section = "status"
        elif line.startswith("Error distribution"):
            section = "errors"
        elif line.startswith(("Details", "Response time histogram")):
            section = ""
        elif section == "latency" and "% in " in line:
            pct, rest = line.split("% in ", 1)
            with contextlib.suppress(ValueError):
                out[f"p{int(pct)}_ms"] = float(rest.split()[0]) * 1000
        elif section == "status" and line.startswith("["):
            code, rest = line[1:].split("]", 1)
            statuses[int(code)] = int(rest.split()[0])
        elif section == "errors" and line.startswith("["):
            count, rest = line[1:].split("]", 1)
            errors += int(count)
            error_lines.append(line)
    out["statuses"] = statuses
    out["ok"] = sum(n for code, n in statuses.items() if 200 <= code < 300)
    out["non_2xx"] = sum(n for code, n in statuses.items() if not 200 <= code < 300)
    out["errors"] = errors
    out["error_lines"] = error_lines
    # hey prints no 99% line under 100 requests: then the slowest request stands for it.
    out["p99_is_max"] = out["p99_ms"] is None and out["slowest_ms"] is not None
    if out["p99_is_max"] and out["ok"] + out["non_2xx"]:
        out["p99_ms"] = out["slowest_ms"]
    # hey's Requests/sec counts failed requests too; this one counts only the 2xx answers.
    out["ok_rps"] = out["ok"] / out["total_s"] if out["total_s"] else None
    return out


def run_hey(
    url: str,
    body: Path,
    *,
    concurrency: int,
    duration_s: float | None = None,
    requests: int | None = None,
    timeout_s: int = 20,
) -> dict:
    """POST ``body`` (JSON) to ``url`` with hey, bounded by ``duration_s`` or ``requests``.

    Returns :func:`parse_hey` of its output plus the command line and the raw text.
    """
    cmd = [HEY, "-c", str(concurrency), "-t", str(timeout_s)]
    cmd += ["-z", f"{duration_s:g}s"] if duration_s else ["-n", str(requests or 200)]
    cmd += ["-m", "POST", "-T", "application/json", "-D", str(body), url]
    limit = (duration_s or 0) + 4 * timeout_s + 60
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit)
    if proc.returncode != 0:
        raise RuntimeError(f"hey failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")
    return {**parse_hey(proc.stdout), "cmd": " ".join(cmd), "raw": proc.stdout}


# -- reporting --------------------------------------------------------------------------------


def machine_info() -> dict[str, str]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": cpu,
        "os": f"{platform.system()} {platform.release()}",
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def command_line(script: str) -> str:
    """How this run was started, as the docs print it for reproducing."""
    return " ".join([f".venv/bin/python benchmarks/{script}", *sys.argv[1:]])


def publish(section: str, text: str, results: object, *, docs: bool) -> None:
    """Print the section, keep the raw results under ``.bench/`` and, with ``docs``, replace the
    section of ``docs/benchmarks.md``."""
    print(text)
    (BENCH_DIR / f"{section}-results.json").write_text(json.dumps(results, indent=1))
    if docs:
        write_docs_section(section, text)
        log(f"wrote the {section} section of docs/benchmarks.md")


def write_docs_section(name: str, body: str, path: Path = DOCS) -> None:
    """Replace the text between ``<!-- name:start -->`` and ``<!-- name:end -->`` in ``path``.

    Appends the section if the markers are missing; everything else in the file is kept.
    """
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.strip()}\n{end}"
    text = path.read_text() if path.exists() else DOCS_HEADER
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def fmt_num(x: float | None) -> str:
    """Human-sized number: 3 significant digits, thousands separators."""
    if x is None:
        return "—"
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"
