"""Drift: modelloop vs Evidently 0.7 ``DataDriftPreset``, same run, same data, compared by ratio.

    .venv/bin/python benchmarks/drift.py [--quick | --discrete] [--regenerate] [--no-docs]

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

Discrete data (also run alone with ``--discrete``; seconds): the phishing-websites table that
River ships inside its package (1,250 rows, 7 three-valued float features, 2 binary integer ones
and the boolean label, in stream order), exported by ``_river_side.py`` in ``.bench/river-venv``
(River is never installed into ``.venv``). Reference = the first half, current = the second
half, and a copy of the current half with 3 columns shifted (seeded). Evidently infers the
column types itself (no ``DataDefinition``), as for a user who declares none; modelloop fits its
references with no declaration either. Per column: each side's type, test and p-value, and
modelloop's previous answer (KS on every numeric column). Then both sides' false alarm rates
on 200 seeded random splits of the 1,250 rows into halves (no drift by construction), each
column through each side's default test. modelloop also runs a third way: Evidently's
chi-square (``chi_squared_gof``, opt-in) on every column its default tests with chi-squared
(the two-valued ones keep the z-test, as in Evidently). Writes the ``drift-discrete`` section.
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
RIVER_REQUIREMENTS = ["river==0.26.*"]  # the phishing table ships inside the package
PHISHING = BENCH_DIR / "drift-data" / "phishing"
PHISHING_VERSION = 1  # bump when the shifts or the splits change
PHISHING_SEED = 2026
FALSE_ALARM_SPLITS = 200
# (share of the current rows, seeded, set to this value): frequency shifts, the values unchanged
PHISHING_SHIFTS = {"popup_window": (0.08, 1.0), "long_url": (0.10, 1.0), "ip_in_url": (0.06, 1)}
ALPHA = 0.05

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

    from modelloop.datasets.reference import ColumnReference, fit_references
    from modelloop.monitoring.drift import check_drift

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

    from modelloop.datasets.reference import ColumnReference
    from modelloop.monitoring.drift import check_drift_chunks

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


def _discrete_results(report: Any) -> dict[str, dict[str, Any]]:
    return {
        column: {
            "column_type": r.column_type,
            "method": r.method,
            "value": r.value,
            "p_value": r.p_value,
            "drifted": r.drifted,
        }
        for column, r in report.results.items()
    }


def _gof_methods(report: Any) -> dict[str, str]:
    """Evidently's chi-square where the default chose modelloop's: the z-test columns stay."""
    return {c: "chi_squared_gof" for c, r in report.results.items() if r.method == "chi_squared"}


def ml_discrete(reference_path: str, current_path: str, splits: str | None) -> dict:
    """modelloop's default tests, Evidently's chi-square (``chi_squared_gof``) in place of its
    chi-squared, and KS on every numeric column (its answer before column types), of a current
    file against the stored reference of another; with ``splits``, the false alarms of all
    three on random splits of the pooled rows."""
    import numpy as np
    import pandas as pd

    from modelloop.datasets.profile import column_kind
    from modelloop.datasets.reference import ColumnReference, fit_references
    from modelloop.monitoring.drift import check_drift

    reference, current = pd.read_parquet(reference_path), pd.read_parquet(current_path)
    fitted = fit_references(reference)
    stored = {
        k: ColumnReference.from_dict(json.loads(json.dumps(r.to_dict()))) for k, r in fitted.items()
    }
    if stored != fitted:
        raise RuntimeError("the reference profile did not survive its JSON round trip")
    ks = {c: "ks" for c in reference.columns if column_kind(reference[c]) == "numeric"}
    default = check_drift(stored, current)
    out: dict[str, Any] = {
        "rows": [len(reference), len(current)],
        "dtypes": {c: str(t) for c, t in reference.dtypes.items()},
        "distinct": {c: int(reference[c].nunique()) for c in reference.columns},
        "columns": _discrete_results(default),
        "gof": _discrete_results(check_drift(stored, current, methods=_gof_methods(default))),
        "ks": _discrete_results(check_drift(stored, current, methods=ks)),
    }
    if splits:
        pooled = pd.concat([reference, current], ignore_index=True)
        half = len(reference)
        alarms = {c: {"now": 0, "gof": 0, "ks": 0, "tests": set()} for c in pooled.columns}
        for order in np.load(splits):
            ref, cur = pooled.iloc[order[:half]], pooled.iloc[order[half:]]
            references = fit_references(ref)
            now, before = check_drift(references, cur), check_drift(references, cur, methods=ks)
            gof = check_drift(references, cur, methods=_gof_methods(now))
            for column, r in now.results.items():
                alarms[column]["now"] += r.drifted
                alarms[column]["tests"].add(r.method)
                alarms[column]["gof"] += gof.results[column].drifted
                alarms[column]["ks"] += before.results[column].drifted
        out["false_alarms"] = {
            c: {**a, "tests": sorted(a["tests"]), "splits": len(np.load(splits))}
            for c, a in alarms.items()
        }
    return out


def worker_main(argv: list[str]) -> None:
    if argv[:1] == ["discrete"]:
        p = argparse.ArgumentParser(prog="drift.py worker discrete")
        p.add_argument("--reference", required=True)
        p.add_argument("--current", required=True)
        p.add_argument("--false-alarms")
        a = p.parse_args(argv[1:])
        emit(ml_discrete(a.reference, a.current, a.false_alarms))
        return
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


# -- discrete data: River's phishing table ------------------------------------------------------


def phishing_path(name: str) -> Path:
    return PHISHING / f"v{PHISHING_VERSION}" / name


def ensure_phishing(regenerate: bool) -> dict:
    """Export the table with River (its own venv) once; write the reference, current and
    shifted Parquet files and the seeded splits from it (deterministic, so every run)."""
    import numpy as np
    import pandas as pd

    river_python = ensure_peer_venv("river", RIVER_REQUIREMENTS)
    phishing_path("").mkdir(parents=True, exist_ok=True)
    exported = phishing_path("river.json")
    if regenerate or not exported.exists():
        log("exporting River's phishing table")
        meta = run_worker(
            [river_python, HERE / "_river_side.py", "--out", phishing_path("phishing.csv")]
        )
        exported.write_text(json.dumps(meta))
    table = pd.read_csv(phishing_path("phishing.csv"))
    half = len(table) // 2
    reference = table.iloc[:half].reset_index(drop=True)
    current = table.iloc[half:].reset_index(drop=True)
    shifted = current.copy()
    rng = np.random.default_rng(PHISHING_SEED)
    for column, (share, value) in PHISHING_SHIFTS.items():
        rows = rng.choice(len(shifted), round(share * len(shifted)), replace=False)
        shifted.loc[rows, column] = value
    for name, frame in (("reference", reference), ("current", current), ("shifted", shifted)):
        frame.to_parquet(phishing_path(f"{name}.parquet"), index=False)
    splits = np.stack([rng.permutation(len(table)) for _ in range(FALSE_ALARM_SPLITS)])
    np.save(phishing_path("splits.npy"), splits)
    return json.loads(exported.read_text()) | {"python": python_version(river_python)}


def measure_discrete(evidently_python: Path) -> dict:
    reference = phishing_path("reference.parquet")
    splits = ["--false-alarms", phishing_path("splits.npy")]
    res: dict[str, Any] = {"scenarios": {}, "loads": []}
    for scenario in ("current", "shifted"):
        current = phishing_path(f"{scenario}.parquet")
        extra = splits if scenario == "current" else []
        res["loads"].append(quiet())
        log(f"phishing, {scenario}: Evidently DataDriftPreset (types inferred)")
        ev = run_worker(
            [
                evidently_python,
                HERE / "_evidently_side.py",
                "--reference",
                reference,
                "--current",
                current,
                "--infer-types",
                *extra,
            ]
        )
        log(f"phishing, {scenario}: modelloop check_drift")
        ml = run_worker(
            [
                ML_PYTHON,
                Path(__file__).resolve(),
                "worker",
                "discrete",
                "--reference",
                reference,
                "--current",
                current,
                *extra,
            ]
        )
        res["scenarios"][scenario] = {"evidently": ev, "modelloop": ml}
    return res


def _p(x: float | None) -> str:
    return "—" if x is None else f"{x:.2g}" if x < 0.001 else f"{x:.4f}"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def discrete_summary_rows(res: dict) -> list[list[str]]:
    rows = []
    for scenario, pair in res["scenarios"].items():
        ev, ml = pair["evidently"]["columns"], pair["modelloop"]
        n = len(ml["columns"])
        sets = {
            "Evidently": {c for c, r in ev.items() if r["drifted"]},
            "modelloop": {c for c, r in ml["columns"].items() if r["drifted"]},
            "gof": {c for c, r in ml["gof"].items() if r["drifted"]},
            "before": {c for c, r in ml["ks"].items() if r["drifted"]},
        }
        cells = [f"{len(v)} of {n}: {', '.join(sorted(v)) or '—'}" for v in sets.values()]
        verdicts = " / ".join(_yes(len(v) / n >= 0.5) for v in sets.values())
        label = "second half" if scenario == "current" else "second half, 3 columns shifted"
        rows.append(
            [
                label,
                *cells,
                same_note(sets["Evidently"], sets["modelloop"]),
                same_note(sets["Evidently"], sets["gof"]),
                verdicts,
            ]
        )
    return rows


def discrete_column_rows(pair: dict) -> list[list[str]]:
    rows = []
    ev, ml = pair["evidently"]["columns"], pair["modelloop"]
    for column, m in ml["columns"].items():
        e, gof, before = ev.get(column, {}), ml["gof"][column], ml["ks"][column]
        shift = PHISHING_SHIFTS.get(column)
        values = f"{ml['dtypes'][column]}, {ml['distinct'][column]}"
        ks = f"{before['method']} {_p(before['p_value'])}" if before["method"] == "ks" else "same"
        opt_in = f"{gof['method']} {_p(gof['p_value'])}" if gof["method"] != m["method"] else "same"
        rows.append(
            [
                f"`{column}`",
                values,
                f"{shift[0]:.0%} of rows set to {shift[1]}" if shift and "shifted" in pair else "",
                f"{e.get('column_type', '?')}, {e.get('method', '—')} {_p(e.get('value'))}",
                f"{m['column_type']}, {m['method']} {_p(m['p_value'])}",
                opt_in,
                ks,
                " / ".join(
                    _yes(x)
                    for x in (
                        e.get("drifted", False),
                        m["drifted"],
                        gof["drifted"],
                        before["drifted"],
                    )
                ),
            ]
        )
    return rows


def false_alarm_rows(pair: dict) -> list[list[str]]:
    ev = pair["evidently"]["false_alarms"]
    ml = pair["modelloop"]["false_alarms"]
    groups: dict[str, list[str]] = {}
    for column in ml:
        groups.setdefault(f"{pair['modelloop']['distinct'][column]} values", []).append(column)

    dtypes = pair["modelloop"]["dtypes"]
    ml_only_tests = {c for c in ml if dtypes[c] == "bool"}  # KS was never run on them

    def rate(alarms: int, splits: int) -> str:
        return f"{alarms}/{splits} ({alarms / splits:.1%})"

    rows = []
    for group, columns in sorted(groups.items(), reverse=True):
        for column in columns:
            e, m = ev[column], ml[column]
            rows.append(
                [
                    f"`{column}`",
                    group,
                    ", ".join(e["tests"]),
                    rate(e["alarms"], e["splits"]),
                    ", ".join(m["tests"]),
                    rate(m["now"], m["splits"]),
                    rate(m["gof"], m["splits"]) if "chi_squared" in m["tests"] else "same",
                    "same" if column in ml_only_tests else rate(m["ks"], m["splits"]),
                ]
            )
        splits = ml[columns[0]]["splits"] * len(columns)
        rows.append(
            [
                f"**all {group}**",
                "",
                "",
                f"**{rate(sum(ev[c]['alarms'] for c in columns), splits)}**",
                "",
                f"**{rate(sum(ml[c]['now'] for c in columns), splits)}**",
                f"**{rate(sum(ml[c]['gof'] for c in columns), splits)}**",
                f"**{rate(sum(ml[c]['ks'] for c in columns), splits)}**",
            ]
        )
    return rows


def render_discrete(res: dict, info: dict, command: str) -> str:
    halves, shifted = res["scenarios"]["current"], res["scenarios"]["shifted"]
    ev = halves["evidently"]
    river = res["river"]
    rows = halves["modelloop"]["rows"]
    shifts = ", ".join(
        f"`{c}`: {share:.0%} of the rows set to {value}"
        for c, (share, value) in PHISHING_SHIFTS.items()
    )
    parts = [
        "## Drift on discrete data: River's phishing table, modelloop vs Evidently",
        "",
        f"Measured {info['date']} on {info['nproc']} cores ({info['cpu']}), {info['os']}. "
        f"modelloop {info['modelloop']} (Python {info['ml_python']}, pandas {info['ml_pandas']}, "
        f"SciPy {info['ml_scipy']}); Evidently {ev['evidently']} (pandas {ev['pandas']}) in "
        f"`.bench/evidently-venv`; River {river['river']} in `.bench/river-venv`, which only "
        "exports the table.",
        "",
        f"Reproduce: `{command}` from the repository root (seconds; the full `drift.py` run "
        "includes it).",
        "",
        f"Data: `river.datasets.Phishing`, shipped inside River's package, {river['rows']:,} "
        f"rows in stream order: 7 features of three values (0, 0.5, 1; float), 2 binary "
        f"integer features and the boolean label. Reference = the first {rows[0]} rows, "
        f"current = the last {rows[1]}; the shifted copy of the current half has {shifts} "
        f"(seed {PHISHING_SEED}). Neither side is told the column types.",
        "",
        "### Drifted columns (p < 0.05), dataset drift at a 0.5 share",
        "",
        markdown_table(
            [
                "current",
                "Evidently `DataDriftPreset`",
                "modelloop `check_drift`",
                "modelloop with Evidently's chi-square (`chi_squared_gof`, opt-in)",
                "modelloop before column types (KS on numbers)",
                "same columns as Evidently: modelloop",
                "same columns as Evidently: with `chi_squared_gof`",
                "dataset drift (E / m / opt-in / before)",
            ],
            discrete_summary_rows(res),
        ),
        "",
        "### Per column, second half (type, test, p-value)",
        "",
        markdown_table(DISCRETE_HEADERS, discrete_column_rows(halves)),
        "",
        "### Per column, second half with 3 columns shifted",
        "",
        markdown_table(DISCRETE_HEADERS, discrete_column_rows({**shifted, "shifted": True})),
        "",
        f"### False alarms: {FALSE_ALARM_SPLITS} random splits of the {river['rows']:,} rows "
        "into halves (no drift by construction; a calibrated test flags 5%)",
        "",
        markdown_table(
            [
                "column",
                "values",
                "Evidently test",
                "Evidently flagged",
                "modelloop test",
                "modelloop flagged",
                "modelloop `chi_squared_gof` flagged",
                "modelloop before (KS)",
            ],
            false_alarm_rows(halves),
        ),
        "",
        "- Types: Evidently infers them (`Dataset.from_pandas` without a `DataDefinition`): "
        "float columns are numerical, integer columns with at most 10 values categorical, "
        "booleans categorical; with a reference of at most 1,000 rows `DataDriftPreset` tests "
        "numerical columns of at most 5 values (reference and current together) and "
        "categorical ones with chi-square, or the Z-test when there are at most 2 values. "
        "modelloop types a numeric column categorical when its reference has at most 5 "
        "values, or 10 whole numbers, and picks chi-squared or, for 2 values, the z-test when "
        "the smaller sample has at most 1,000 values. So both sides now run the same kind of "
        "test on every column here; before, modelloop ran KS on the numeric ones.",
        "- Z-test: the same on both sides (pooled two-proportion z), so the binary columns' "
        "p-values are equal.",
        "- Chi-squared: not the same test. modelloop's is the two-sample test of homogeneity "
        "of the reference and current counts (`scipy.stats.chi2_contingency`, no Yates "
        "correction); Evidently's `chisquare` is a goodness-of-fit test of the current counts "
        "against the reference shares taken as exact (`scipy.stats.chisquare`). With a "
        "reference as small as the current window that ignores half the sampling noise: its "
        "statistic is about twice as large and its p-values far smaller, which the false "
        "alarm table measures on this very table. modelloop keeps the two-sample test, whose "
        "false alarms stay near the 5% its threshold promises. Evidently's test is there "
        "opt-in, `methods={column: 'chi_squared_gof'}`, run here on every column the default "
        f"tests with chi-squared (the two-valued ones keep the z-test): {gof_note(res)}",
        "- Target, the same drifted columns as Evidently. Default: "
        f"{disagreement_note(res, 'columns')} With Evidently's chi-square opt-in "
        f"(`chi_squared_gof`): {disagreement_note(res, 'gof')}",
        "- modelloop before column types: the same stored reference checked with KS on every "
        "numeric column (`methods={column: 'ks'}`), what `check_drift` chose before; KS on "
        "a few values is conservative (its false alarms stay well under 5%) and misses "
        "frequency shifts, e.g. the shifted binary `ip_in_url`.",
        "- Machine load (other users' cores) before each measurement: "
        + ", ".join(f"{x:.2f}" for x in res["loads"])
        + ".",
    ]
    return "\n".join(parts)


def gof_note(res: dict) -> str:
    """How close ``chi_squared_gof`` comes to Evidently's ``chisquare``: p-values and alarms."""
    gaps = []
    for pair in res["scenarios"].values():
        ev, gof = pair["evidently"]["columns"], pair["modelloop"]["gof"]
        for column, m in gof.items():
            if m["method"] == "chi_squared_gof":
                e = ev[column]["value"]
                gaps.append(abs(m["p_value"] - e) / e if e else abs(m["p_value"]))
    alarms = res["scenarios"]["current"]
    ev_fa, ml_fa = alarms["evidently"]["false_alarms"], alarms["modelloop"]["false_alarms"]
    columns = [c for c, a in ml_fa.items() if "chi_squared" in a["tests"]]
    same = all(ev_fa[c]["alarms"] == ml_fa[c]["gof"] for c in columns)
    gap = "bit for bit" if max(gaps) == 0 else f"to a relative {max(gaps):.1g}"
    return (
        f"its p-values are Evidently's, {gap} on all {len(gaps)} column checks, and its false "
        "alarms on the random splits "
        + ("are Evidently's count on every column." if same else "differ (table).")
    )


