"""An example pipeline: synthetic data -> split -> LightGBM -> AUC.

    modelloop pipelines run modelloop.examples.training_pipeline:pipeline --param seed=1

Run it twice: the second run reuses every step from the cache. ``tuned`` fans the training step
out over learning rates and keeps the best by training AUC. The tests use it too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from modelloop.pipelines import ModelOutput, Pipeline, fan_out, step

FEATURES = ["f0", "f1", "f2", "f3"]


def _signal(frame: pd.DataFrame) -> pd.Series:
    return frame["f0"] * 2.0 - frame["f1"] + 0.5 * frame["f2"]


@step
def load(n_rows: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n_rows, len(FEATURES))), columns=FEATURES)
    noise = rng.normal(scale=0.5, size=n_rows)
    frame["label"] = (_signal(frame) + noise > 0).astype("int64")
    return frame


@step(outputs=("train", "test"))
def split(load: pd.DataFrame, test_fraction: float = 0.25) -> tuple[pd.DataFrame, pd.DataFrame]:
    cut = int(len(load) * (1 - test_fraction))
    return load.iloc[:cut].reset_index(drop=True), load.iloc[cut:].reset_index(drop=True)


@step(outputs=("model", "train_auc"), env=("lightgbm",))
def train(train: pd.DataFrame, learning_rate: float = 0.1, n_estimators: int = 20) -> Any:
    import lightgbm
    from sklearn.metrics import roc_auc_score

    X = train[FEATURES]
    model = lightgbm.LGBMClassifier(
        learning_rate=learning_rate,
        n_estimators=n_estimators,
        num_leaves=7,
        min_child_samples=5,
        random_state=0,
        deterministic=True,
        force_row_wise=True,
        n_jobs=1,
        verbose=-1,
    )
    model.fit(X, train["label"])
    scores = np.asarray(model.predict_proba(X))[:, 1]
    auc = float(roc_auc_score(train["label"], scores))
    return ModelOutput(model, training_data=X), auc


@step
def evaluate(model: Any, test: pd.DataFrame) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    scores = model.predict(test[FEATURES])
    return {"auc": float(roc_auc_score(test["label"], scores)), "rows": float(len(test))}


pipeline = Pipeline([load, split, train, evaluate], name="example")

tuned = Pipeline(
    [
        load,
        split,
        fan_out(
            train,
            [{"learning_rate": 0.001}, {"learning_rate": 0.1}, {"learning_rate": 0.3}],
            metric="train_auc",
        ),
        evaluate,
    ],
    name="example-tuned",
)
