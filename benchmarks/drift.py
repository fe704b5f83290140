"""Drift: modelloop vs Evidently 0.7 ``DataDriftPreset``, same run, same data, compared by ratio.

    .venv/bin/python benchmarks/drift.py [--quick] [--regenerate] [--no-docs]

Data (seeded, generated once into ``.bench/drift-data/``): reference and current Parquet files of
100k and 1M rows (reference as large as current) with 20 numeric columns (normal, lognormal,
uniform, integer-valued) and 5 categorical ones (3 to 50 categories, Zipf-like frequencies), a few
nulls; the current data is shifted in 4 columns (two means, one scale, one categorical frequency
change); plus a 10M-row current file, all written 1M rows at a time in row groups of 250k rows.

Evidently runs in ``.bench/evidently-venv`` (``_evidently_side.py``): ``Report([DataDriftPreset()])
.run(current, reference)`` on the loaded frames, its default methods. modelloop runs in a fresh
process of this interpreter (``drift.py worker ...``): the reference profile is fitted once
(timed apart), stored as JSON and loaded back, then ``check_drift`` of the loaded current frame
against it is timed with default methods, which mirror Evidently's. The 10M rows go through
``check_drift_chunks`` over ``ParquetFile.iter_batches``; its peak memory is the worker's maximum
resident set size (``VmHWM`` in ``/proc/self/status``). Evidently is not run on 10M rows.
Prints the tables and writes the ``drift`` section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

from _common import (
    BENCH_DIR,
    command_line,
    emit,
    ensure_peer_venv,
    log,
    machine_info,
    markdown_table,
    package_version,
    publish,
    python_version,
    run_worker,
    wait_machine_quiet,
)

HERE = Path(__file__).resolve().parent
ML_PYTHON = Path(sys.executable)
EVIDENTLY_REQUIREMENTS = ["evidently==0.7.*", "pandas>=2.2,<3", "numpy", "pyarrow"]  # 0.7: pandas 2
DATA_VERSION = 2  # bump when the generator changes: the files are cached by version
DATA = BENCH_DIR / "drift-data" / f"v{DATA_VERSION}"
ROWS = {"100k": 100_000, "1M": 1_000_000, "10M": 10_000_000}
WRITE_ROWS = 1_000_000  # rows generated and written at a time
BATCH_ROWS = 250_000  # rows per Parquet row group, and per chunk read by the chunked check
TARGET_RATIO = 40.0

# Numeric columns n0..n19: (generator, parameters); integer ones are stored as int64.
NUMERIC = [
    ("normal", (0, 1)),
    ("normal", (10, 2)),  # n1 shifted: mean +1 (0.5 sd)
    ("normal", (-5, 0.5)),
    ("normal", (0, 3)),  # n3 shifted: scale x1.5
    ("normal", (100, 15)),
    ("normal", (0, 1)),  # n5: 2% nulls
    ("normal", (50, 10)),
    ("normal", (1, 0.1)),
    ("lognormal", (0, 0.5)),
    ("lognormal", (1, 0.8)),
    ("lognormal", (2, 0.3)),
    ("lognormal", (0, 1)),
    ("lognormal", (3, 0.6)),
    ("uniform", (0, 1)),
    ("uniform", (-10, 10)),
    ("uniform", (100, 200)),
    ("uniform", (0, 1000)),
    ("integers", (0, 1000)),
    ("poisson", (30,)),  # n18 shifted: mean 30 -> 35
    ("rounded_normal", (20, 5)),
]
CATEGORIES = [3, 8, 10, 25, 50]  # c0..c4; c1 has 1% nulls, c2 is shifted
SHIFTS = {
    "n1": "mean +0.5 sd (normal)",
    "n3": "scale x1.5 (normal)",
    "n18": "mean 30 → 35 (Poisson)",
    "c2": "10 category frequencies reversed",
}


class Sizes(NamedTuple):
    compared: tuple[str, ...]  # sizes run on both sides
    chunked: tuple[str, ...]  # current files checked in chunks by modelloop
    evidently_repeats: dict[str, int]
    modelloop_repeats: int


FULL = Sizes(("100k", "1M"), ("1M", "10M"), {"100k": 3, "1M": 1}, 5)
QUICK = Sizes(("100k",), ("100k",), {"100k": 1}, 3)


# -- data -------------------------------------------------------------------------------------


def data_path(role: str, size: str) -> Path:
    return DATA / f"{role}-{size}.parquet"


def make_frame(n: int, seed: Any, shifted: bool) -> Any:
    """``n`` rows of the 25 columns; ``shifted`` applies the 4 shifts of ``SHIFTS``."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for i, (kind, args) in enumerate(NUMERIC):
        name = f"n{i}"
        if shifted and name == "n1":
            args = (args[0] + 1, args[1])
        if shifted and name == "n3":
            args = (args[0], args[1] * 1.5)
        if shifted and name == "n18":
            args = (35,)
        if kind == "rounded_normal":
            values = np.round(rng.normal(*args, n)).astype(np.int64)
        elif kind == "integers":
            values = rng.integers(*args, n)
        else:
            values = getattr(rng, kind)(*args, n)
        if name == "n5":
            values[rng.random(n) < 0.02] = np.nan
        columns[name] = values
    for j, k in enumerate(CATEGORIES):
        name = f"c{j}"
        p = 1 / np.arange(1, k + 1)
        p = p / p.sum()
        if shifted and name == "c2":
            p = p[::-1]
        labels = np.array([f"{name}_{v:02d}" for v in range(k)], dtype=object)
        values = labels[rng.choice(k, n, p=p)]
        if name == "c1":
            values[rng.random(n) < 0.01] = None
        columns[name] = values
    return pd.DataFrame(columns)


