"""The ``modelloop`` command line, in-process (CliRunner) and as a real program (subprocess).

Subprocess tests cover what only a real process shows: the console script and ``python -m``
exist, nothing heavy is imported for ``--help``, and user mistakes end as one ``Error:`` line
with the error's exit code, never a traceback.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer

import modelloop as ml
from modelloop.cli import app, main
from modelloop.errors import InvalidArgument, NotFound, ServerUnavailable
from modelloop.examples import quickstart, training_pipeline
from modelloop.settings import load_settings
from modelloop.store import HEAD_REVISION, close_database
from modelloop.tracking import fluent
from tests.cli_helpers import invoke
from tests.conftest import postgres_schema

HEAVY = ("pandas", "numpy", "sqlalchemy", "fastapi", "uvicorn", "lightgbm", "pyarrow", "alembic")
SCRIPT = Path(sys.executable).parent / "modelloop"


@pytest.fixture
def populated(home: Path) -> dict[str, str]:
    """Runs made with the SDK in ``home``: a sweep with two children, and a failed run."""
    report = home.parent / "report.txt"
    report.write_text("all good\n")
    with ml.start_run(experiment="fraud", name="sweep", params={"grid": "lr"}) as sweep:
        with ml.start_run(name="slow", params={"lr": 0.01}, tags={"team": "risk"}) as slow:
            for step in range(3):
                slow.log_metric("auc", 0.80 + step / 100, step=step)
            slow.log_artifact(report, artifact_path="reports")
        with ml.start_run(name="fast", params={"lr": 0.3}) as fast:
            fast.log_metrics({"auc": 0.93, "loss": 0.2}, step=0)
    with (
        pytest.raises(ValueError, match="bad data"),
        ml.start_run(experiment="churn", name="broken") as broken,
    ):
        raise ValueError("bad data in column 'amount'")
    fluent.close_clients()
    return {
        "sweep": sweep.run_id,
        "slow": slow.run_id,
        "fast": fast.run_id,
        "broken": broken.run_id,
    }


def cli(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the installed ``modelloop`` program against ``home``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MODELLOOP_")}
    environ.update({"MODELLOOP_HOME": str(home), "COLUMNS": "200", **env})
    return subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=environ,
        cwd=home.parent,
        timeout=120,
        check=False,
    )


def assert_one_line_error(done: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Error: ")
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


# -- the program itself --------------------------------------------------------------------------


def test_version_and_help_as_programs(tmp_path: Path) -> None:
    version = cli(tmp_path / "home", "--version")
    assert version.returncode == 0
    assert version.stdout.strip() == f"modelloop {ml.__version__}"
    for command in ([str(SCRIPT)], [sys.executable, "-m", "modelloop"]):
        done = subprocess.run(
            [*command, "--help"], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        for name in ("server", "experiments", "runs", "db"):
            assert name in done.stdout
    assert not (tmp_path / "home").exists()  # --version touched no store


def test_importing_the_cli_stays_light() -> None:
    code = (
        f"import sys, modelloop.cli.app; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "", f"imported at CLI import time: {done.stdout.strip()}"


def _command_paths(command: object, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield prefix
    for name, sub in (getattr(command, "commands", None) or {}).items():
        yield from _command_paths(sub, (*prefix, name))


def test_every_command_has_help_with_examples() -> None:
    paths = list(_command_paths(typer.main.get_command(app)))
    assert {
        ("server",),
        ("experiments", "list"),
        ("runs", "list"),
        ("runs", "show"),
        ("db", "upgrade"),
        ("db", "current"),
    } <= set(paths)
    for path in paths:
        result = invoke(*path, "--help")
        assert result.exit_code == 0, (path, result.output)
        assert "Usage: modelloop" in result.stdout
        assert "Examples" in result.stdout, path


def test_the_examples_in_the_help_work(home: Path) -> None:
    """Every ``$ modelloop ...`` example of every --help runs, on the quickstart demo's data."""
    quickstart.main(["--rounds", "5"])
    training_pipeline.pipeline.run(params={"seed": 1})  # for the pipelines/reproduce examples
    fluent.close_clients()
    run_id = ml.get_client().find_runs("quickstart", max_results=1)[0].run_id
    # The contract the `datasets validate` examples name, one the demo's data meets.
    Path("contract.yaml").write_text(
        "columns:\n  label: {dtype: int, min: 0, max: 1, nullable: false}\nrows: [1000, null]\n"
    )
    # The monitor the `monitor` examples name, on the demo's registered model.
    Path("monitor.yaml").write_text(
        "name: quickstart\ndeployment: quickstart\nmodel: quickstart-lgbm\nwindow: 1h\n"
        "alerts:\n  - {name: inputs, metric: drift.share, above: 0.3, consecutive: 2}\n"
    )
    # The policy the `policy` examples name, on the model, deployment and monitor it refers to.
    register = ("models", "register", run_id, "quickstart-lgbm", "--artifact-path", "model")
    assert invoke(*register).exit_code == 0
    assert (
        invoke(
            "deployments", "apply", "--name", "quickstart", "--model", "quickstart-lgbm/1"
        ).exit_code
        == 0
    )
    assert invoke("monitor", "apply", "monitor.yaml").exit_code == 0
    Path("policy.yaml").write_text(
        "name: quickstart-loop\ndeployment: quickstart\nmodel: quickstart-lgbm\n"
        "monitor: quickstart\ntraining: {function: 'my_package.training:train'}\n"
    )
    _mlflow_file_store(Path("mlruns"))  # what the `import mlflow` examples read
    fluent.close_clients()
    examples = []
    for path in _command_paths(typer.main.get_command(app)):
        command = typer.main.get_command(app)
        for name in path:
            command = command.commands[name]  # type: ignore[attr-defined]
        for line in (command.epilog or "").splitlines():
            if line.strip().startswith("$ modelloop "):
                examples.append(shlex.split(line.strip()[2:].split(" | ")[0]))
    assert len(examples) >= 10
    for args in examples:
        if args[1] in ("server", "serve") or any(a.startswith("postgresql") for a in args):
            continue  # blocks, or needs a PostgreSQL server at the example's address
        if "<pipeline-run-id>" in args:
            pipeline_run = ml.get_client().find_runs(filter="tags.`modelloop.pipeline` LIKE '%'")
            args = [pipeline_run[0].run_id if a == "<pipeline-run-id>" else a for a in args]
            fluent.close_clients()
        result = invoke(*[run_id if a == "<run-id>" else a for a in args[1:]])
        assert result.exit_code == 0, (args, result.output)


