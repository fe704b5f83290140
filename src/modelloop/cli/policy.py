"""``modelloop policy``: the closed loop of a deployment (retrain, gate, rollout, rollback).

    modelloop policy apply FILE
    modelloop policy list | show NAME | timeline NAME
    modelloop policy step NAME
    modelloop policy rollout NAME --version N [--stage shadow|canary]

Thin: every command calls the automation SDK and renders the result. ``step`` and ``rollout``
act at the store's clock (the simulated instant on a simulated store, else the wall clock).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from modelloop.cli.app import OutputFormat, OutputOption, _examples

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
    from modelloop.automation.policy import list_policies, policy_state
    from modelloop.cli import _output

    rows = [(p, policy_state(p.name)) for p in list_policies()]
    if output is OutputFormat.json:
        _output.print_json([{**p.to_record(), "state": _state(s)} for p, s in rows])
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
    from modelloop.automation.policy import get_policy, policy_state
    from modelloop.cli import _output

    policy, state = get_policy(name), policy_state(name)
    if output is OutputFormat.json:
        _output.print_json({**policy.to_record(), "state": _state(state)})
        return
    import yaml

    typer.echo(yaml.safe_dump(policy.to_record(), sort_keys=False).rstrip())
    typer.echo(f"# stage: {state.stage}" + (f", challenger v{state.challenger_version}"
                                            if state.challenger_version else ""))  # fmt: skip


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
    from modelloop.store_clock import store_clock

    with _output.console().status(f"Stepping policy {name}..."):
        decisions = step_policy(name, now=store_clock().now)
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
    from modelloop.store_clock import store_clock

    start_rollout(name, version, stage=stage, now=store_clock().now)
    typer.echo(f"Policy {name}: v{version} in {stage}")


@policy_app.command(
    "timeline",
    help="The loop's decisions, oldest first, from the audit trail: triggers, trainings, gate "
    "results with their intervals, rollout stages, promotions and rollbacks.",
    epilog=_examples("modelloop policy timeline quickstart-loop --output json"),
)
def policy_timeline(name: Name, output: OutputOption = OutputFormat.table) -> None:
    from modelloop.automation.loop import timeline
    from modelloop.cli import _output

    events = timeline(name)
    if output is OutputFormat.json:
        _output.print_json([_decision(d) for d in events])
        return
    if not events:
        typer.echo(f"No decisions yet for policy {name}")
    for d in events:
        typer.echo(f"{_output.format_time(d.time)}  {_line(d.action, d.evidence)}")


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
    from modelloop.automation.policy import delete_policy, get_policy
    from modelloop.errors import NotFound

    get_policy(name)  # NotFound before asking
    if not yes:
        typer.confirm(f"Delete policy {name}?", abort=True)
    if not delete_policy(name):
        raise NotFound(f"No policy named {name!r}")
    typer.echo(f"Policy {name} deleted")


def _line(action: str, evidence: dict[str, Any]) -> str:
    detail = (
        evidence.get("summary") or evidence.get("reason") or "; ".join(evidence.get("reasons", []))
    )
    version = f" v{evidence['version']}" if "version" in evidence else ""
    return f"{action.removeprefix('policy.')}{version}" + (f": {detail}" if detail else "")


def _decision(d: Any) -> dict[str, Any]:
    return {"action": d.action, "time": d.time, "evidence": d.evidence}


def _state(state: Any) -> dict[str, Any]:
    return {k: getattr(state, k) for k in state.__slots__}