def write_parquet(path: Path, rows: int, seed: int, shifted: bool) -> None:
    """Write ``rows`` rows ``WRITE_ROWS`` at a time, never all in memory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp = path.with_suffix(".tmp")
    writer = None
    for k, start in enumerate(range(0, rows, WRITE_ROWS)):
        frame = make_frame(min(WRITE_ROWS, rows - start), [seed, k], shifted)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        writer = writer or pq.ParquetWriter(tmp, table.schema)
        writer.write_table(table, row_group_size=BATCH_ROWS)
    assert writer is not None
    writer.close()
    tmp.rename(path)


def ensure_data(sizes: Sizes, regenerate: bool) -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    wanted = [("reference", s, 1, False) for s in sizes.compared]
    wanted += [("current", s, 2, True) for s in {*sizes.compared, *sizes.chunked}]
    for role, size, seed, shifted in sorted(wanted):
        path = data_path(role, size)
        if path.exists() and not regenerate:
            continue
        log(f"generating {path.name} ({ROWS[size]:,} rows x 25 columns)")
        t = time.perf_counter()
        write_parquet(path, ROWS[size], seed * 100 + list(ROWS).index(size), shifted)
        mib, seconds = path.stat().st_size / 2**20, time.perf_counter() - t
        log(f"wrote {path.name}: {mib:,.0f} MiB in {seconds:.0f}s")


# -- modelloop workers (each in a fresh process of this interpreter) --------------------------


def _peak_mib() -> float:
    """Peak resident memory of this process (``VmHWM``), in MiB.

    Not ``getrusage().ru_maxrss``: Linux carries the forking parent's resident size into the
    child's across ``exec``, so a worker would report the driver's peak (e.g. data generation)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def _results(report: Any) -> dict[str, dict[str, Any]]:
    return {
        column: {"method": r.method, "value": r.value, "drifted": r.drifted, "status": r.status}
        for column, r in report.results.items()
    }


def ml_check(size: str, repeats: int) -> dict:
    """Fit the profile (timed), store it as JSON and load it back, time ``check_drift``."""
    import pandas as pd

    from modelloop.monitoring.drift import ColumnReference, check_drift, fit_references

    reference = pd.read_parquet(data_path("reference", size))
    t = time.perf_counter()
    fitted = fit_references(reference)
    fit_s = time.perf_counter() - t
    del reference
    profile = DATA / f"profile-{size}.json"
    profile.write_text(json.dumps({name: ref.to_dict() for name, ref in fitted.items()}))
    t = time.perf_counter()
    stored = {k: ColumnReference.from_dict(v) for k, v in json.loads(profile.read_text()).items()}
    load_s = time.perf_counter() - t
    if stored != fitted:
        raise RuntimeError("the reference profile did not survive its JSON round trip")

    current = pd.read_parquet(data_path("current", size))
    times, report = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        report = check_drift(stored, current)
        times.append(time.perf_counter() - t)
    return {
        "rows": len(current),
        "fit_s": fit_s,
        "load_s": load_s,
        "check_s": min(times),
        "all_check_s": times,
        "profile_bytes": profile.stat().st_size,
        "frame_bytes": int(current.memory_usage(deep=True).sum()),
        "drifted": list(report.drifted_columns) if report else [],
        "columns": _results(report),
        "peak_mib": _peak_mib(),
    }


