"""Gate: the card (cluster) bootstrap of ``decide()`` vs the obvious loop, same run, same data.

    .venv/bin/python benchmarks/gate.py [--quick] [--no-docs]

Data (seeded): 30,000 transactions of 2,000 cards over 30 days (string dates), one card in ten
compromised with half of its transactions fraudulent, amounts from a gamma distribution; two
models' scores (the challenger separates frauds better). modelloop: ``decide()`` with
``GateOptions(metrics=..., k=100, n_bootstrap=1000)`` for card precision@k alone, with the fraud
amount as a second metric, and for AP (a row bootstrap) as a scale; best of 3 (1 with
``--quick``). The peer is what one would write without the vectorised pass: for each resample,
materialise the drawn cards' rows (a new id per copy) and compute both models' card precision@k
with the monitor's ``card_precision_at_k`` (pandas, one groupby per day); timed on 20 resamples
(5 with ``--quick``) and scaled to 1,000. Prints the table and writes the ``gate`` section of
``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np
import pandas as pd

from _common import (
    BENCH_DIR,
    command_line,
    log,
    machine_info,
    markdown_table,
    package_version,
    publish,
    wait_machine_quiet,
)
from modelloop.automation import GateOptions, ModelCost, decide
from modelloop.monitoring.performance import card_precision_at_k

ROWS, CARDS, DAYS, K, RESAMPLES = 30_000, 2_000, 30, 100, 1_000
TARGET_S = 2.0  # the policy runs the gate inside a daily loop


def holdout(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    card = rng.integers(0, CARDS, size=ROWS)
    label = ((rng.random(ROWS) < 0.5) & (rng.random(CARDS) < 0.1)[card]).astype(float)
    return pd.DataFrame(
        {
            "card": card,
            "day": (np.datetime64("2024-03-01") + rng.integers(0, DAYS, size=ROWS)).astype(str),
            "amount": rng.gamma(2.0, 30.0, size=ROWS).round(2),
            "label": label,
            "champion": 0.5 * label + rng.random(ROWS),
            "challenger": 0.8 * label + rng.random(ROWS),
        }
    )


def cost(version: int) -> ModelCost:
    uri = f"models:/fraud/{version}"
    return ModelCost(uri, uri, "fraud", version, "0" * 64, 1.0, 0.01, 1000)


def time_decide(frame: pd.DataFrame, metrics: tuple[str, ...], repeats: int) -> dict[str, Any]:
    options = GateOptions(metrics=metrics, k=K, n_bootstrap=RESAMPLES)
    seconds = []
    for _ in range(repeats):
        wait_machine_quiet()
        started = time.perf_counter()
        result = decide(
            frame["label"],
            frame["champion"],
            frame["challenger"],
            options,
            challenger=cost(2),
            champion=cost(1),
            data_digest="bench",
            groups=frame["card"],
            days=frame["day"],
            amounts=frame["amount"],
        )
        seconds.append(time.perf_counter() - started)
    return {"seconds": min(seconds), "all": seconds, "decision": result.decision}


def time_loop(frame: pd.DataFrame, resamples: int) -> dict[str, Any]:
    """Materialise each resample's cards and call the monitor's CP@k for both models."""
    rng = np.random.default_rng(0)
    ids = np.unique(frame["card"])
    rows_of = {card: rows.index.to_numpy() for card, rows in frame.groupby("card")}
    wait_machine_quiet()
    started = time.perf_counter()
    for _ in range(resamples):
        drawn = ids[rng.integers(0, len(ids), size=len(ids))]
        index = np.concatenate([rows_of[c] for c in drawn])
        copy = np.repeat(np.arange(len(drawn)), [len(rows_of[c]) for c in drawn])
        resampled = frame.loc[index]
        for side in ("champion", "challenger"):
            card_precision_at_k(
                pd.DataFrame(
                    {
                        "day": resampled["day"].to_numpy(),
                        "entity": copy,
                        "score": resampled[side].to_numpy(),
                        "label": resampled["label"].to_numpy(),
                    }
                ),
                k=K,
            )
    per_resample = (time.perf_counter() - started) / resamples
    return {"per_resample": per_resample, "resamples": resamples, "seconds": per_resample * 1000}


def render(res: dict[str, Any], info: dict[str, str], command: str) -> str:
    loop = res["loop"]["seconds"]
    rows = [
        [
            name,
            f"{case['seconds']:.2f}",
            f"{loop / case['seconds']:,.0f}x" if "card" in name else "",
            ("yes" if case["seconds"] < TARGET_S else "no") if "card" in name else "",
        ]
        for name, case in res["decide"].items()
    ]
    rows.append(["per-resample loop over the monitor's CP@k (scaled)", f"{loop:,.0f}", "1x", ""])
    headers = ["case", "seconds", "vs the loop", f"under {TARGET_S:g} s"]
    return "\n".join(
        [
            "## Gate: card precision@k with a card bootstrap",
            "",
            f"Measured {info['date']} on {info['nproc']} cores ({info['cpu']}). modelloop "
            f"{info['modelloop']}, numpy {info['numpy']}, pandas {info['pandas']}.",
            "",
            f"Reproduce: `{command}` from the repository root.",
            "",
            f"{ROWS:,} transactions of {CARDS:,} cards over {DAYS} days, k = {K} cards a day, "
            f"{RESAMPLES:,} paired resamples of the cards (the policy runs the gate daily).",
            "",
            markdown_table(headers, rows),
            "",
            "- decide(): best of the repeats, including the grouping of rows into (day, card) "
            "pairs and both models' rankings; AP (a row bootstrap) for scale.",
            f"- The loop: the definition applied to each resample (its cards' rows materialised, "
            f"the monitor's `card_precision_at_k` for both models); {res['loop']['resamples']} "
            f"resamples timed ({res['loop']['per_resample'] * 1000:.0f} ms each), scaled to "
            f"{RESAMPLES:,}.",
        ]
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="one repeat, 5 loop resamples")
    p.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    a = p.parse_args()
    BENCH_DIR.mkdir(exist_ok=True)
    frame = holdout()
    repeats = 1 if a.quick else 3
    res: dict[str, Any] = {"decide": {}}
    for name, metrics in (
        ("decide(), card precision@k", ("cp@k",)),
        ("decide(), card precision@k + fraud amount", ("cp@k", "amount@k")),
        ("decide(), AP (rows)", ("ap",)),
    ):
        log(f"timing {name}")
        res["decide"][name] = time_decide(frame, metrics, repeats)
    log("timing the per-resample loop")
    res["loop"] = time_loop(frame, 5 if a.quick else 20)
    info = machine_info() | {
        "modelloop": package_version(sys.executable, "modelloop"),
        **{d: package_version(sys.executable, d) for d in ("numpy", "pandas")},
    }
    publish("gate", render(res, info, command_line("gate.py")), res, docs=not a.no_docs)


if __name__ == "__main__":
    main()
