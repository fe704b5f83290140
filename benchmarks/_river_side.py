"""River side of ``drift.py``; runs inside ``.bench/river-venv``, prints one JSON object.

python _river_side.py --out PATH.csv

Writes the phishing-websites table that River ships inside its package
(``river.datasets.Phishing``: 1,250 rows, 9 features and the ``is_phishing`` label, in stream
order; nothing is downloaded) as CSV, with the standard library only: River does not need
pandas. Values are written as Python prints them (``0.5``, ``1``, ``True``), so a CSV reader
gets back float, integer and boolean columns.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import river
from river import datasets

from _common import emit

LABEL = "is_phishing"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    a = p.parse_args()
    dataset = datasets.Phishing()
    rows = list(dataset)
    names = [*rows[0][0], LABEL]
    out = Path(a.out)
    tmp = out.with_suffix(".tmp")
    with tmp.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(names)
        for features, label in rows:
            writer.writerow([*(features[n] for n in names[:-1]), label])
    tmp.rename(out)
    emit(
        {
            "river": river.__version__,
            "rows": len(rows),
            "columns": names,
            "types": {n: type(v).__name__ for n, v in {**rows[0][0], LABEL: rows[0][1]}.items()},
            "path": str(out),
        }
    )


if __name__ == "__main__":
    main()