def ml_chunks(size: str, profile: str, batch_rows: int) -> dict:
    """``check_drift_chunks`` over the batches of a Parquet file, against a stored profile."""
    import pyarrow.parquet as pq

    from modelloop.monitoring.drift import ColumnReference, check_drift_chunks

    stored = {
        k: ColumnReference.from_dict(v)
        for k, v in json.loads((DATA / f"profile-{profile}.json").read_text()).items()
    }
    baseline = _peak_mib()  # imports and the profile
    path = data_path("current", size)
    t = time.perf_counter()
    # pre_buffer (the default) coalesces reads across row groups and holds them: ~the whole file.
    source = pq.ParquetFile(path, pre_buffer=False)
    report = check_drift_chunks(stored, source.iter_batches(batch_size=batch_rows))
    check_s = time.perf_counter() - t
    return {
        "rows": source.metadata.num_rows,
        "row_groups": source.metadata.num_row_groups,
        "batch_rows": batch_rows,
        "file_bytes": path.stat().st_size,
        "check_s": check_s,
        "baseline_mib": baseline,
        "peak_mib": _peak_mib(),
        "drifted": list(report.drifted_columns),
        "columns": _results(report),
    }


def worker_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="drift.py worker")
    p.add_argument("what", choices=["check", "chunks"])
    p.add_argument("--size", required=True, choices=list(ROWS))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--profile", default="1M", help="chunks: the stored profile of this size")
    p.add_argument("--batch-rows", type=int, default=BATCH_ROWS)
    a = p.parse_args(argv)
    if a.what == "check":
        emit(ml_check(a.size, a.repeats))
    else:
        emit(ml_chunks(a.size, a.profile, a.batch_rows))


# -- driver -----------------------------------------------------------------------------------


def quiet() -> float:
    """Wait for a quiet machine (others share it); return the load seen, in cores."""
    return wait_machine_quiet(max_cores=0.3, window=1.0, timeout=30)


def measure(sizes: Sizes, evidently_python: Path) -> dict:
    res: dict[str, Any] = {"compared": {}, "chunked": {}, "loads": []}
    for size in sizes.compared:
        res["loads"].append(quiet())
        log(f"{size}: Evidently DataDriftPreset, best of {sizes.evidently_repeats[size]}")
        ev = run_worker(
            [evidently_python, HERE / "_evidently_side.py", "--reference",
             data_path("reference", size), "--current", data_path("current", size),
             "--repeats", sizes.evidently_repeats[size]]
        )  # fmt: skip
        res["loads"].append(quiet())
        log(f"{size}: modelloop fit, store, load, check_drift best of {sizes.modelloop_repeats}")
        ml = run_worker(
            [ML_PYTHON, Path(__file__).resolve(), "worker", "check", "--size", size,
             "--repeats", sizes.modelloop_repeats]
        )  # fmt: skip
        res["compared"][size] = {"evidently": ev, "modelloop": ml}
        log(f"{size}: Evidently {ev['run_s']:.2f}s, modelloop {ml['check_s']:.3f}s")
    profile = sizes.compared[-1]
    for size in sizes.chunked:
        res["loads"].append(quiet())
        log(f"{size}: modelloop check_drift_chunks, batches of {BATCH_ROWS:,} rows")
        res["chunked"][size] = run_worker(
            [ML_PYTHON, Path(__file__).resolve(), "worker", "chunks", "--size", size,
             "--profile", profile]
        )  # fmt: skip
        res["chunked"][size]["profile"] = profile
        log(f"{size}: {res['chunked'][size]['check_s']:.1f}s")
    return res


def drifted_sets(pair: dict) -> tuple[set[str], set[str]]:
    ev = {c for c, r in pair["evidently"]["columns"].items() if r["drifted"]}
    return ev, set(pair["modelloop"]["drifted"])


def same_note(ev: set[str], ml: set[str]) -> str:
    if ev == ml:
        return f"yes: {', '.join(sorted(ml))}"
    return f"no: Evidently only {sorted(ev - ml)}, modelloop only {sorted(ml - ev)}"


