"""MLflow side of ``serving.py``; runs inside ``.bench/mlflow-venv``, prints one JSON object.

python _mlflow_serving.py setup --uri file:///ABS/PATH/mlruns

Trains the anchor's LightGBM classifier (``_common.fraud_dataset``: 50k rows x 30 features,
200 trees, 31 leaves, seed 0), logs it with ``mlflow.lightgbm.log_model`` into the file store at
``--uri`` and prints its model URI with the in-process class-1 probabilities of the first rows,
so the driver can check both projects serve the same model. Not timed in the table.
"""

from __future__ import annotations

import argparse
import time
import warnings

import lightgbm as lgb
import mlflow
import pandas as pd

from _common import emit, fraud_dataset

CHECK_ROWS = 100


def setup(uri: str) -> dict:
    x, y, cols = fraud_dataset()
    df = pd.DataFrame(x, columns=cols)
    t = time.perf_counter()
    model = lgb.LGBMClassifier(n_estimators=200, num_leaves=31, verbose=-1).fit(df, y)
    train_s = time.perf_counter() - t
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("bench-serving")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # file store deprecation notice
        with mlflow.start_run():
            info = mlflow.lightgbm.log_model(model, name="model", input_example=df.head(2))
    return {
        "model_uri": info.model_uri,
        "train_s": train_s,
        "proba": model.predict_proba(df.head(CHECK_ROWS))[:, 1].tolist(),
        "lightgbm": lgb.__version__,
        "pandas": pd.__version__,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["setup"])
    p.add_argument("--uri", required=True, help="tracking URI of the file store")
    a = p.parse_args()
    emit({"mlflow": mlflow.__version__, **setup(a.uri)})


if __name__ == "__main__":
    main()
