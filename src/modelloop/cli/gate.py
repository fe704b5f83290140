"""``modelloop gate``: the champion/challenger gate as a command a CI pipeline can run.

    modelloop gate --challenger NAME@ALIAS|NAME/VERSION --champion ... --data SOURCE
                   [--metric ap|auc|p@k|cp@k|amount@k ...] [--margin 0 ...]
                   [--entity COLUMN --day COLUMN --amount COLUMN] [--confidence 0.95] ...

Exit status: 0 the challenger may be promoted, 1 it may not (the reasons are printed), 2 the
inputs are wrong (a missing file or column, an unknown metric...), 3 a model, alias or registered
dataset does not exist.
The decision itself is made by :func:`modelloop.automation.gate.evaluate_gate`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from modelloop.cli._common import OutputFormat, OutputOption, _examples

if TYPE_CHECKING:
    from modelloop.automation.gate import GateResult, ModelEvidence

HELP = (
    "Decide whether a challenger model may replace the champion: both score the same labeled "
    "holdout, and a paired bootstrap gives an interval for the difference of the metric. The "
    "challenger passes only if the interval's lower bound is above --margin (better beyond "
    "noise) and every budget given holds (latency, size). Repeat --metric to require several "
    "metrics: each gets its own interval, and all must pass.\n\n"
    "Exits 0 to promote and 1 to reject, printing each check with its numbers; 2 on bad "
    "input (a missing file or column, an unknown metric); 3 when a model, alias or registered "
    "dataset does not exist. The decision and its evidence are recorded in the audit trail "
    "('modelloop audit log') as the user running it (MODELLOOP_USER), unless --no-record."
)
EPILOG = _examples(
    "MODELLOOP_USER=ci modelloop gate --challenger fraud-detector@challenger "
    "--champion fraud-detector@champion --data holdout.parquet --metric ap",
    "MODELLOOP_USER=ci modelloop gate --challenger fraud-detector/4 --champion "
    "fraud-detector@champion --data fraud-holdout@7 --margin 0.005 --max-latency-ms 2 "
    "--max-size-mb 50",
    "MODELLOOP_USER=ci modelloop gate --challenger fraud-detector@challenger --champion "
    "fraud-detector@champion --data holdout.csv --metric p@k --k 100 --output json | jq .reasons",
    "MODELLOOP_USER=ci modelloop gate --challenger fraud-detector@challenger --champion "
    "fraud-detector@champion --data holdout.parquet --metric cp@k --metric amount@k --k 100 "
    "--margin 0 --margin 500 --entity CUSTOMER_ID --day TX_DATETIME --amount TX_AMOUNT",
)


def gate(
    challenger: Annotated[
        str,
        typer.Option(
            help="The candidate: NAME@ALIAS, NAME/VERSION or a models:/ URI.",
            show_default=False,
        ),
    ],
    champion: Annotated[
        str,
        typer.Option(
            help="The model in production, e.g. fraud-detector@champion.", show_default=False
        ),
    ],
    data: Annotated[
        str,
        typer.Option(
            metavar="SOURCE",
            help="The labeled holdout: a dataset NAME\\[@VERSION] (modelloop datasets list) or a "
            "Parquet or CSV file. Recent data, never seen in training.",
            show_default=False,
        ),
    ],
    metric: Annotated[
        list[str] | None,
        typer.Option(
            metavar="METRIC",
            help="ap (average precision), auc (ROC AUC), p@k (precision of the top --k rows), "
            "cp@k (card precision@k: the top --k cards a day, needs --entity and --day) or "
            "amount@k (fraud amount those cards catch, summed over the days; also needs "
            "--amount). Repeatable: every metric must pass; the first is the primary one.  "
            "\\[default: ap]",
            show_default=False,
        ),
    ] = None,
    label: Annotated[str, typer.Option(help="The 0/1 label column of the holdout.")] = "label",
    entity: Annotated[
        str | None,
        typer.Option(
            metavar="COLUMN",
            help="The card (or customer) column, for cp@k and amount@k.",
            show_default=False,
        ),
    ] = None,
    day: Annotated[
        str | None,
        typer.Option(
            metavar="COLUMN",
            help="The day of each row, for cp@k and amount@k: a date or timestamp column (its "
            "UTC date) or day numbers.",
            show_default=False,
        ),
    ] = None,
    amount: Annotated[
        str | None,
        typer.Option(
            metavar="COLUMN",
            help="The transaction amount column, for amount@k.",
            show_default=False,
        ),
    ] = None,
    k: Annotated[
        int,
        typer.Option(
            "--k", help="k of the @k metrics: rows, or cards a day, investigators review.", min=1
        ),
    ] = 100,
    margin: Annotated[
        list[float] | None,
        typer.Option(
            metavar="NUMBER",
            help="How much better the challenger must be, at least: the interval's lower bound "
            "must exceed it. Negative: allow being this much worse. Once for every metric, or "
            "once per --metric in the same order.  \\[default: 0]",
            show_default=False,
        ),
    ] = None,
    confidence: Annotated[
        float, typer.Option(help="Confidence of the interval.", min=0.5, max=0.999)
    ] = 0.95,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples.", min=100)] = 1000,
    seed: Annotated[
        int, typer.Option(help="Seed of the resampling (same seed, same interval).")
    ] = 0,
    max_latency_ms: Annotated[
        float | None,
        typer.Option(
            help="Budget: the challenger's median single-row prediction time, in ms.",
            show_default=False,
        ),
    ] = None,
    max_latency_ratio: Annotated[
        float | None,
        typer.Option(
            help="Budget: the challenger's latency divided by the champion's, e.g. 1.5.",
            show_default=False,
        ),
    ] = None,
    max_size_mb: Annotated[
        float | None,
        typer.Option(help="Budget: the challenger's package size, in MB.", show_default=False),
    ] = None,
    reason: Annotated[
        str | None,
        typer.Option(
            "--reason",
            "-r",
            help="Recorded with the decision, e.g. the CI build. Default: the verdict.",
            show_default=False,
        ),
    ] = None,
    record: Annotated[
        bool,
        typer.Option("--record/--no-record", help="Append the decision to the audit trail."),
    ] = True,
    output: OutputOption = OutputFormat.table,
) -> None:
    from modelloop.automation.gate import GateOptions, evaluate_gate
    from modelloop.errors import InvalidArgument

    if max_size_mb is not None and max_size_mb <= 0:
        raise InvalidArgument(f"--max-size-mb must be positive, got {max_size_mb}")
    options = GateOptions(
        metrics=tuple(metric or ("ap",)),
        k=k,
        margin=tuple(margin or (0.0,)),
        confidence=confidence,
        n_bootstrap=bootstrap,
        seed=seed,
        max_latency_ms=max_latency_ms,
        max_latency_ratio=max_latency_ratio,
        max_size_bytes=None if max_size_mb is None else int(max_size_mb * 1024 * 1024),
    )
    result = evaluate_gate(
        challenger,
        champion,
        data,
        options,
        label=label,
        entity=entity,
        day=day,
        amount=amount,
        record=record,
        reason=reason,
    )
    if output is OutputFormat.json:
        from modelloop.cli import _output

        _output.print_json(result.to_dict())
    else:
        _print(result)
    if not result.promoted:
        raise typer.Exit(1)


def _print(result: GateResult) -> None:
    ch, champ = result.challenger, result.champion
    typer.echo(f"challenger  {_side(ch)}")
    typer.echo(f"champion    {_side(champ)}")
    typer.echo(
        f"holdout     {result.data or 'a DataFrame'}: {result.n_rows} rows, "
        f"{result.n_positive} positive ({result.label}), digest {result.data_digest[:12]}"
    )
    typer.echo("")
    rows = [
        ("", "champion", "challenger"),
        *((m.label, f"{m.champion:.4f}", f"{m.challenger:.4f}") for m in result.metrics),
        ("latency, 1 row", _ms(champ.latency_ms), _ms(ch.latency_ms)),
        ("batch, per row", _ms(champ.batch_latency_ms), _ms(ch.batch_latency_ms)),
        ("package", _mb(champ.size_bytes), _mb(ch.size_bytes)),
    ]
    width = max(16, *(len(m.label) + 2 for m in result.metrics))
    for first, second, third in rows:
        typer.echo(f"  {first:<{width}}{second:>14}{third:>14}")
    typer.echo("")
    pct = f"{result.confidence * 100:g}%"
    several = len(result.metrics) > 1
    for m in result.metrics:
        dropped = f", {m.n_undefined} undefined dropped" if m.n_undefined else ""
        typer.echo(
            f"difference  {m.label + ' ' if several else ''}{m.difference:+.4f} (challenger - "
            f"champion), {pct} interval [{m.ci_low:+.4f}, {m.ci_high:+.4f}] "
            f"({result.n_bootstrap} paired resamples of the {m.resampled}, seed "
            f"{result.seed}{dropped})"
        )
    for check in result.checks:
        typer.echo(f"  {'✓' if check.passed else '✗'} {check.detail}")
    verdict = "PROMOTE" if result.promoted else "REJECT"
    typer.echo(f"{verdict}: {ch.uri} {'may' if result.promoted else 'may not'} replace {champ.uri}")
    if result.audit_seq is not None:
        typer.echo(f"recorded as audit event {result.audit_seq} (modelloop audit log)")


def _side(side: ModelEvidence) -> str:
    resolved = side.uri.removeprefix("models:/")
    asked = side.requested.removeprefix("models:/")
    return resolved if asked == resolved else f"{resolved} ({asked})"


def _ms(value: float) -> str:
    return f"{value:.3f} ms"


def _mb(size: int) -> str:
    return f"{size / 1024 / 1024:.2f} MB"


def register(app: typer.Typer) -> None:
    """Attach ``modelloop gate`` to the root command."""
    app.command("gate", help=HELP, epilog=EPILOG)(gate)