def disagreement_note(res: dict, key: str) -> str:
    """Where Evidently's verdicts and modelloop's (``res[...]['modelloop'][key]``: its default
    tests or with ``chi_squared_gof``) differ, with both p-values, or that they agree."""
    differ: dict[str, list[str]] = {}
    methods = set()
    for scenario, pair in res["scenarios"].items():
        ev, ml = pair["evidently"]["columns"], pair["modelloop"][key]
        for column, m in ml.items():
            e = ev.get(column, {})
            if e.get("drifted") != m["drifted"]:
                methods.add(m["method"])
                label = "second half" if scenario == "current" else "shifted copy"
                differ.setdefault(
                    f"`{column}` (modelloop {m['method']} p = {_p(m['p_value'])}, Evidently "
                    f"{e.get('method', '—')} {_p(e.get('value'))})",
                    [],
                ).append(label)
    if not differ:
        return "the same, on both the second half and the shifted copy."
    columns = "; ".join(f"{c} in the {' and the '.join(s)}" for c, s in differ.items())
    why = (
        ", the chi-squared variant above: Evidently's p-value is smaller"
        if methods == {"chi_squared"}
        else ""
    )
    n = len(differ)
    return (
        f"not the same ({n} column{'s' if n > 1 else ''}): the verdicts differ on "
        f"{columns}{why}. Every other column agrees."
    )