def _mlflow_file_store(path: Path) -> None:
    """An MLflow file store with an experiment "churn" and a run, written by MLflow's client."""
    import warnings

    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's, about its file store and dependencies
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        patch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=path.absolute().as_uri())
        run = client.create_run(client.create_experiment("churn"), run_name="baseline")
        client.log_metric(run.info.run_id, "auc", 0.9, step=1)
        client.set_terminated(run.info.run_id)


def test_no_arguments_prints_help() -> None:
    result = invoke()
    assert "Usage: modelloop" in result.stdout
    assert "Error" not in result.output


def test_main_is_the_console_script(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"modelloop {ml.__version__}"


# -- experiments and runs ------------------------------------------------------------------------


def test_experiments_list(populated: dict[str, str]) -> None:
    table = invoke("experiments", "list")
    assert table.exit_code == 0, table.output
    assert "fraud" in table.stdout
    assert "churn" in table.stdout
    records = json.loads(invoke("experiments", "list", "--output", "json").stdout)
    assert sorted(r["name"] for r in records) == ["churn", "fraud"]
    assert {"experiment_id", "name", "created_at", "description"} <= set(records[0])


def test_experiments_list_on_an_empty_store(home: Path) -> None:
    result = invoke("experiments", "list")
    assert result.exit_code == 0
    assert "No experiments yet" in result.stdout
    assert json.loads(invoke("experiments", "list", "-o", "json").stdout) == []


def test_runs_list_table(populated: dict[str, str]) -> None:
    result = invoke("runs", "list", "--experiment", "fraud", "--order-by", "metrics.auc DESC")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = lines[0]
    for column in ("run id", "status", "auc"):
        assert column in header
    rows = [line for line in lines if line.split() and len(line.split()[0]) == 32]
    ids = [row.split()[0] for row in rows]
    assert ids == [populated["fast"], populated["slow"], populated["sweep"]]
    assert "0.93" in rows[0]  # the latest auc of each run
    assert "0.82" in rows[1]
    assert populated["broken"] not in result.stdout  # another experiment
    assert "3 runs" in result.stdout


def test_runs_list_across_experiments_names_them(populated: dict[str, str]) -> None:
    result = invoke("runs", "list")
    assert result.exit_code == 0
    assert "experiment" in result.stdout.splitlines()[0]
    for run_id in populated.values():
        assert run_id in result.stdout
    assert "FAILED" in result.stdout


def test_runs_list_filter_and_json(populated: dict[str, str]) -> None:
    result = invoke(
        "runs", "list", "-e", "fraud", "--filter", "metrics.auc > 0.9", "--output", "json"
    )
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert [r["run_id"] for r in records] == [populated["fast"]]
    fast = records[0]
    assert fast["experiment"] == "fraud"
    assert fast["metrics"] == {"auc": 0.93, "loss": 0.2}
    assert fast["params"] == {"lr": "0.3"}
    assert fast["parent_run_id"] == populated["sweep"]
    assert fast["status"] == "FINISHED"
    assert isinstance(fast["duration_ms"], int)


def test_runs_list_max_results_says_there_may_be_more(populated: dict[str, str]) -> None:
    result = invoke("runs", "list", "-n", "2")
    assert result.exit_code == 0
    assert "there may be more" in result.stdout
    assert len(json.loads(invoke("runs", "list", "-n", "2", "-o", "json").stdout)) == 2


def test_runs_list_columns_follow_the_question(populated: dict[str, str]) -> None:
    result = invoke("runs", "list", "-e", "fraud", "--filter", "params.lr = '0.3'")
    header = result.stdout.splitlines()[0].split()
    assert "lr" in header
    assert "auc" in header
    assert "loss" in header


def test_runs_list_says_which_params_it_leaves_out_and_how_to_show_them(home: Path) -> None:
    params = {"depth": 6, "eta": 0.1, "gamma": 0, "lambda": 1, "subsample": 0.8}
    with ml.start_run(experiment="wide", params=params) as run:
        run.log_metric("auc", 0.9)
    fluent.close_clients()
    result = invoke("runs", "list")
    assert result.exit_code == 0, result.output
    header = result.stdout.splitlines()[0].split()
    assert [k for k in params if k in header] == ["depth", "eta", "gamma"]  # the first three
    assert (
        "2 more params (lambda, subsample) not shown: name one in --filter or --order-by to "
        "show it (e.g. --order-by params.lambda), or --output json for all"
    ) in " ".join(result.stdout.split())
    chosen = invoke("runs", "list", "--order-by", "params.lambda")
    assert chosen.exit_code == 0, chosen.output
    assert "lambda" in chosen.stdout.splitlines()[0].split()
    assert "1 more param (subsample) not shown" in chosen.stdout


def test_runs_show_table(populated: dict[str, str]) -> None:
    result = invoke("runs", "show", populated["slow"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    for needle in (
        populated["slow"],
        "slow",
        "fraud",
        "FINISHED",
        populated["sweep"],  # the parent
        "lr",
        "0.01",
        "auc",
        "0.82",
        "team",
        "risk",
        "entry_point",
        "python",
        "reports/report.txt",
        "9 B",
    ):
        assert needle in out, needle
    assert "error" not in out


def test_runs_show_json(populated: dict[str, str]) -> None:
    record = json.loads(invoke("runs", "show", populated["slow"], "-o", "json").stdout)
    assert record["run_id"] == populated["slow"]
    assert record["experiment"] == "fraud"
    assert record["metrics"] == {"auc": pytest.approx(0.82)}
    assert record["tags"] == {"team": "risk"}
    assert [a["path"] for a in record["artifacts"]] == ["reports/report.txt"]
    assert record["artifacts"][0]["size"] == 9
    assert len(record["artifacts"][0]["digest"]) == 64
    assert "python" in record["environment"]
    assert "entry_point" in record["source"]


def test_runs_show_failed_run_shows_its_error(populated: dict[str, str]) -> None:
    table = invoke("runs", "show", populated["broken"])
    assert table.exit_code == 0
    assert "FAILED" in table.stdout
    assert "bad data in column 'amount'" in table.stdout
    record = json.loads(invoke("runs", "show", populated["broken"], "-o", "json").stdout)
    assert record["status"] == "FAILED"
    assert "ValueError: bad data in column 'amount'" in record["error"]


def test_json_output_is_strict_json_even_for_nan(home: Path) -> None:
    with ml.start_run(experiment="diverged") as run:
        run.log_metric("loss", float("nan"))
    fluent.close_clients()
    result = invoke("runs", "show", run.run_id, "-o", "json")
    assert "NaN" not in result.stdout
    assert json.loads(result.stdout)["metrics"] == {"loss": None}


# -- user mistakes: one line, the error's exit code ----------------------------------------------


def test_mistakes_in_process_are_one_line(populated: dict[str, str]) -> None:
    cases = [
        (("runs", "show", "deadbeef"), InvalidArgument.exit_code, "deadbeef"),
        (("runs", "show", "0" * 32), NotFound.exit_code, "0" * 32),
        (("runs", "list", "--experiment", "nope"), NotFound.exit_code, "nope"),
        (("runs", "list", "--filter", "metrics.auc >> 1"), 2, "position"),
        (("runs", "list", "--output", "xml"), 2, "xml"),
        (("runs", "list", "--bogus"), 2, "--bogus"),
        (("runs", "show"), 2, "RUN_ID"),
    ]
    for args, code, needle in cases:
        result = invoke(*args)
        assert result.exit_code == code, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, (args, result.stderr)
        assert lines[0].startswith("Error: "), (args, result.stderr)
        assert needle in lines[0], (args, lines[0])
        assert result.exception is None or isinstance(result.exception, SystemExit)


def test_user_mistakes_as_a_program(populated: dict[str, str], home: Path) -> None:
    assert_one_line_error(cli(home, "runs", "show", "deadbeef"), 2, "deadbeef")
    assert_one_line_error(cli(home, "runs", "show", "f" * 32), 3, "does not exist")
    line = assert_one_line_error(cli(home, "runs", "list", "--filter", "metrics.auc ~ 1"), 2)
    assert "'~'" in line  # names the offending token
    assert_one_line_error(cli(home, "runs", "list", "-e", "nope"), 3, "'nope'")
    assert_one_line_error(cli(home, "runs", "list", "--max-results", "0"), 2, "--max-results")


def test_unreachable_server_is_one_line(tmp_path: Path) -> None:
    done = cli(tmp_path / "home", "runs", "list", MODELLOOP_TRACKING_URI="http://127.0.0.1:1")
    line = assert_one_line_error(done, ServerUnavailable.exit_code)
    assert "127.0.0.1:1" in line
    done = cli(
        tmp_path / "home", "experiments", "list", MODELLOOP_TRACKING_URI="http://127.0.0.1:1"
    )
    assert_one_line_error(done, ServerUnavailable.exit_code)


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    done = cli(
        tmp_path / "home",
        "db",
        "current",
        "--database-url",
        "postgresql+psycopg://nobody:secret@127.0.0.1:1/none",
    )
    line = assert_one_line_error(done, ServerUnavailable.exit_code)
    assert "secret" not in line


@pytest.mark.parametrize("command", ["current", "upgrade"])
def test_unresolvable_database_host_is_one_line(tmp_path: Path, command: str) -> None:
    url = "postgresql+psycopg://nobody@host.invalid:5432/none"
    done = cli(tmp_path / "home", "db", command, "--database-url", url)
    assert_one_line_error(done, ServerUnavailable.exit_code, "host.invalid")


def test_server_refuses_a_public_address_without_a_token(tmp_path: Path) -> None:
    done = cli(tmp_path / "home", "server", "--host", "0.0.0.0", "--port", str(_free_port()))
    assert_one_line_error(done, InvalidArgument.exit_code, "token")


# -- the same commands as programs, over runs made with the SDK ----------------------------------


def test_listing_and_showing_as_a_program(populated: dict[str, str], home: Path) -> None:
    listed = cli(home, "runs", "list", "--experiment", "fraud", "--order-by", "metrics.auc DESC")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.index(populated["fast"]) < listed.stdout.index(populated["slow"])
    records = json.loads(cli(home, "runs", "list", "-o", "json").stdout)
    assert {r["run_id"] for r in records} == set(populated.values())
    shown = cli(home, "runs", "show", populated["fast"])
    assert shown.returncode == 0, shown.stderr
    assert "0.93" in shown.stdout
    assert json.loads(cli(home, "runs", "show", populated["fast"], "-o", "json").stdout)[
        "params"
    ] == {"lr": "0.3"}
    experiments = cli(home, "experiments", "list")
    assert experiments.returncode == 0
    assert "fraud" in experiments.stdout
    assert "churn" in experiments.stdout
    names = {e["name"] for e in json.loads(cli(home, "experiments", "list", "-o", "json").stdout)}
    assert names == {"fraud", "churn"}


# -- db ------------------------------------------------------------------------------------------


def test_db_upgrade_on_a_fresh_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    current = cli(home, "db", "current")
    assert current.returncode == 0, current.stderr
    assert current.stdout.startswith("none (empty database")
    first = cli(home, "db", "upgrade")
    assert first.returncode == 0, first.stderr
    assert f"from revision none (empty) to {HEAD_REVISION}" in first.stdout
    again = cli(home, "db", "upgrade")
    assert again.returncode == 0
    assert f"already at revision {HEAD_REVISION} (head)" in again.stdout
    assert cli(home, "db", "current").stdout.strip() == f"{HEAD_REVISION} (head)"


def test_db_commands_take_a_database_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'other.db'}"
    result = invoke("db", "upgrade", "--database-url", url)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "other.db").exists()
    assert invoke("db", "current", "--database-url", url).stdout.strip() == (
        f"{HEAD_REVISION} (head)"
    )
    bad = invoke("db", "current", "--database-url", "nonsense://")
    assert bad.exit_code == 2
    assert bad.stderr.startswith("Error: ")


@pytest.mark.postgres
def test_db_and_runs_on_postgresql(tmp_path: Path) -> None:
    with postgres_schema() as url:
        assert invoke("db", "current", "--database-url", url).stdout.startswith("none (empty")
        upgraded = invoke("db", "upgrade", "--database-url", url)
        assert upgraded.exit_code == 0, upgraded.output
        assert f"from revision none (empty) to {HEAD_REVISION}" in upgraded.stdout
        settings = load_settings(
            {"MODELLOOP_HOME": str(tmp_path / "home"), "MODELLOOP_DATABASE_URL": url}
        )
        client = ml.Client(settings=settings)
        try:
            run = client.create_run("on-postgres", params={"engine": "pg"})
            client.log_metric(run.run_id, "auc", 0.9)
            client.end_run(run.run_id)
        finally:
            client.close()
            close_database(url)
        listed = cli(tmp_path / "home", "runs", "list", "-o", "json", MODELLOOP_DATABASE_URL=url)
        assert listed.returncode == 0, listed.stderr
        (record,) = json.loads(listed.stdout)
        assert record["run_id"] == run.run_id
        assert record["experiment"] == "on-postgres"
        assert record["metrics"] == {"auc": 0.9}


# -- the server ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(populated: dict[str, str], home: Path) -> Iterator[str]:
    """``modelloop server`` on a free loopback port over ``home``; yields its URL."""
    port = _free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MODELLOOP_")}
    environ["MODELLOOP_HOME"] = str(home)
    proc = subprocess.Popen(
        [str(SCRIPT), "server", "--port", str(port)],
        env=environ,
        cwd=home.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


def test_commands_read_through_a_server(
    served: str, populated: dict[str, str], tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"  # an empty home: every answer must come from the server
    listed = cli(elsewhere, "runs", "list", "-o", "json", MODELLOOP_TRACKING_URI=served)
    assert listed.returncode == 0, listed.stderr
    assert {r["run_id"] for r in json.loads(listed.stdout)} == set(populated.values())
    shown = cli(elsewhere, "runs", "show", populated["slow"], MODELLOOP_TRACKING_URI=served)
    assert shown.returncode == 0, shown.stderr
    assert "reports/report.txt" in shown.stdout
    experiments = cli(elsewhere, "experiments", "list", MODELLOOP_TRACKING_URI=served)
    assert "fraud" in experiments.stdout
    missing = cli(elsewhere, "runs", "show", "a" * 32, MODELLOOP_TRACKING_URI=served)
    assert_one_line_error(missing, NotFound.exit_code)