def compared_rows(res: dict) -> list[list[str]]:
    rows = []
    for pair in res["compared"].values():
        ev, ml = pair["evidently"], pair["modelloop"]
        ratio = ev["run_s"] / ml["check_s"]
        both = ml["fit_s"] + ml["check_s"]
        ev_set, ml_set = drifted_sets(pair)
        met = "yes" if ratio >= TARGET_RATIO and ev_set == ml_set else "no"
        rows.append(
            [f"{ml['rows']:,}", f"{ev['run_s']:.2f}", f"{ml['check_s']:.3f}", f"{ratio:,.0f}x",
             f"≥ {TARGET_RATIO:g}x, same columns", met, f"{ml['fit_s']:.2f}", f"{both:.2f}",
             f"{ev['run_s'] / both:,.1f}x", same_note(ev_set, ml_set)]
        )  # fmt: skip
    return rows


def chunked_rows(res: dict) -> list[list[str]]:
    rows = []
    for size, r in res["chunked"].items():
        compared = res["compared"].get(size)
        same = "yes" if set(r["drifted"]) == set(SHIFTS) else "no"
        if compared and r["drifted"] != compared["modelloop"]["drifted"]:
            same += " (differs from in memory)"
        evidently = "out of memory (published: evidently#1526; not run here)"
        if compared:
            evidently = f"{compared['evidently']['run_s']:.2f} s (in memory)"
        file = f"{r['file_bytes'] / 2**20:,.0f} MiB, {r['row_groups']} row group(s)"
        rows.append(
            [f"{r['rows']:,}", file,
             f"{r['batch_rows']:,}", f"{r['check_s']:.2f}", f"{r['rows'] / r['check_s'] / 1e6:.1f}",
             f"{r['peak_mib']:,.0f} MiB ({r['baseline_mib']:,.0f} before reading)",
             ", ".join(sorted(r["drifted"])), same, evidently]
        )  # fmt: skip
    return rows


def column_rows(pair: dict) -> list[list[str]]:
    rows = []
    ev, ml = pair["evidently"]["columns"], pair["modelloop"]["columns"]
    for i, column in enumerate(ml):
        kind = NUMERIC[i][0] if column.startswith("n") else f"{CATEGORIES[i - 20]} categories"
        e, m = ev.get(column, {}), ml[column]
        ev_cell = f"{e.get('method', '—')}: {e.get('value', float('nan')):.4f}"
        flags = f"{'yes' if e.get('drifted') else 'no'} / {'yes' if m['drifted'] else 'no'}"
        rows.append(
            [column, kind, SHIFTS.get(column, ""), ev_cell, f"{m['method']}: {m['value']:.4f}",
             flags]
        )  # fmt: skip
    return rows


COLUMN_HEADERS = ["column", "generated as", "shift in current", "Evidently", "modelloop",
                  "drifted (E / m)"]  # fmt: skip


