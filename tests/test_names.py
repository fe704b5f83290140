"""Names end where they seem to: a trailing newline (which ``$`` lets through) is refused."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from modelloop.auth import check_user_name
from modelloop.datasets.entities import check_dataset_name
from modelloop.errors import InvalidArgument
from modelloop.monitoring.monitor import _check_name as check_monitor_name
from modelloop.registry.entities import check_alias, check_model_name
from modelloop.tracking.entities import check_key, check_run_id


@pytest.mark.parametrize(
    ("check", "good"),
    [
        (check_model_name, "fraud-detector"),
        (check_alias, "champion"),
        (check_dataset_name, "fraud"),
        (check_user_name, "alice"),
        (lambda v: check_key(v, "metric"), "auc"),
        (check_run_id, "0123456789abcdef0123456789abcdef"),
        (lambda v: check_monitor_name(v, "monitor"), "fraud-watch"),
    ],
)
def test_a_trailing_newline_is_not_part_of_a_valid_name(
    check: Callable[[str], object], good: str
) -> None:
    check(good)
    with pytest.raises((InvalidArgument, ValueError)):
        check(good + "\n")
