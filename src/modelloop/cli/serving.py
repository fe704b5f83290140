"""``modelloop serve``, ``modelloop deployments`` and ``modelloop predictions``: real-time serving.

modelloop serve MODEL_URI | --deployment FILE|NAME [--host] [--port] [--workers] [--token]
                [--poll-interval] [--allow-pickle] [--log-level] [--access-log]
modelloop deployments apply FILE | list | show NAME
modelloop predictions export MODEL [--start] [--end] [--deployment] --output FILE.parquet
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelloop.cli._common import LogLevel, OutputFormat, OutputOption, _examples
from modelloop.errors import InvalidArgument

deployments_app = typer.Typer(
    help="Serving configurations (model, challenger, shadow or canary) stored in the metadata "
    "database, or through the server that MODELLOOP_TRACKING_URI names.",
    no_args_is_help=True,
    epilog=_examples(
        "modelloop deployments apply --name fraud-shadow --model fraud-detector@champion",
        "modelloop deployments list",
        "MODELLOOP_TOKEN=$(modelloop users token --generate) modelloop serve "
        "--deployment fraud-shadow --host 0.0.0.0",
    ),
)
predictions_app = typer.Typer(
    help="The prediction log: what was served, with the labels that came back.",
    no_args_is_help=True,
    epilog=_examples(
        "modelloop predictions export fraud-detector --start 2026-01-01 --output "
        "predictions.parquet",
    ),
)


def register(app: typer.Typer) -> None:
    """Add the serving commands to the root command."""
    app.command(
        "serve",
        help="Serve a registered model over HTTP: POST /predict, /explain and /feedback; GET "
        "/health, /ready and /metrics.\n\n"
        "Give a model (NAME@ALIAS follows the alias: when it moves, the new version is loaded "
        "in the background and swapped in without failing a request) or a deployment (a YAML "
        "file, or the name of one stored with 'modelloop deployments apply') to add a shadow "
        "or canary challenger. Every prediction is logged to $MODELLOOP_PREDICTION_LOG.",
        # Serving blocks, so its examples set the environment first: the help's examples are
        # run by the CLI tests, and these must not be (see the server command's).
        epilog=_examples(
            "MODELLOOP_PREDICTION_LOG=/data/predictions modelloop serve fraud-detector@champion",
            "MODELLOOP_TOKEN=$(modelloop users token --generate) modelloop serve "
            "fraud-detector@champion --host 0.0.0.0 --workers 2",
            "MODELLOOP_DATABASE_URL=postgresql+psycopg://db.example/modelloop modelloop serve "
            "--deployment fraud-online",
            "curl -s localhost:8080/predict -H 'content-type: application/json' "
            '-d \'{"amount": 12.5, "merchant": "grocery"}\'',
        ),
    )(serve)
    app.add_typer(deployments_app, name="deployments")
    app.add_typer(predictions_app, name="predictions")


def serve(
    model: Annotated[
        str | None,
        typer.Argument(
            metavar="[MODEL_URI]",
            help="NAME@ALIAS (follows the alias) or NAME/VERSION.",
            show_default=False,
        ),
    ] = None,
    deployment: Annotated[
        str | None,
        typer.Option(
            "--deployment",
            "-d",
            metavar="FILE|NAME",
            help="A deployment YAML file, or the name of a stored deployment (followed: "
            "'deployments apply' changes a running server).",
            show_default=False,
        ),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address to bind. Anything but loopback requires a token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8080,
    workers: Annotated[int, typer.Option(help="Server processes (replicas).", min=1)] = 1,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="MODELLOOP_TOKEN",
            help="Bearer token clients must send (all but /health). Prefer the environment "
            "variable: command lines are visible to other users.",
            show_default=False,
        ),
    ] = None,
    poll_interval: Annotated[
        float,
        typer.Option(help="Seconds between checks of where the aliases point.", min=0.1),
    ] = 2.0,
    allow_pickle: Annotated[
        bool,
        typer.Option(
            "--allow-pickle",
            help="Load pickled ('python' flavor) models. Unpickling runs the file author's "
            "code: only for models you trust.",
        ),
    ] = False,
    log_level: Annotated[LogLevel, typer.Option(help="Server log verbosity.")] = LogLevel.warning,
    access_log: Annotated[
        bool, typer.Option("--access-log", help="Log every request (slower).")
    ] = False,
) -> None:
    from modelloop.serving.deployment import deployment_for_model, load_deployment_file
    from modelloop.serving.fluent import get_deployment
    from modelloop.serving.server import ServeSpec, run_serving

    if token is not None:
        from modelloop.auth import check_token

        check_token(token)  # before any model or deployment is looked up
    if (model is None) == (deployment is None):
        raise InvalidArgument("Give a model (e.g. fraud-detector@champion) or --deployment")
    stored = False
    if model is not None:
        config = deployment_for_model(model)
    elif deployment is not None and Path(deployment).is_file():
        config = load_deployment_file(deployment)
    else:
        assert deployment is not None
        if deployment.endswith((".yaml", ".yml", ".json")):
            raise InvalidArgument(f"No deployment file {deployment}")
        config = get_deployment(deployment).deployment
        stored = True
    spec = ServeSpec(
        deployment=config.to_record(),
        stored=stored,
        allow_pickle=allow_pickle,
        poll_interval=poll_interval,
        token=token,
    )

    def announce() -> None:  # once the models loaded: a missing one fails before a word of this
        typer.echo(
            f"Serving {config.name} ({config.mode.value}: {config.model}"
            + (f", challenger {config.challenger}" if config.challenger else "")
            + f") on http://{host}:{port} with {workers} worker(s)",
            err=True,
        )

    run_serving(
        spec,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level.value,
        access_log=access_log,
        on_loaded=announce,
    )


# -- deployments ---------------------------------------------------------------------------------


@deployments_app.command(
    "apply",
    help="Create or replace a stored deployment (audited), from a YAML file, from options, "
    "or from a file with options overriding it. Servers running it pick the change up within "
    "their poll interval.",
    epilog=_examples(
        "modelloop deployments apply --name fraud-shadow --model fraud-detector@champion",
        "modelloop deployments apply --name fraud-shadow --model fraud-detector@champion "
        "--challenger fraud-detector/1 --mode shadow",
        "MODELLOOP_DATABASE_URL=postgresql+psycopg://db.example/modelloop modelloop "
        "deployments apply fraud-online.yaml",
    ),
)
def deployments_apply(
    file: Annotated[
        Path | None,
        typer.Argument(metavar="[FILE]", help="Deployment YAML.", show_default=False),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Deployment name.")] = None,
    model: Annotated[str | None, typer.Option(help="NAME@ALIAS or NAME/VERSION.")] = None,
    challenger: Annotated[str | None, typer.Option(help="NAME@ALIAS or NAME/VERSION.")] = None,
    mode: Annotated[str | None, typer.Option(help="single, shadow or canary.")] = None,
    canary_percent: Annotated[
        float | None, typer.Option(help="Canary: the challenger's share of traffic (0-100).")
    ] = None,
    sticky_key: Annotated[
        str | None, typer.Option(help="Canary: the field that keeps an entity on one model.")
    ] = None,
    log_key: Annotated[
        list[str] | None,
        typer.Option(
            help="A request field logged with each prediction but not a feature (e.g. the card "
            "id, for card precision@k); repeat for several.",
            show_default=False,
        ),
    ] = None,
    explain_top_k: Annotated[int | None, typer.Option(help="Reason codes per row.")] = None,
    log_predictions: Annotated[
        bool | None,
        typer.Option("--log-predictions/--no-log-predictions", help="Log every prediction."),
    ] = None,
) -> None:
    from modelloop.serving.deployment import parse_deployment
    from modelloop.serving.fluent import apply_deployment

    data: dict[str, object] = {}
    if file is not None:
        from modelloop.serving.deployment import load_deployment_file

        data = load_deployment_file(file).to_record()
    given = {
        "name": name,
        "model": model,
        "challenger": challenger,
        "mode": mode,
        "canary_percent": canary_percent,
        "sticky_key": sticky_key,
        "log_keys": log_key or None,
        "explain_top_k": explain_top_k,
        "log_predictions": log_predictions,
    }
    data.update({key: value for key, value in given.items() if value is not None})
    if not data:
        raise InvalidArgument("Give a deployment file, or at least --name and --model")
    config = parse_deployment(data, str(file) if file is not None else "the options")
    changed = apply_deployment(config)
    typer.echo(f"Deployment {config.name} {'applied' if changed else 'unchanged'}")


@deployments_app.command(
    "list",
    help="Every stored deployment.",
    epilog=_examples("modelloop deployments list", "modelloop deployments list --output json"),
)
def deployments_list(output: OutputOption = OutputFormat.table) -> None:
    from modelloop.cli import _output
    from modelloop.serving.fluent import list_deployments

    stored = list_deployments()
    if output is OutputFormat.json:
        _output.print_json([as_record(s) for s in stored])
        return
    from rich.table import Table

    if not stored:
        typer.echo("No deployments yet: modelloop deployments apply FILE")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("name", "mode", "model", "challenger", "updated", "by"):
        table.add_column(column, no_wrap=True)
    for s in stored:
        d = s.deployment
        mode = d.mode.value + (f" {d.canary_percent:g}%" if d.canary_percent is not None else "")
        table.add_row(
            d.name,
            mode,
            str(d.model),
            str(d.challenger or "-"),
            _output.format_time(s.updated_at),
            s.updated_by,
        )
    _output.console().print(table)


@deployments_app.command(
    "show",
    help="One stored deployment, as YAML (or JSON).",
    epilog=_examples("modelloop deployments show fraud-shadow --output json"),
)
def deployments_show(
    name: Annotated[str, typer.Argument(metavar="NAME")],
    output: Annotated[
        OutputFormat | None, typer.Option("--output", "-o", help="json instead of YAML.")
    ] = None,
) -> None:
    from modelloop.cli import _output
    from modelloop.serving.fluent import get_deployment

    stored = get_deployment(name)
    if output is OutputFormat.json:
        _output.print_json(as_record(stored))
        return
    import yaml

    typer.echo(yaml.safe_dump(stored.deployment.to_record(), sort_keys=False).rstrip())
    typer.echo(f"# updated {_output.format_time(stored.updated_at)} by {stored.updated_by}")


def as_record(stored: object) -> dict[str, object]:
    from modelloop.serving.deployment import StoredDeployment

    assert isinstance(stored, StoredDeployment)
    return {
        **stored.deployment.to_record(),
        "updated_at": stored.updated_at,
        "updated_by": stored.updated_by,
    }


# -- predictions ---------------------------------------------------------------------------------


@predictions_app.command(
    "export",
    help="Write a model's logged predictions made in [START, END), with their labels, to one "
    "Parquet file.",
    epilog=_examples(
        "modelloop predictions export fraud-detector --output predictions.parquet",
        "modelloop predictions export fraud-detector --start 2026-01-01 --end 2026-01-08 "
        "--deployment fraud-online --output week1.parquet",
    ),
)
def predictions_export(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="Registered model name.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The Parquet file to write.", dir_okay=False)
    ],
    start: Annotated[
        str | None,
        typer.Option(help="ISO date or time (UTC unless it says); default: the beginning."),
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="ISO date or time, exclusive; default: now.")
    ] = None,
    deployment: Annotated[
        str | None, typer.Option(help="Only this deployment's predictions.")
    ] = None,
) -> None:
    from modelloop.serving.predictions import load_predictions, require_model

    frame = load_predictions(model, start, end, deployment=deployment)
    if frame.empty:
        require_model(model)
    output.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(output, index=False)
    labelled = int(frame["label"].notna().sum() + frame["label_text"].notna().sum())
    typer.echo(f"Wrote {len(frame)} predictions ({labelled} labelled) to {output}")
