"""``modelloop policy``: the closed loop of a deployment (retrain, gate, rollout, rollback).

    modelloop policy apply FILE
    modelloop policy list | show NAME | timeline NAME
    modelloop policy step NAME
    modelloop policy rollout NAME --version N [--stage shadow|canary]

Thin: every command calls the automation SDK and renders the result, on the metadata database
or through the server at ``MODELLOOP_TRACKING_URI`` alike. ``step`` and ``rollout`` act at the
store's clock (the simulated instant on a simulated store, else the wall clock); through a
server, the server runs them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from modelloop.cli._common import OutputFormat, OutputOption, _examples

policy_app: typer.Typer = typer.Typer(
    help="Automation policies: when a deployment retrains itself, the gate a challenger must "
    "pass, and its rollout (shadow, canary, promotion or rollback), every decision audited.",
    no_args_is_help=True,
    epilog=_examples(
        "modelloop policy apply policy.yaml",
        "modelloop policy step quickstart-loop",
        "modelloop policy timeline quickstart-loop",
    ),
)
Name = Annotated[str, typer.Argument(metavar="NAME", help="The policy's name.")]


@policy_app.command(
    "apply",
    help="Create or replace a policy from a YAML file (validated whole; every problem is "
    "reported). Keys: name, deployment, model, monitor, triggers, training, gate, rollout.",
    epilog=_examples("modelloop policy apply policy.yaml"),
)
def policy_apply(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="The policy's YAML file.")],
) -> None:
    from modelloop.automation.policy import apply_policy, load_policy_file

    policy = load_policy_file(file)
    changed = apply_policy(policy)
    typer.echo(f"Policy {policy.name} {'applied' if changed else 'unchanged'}")


@policy_app.command(
    "list",
    help="List the stored policies and where each one's loop stands.",
    epilog=_examples("modelloop policy list", "modelloop policy list --output json"),
)
def policy_list(output: OutputOption = OutputFormat.table) -> None:
    from modelloop.automation.entities import PolicyState
    from modelloop.automation.policy import policy_store
    from modelloop.cli import _output

    with policy_store() as store:
        states = store.states()
        rows = [(p, states.get(p.name, PolicyState("idle"))) for p in store.list()]
    if output is OutputFormat.json:
        _output.print_json([{**p.to_record(), "state": s.to_record()} for p, s in rows])
        return
    if not rows:
        typer.echo("No policies yet: modelloop policy apply FILE")
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("name", "deployment", "model", "monitor", "stage", "challenger", "trainings"):
        table.add_column(column, no_wrap=True)
    for p, s in rows:
        table.add_row(
            _output.escape(p.name),
            _output.escape(p.deployment),
            _output.escape(p.model),
            _output.escape(p.monitor),
            s.stage,
            f"v{s.challenger_version}" if s.challenger_version else "-",
            str(s.trainings),
        )
    _output.console().print(table)


@policy_app.command(
    "show",
    help="A policy's settings (as YAML, defaults included) and its loop's state.",
    epilog=_examples("modelloop policy show quickstart-loop"),
)
def policy_show(
    name: Name,
    output: Annotated[
        OutputFormat | None, typer.Option("--output", "-o", help="json instead of YAML.")
    ] = None,
) -> None:
    from modelloop.automation.policy import policy_store
    from modelloop.cli import _output

    with policy_store() as store:
        policy, state = store.get(name), store.state(name)
    if output is OutputFormat.json:
        _output.print_json({**policy.to_record(), "state": state.to_record()})
        return
    import yaml

    typer.echo(yaml.safe_dump(policy.to_record(), sort_keys=False).rstrip())
    typer.echo(
        f"# stage: {state.stage}"
        + (f", challenger v{state.challenger_version}" if state.challenger_version else "")
    )


@policy_app.command(
    "step",
    help="Advance the loop as far as now (the store's clock) allows: check the triggers, train, "
    "gate, move the rollout along, promote or roll back. Run it on a schedule (e.g. every "
    "hour); a step with nothing due does nothing.",
    epilog=_examples("modelloop policy step quickstart-loop"),
)
def policy_step(name: Name, output: OutputOption = OutputFormat.table) -> None:
    from modelloop.automation.loop import step_policy
    from modelloop.cli import _output

    with _output.console().status(f"Stepping policy {name}..."):
        decisions = step_policy(name)  # at the store's clock (a server's, through one)
    if output is OutputFormat.json:
        _output.print_json([_decision(d) for d in decisions])
        return
    if not decisions:
        typer.echo(f"Nothing due for policy {name}")
    for d in decisions:
        typer.echo(_line(d.action, d.evidence))


@policy_app.command(
    "rollout",
    help="Put a registered version under the policy's watch by hand: in shadow, or straight "
    "in canary; the policy then promotes it or rolls it back like one it trained.",
    epilog=_examples(
        "MODELLOOP_USER=release-manager modelloop policy rollout fraud-loop --version 3 "
        "--stage canary"
    ),
)
def policy_rollout(
    name: Name,
    version: Annotated[int, typer.Option(help="The version to roll out.", min=1)],
    stage: Annotated[str, typer.Option(help="shadow or canary.")] = "shadow",
) -> None:
    from modelloop.automation.loop import start_rollout

    start_rollout(name, version, stage=stage)  # at the store's clock (a server's, through one)
    typer.echo(f"Policy {name}: v{version} in {stage}")


@policy_app.command(
    "timeline",
    help="The loop's decisions, oldest first, from the audit trail: triggers (and the ones "
    "skipped or scheduled, with why), trainings, gate results with the replay they were judged "
    "on, rollout stages with their checks, promotions and rollbacks; then the time it took to "
    "adapt to each change the triggers detected.",
    epilog=_examples("modelloop policy timeline quickstart-loop --output json"),
)
def policy_timeline(name: Name, output: OutputOption = OutputFormat.table) -> None:
    from modelloop.automation.adaptation import detected_changes, time_to_adapt
    from modelloop.automation.loop import timeline
    from modelloop.cli import _output

    events = timeline(name)
    adapted = [time_to_adapt(events, start) for start in detected_changes(events)]
    if output is OutputFormat.json:
        _output.print_json(
            {
                "decisions": [_decision(d) for d in events],
                "adaptation": [a.to_dict() for a in adapted],
            }
        )
        return
    if not events:
        typer.echo(f"No decisions yet for policy {name}")
        return
    for d in events:
        typer.echo(f"{_output.format_time(d.time)}  {_line(d.action, d.evidence)}")
        for line in _replay_lines(d.evidence):
            typer.echo(f"{'':20}{line}")
    typer.echo("\nTime to adapt (days from a change's start, UTC)")
    if not adapted:
        typer.echo("  no change detected by the triggers yet")
    for a in adapted:
        typer.echo(f"  {a.summary()}" + (f" (v{a.version})" if a.version is not None else ""))


@policy_app.command(
    "delete",
    help="Delete a policy and its loop's state; its decisions stay in the audit trail, and a "
    "rollout in progress stays as it stands. Asks first unless --yes.",
    epilog=_examples("MODELLOOP_USER=ops modelloop policy delete fraud-loop --yes"),
)
def policy_delete(
    name: Name,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    from modelloop.automation.entities import policy_not_found
    from modelloop.automation.policy import policy_store
    from modelloop.tracking.source import current_user

    with policy_store() as store:
        store.get(name)  # NotFound before asking
        if not yes:
            typer.confirm(f"Delete policy {name}?", abort=True)
        if not store.delete(name, actor=current_user()):
            raise policy_not_found(name)
    typer.echo(f"Policy {name} deleted")


def _line(action: str, evidence: dict[str, Any]) -> str:
    """A decision in one line: what it was, and the evidence a reader needs first."""
    name = action.removeprefix("policy.")
    found = "; ".join(str(r) for r in evidence.get("reasons", []))
    if action == "policy.trigger_skipped":
        return f"{name}: {evidence.get('skipped', '')}" + (f" (found: {found})" if found else "")
    if action == "policy.retrain_scheduled":
        by = f", found by {evidence['by']}" if evidence.get("by") else ""
        return (
            f"{name} for {_when(evidence.get('at'))} (the change from "
            f"{_when(evidence.get('change_start'))}{by})" + (f": {found}" if found else "")
        )
    version = f" v{evidence['version']}" if "version" in evidence else ""
    detail = evidence.get("summary") or evidence.get("reason") or _detail(action, evidence)
    return f"{name}{version}" + (f": {detail}" if detail else "")


def _detail(action: str, evidence: dict[str, Any]) -> str:
    if action == "policy.trained" and "rows" in evidence:
        window = evidence.get("window") or [None, None]
        span = f" of {window[0][:10]}..{window[1][:10]}" if all(window) else ""
        held = evidence.get("holdout_rows")
        return f"{evidence['rows']:,} labelled predictions{span}" + (
            f", {held:,} held out" if isinstance(held, int) else ""
        )
    if action == "policy.canary":
        checks = _checks(evidence.get("shadow"))
        percent = evidence.get("canary_percent")
        return "; ".join(
            [f"shadow {checks}" if checks else "", f"now answering {percent:g}%" if percent else ""]
        ).strip("; ")
    if action in ("policy.approval_requested", "policy.promoted"):
        parts = [f"canary {_checks(evidence.get('canary'))}" if evidence.get("canary") else ""]
        if isinstance(evidence.get("challenger"), float) and isinstance(
            evidence.get("champion"), float
        ):
            parts.append(
                f"live {evidence.get('metric', '')} {evidence['challenger']:.4f} vs "
                f"{evidence['champion']:.4f}"
            )
        if evidence.get("approved_by"):
            parts.append(f"approved by {evidence['approved_by']}")
        if evidence.get("request_id"):
            parts.append(f"request {evidence['request_id']}")
        return "; ".join(p for p in parts if p)
    if action == "policy.rollout_started":
        return f"in {evidence.get('stage', '?')} by {evidence.get('by', '?')}"
    return "; ".join(str(r) for r in evidence.get("reasons", []))


def _checks(checks: Any) -> str:
    """A rollout stage's operational checks in a few words."""
    if not isinstance(checks, dict) or "checks" not in checks:
        return ""
    names = ", ".join(checks["checks"])
    requests = checks.get("requests")
    on = f" on {requests} requests" if requests is not None else ""
    if checks.get("passed"):
        return f"checks passed{on} ({names})"
    return f"checks failed{on}: " + "; ".join(str(r) for r in checks.get("reasons", []))


