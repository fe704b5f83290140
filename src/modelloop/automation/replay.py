"""The replay backtest: a challenger judged on exactly the traffic the champion answered.

The prediction log holds every input the champion saw, as served. Once those requests' labels
have matured, the challenger scores the same logged rows and is paired, row by row, with the
champion's scores: the champion's as served where the current champion answered the request,
and its replay on the logged features where an earlier version did (the same model on the same
features gives the same score; :attr:`Replay.served_rows` says how many were taken from the log
as served). This is gate evidence on the recent traffic, available the moment the challenger is
trained: no shadow or canary period has to wait a label delay for it.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelloop.automation.bootstrap import paired_bootstrap
from modelloop.automation.gate import GateOptions, GateResult, decide, model_uri, record_decision
from modelloop.automation.holdout import holdout_digest
from modelloop.automation.scoring import model_cost, score_frame
from modelloop.errors import InvalidArgument

if TYPE_CHECKING:
    import pandas as pd

    from modelloop.flavors import LoadedModel
    from modelloop.registry.client import Registry
    from modelloop.registry.entities import ModelVersion


@dataclass(frozen=True)
class Replay:
    """The replayed rows and both models' scores on them."""

    rows: pd.DataFrame  # prediction_id, timestamp, day, label, champion, challenger (+ extras)
    champion_version: int
    challenger_version: int
    served_rows: int  # champion scores read from the log as served
    replayed_rows: int  # champion scores recomputed on the logged features

    @property
    def days(self) -> tuple[str, str]:
        """First and last day replayed (``YYYY-MM-DD``)."""
        days = self.rows["day"]
        return str(days.min()), str(days.max())

    def per_day(self, metric: str = "average_precision") -> pd.DataFrame:
        """One row per replayed day: rows, positives and both models' ``metric`` (average
        precision for the card metrics, which are defined over the days together)."""
        import pandas as pd

        if metric not in ("average_precision", "auc_roc"):
            metric = "average_precision"
        out = []
        for day, part in self.rows.groupby("day", sort=True):
            champion, challenger = _pair(
                metric, part["label"], part["champion"], part["challenger"]
            )
            out.append(
                {
                    "day": str(day),
                    "rows": len(part),
                    "positives": int(part["label"].sum()),
                    "champion": champion,
                    "challenger": challenger,
                }
            )
        table = pd.DataFrame(out, columns=["day", "rows", "positives", "champion", "challenger"])
        table.attrs["metric"] = metric
        return table


def replay(
    logged: pd.DataFrame,
    champion: LoadedModel,
    champion_version: int,
    challenger: LoadedModel,
    challenger_version: int,
    *,
    label: str = "label",
    keep: tuple[str, ...] = (),
) -> Replay:
    """Pair the champion's scores with the challenger's on ``logged``: labelled prediction-log
    rows (``prediction_id``, ``timestamp``, ``model_version``, ``role``, ``score``, the features
    as served, ``label``). Shadow answers are left out: what a request was *answered* with is
    what the champion side must be. ``keep`` names extra columns carried into the rows (e.g.
    the card id for card precision, the amount for money caught)."""
    import numpy as np
    import pandas as pd

    answered = logged[logged["role"] != "shadow"]
    answered = answered[answered[label].notna()].reset_index(drop=True)
    if answered.empty:
        raise InvalidArgument("no labelled requests to replay: the labels have not matured yet")
    missing = [c for c in keep if c not in answered.columns]
    if missing:
        raise InvalidArgument(f"the prediction log has no column {', '.join(missing)} to keep")
    served = (answered["model_version"] == champion_version).to_numpy()
    champion_scores = np.empty(len(answered))
    champion_scores[served] = answered.loc[served, "score"].to_numpy(dtype=np.float64)
    if (~served).any():
        champion_scores[~served] = score_frame(champion, answered[~served])[0]
    rows = pd.DataFrame(
        {
            "prediction_id": answered["prediction_id"].to_numpy(),
            "timestamp": answered["timestamp"].to_numpy(),
            "day": pd.to_datetime(answered["timestamp"], utc=True).dt.strftime("%Y-%m-%d"),
            "label": answered[label].to_numpy(dtype=np.float64),
            "champion": champion_scores,
            "challenger": score_frame(challenger, answered)[0],
        }
    )
    for column in keep:
        rows[column] = answered[column].to_numpy()
    return Replay(
        rows, champion_version, challenger_version, int(served.sum()), int((~served).sum())
    )


