"""The README's examples run as written, and ``make demo``'s quickstart does what it says.

Every ```python block of README.md runs, in order, in one fresh interpreter (cwd and
``MODELLOOP_HOME`` a temporary directory). Then every ``$ modelloop ...`` line of the ```console
blocks runs against that same home and must exit 0; ``<run-id>`` stands for the newest run the
python blocks made. Lines that block (``modelloop server``, ``modelloop serve``) or need an
environment a test cannot provide (``$ MODELLOOP_...=... modelloop``, ``$ make ...``) are not run.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import modelloop as ml
from modelloop.examples import quickstart

README = Path(__file__).resolve().parents[1] / "README.md"
_FENCE = re.compile(r"^```(?P<lang>\w*)[^\n]*\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_NEWEST = "NEWEST-RUN-ID="
_RUNNER = f"""
import json, sys
namespace = {{"__name__": "__main__"}}
for line, source in json.load(open(sys.argv[1])):
    # Pad with blank lines so that tracebacks point at README.md's own line numbers.
    exec(compile("\\n" * (line - 1) + source, "README.md", "exec"), namespace)
import modelloop as ml
newest = ml.get_client().find_runs(max_results=1)
print({_NEWEST!r} + (newest[0].run_id if newest else ""))
"""


def fenced_blocks(language: str, text: str | None = None) -> list[tuple[int, str]]:
    """``(first line number of the body, body)`` of each fenced block in ``language``."""
    text = README.read_text() if text is None else text
    found = []
    for match in _FENCE.finditer(text):
        if match.group("lang") == language:
            found.append((text.count("\n", 0, match.start("body")) + 1, match.group("body")))
    return found


def console_commands(text: str | None = None) -> list[tuple[int, list[str]]]:
    """``$ modelloop ...`` lines of console blocks as argument lists (servers left out)."""
    commands = []
    for first_line, body in fenced_blocks("console", text):
        lines = body.splitlines()
        for offset, line in enumerate(lines):
            if not line.startswith("$ modelloop"):
                continue
            following = iter(lines[offset + 1 :])
            while line.endswith("\\"):  # a command continued on the next line
                line = line[:-1] + next(following, "")
            args = shlex.split(line[2:], comments=True)
            if args[1:2] not in (["server"], ["serve"]):
                commands.append((first_line + offset, args))
    return commands


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELLOOP_")}
    env["MODELLOOP_HOME"] = str(home)
    return env


# -- the README ----------------------------------------------------------------------------------


def test_readme_opens_with_the_two_commands() -> None:
    text = README.read_text()
    first_block = fenced_blocks("console", text)[0][1]
    assert "$ make demo" in first_block
    assert "$ make test" in first_block
    assert text.index("make demo") < text.index("## Quickstart")


def test_readme_python_covers_the_sdk() -> None:
    code = "\n".join(body for _, body in fenced_blocks("python"))
    for call in (
        "ml.start_run(",
        ".log_metric(",
        ".log_metrics(",
        "step=",
        ".log_artifact(",
        ".set_tag(",
        ".flush()",
        ".metric_history(",
        "ml.search_runs(",
        "filter=",
        "order_by=",
    ):
        assert call in code, f"README's python examples no longer show {call}"


def test_the_extractor_finds_blocks_and_skips_the_server() -> None:
    sample = (
        "```python\nx = 1\n```\n\n```console\n$ modelloop runs list  # all of them\n"
        "$ modelloop server --port 1\n$ make test\nsome output\n```\n"
    )
    assert fenced_blocks("python", sample) == [(2, "x = 1\n")]
    assert console_commands(sample) == [(6, ["modelloop", "runs", "list"])]


@pytest.fixture(scope="module")
def readme_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Run the README's python blocks in one fresh interpreter; yield (home, newest run id)."""
    workdir = tmp_path_factory.mktemp("readme")
    blocks = workdir / "blocks.json"
    blocks.write_text(json.dumps(fenced_blocks("python")))
    done = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(blocks)],
        cwd=workdir,
        env=clean_env(workdir / "home"),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, f"a README python block failed:\n{done.stderr}"
    newest = done.stdout.rsplit(_NEWEST, 1)[1].strip()
    return workdir / "home", newest


