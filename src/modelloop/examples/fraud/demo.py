"""The closed loop on real-time card-fraud detection: ``modelloop demo fraud`` (``make demo``).

On the embedded default store (SQLite + local files), in one process:

1. simulate card transactions (spec section 1, a smaller bank by default) with a drift scenario
   starting on a chosen day (section 5), and train the first champion through a pipeline on the
   warm-up weeks (batch features, labels known);
2. serve ``fraud-detector@champion`` over real HTTP on 127.0.0.1, on the simulation's clock;
3. stream each simulated day through ``/predict``, one request per simulated hour, every
   transaction's 14 features computed online from per-card and per-terminal state; send the
   labels back through ``/feedback`` seven days later (terminal risk learns them then too);
4. close each day: the monitor checks the day's drift and the performance of the day whose
   labels just matured; the policy decides (retrain, gate, shadow, canary, promote or roll back);
   a risk officer approves promotions of the protected ``champion`` alias;
5. print the timeline of the loop's decisions and the weekly AP and card precision@100 of what
   was served.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

import modelloop as ml
from modelloop.clock import from_ms, to_ms
from modelloop.examples.fraud.features import FEATURES, OnlineFeatures, add_features
from modelloop.examples.fraud.scenarios import (
    BehaviourShift,
    Drift,
    FraudRing,
    VolumeSurge,
    apply_drift,
)
from modelloop.examples.fraud.simulator import SimulationConfig, simulate
from modelloop.pipelines import ModelOutput, Pipeline, step

if TYPE_CHECKING:
    import httpx

    from modelloop.automation.training import TrainingContext
    from modelloop.settings import Settings

MODEL, DEPLOYMENT, MONITOR, POLICY = "fraud-detector", "fraud-online", "fraud-watch", "fraud-loop"
SCENARIOS = ("fraud-ring", "behaviour-shift", "volume-surge", "none")
DAY_MS = 86_400_000
LABEL_DELAY_DAYS = 7
SCIENTIST, RISK_OFFICER = "data-scientist", "risk-officer"


@dataclass(frozen=True)
class DemoConfig:
    days: int = 56  # served days
    warmup: int = 70  # history before serving: terminal windows look back 37 days, then training
    drift_day: int = 14  # served day on which the scenario starts
    scenario: str = "fraud-ring"
    seed: int = 0
    customers: int = 1000
    terminals: int = 2000

    @property
    def simulation(self) -> SimulationConfig:
        return SimulationConfig(
            n_customers=self.customers,
            n_terminals=self.terminals,
            n_days=self.warmup + self.days,
            customer_seed=self.seed,
            terminal_seed=self.seed + 1,
        )

    @property
    def start(self) -> datetime:
        """Midnight of the first served day (UTC)."""
        first = datetime.fromisoformat(self.simulation.start_date).replace(tzinfo=UTC)
        return first + timedelta(days=self.warmup)


@dataclass
class DemoResult:
    config: DemoConfig
    served: pd.DataFrame  # one row per transaction served: time, card, score, label, version
    timeline: list[Any]  # the policy's decisions
    seconds: float
    weekly: pd.DataFrame = field(default_factory=pd.DataFrame)
    alerts: int = 0  # alerts that fired (a rule going from ok to firing) during the run


# -- the data --------------------------------------------------------------------------------------


def transactions(config: DemoConfig, cache_dir: Path | None = None) -> pd.DataFrame:
    """The simulated bank's transactions with the scenario applied, sorted by time."""
    sim = config.simulation
    frame = simulate(sim, cache_dir=cache_dir)
    day = config.warmup + config.drift_day
    scenario = {
        "fraud-ring": Drift(
            fraud_ring=FraudRing(
                start_day=day,
                n_terminals=8,
                tx_per_day=config.customers * 0.03,
                seed=13 + config.seed,
            ),
            config=sim,
        ),
        "behaviour-shift": Drift(
            behaviour_shift=BehaviourShift(start_day=day, seed=12 + config.seed), config=sim
        ),
        "volume-surge": Drift(
            volume_surge=VolumeSurge(start_day=day, end_day=day + 14, seed=11 + config.seed),
            config=sim,
        ),
        "none": Drift(config=sim),
    }[config.scenario]
    return apply_drift(frame, scenario).reset_index(drop=True)