DISCRETE_HEADERS = [
    "column",
    "dtype, values",
    "shift",
    "Evidently",
    "modelloop",
    "modelloop `chi_squared_gof` (opt-in)",
    "modelloop before",
    "drifted (E / m / opt-in / before)",
]


def main() -> None:
    if sys.argv[1:2] == ["worker"]:
        worker_main(sys.argv[2:])
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="100k rows only, one Evidently run")
    p.add_argument("--discrete", action="store_true", help="only River's phishing table")
    p.add_argument("--regenerate", action="store_true", help="rewrite the data files")
    p.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    a = p.parse_args()
    sizes = QUICK if a.quick else FULL
    if not a.discrete:
        ensure_data(sizes, a.regenerate)
    river = ensure_phishing(a.regenerate)
    evidently_python = ensure_peer_venv("evidently", EVIDENTLY_REQUIREMENTS)
    info = machine_info() | {
        "modelloop": package_version(ML_PYTHON, "modelloop"),
        "ml_python": python_version(ML_PYTHON),
        "ev_python": python_version(evidently_python),
        **{
            f"ml_{d}": package_version(ML_PYTHON, d)
            for d in ("numpy", "pandas", "scipy", "pyarrow")
        },
    }
    if not a.discrete:
        res = measure(sizes, evidently_python)
        text = render(res, info, command_line("drift.py"), sizes)
        publish("drift", text, res, docs=not a.no_docs)
    discrete = measure_discrete(evidently_python) | {"river": river}
    text = render_discrete(discrete, info, command_line("drift.py"))
    publish("drift-discrete", text, discrete, docs=not a.no_docs)


if __name__ == "__main__":
    main()
