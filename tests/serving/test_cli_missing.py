"""A deployment or a served model that does not resolve fails when it is given, with the
choices there are: ``deployments apply`` stores nothing, ``serve`` says nothing of serving."""

from __future__ import annotations

import pytest

import modelloop as ml
from modelloop.errors import NotFound
from modelloop.serving.deployment import parse_deployment
from modelloop.serving.fluent import apply_deployment
from tests.cli_helpers import invoke
from tests.serving.conftest import Registry


def test_applying_a_deployment_of_a_missing_alias_fails(registry: Registry) -> None:
    bad_alias = invoke("deployments", "apply", "--name", "d", "--model", "fraud@nosuchalias")
    bad_version = invoke("deployments", "apply", "--name", "d", "--model", "fraud@champion",
         "--challenger", "fraud/9", "--mode", "shadow")  # fmt: skip
    bad_model = invoke("deployments", "apply", "--name", "d", "--model", "nope@a")
    for result in (bad_alias, bad_version, bad_model):
        assert result.exit_code == 3, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1, result.output
        assert lines[0].startswith("Error: "), result.output
        assert "applied" not in result.output
    assert "no alias 'nosuchalias'" in bad_alias.output
    assert "its aliases: challenger (v2), champion (v1)" in bad_alias.output
    assert "challenger fraud/9" in bad_version.output
    assert "latest version is 2" in bad_version.output
    assert "'nope' does not exist" in bad_model.output
    assert invoke("deployments", "show", "d").exit_code == 3  # nothing stored
    assert not [e for e in ml.audit_log() if e.object_type == "deployment"]


def test_the_sdk_refuses_it_too_with_a_detail_per_model(registry: Registry) -> None:
    deployment = parse_deployment(
        {"name": "d", "model": "fraud@gone", "challenger": "fraud/9", "mode": "shadow"}
    )
    with pytest.raises(NotFound) as caught:
        apply_deployment(deployment)
    assert [d["field"] for d in caught.value.details or []] == ["model", "challenger"]


def test_serving_a_missing_model_says_nothing_of_serving(registry: Registry) -> None:
    for target in ("fraud@nosuchalias", "fraud/9", "nope@champion"):
        result = invoke("serve", target, "--port", "1")
        assert result.exit_code == 3, result.output
        assert "Serving" not in result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1, result.output
        assert lines[0].startswith("Error: "), result.output
