"""``modelloop demo fraud``: the closed loop on simulated card fraud, end to end (``make demo``).

Thin: the work is :mod:`modelloop.examples.fraud.demo`; this renders progress and the report.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Annotated, Any

import typer

from modelloop.cli._common import _examples

demo_app: typer.Typer = typer.Typer(
    help="Demonstrations that run the whole product on the embedded store.",
    no_args_is_help=True,
    epilog=_examples("modelloop demo fraud --days 21 --drift-day 7 --customers 300"),
)


@demo_app.command(
    "fraud",
    help="The closed loop on real-time card-fraud detection: train a champion through a "
    "pipeline, serve it over HTTP, stream simulated days through /predict with features "
    "computed online, send labels back a week later, monitor drift and performance daily, and "
    "let the policy retrain, gate, roll out and promote (or roll back) when a new fraud "
    "pattern appears. Starts over in DIR each time (default $MODELLOOP_HOME/fraud-demo).",
    epilog=_examples(
        "modelloop demo fraud",
        "modelloop demo fraud --scenario behaviour-shift --seed 3 --customers 300 --days 14 "
        "--drift-day 7",
    ),
)
def demo_fraud(
    days: Annotated[int, typer.Option(help="Days to serve.", min=7, max=365)] = 56,
    drift_day: Annotated[
        int, typer.Option(help="Served day on which the scenario starts.", min=0)
    ] = 14,
    scenario: Annotated[
        str, typer.Option(help="fraud-ring, behaviour-shift, volume-surge or none.")
    ] = "fraud-ring",
    seed: Annotated[int, typer.Option(help="Seed of the simulated bank.")] = 0,
    customers: Annotated[int, typer.Option(help="Cards in the simulated bank.", min=50)] = 1000,
    home: Annotated[
        Path | None,
        typer.Option(help="Where the demo's store lives (wiped first).", show_default=False),
    ] = None,
) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from modelloop.cli import _output
    from modelloop.errors import InvalidArgument
    from modelloop.examples.fraud import demo
    from modelloop.settings import load_settings
    from modelloop.tracking import fluent

    if scenario not in demo.SCENARIOS:
        raise InvalidArgument(f"--scenario must be one of {', '.join(demo.SCENARIOS)}")
    if drift_day >= days:
        raise InvalidArgument(f"--drift-day {drift_day} is not within the {days} served days")
    home = (home or load_settings().home / "fraud-demo").absolute()
    if home.exists():
        shutil.rmtree(home)
    for name in (
        "MODELLOOP_DATABASE_URL",
        "MODELLOOP_ARTIFACT_URI",
        "MODELLOOP_TRACKING_URI",
        "MODELLOOP_PREDICTION_LOG",
    ):
        os.environ.pop(name, None)
    os.environ["MODELLOOP_HOME"] = str(home)
    fluent.close_clients()
    config = demo.DemoConfig(
        days=days,
        drift_day=drift_day,
        scenario=scenario,
        seed=seed,
        customers=customers,
        terminals=customers * 2,
    )
    logging.getLogger("modelloop.monitoring.notify").setLevel(logging.CRITICAL + 1)  # shown here
    console = _output.console()
    console.print(f"[bold]modelloop fraud demo[/] in {home} (SQLite + local files)")
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("days served", total=days, status="")

        def on_step(text: str) -> None:
            progress.update(task, status=text)

        def on_day(day: int, decisions: list[Any], status: dict[str, Any]) -> None:
            versions = ",".join(f"v{v}" for v in status["versions"])
            note = "; ".join(d.action.removeprefix("policy.") for d in decisions)
            progress.update(task, advance=1, status=f"{versions} {note}".strip())
            for alert in status["alerts"]:
                colour = "red" if alert["state"] == "firing" else "green"
                progress.console.print(
                    f"  day {day + 1:>3}  [{colour}]alert {alert['state']}[/]: {alert['rule']} "
                    f"({alert['metric']} {alert['value']:.3f}, {alert['condition']})"
                )
            for d in decisions:
                if d.action != "policy.trigger_skipped":  # one a day at times: counted at the end
                    progress.console.print(f"  day {day + 1:>3}  {_describe(d)}")

        result = demo.run_demo(config, on_day=on_day, on_step=on_step)
    _report(console, result, home)


def _describe(decision: Any) -> str:
    e = decision.evidence
    action = decision.action.removeprefix("policy.")
    if action == "trigger":
        return f"[yellow]trigger[/]: {'; '.join(e.get('reasons', []))}"
    if action == "trained":
        return f"trained v{e['version']} on {e['rows']:,} labelled predictions"
    if action == "rejected" and "interval" not in e:
        return f"gate v{e['version']} [red]rejected[/]: {e.get('reason', '')}"
    if action in ("rejected", "shadow"):
        verdict = "[red]rejected[/]" if action == "rejected" else "[green]passed[/], in shadow"
        low, high = e["interval"]
        replay = e.get("replay", {})
        on = f" on the replay of {e['rows']:,} logged requests" if replay else ""
        return (
            f"gate v{e['version']} {verdict}: AP {e['challenger_value']:.3f} vs "
            f"{e['champion_value']:.3f}{on}, 95% interval of the difference "
            f"[{low:+.3f}, {high:+.3f}]"
        )
    if action == "canary":
        checks = e.get("shadow", {}).get("requests")
        seen = f" after {checks} requests scored in shadow passed its checks" if checks else ""
        return f"canary: v{e['version']} answers {e['canary_percent']:g}% of traffic{seen}"
    if action in ("promoted", "rolled_back"):
        word = "[green]promoted[/]" if action == "promoted" else "[red]rolled back[/]"
        live = ""
        if e.get("challenger") is not None and e.get("champion") is not None:
            live = f" (live AP {e['challenger']:.3f} vs {e['champion']:.3f})"
        return f"v{e['version']} {word}{live}" + (f": {e['reason']}" if "reason" in e else "")
    if action == "approval_requested":
        return "champion alias requested: waiting for the risk officer's approval"
    if action == "retrain_scheduled":
        return f"[yellow]change detected[/] ({'; '.join(e.get('reasons', []))}): {e['scheduled']}"
    if action == "trigger_skipped":
        return f"trigger skipped: {e.get('skipped', '')}"
    return f"{action}: {e.get('reason', '')}"


def _story(result: Any) -> list[str]:
    """The decisions that matter, by served day: detection, gate verdicts, outcomes."""
    start = result.config.start.timestamp() * 1000
    lines = []
    following = [*result.timeline[1:], None][: len(result.timeline)]  # none: no decision
    for d, after in zip(result.timeline, following, strict=True):
        day = int((d.time - start) // 86_400_000)  # decisions are taken at the end of a day
        if d.action == "policy.trigger":
            skipped = after is not None and after.action == "policy.training_skipped"
            note = ", skipped: too few labelled predictions yet" if skipped else ""
            reasons = "; ".join(d.evidence["reasons"])
            lines.append(f"day {day:>3}: retraining triggered ({reasons}){note}")
        elif d.action in (
            "policy.shadow",
            "policy.rejected",
            "policy.canary",
            "policy.promoted",
            "policy.rolled_back",
            "policy.retrain_scheduled",
        ):
            lines.append(f"day {day:>3}: {_describe(d)}")
    skipped = [d for d in result.timeline if d.action == "policy.trigger_skipped"]
    if skipped:
        lines.append(
            f"{len(skipped)} trigger(s) skipped, each recorded with its reason (cooldown, "
            "drifted features the model barely reads, performance holding, budget)"
        )
    return lines or ["no retraining was triggered"]


def _adaptation(result: Any) -> list[str]:
    """Time to adapt and what it bought: AP over the change weeks, the loop vs never."""
    from modelloop.automation.adaptation import time_to_adapt
    from modelloop.examples.fraud.demo import LABEL_DELAY_DAYS

    config = result.config
    if config.scenario == "none":
        return []
    start = int(config.start.timestamp() * 1000) + config.drift_day * 86_400_000
    adapted = time_to_adapt(result.timeline, start)

    def days(value: float | None) -> str:
        return "not yet" if value is None else f"{value:.1f} days"

    weeks = result.weekly[result.weekly["drift"]]
    served, never = float(weeks["ap"].mean()), float(weeks["ap_never"].mean())
    return [
        f"Time to adapt to the {config.scenario} (from day {config.drift_day + 1}, labels "
        f"{LABEL_DELAY_DAYS} days late): a model trained on it after "
        f"{days(adapted.trained)}, on >= 20% of traffic after {days(adapted.partial)}, on all "
        f"of it after {days(adapted.full)}.",
        f"AP over the weeks it was under way: {served:.3f} served by the loop vs {never:.3f} "
        f"had the first champion never been replaced ({served / never - 1:+.1%}).",
    ]


def _report(console: Any, result: Any, home: Path) -> None:
    from rich.table import Table

    from modelloop.examples import cli_command

    console.print()
    table = Table(title="What was served, week by week", box=None, header_style="bold")
    for column in ("week", "days", "transactions", "frauds", "models", "AP", "AP never", "CP@100"):
        table.add_column(column, justify="right" if column not in ("days", "models") else "left")
    for row in result.weekly.to_dict(orient="records"):
        marker = " *" if row["drift"] else ""
        table.add_row(
            f"{row['week']}{marker}",
            row["days"],
            f"{row['transactions']:,}",
            str(row["frauds"]),
            row["versions"],
            f"{row['ap']:.3f}",
            f"{row['ap_never']:.3f}",
            f"{row['cp@100']:.3f}",
        )
    console.print(table)
    if result.config.scenario != "none":
        console.print(
            f"  * {result.config.scenario} under way (from day {result.config.drift_day + 1})"
        )
    console.print("\n[bold]The loop, in short[/]:")
    for line in _story(result):
        console.print(f"  {line}")
    for line in _adaptation(result):
        console.print(f"\n[bold]{line}[/]" if line.startswith("Time") else line)
    trainings = sum(d.action == "policy.trained" for d in result.timeline)
    console.print(
        f"\n{len(result.served):,} transactions scored over HTTP in "
        f"{result.seconds:.0f} s; {trainings} retraining(s)."
    )
    env = f"MODELLOOP_HOME={home} {cli_command()}"
    console.print("\n[bold]Look around[/]:")
    for line in (
        f"{env} policy timeline fraud-loop",
        f"{env} monitor results fraud-watch --kind performance",
        f"{env} monitor alerts",
        f"{env} audit log --model fraud-detector",
        f"{env} ui    # then open http://127.0.0.1:8765/ui/ (the story in a browser)",
    ):
        console.print(f"  {line}", highlight=False, markup=False)
