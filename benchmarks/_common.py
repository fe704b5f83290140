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
