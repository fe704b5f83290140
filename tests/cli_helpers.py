"""Running ``modelloop`` in-process, as the command-line tests do: ``invoke`` answers the
result, ``ok`` its output (the command must succeed), ``fails`` its one-line error (the command
must exit with that code and print ``Error: ...`` and nothing else, never a traceback)."""

from __future__ import annotations

from typer.testing import CliRunner, Result

from modelloop.cli.app import app

runner = CliRunner(env={"COLUMNS": "200"})


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args), prog_name="modelloop")


def ok(*args: str) -> str:
    result = invoke(*args)
    assert result.exit_code == 0, (args, result.output)
    return result.stdout


def fails(code: int, *args: str) -> str:
    result = invoke(*args)
    assert result.exit_code == code, (args, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one line, never a traceback
    assert lines[0].startswith("Error: ")
    return lines[0]