@step
def history(
    customers: int = 1000,
    terminals: int = 2000,
    warmup: int = 70,
    days: int = 56,
    drift_day: int = 14,
    scenario: str = "fraud-ring",
    seed: int = 0,
) -> pd.DataFrame:
    """The warm-up weeks with their batch features and (known) labels."""
    config = DemoConfig(days, warmup, drift_day, scenario, seed, customers, terminals)
    frame = add_features(transactions(config, _cache_dir()))
    return frame[frame["TX_DATETIME"] < pd.Timestamp(config.start.replace(tzinfo=None))]


@step(outputs=("model", "valid_ap"), env=("lightgbm",))
def champion(history: pd.DataFrame) -> tuple[ModelOutput, float]:
    """The first champion: LightGBM on the warm-up's labelled weeks, validated on the last one
    (the week before serving starts, whose labels have arrived by then only in part)."""
    from sklearn.metrics import average_precision_score

    train, valid = _champion_split(history)
    model = _lightgbm().fit(train[FEATURES], train["TX_FRAUD"])
    ap = float(
        average_precision_score(valid["TX_FRAUD"], model.predict_proba(valid[FEATURES])[:, 1])
    )
    return ModelOutput(model, training_data=train[FEATURES]), ap


def _champion_split(history: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two weeks to train on and the next to validate, ending where the labels known on the
    first served day end (a week before it)."""
    end = history["TX_DATETIME"].max().normalize() - pd.Timedelta(days=LABEL_DELAY_DAYS)
    week = pd.Timedelta(days=7)
    when = history["TX_DATETIME"]
    return (
        history[(when >= end - 3 * week) & (when < end - week)],
        history[(when >= end - week) & (when < end)],
    )


champion_pipeline = Pipeline([history, champion], name="fraud-champion")


def train(data: pd.DataFrame, context: TrainingContext) -> Any:
    """The policy's training function: the same model on the labelled prediction log."""
    return _lightgbm().fit(data[context.features], data[context.label])


def _lightgbm() -> Any:
    import lightgbm

    return lightgbm.LGBMClassifier(
        n_estimators=100,
        learning_rate=0.05,
        num_leaves=31,
        min_child_samples=20,
        random_state=0,
        n_jobs=1,
        verbose=-1,
        deterministic=True,
        force_row_wise=True,
    )


def _cache_dir() -> Path:
    return ml.load_settings().home / "cache" / "fraud"


# -- the loop --------------------------------------------------------------------------------------


def run_demo(
    config: DemoConfig,
    *,
    on_day: Callable[[int, list[Any], dict[str, Any]], None] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> DemoResult:
    """Run the whole loop on the settings' store; ``on_day(day, decisions, status)`` after each
    served day, ``on_step(text)`` for the setup steps."""
    from modelloop.automation.loop import step_policy, timeline
    from modelloop.monitoring.runner import check_windows

    started = time.perf_counter()
    say = on_step or (lambda text: None)
    settings = ml.load_settings()
    say("Simulating the bank's transactions")
    stream = transactions(config, _cache_dir())
    say("Training the first champion through the pipeline 'fraud-champion'")
    first = _first_champion(config)
    _declare(config, first)
    clock = {"ms": to_ms(config.start)}
    ml.set_store_clock(config.start, settings=settings)  # the store's data runs on this clock
    served: list[pd.DataFrame] = []
    with _serving(settings, clock) as served_by:
        client = served_by.client
        online = OnlineFeatures()
        say("Warming the online feature store with the history")
        pending = _warm(online, stream, config)
        by_day = dict(list(stream.groupby(stream["TX_TIME_DAYS"])))
        labels_due: dict[int, pd.DataFrame] = {}
        hourly: list[Any] = []  # decisions taken during the day (rollout stages last hours)
        fired = 0

        rolling = {"out": False}  # a rollout under way (known from the loop's own decisions)

        def rollout_step(at_ms: int) -> None:
            """The scheduler steps the policy every minute; between the daily monitor windows
            only a rollout in progress has anything to decide, so the demo steps it hourly
            then (after flushing the log its checks read)."""
            if not rolling["out"]:
                return
            served_by.flush()
            at = from_ms(at_ms)
            decided = step_policy(POLICY, now=at, settings=settings)
            decided += _approve_promotions(at, settings)
            if decided:
                _wait_for_deployment(client)
                hourly.extend(decided)
                rolling["out"] = _rolling_out(decided)

        for day in range(config.days):
            sim_day = config.warmup + day
            today = by_day.get(sim_day, stream.iloc[0:0])
            _deliver_labels(
                client, online, labels_due.pop(sim_day, None), pending, sim_day, clock, config
            )
            answered = _serve_day(
                client, online, today, clock, config, sim_day, after_hour=rollout_step
            )
            served.append(answered)
            labels_due[sim_day + LABEL_DELAY_DAYS] = answered
            served_by.flush()
            at = from_ms(to_ms(config.start) + (day + 1) * DAY_MS + 600_000)
            clock["ms"] = to_ms(at)
            ml.set_store_clock(at, settings=settings)
            checked = check_windows(MONITOR, now=at, settings=settings)
            fired += sum(a["state"] == "firing" for r in checked for a in r.alerts)
            closing = step_policy(POLICY, now=at, settings=settings)
            closing += _approve_promotions(at, settings)
            if closing:
                rolling["out"] = _rolling_out(closing)
            decisions = [*hourly, *closing]
            hourly.clear()
            if decisions:
                _wait_for_deployment(client)
            if on_day is not None:
                alerts = [a for r in checked for a in r.alerts]
                on_day(day, decisions, {**_status(answered), "alerts": alerts})
    frame = pd.concat(served, ignore_index=True)
    frame["score_v1"] = _first_champion_scores(frame, settings)
    events = timeline(POLICY, settings=settings)
    result = DemoResult(config, frame, events, time.perf_counter() - started, alerts=fired)
    result.weekly = weekly_quality(frame, config)
    return result


def _rolling_out(decisions: list[Any]) -> bool:
    """Whether the newest decision leaves a rollout under way (shadow, canary, approval)."""
    last = decisions[-1].action.removeprefix("policy.")
    return last in ("shadow", "canary", "approval_requested", "rollout_started")


def _first_champion_scores(served: pd.DataFrame, settings: Settings) -> Any:
    """What never retraining would have answered: v1 replayed on the logged features of every
    answered request (where v1 answered, exactly its answer)."""
    from modelloop.serving.predictions import load_predictions

    logged = load_predictions(MODEL, deployment=DEPLOYMENT, with_labels=False, settings=settings)
    logged = logged[logged["role"] != "shadow"].set_index("prediction_id")
    rows = logged.loc[served["prediction_id"]]
    return ml.get_registry().load_model(f"models:/{MODEL}/1").predict(rows[FEATURES])


def _first_champion(config: DemoConfig) -> int:
    """Train through the pipeline, register with its training data, make it the champion (the
    alias is protected: a data scientist asks, the risk officer approves)."""
    params = {
        "customers": config.customers,
        "terminals": config.terminals,
        "warmup": config.warmup,
        "days": config.days,
        "drift_day": config.drift_day,
        "scenario": config.scenario,
        "seed": config.seed,
    }
    result = champion_pipeline.run(params=params, experiment="fraud-champion")
    run_id = result.steps["champion"].run_id or ""
    train_rows, _ = _champion_split(result.value("history"))
    registry = ml.get_registry()
    version = registry.register_model(
        run_id,
        MODEL,
        artifact_path="outputs/model",
        training_data=train_rows[FEATURES],
        metrics={"valid_ap": float(result.value("valid_ap"))},
    )
    request = registry.store.request_alias(
        MODEL, "champion", version.version, actor=SCIENTIST, reason="first model of the fraud loop"
    )
    registry.store.approve_request(
        request.request_id, actor=RISK_OFFICER, reason="validated on the warm-up weeks"
    )
    return version.version


def _declare(config: DemoConfig, champion: int) -> None:
    from modelloop.automation.policy import apply_policy
    from modelloop.monitoring.fluent import apply_monitor
    from modelloop.serving.deployment import parse_deployment
    from modelloop.serving.fluent import apply_deployment

    apply_deployment(
        parse_deployment(
            {"name": DEPLOYMENT, "model": f"{MODEL}@champion", "log_keys": ["CUSTOMER_ID"]}
        ),
        actor=SCIENTIST,
    )
    apply_monitor(
        {
            "name": MONITOR,
            "deployment": DEPLOYMENT,
            "model": MODEL,
            "window": "1d",
            "since": config.start.isoformat(),
            # A day is all weekend or none: the calendar flag "drifts" every day by design.
            "drift": {"columns": [f for f in FEATURES if f != "TX_DURING_WEEKEND"]},
            "performance": {
                "label_delay": f"{LABEL_DELAY_DAYS}d",
                "k": 100,
                "entity": "CUSTOMER_ID",
                "min_labels": 100,
            },
            "alerts": [
                {"name": "inputs-drift", "metric": "drift.share", "above": 0.2, "consecutive": 2},
                {
                    "name": "ap-drop",
                    "metric": "performance.average_precision",
                    "below": 0.5,
                    "severity": "critical",
                },
            ],
        },
        actor=SCIENTIST,
    )
    apply_policy(
        {
            "name": POLICY,
            "deployment": DEPLOYMENT,
            "model": MODEL,
            "monitor": MONITOR,
            "triggers": {
                "drifted_features": 2,
                "score_drift": True,
                "performance": {"metric": "average_precision", "below": 0.6},
                "cooldown": "3d",
                "min_importance": 0.2,
                "change_labels": "1d",
                "budget": {"trainings": 8, "per": "56d"},
                "follow_up": {"every": "5d", "within": "42d", "min_gain": 0.01},
            },
            "training": {
                "function": "modelloop.examples.fraud.demo:train",
                "window": "21d",
                "holdout": "7d",
                "holdout_share": 0.3,
                "min_rows": 5000,
            },
            # Non-inferiority: a model trained on newer data is promoted unless it is likely
            # worse, by more than 0.01, in AP or in card precision@100 (cards resampled whole)
            # on the replayed recent traffic.
            "gate": {
                "metrics": ["average_precision", "card_precision_at_k"],
                "k": 100,
                "margin": [-0.01, -0.01],
                "bootstrap": 500,
            },
            "rollout": {
                "shadow": "2h",
                "canary": "4h",
                "canary_percent": 20,
                "sticky_key": "CUSTOMER_ID",
                "min_requests": 20,
            },
        },
        actor=SCIENTIST,
    )


def _warm(online: OnlineFeatures, stream: pd.DataFrame, config: DemoConfig) -> pd.DataFrame:
    """Feed the warm-up transactions (and the labels arrived by the first served day) to the
    online store; the warm-up labels still to arrive are returned."""
    start = pd.Timestamp(config.start.replace(tzinfo=None))
    warm = stream[stream["TX_DATETIME"] < start]
    for card, terminal, amount, when in _rows(warm, *_TX):
        online.features(card, terminal, amount, when)
    arrival = warm["TX_DATETIME"] + pd.Timedelta(days=LABEL_DELAY_DAYS)
    for terminal, when in _rows(warm[(arrival <= start) & (warm["TX_FRAUD"] == 1)], *_LABEL):
        online.add_label(terminal, when, 1)
    return warm[arrival > start]


_TX = ("CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT", "TX_DATETIME")
_LABEL = ("TERMINAL_ID", "TX_DATETIME")


def _rows(frame: pd.DataFrame, *columns: str) -> list[tuple[Any, ...]]:
    """Plain Python values per row (timestamps as datetimes), fast to loop over."""
    values = [
        frame[c].dt.to_pydatetime().tolist() if c == "TX_DATETIME" else frame[c].tolist()
        for c in columns
    ]
    return list(zip(*values, strict=True))


def _serve_day(
    client: httpx.Client,
    online: OnlineFeatures,
    today: pd.DataFrame,
    clock: dict[str, int],
    config: DemoConfig,
    sim_day: int,
    *,
    after_hour: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """POST the day's transactions, an hour at a time, each with its online features;
    ``after_hour(ms)`` at the end of each hour."""
    out: list[pd.DataFrame] = []
    hours = today["TX_TIME_SECONDS"] // 3600 % 24
    for hour in sorted(set(hours.tolist())):
        rows = today[(hours == hour).to_numpy()]
        features = [online.features(*row) for row in _rows(rows, *_TX)]
        clock["ms"] = (
            to_ms(config.start) + (sim_day - config.warmup) * DAY_MS + (hour + 1) * 3_600_000 - 1
        )
        body: dict[str, list[Any]] = {name: [f[name] for f in features] for name in FEATURES}
        body["CUSTOMER_ID"] = rows["CUSTOMER_ID"].tolist()  # logged, and the canary's key
        answer = client.post("/predict", json=body)
        answer.raise_for_status()
        data = answer.json()
        out.append(
            pd.DataFrame(
                {
                    "prediction_id": data["prediction_id"],
                    "time": rows["TX_DATETIME"].to_numpy(),
                    "customer": rows["CUSTOMER_ID"].to_numpy(),
                    "terminal": rows["TERMINAL_ID"].to_numpy(),
                    "score": data["prediction"],
                    "version": data["version"],
                    "label": rows["TX_FRAUD"].to_numpy(),
                    "scenario": rows["TX_FRAUD_SCENARIO"].to_numpy(),
                }
            )
        )
        if after_hour is not None:
            after_hour(clock["ms"] + 1)
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def _deliver_labels(
    client: httpx.Client,
    online: OnlineFeatures,
    answered: pd.DataFrame | None,
    warm_pending: pd.DataFrame,
    sim_day: int,
    clock: dict[str, int],
    config: DemoConfig,
) -> None:
    """The labels arriving this morning: to the online store (terminal risk) and, for served
    transactions, to ``/feedback``."""
    clock["ms"] = to_ms(config.start) + (sim_day - config.warmup) * DAY_MS + 60_000
    day_start = pd.Timestamp(config.start.replace(tzinfo=None)) + pd.Timedelta(
        days=sim_day - config.warmup - LABEL_DELAY_DAYS
    )
    warm = warm_pending[
        (warm_pending["TX_DATETIME"] >= day_start)
        & (warm_pending["TX_DATETIME"] < day_start + pd.Timedelta(days=1))
    ]
    for terminal, when in _rows(warm[warm["TX_FRAUD"] == 1], *_LABEL):
        online.add_label(terminal, when, 1)
    if answered is None or answered.empty:
        return
    frauds = answered[answered["label"] == 1].rename(
        columns={"terminal": "TERMINAL_ID", "time": "TX_DATETIME"}
    )
    for terminal, when in _rows(frauds, *_LABEL):
        online.add_label(terminal, when, 1)
    items = [
        {"prediction_id": p, "label": int(y)}
        for p, y in zip(answered["prediction_id"], answered["label"], strict=True)
    ]
    for part in range(0, len(items), 10_000):
        client.post("/feedback", json=items[part : part + 10_000]).raise_for_status()


def _approve_promotions(at: datetime, settings: Settings) -> list[Any]:
    """The risk officer reads the evidence and approves the loop's pending champion requests."""
    from modelloop.automation.loop import step_policy
    from modelloop.registry.entities import RequestStatus

    registry = ml.get_registry()
    pending = registry.store.list_requests(name=MODEL, status=RequestStatus.PENDING)
    for request in pending:
        registry.store.approve_request(
            request.request_id,
            actor=RISK_OFFICER,
            reason="gate interval and canary evidence reviewed",
        )
    return step_policy(POLICY, now=at, settings=settings) if pending else []


def _status(answered: pd.DataFrame) -> dict[str, Any]:
    versions = sorted(set(answered["version"])) if len(answered) else []
    return {
        "transactions": len(answered),
        "versions": versions,
        "frauds": int(answered["label"].sum()) if len(answered) else 0,
    }


@dataclass
class _Served:
    client: httpx.Client
    flush: Callable[[], bool]  # the prediction log, written now (the monitor reads files)


@contextlib.contextmanager
def _serving(settings: Settings, clock: dict[str, int]) -> Iterator[_Served]:
    """``modelloop serve --deployment fraud-online`` on 127.0.0.1, on the simulation's clock."""
    import httpx
    import uvicorn

    from modelloop.serving.fluent import get_deployment
    from modelloop.serving.server import ServeSpec, build_app

    spec = ServeSpec(
        deployment=get_deployment(DEPLOYMENT, settings=settings).deployment.to_record(),
        stored=True,
        poll_interval=0.05,
    )
    app = build_app(spec, settings, clock=lambda: clock["ms"])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", ws="none", lifespan="on"
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the serving app did not start")
        time.sleep(0.01)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            yield _Served(client, app.state.service.log.flush)
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()


def _wait_for_deployment(client: httpx.Client) -> None:
    """Until the server answers with the stored deployment (it polls for changes)."""
    from modelloop.serving.fluent import get_deployment

    wanted = get_deployment(DEPLOYMENT).deployment
    for _ in range(400):
        ready = client.get("/ready").json()
        if (
            ready.get("mode") == wanted.mode.value
            and ready.get("canary_percent") == wanted.canary_percent
        ):
            return
        time.sleep(0.025)
    raise RuntimeError(f"the server did not switch to {wanted.mode.value}")


# -- the report ------------------------------------------------------------------------------------


def weekly_quality(served: pd.DataFrame, config: DemoConfig) -> pd.DataFrame:
    """AP and card precision@100 of what was served, per served week."""
    from sklearn.metrics import average_precision_score

    from modelloop.monitoring.performance import card_precision_at_k

    frame = served.copy()
    offset = pd.to_datetime(frame["time"]) - pd.Timestamp(config.start.replace(tzinfo=None))
    frame["week"] = offset.dt.days // 7 + 1
    frame["day"] = offset.dt.days
    rows = []
    for week, part in frame.groupby("week"):
        week = int(str(week))
        cp, _ = card_precision_at_k(part.rename(columns={"customer": "entity"}), k=100)
        ap, ap_never = (
            float(average_precision_score(part["label"], part[column]))
            if part["label"].any() and column in part
            else np.nan
            for column in ("score", "score_v1")
        )
        first_day = int(part["day"].min())
        rows.append(
            {
                "week": week,
                "days": f"{first_day + 1}-{int(part['day'].max()) + 1}",
                "transactions": len(part),
                "frauds": int(part["label"].sum()),
                "versions": ",".join(f"v{v}" for v in sorted(set(part["version"]))),
                "ap": ap,
                "ap_never": ap_never,
                "cp@100": cp,
                "drift": first_day + 7 > config.drift_day and config.scenario != "none",
            }
        )
    return pd.DataFrame(rows)