def render(res: dict, info: dict, command: str, sizes: Sizes) -> str:
    headers = ["rows (reference = current)", "Evidently `DataDriftPreset` s",
               "modelloop `check_drift` s (stored profile)", "modelloop faster by", "target",
               "met", "modelloop fit profile s", "modelloop fit + check s",
               "faster by, incl. fit", "same drifted columns"]  # fmt: skip
    chunk_headers = ["current rows", "Parquet file", "rows per chunk", "modelloop s",
                     "M rows/s", "peak RSS", "drifted columns", "= the shifted ones",
                     "Evidently"]  # fmt: skip
    largest = sizes.compared[-1]
    pair = res["compared"][largest]
    ml, ev = pair["modelloop"], pair["evidently"]
    reps = ", ".join(f"{s} best of {n}" for s, n in sizes.evidently_repeats.items())
    parts = [
        "## Drift: modelloop vs Evidently `DataDriftPreset`",
        "",
        f"Measured {info['date']} on {info['nproc']} cores ({info['cpu']}), {info['os']}. "
        f"modelloop {info['modelloop']} (Python {info['ml_python']}, NumPy {info['ml_numpy']}, "
        f"pandas {info['ml_pandas']}, SciPy {info['ml_scipy']}, PyArrow {info['ml_pyarrow']}); "
        f"Evidently {ev['evidently']} (Python {info['ev_python']}, pandas {ev['pandas']}), in "
        "`.bench/evidently-venv`.",
        "",
        f"Reproduce: `{command}` (or `make bench`) from the repository root.",
        "",
        "### Drift check, 20 numeric + 5 categorical columns, shift in 4 of them",
        "",
        markdown_table(headers, compared_rows(res)),
        "",
        "### Larger than memory: `check_drift_chunks` over Parquet batches",
        "",
        markdown_table(chunk_headers, chunked_rows(res)),
        "",
        f"### Per column, {int(ml['rows']):,} rows (Evidently / modelloop)",
        "",
        markdown_table(COLUMN_HEADERS, column_rows(pair)),
        "",
        "- Data: seeded NumPy, written once to `.bench/drift-data/` as Parquet; reference and "
        "current have as many rows (independent draws). Nulls: 2% in `n5`, 1% in `c1`. "
        "Evidently's categorical and numerical columns are declared in its `DataDefinition`.",
        f"- Evidently: `Report([DataDriftPreset()]).run(current, reference)` on frames already "
        f"wrapped in `Dataset.from_pandas` ({reps}; wrapping both frames took "
        f"{ev['wrap_s']:.2f} s more at {int(ml['rows']):,} rows). Its verdict per column is "
        "value ≥ threshold for distances (p-value < threshold for tests).",
        f"- modelloop: `check_drift(profile, current)` with default methods (best of "
        f"{sizes.modelloop_repeats}), the profile fitted once by `fit_references(reference)` "
        f"(the fit column), stored as JSON ({ml['profile_bytes'] / 1024:,.0f} KiB) and loaded "
        f"back with `ColumnReference.from_dict` ({ml['load_s'] * 1000:.1f} ms, not in the "
        "check time). Evidently has no stored profile: each run reads the reference data "
        "again, so the fit + check column is the like-for-like one for a single check.",
        "- Same methods on both sides at these sizes: normalised Wasserstein for numbers and "
        "Jensen-Shannon distance for categories, threshold 0.1, dataset drift at a 0.5 share. "
        "Values differ slightly: modelloop's Jensen-Shannon uses base 2 (Evidently natural "
        "logs, so its values are ~0.83 of modelloop's), its Wasserstein is normalised by the "
        "sample standard deviation (ddof 1; Evidently ddof 0) and is computed from the "
        "reference's quantile sketch (within 0.01 of exact, tested) rather than from the "
        "reference rows.",
        f"- Chunked rows: the profile of the {largest} reference, `pyarrow.parquet.ParquetFile"
        f"(path, pre_buffer=False).iter_batches(batch_size={BATCH_ROWS:,})` into "
        "`check_drift_chunks`, in a fresh "
        "process; wall time includes reading and decoding the Parquet file. Peak RSS is the "
        "worker's high-water resident set (`VmHWM` in `/proc/self/status`) over its whole life: "
        "interpreter, imports, profile, one batch at a time. For scale, the in-memory "
        f"`check_drift` worker at {largest} rows peaked at {ml['peak_mib']:,.0f} MiB (reference "
        f"and current frames loaded; the current frame alone is "
        f"{ml['frame_bytes'] / 2**20:,.0f} MiB).",
        "- Machine load (other users' cores) before each measurement: "
        + ", ".join(f"{x:.2f}" for x in res["loads"])
        + " (each waited for < 0.3 cores, 30 s at most).",
    ]
    return "\n".join(parts)


def main() -> None:
    if sys.argv[1:2] == ["worker"]:
        worker_main(sys.argv[2:])
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="100k rows only, one Evidently run")
    p.add_argument("--regenerate", action="store_true", help="rewrite the Parquet files")
    p.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    a = p.parse_args()
    sizes = QUICK if a.quick else FULL
    ensure_data(sizes, a.regenerate)
    evidently_python = ensure_peer_venv("evidently", EVIDENTLY_REQUIREMENTS)
    res = measure(sizes, evidently_python)
    info = machine_info() | {
        "modelloop": package_version(ML_PYTHON, "modelloop"),
        "ml_python": python_version(ML_PYTHON),
        "ev_python": python_version(evidently_python),
        **{
            f"ml_{d}": package_version(ML_PYTHON, d)
            for d in ("numpy", "pandas", "scipy", "pyarrow")
        },
    }
    text = render(res, info, command_line("drift.py"), sizes)
    publish("drift", text, res, docs=not a.no_docs)


if __name__ == "__main__":
    main()