def judge_replay(
    registry: Registry,
    model: str,
    challenger_version: int,
    logged: pd.DataFrame,
    options: GateOptions,
    *,
    reason: str,
    entity: str | None = None,
    amount: str | None = None,
    record: bool = True,
) -> tuple[GateResult, Replay]:
    """The gate's decision on a replay of ``logged`` (labelled prediction-log rows): the
    challenger ``model/challenger_version`` against the current champion, recorded as a
    ``gate.decision`` audit event on the challenger like any gate decision. ``entity`` and
    ``amount`` name the logged columns of the card and the amount, for the card metrics."""
    need = options.inputs
    columns = {"groups": entity, "amounts": amount}
    for needed in ("groups", "amounts"):
        if needed in need and columns[needed] is None:
            raise InvalidArgument(
                f"the gate's {options.metric} metrics need the logged "
                f"{'card (a holdout key)' if needed == 'groups' else 'amount column'}"
            )
    keep = tuple(c for c in (entity, amount) if c is not None)
    started = time.perf_counter()
    sides = []
    for requested in (f"models:/{model}/{challenger_version}", f"models:/{model}@champion"):
        version = registry.resolve_model_uri(model_uri(requested))
        sides.append((requested, version, registry.load_model(version.uri)))
    (_, ch_version, ch_model), (_, champ_version, champ_model) = sides
    result = replay(
        logged, champ_model, champ_version.version, ch_model, ch_version.version, keep=keep
    )
    rows = result.rows
    costs = [
        _cost(requested, version, loaded, logged, registry) for requested, version, loaded in sides
    ]
    first, last = result.days
    data = (
        f"replay of {len(rows):,} logged requests of {first}..{last} (labels matured; the "
        f"champion's scores as served for {result.served_rows:,} of them, replayed for "
        f"{result.replayed_rows:,})"
    )
    features = sorted(set(ch_model.signature.names) | set(champ_model.signature.names))
    decision = decide(
        rows["label"],
        rows["champion"],
        rows["challenger"],
        options,
        challenger=costs[0],
        champion=costs[1],
        data_digest=holdout_digest(logged.reset_index(drop=True), [*features, "label"]),
        data=data,
        note=reason,
        groups=rows[entity].to_numpy() if "groups" in need and entity else None,
        days=rows["day"].to_numpy() if "days" in need else None,
        amounts=rows[amount].to_numpy() if "amounts" in need and amount else None,
    )
    decision = dataclasses.replace(decision, seconds=round(time.perf_counter() - started, 3))
    if record:
        decision = record_decision(registry, decision, reason)
    return decision, result


def _cost(
    requested: str,
    version: ModelVersion,
    loaded: LoadedModel,
    frame: pd.DataFrame,
    registry: Registry,
) -> Any:
    _, batch_ms = score_frame(loaded, frame.iloc[: min(len(frame), 2000)], version)
    return model_cost(requested, version, loaded, frame, registry, batch_latency_ms=batch_ms)


def _pair(metric: str, labels: Any, champion: Any, challenger: Any) -> tuple[Any, Any]:
    """Both models' ``metric`` on the rows (None where undefined, e.g. no positive)."""
    boot = paired_bootstrap(labels, champion, challenger, metric=metric, n_bootstrap=1)
    return boot.champion_value, boot.challenger_value