def _replay_lines(evidence: dict[str, Any]) -> list[str]:
    """Under a gate decision: the traffic replayed and the metric of both models per day."""
    replay = evidence.get("replay")
    if not isinstance(replay, dict):
        return []
    lines = [str(replay.get("data", ""))] if replay.get("data") else []
    days = replay.get("per_day") or []
    if days:
        lines.append(
            f"{'day':<10}  {'rows':>6}  {'positives':>9}  {'champion':>8}  {'challenger':>10}"
            f"  ({_per_day_metric(evidence)} per day)"
        )
        lines += [
            f"{d.get('day', '')!s:<10}  {d.get('rows', 0):>6,}  {d.get('positives', 0):>9,}  "
            f"{_value(d.get('champion')):>8}  {_value(d.get('challenger')):>10}"
            for d in days
        ]
    return lines


def _per_day_metric(evidence: dict[str, Any]) -> str:
    """The per-day table's metric: the gate's when defined on a day's rows alone (as
    ``Replay.per_day`` computes it), else average precision."""
    if isinstance(evidence["replay"].get("metric"), str):
        return str(evidence["replay"]["metric"])
    metric = evidence.get("metric")
    return str(metric) if metric in ("average_precision", "auc_roc") else "average_precision"


def _value(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) and value == value else "-"


def _when(text: Any) -> str:
    """An ISO instant of the evidence, to the minute (UTC)."""
    return f"{str(text)[:16].replace('T', ' ')} UTC" if text else "?"


def _decision(d: Any) -> dict[str, Any]:
    return {"action": d.action, "time": d.time, "evidence": d.evidence}
