"""Settings read from the environment, and handed whole to a server's worker processes."""

from __future__ import annotations

from pathlib import Path

from modelloop.settings import Settings, load_settings


def test_settings_round_trip_through_json(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "MODELLOOP_HOME": str(tmp_path),
            "MODELLOOP_PROTECTED_ALIASES": "champion,prod",
            "MODELLOOP_ALLOWED_HOSTS": "ml-host,ml-host:8443",
            "MODELLOOP_WEBHOOK_ALLOWED_NETWORKS": "10.0.0.0/8",
            "MODELLOOP_AUDIT_KEY_FILE": str(tmp_path / "keys" / "audit.key"),
            "MODELLOOP_AUDIT_CHECKPOINTS": "off",
            "MODELLOOP_HEARTBEAT_SECONDS": "5",
        }
    )
    assert settings.audit_checkpoints is None
    assert Settings.from_json(settings.to_json()) == settings
    defaults = load_settings({"MODELLOOP_HOME": str(tmp_path)})
    assert defaults.audit_checkpoints == tmp_path / "audit-checkpoints.jsonl"
    assert Settings.from_json(defaults.to_json()) == defaults