def test_readme_python_blocks_run(readme_home: tuple[Path, str]) -> None:
    home, newest = readme_home
    assert len(newest) == 32
    assert (home / "modelloop.db").exists()


@pytest.mark.parametrize(
    ("line", "args"), console_commands(), ids=[" ".join(a) for _, a in console_commands()]
)
def test_readme_console_command_runs(
    readme_home: tuple[Path, str], line: int, args: list[str]
) -> None:
    home, newest = readme_home
    args = [newest if a == "<run-id>" else a for a in args]
    done = subprocess.run(
        [sys.executable, "-m", "modelloop", *args[1:]],
        cwd=home.parent,
        env=clean_env(home),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"README.md:{line}: {' '.join(args)}\n{done.stderr}"
    assert done.stdout.strip(), f"README.md:{line} printed nothing"


# -- make demo -----------------------------------------------------------------------------------


def test_quickstart_demo(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import lightgbm as lgb

    quickstart.main(["--rounds", "20", "--seed", "3"])
    out = capsys.readouterr().out

    client = ml.get_client()
    runs = client.find_runs("quickstart")
    (sweep,) = [r for r in runs if r.parent_run_id is None]
    children = [r for r in runs if r.parent_run_id == sweep.run_id]
    assert len(runs) == 4
    assert len(children) == 3
    assert sorted(float(c.params["learning_rate"]) for c in children) == [0.03, 0.1, 0.3]
    assert all(r.status is ml.RunStatus.FINISHED for r in runs)

    for child in children:
        for key in ("train_auc", "valid_auc", "train_binary_logloss", "valid_binary_logloss"):
            history = client.metric_history(child.run_id, key)
            assert history["step"].tolist() == list(range(1, 21)), key
        assert 0.6 < child.metrics["valid_auc"] <= 1.0
        assert child.tags["model"] == "lightgbm"
        paths = {a.path for a in client.list_artifacts(child.run_id)}
        assert paths == {"feature_importance.csv", "model/model.txt"}
        model = client.read_artifact(child.run_id, "model/model.txt").decode()
        booster = lgb.Booster(model_str=model)
        assert booster.num_trees() == 20
        assert booster.num_feature() == quickstart.N_FEATURES
        importance = client.read_artifact(child.run_id, "feature_importance.csv").decode()
        lines = importance.splitlines()
        assert lines[0] == "feature,gain,split"
        assert len(lines) == 1 + quickstart.N_FEATURES

    best = max(children, key=lambda c: c.metrics["valid_auc"])
    assert sweep.tags["best_run_id"] == best.run_id
    assert sweep.metrics["best_valid_auc"] == pytest.approx(best.metrics["valid_auc"])
    assert best.run_id in out
    assert 'runs list --experiment quickstart --order-by "metrics.valid_auc DESC"' in out
    assert f"runs show {best.run_id}" in out
    assert "http://127.0.0.1:8765/docs" in out


def test_quickstart_is_deterministic(home: Path) -> None:
    first = quickstart.make_data(seed=11, rows=2000)
    again = quickstart.make_data(seed=11, rows=2000)
    assert (first.x_train == again.x_train).all()
    assert (first.y_valid == again.y_valid).all()
    assert 0.05 < first.positive_rate < 0.5


def test_the_errors_table_is_the_error_classes() -> None:
    """README's errors table names every error class, each with the HTTP status and the CLI
    exit code the class carries (what the server answers and the CLI exits with)."""
    from modelloop import errors

    text = README.read_text()
    section = text[text.index("## Errors") :]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    documented: dict[str, tuple[int, int]] = {}
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        for name in re.findall(r"`(\w+)`", cells[0]):
            documented[name] = (int(cells[1]), int(cells[2]))
    classes = {
        name: value
        for module in (errors, ml)
        for name, value in vars(module).items()
        if isinstance(value, type) and issubclass(value, errors.ModelloopError)
        and not name.startswith("_")
    }  # fmt: skip
    assert sorted(documented) == sorted(classes)
    for name, cls in classes.items():
        assert documented[name] == (cls.status_code, cls.exit_code), name
