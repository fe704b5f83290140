"""Where modelloop keeps its state, read from the environment once per call.

Every knob has one environment variable and a default that works with nothing installed:
SQLite and local files under ``$MODELLOOP_HOME`` (default ``./.modelloop``).

- ``MODELLOOP_HOME``: directory of the embedded store and artifacts (default ``./.modelloop``)
- ``MODELLOOP_DATABASE_URL``: SQLAlchemy URL of the metadata store
  (default ``sqlite:///$MODELLOOP_HOME/modelloop.db``; ``postgresql+psycopg://...`` for teams)
- ``MODELLOOP_ARTIFACT_URI``: blob store root, a directory or any fsspec URL
  (default ``$MODELLOOP_HOME/artifacts``)
- ``MODELLOOP_TRACKING_URI``: ``http(s)://host:port`` of a modelloop server; unset = local store
- ``MODELLOOP_TOKEN``: bearer token a server requires and a client sends (default: none)
- ``MODELLOOP_MAX_UPLOAD_MB``: the largest artifact a server accepts (default 1024)
- ``MODELLOOP_PROTECTED_ALIASES``: comma-separated model aliases that move only through a request
  approved by a second person (default ``champion``; empty for none)
- ``MODELLOOP_RAY_ADDRESS``: the Ray cluster ``executor="ray"`` pipelines run on (default: start
  or join a local instance)
- ``MODELLOOP_PREDICTION_LOG``: where serving appends its prediction log (Parquet), a directory or
  any fsspec URL (default ``$MODELLOOP_HOME/predictions``)
- ``MODELLOOP_HEARTBEAT_SECONDS``: how often a process records that its active runs are alive
  (default 30; 0 turns liveness tracking off); ``modelloop runs sweep`` and the server mark a run
  KILLED after 5 missed heartbeats, or at once when its process on the same host is gone (see
  ``modelloop.tracking.sweep``)
- ``MODELLOOP_ALLOWED_HOSTS``: comma-separated ``Host`` names (``host`` or ``host:port``, ``*``
  for any) a server, its UI and serving answer to besides ``localhost``, ``127.0.0.1`` and
  ``::1``; other names are refused (DNS rebinding). Default: none, except that a server which
  requires a token answers to any name unless this is set (see ``modelloop.web.hosts``)
- ``MODELLOOP_AUDIT_KEY_FILE``: the secret(s) that key audit events, one per line, the first signs
  and all verify (default ``$MODELLOOP_HOME/audit.key``, created on the first audited change);
  keep it where the database's writers cannot read it. ``MODELLOOP_AUDIT_KEY`` gives the secret
  itself instead (see ``modelloop.audit.keys``)
- ``MODELLOOP_AUDIT_CHECKPOINTS``: the file each audited change appends a signed checkpoint of the
  log's head to (default ``$MODELLOOP_HOME/audit-checkpoints.jsonl``; ``off`` for none)
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

from modelloop.errors import InvalidArgument


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    artifact_uri: str
    tracking_uri: str | None
    token: str | None
    max_upload_bytes: int
    protected_aliases: frozenset[str] = frozenset({"champion"})
    prediction_log_uri: str = ""
    ray_address: str | None = None
    heartbeat_seconds: float = 30.0  # 0: runs record no heartbeat and are never swept
    webhook_allowed_networks: tuple[str, ...] = ()  # CIDRs webhooks may reach though private
    allowed_hosts: tuple[str, ...] = ()  # Host names served besides loopback ("*": any)
    audit_key: str | None = None  # the audit secret itself, instead of audit_key_file
    audit_key_file: Path | None = None  # None: home / "audit.key"
    audit_checkpoints: Path | None = None  # None: none written

    @property
    def audit_key_path(self) -> Path:
        return self.audit_key_file or self.home / "audit.key"

    @property
    def is_remote(self) -> bool:
        """True when the SDK should talk to a server instead of the local store."""
        return self.tracking_uri is not None

    def to_json(self) -> str:
        """The settings as JSON, to hand to worker processes (:meth:`from_json` reads it)."""
        fields = {}
        for name, value in dataclasses.asdict(self).items():
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, frozenset | tuple):
                value = sorted(value) if isinstance(value, frozenset) else list(value)
            fields[name] = value
        return json.dumps(fields)

    @classmethod
    def from_json(cls, text: str) -> Settings:
        fields = json.loads(text)
        for name in ("home", "audit_key_file", "audit_checkpoints"):
            if fields.get(name) is not None:
                fields[name] = Path(fields[name])
        fields["protected_aliases"] = frozenset(fields["protected_aliases"])
        for name in ("webhook_allowed_networks", "allowed_hosts"):
            fields[name] = tuple(fields[name])
        return cls(**fields)


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Read the settings from ``environ`` (default: ``os.environ``)."""
    env = os.environ if environ is None else environ
    home = Path(env.get("MODELLOOP_HOME") or ".modelloop").expanduser().absolute()
    database_url = env.get("MODELLOOP_DATABASE_URL") or f"sqlite:///{home / 'modelloop.db'}"
    artifact_uri = env.get("MODELLOOP_ARTIFACT_URI") or str(home / "artifacts")
    tracking_uri = (env.get("MODELLOOP_TRACKING_URI") or "").rstrip("/") or None
    token = env.get("MODELLOOP_TOKEN") or None
    max_upload_mb = int(env.get("MODELLOOP_MAX_UPLOAD_MB") or "1024")
    protected = env.get("MODELLOOP_PROTECTED_ALIASES", "champion")
    return Settings(
        home=home,
        database_url=database_url,
        artifact_uri=artifact_uri,
        tracking_uri=tracking_uri,
        token=token,
        max_upload_bytes=max_upload_mb * 1024 * 1024,
        protected_aliases=frozenset(a.strip() for a in protected.split(",") if a.strip()),
        prediction_log_uri=env.get("MODELLOOP_PREDICTION_LOG") or str(home / "predictions"),
        ray_address=env.get("MODELLOOP_RAY_ADDRESS") or None,
        heartbeat_seconds=_heartbeat_seconds(env.get("MODELLOOP_HEARTBEAT_SECONDS")),
        webhook_allowed_networks=tuple(
            n.strip()
            for n in env.get("MODELLOOP_WEBHOOK_ALLOWED_NETWORKS", "").split(",")
            if n.strip()
        ),
        allowed_hosts=tuple(
            h.strip() for h in env.get("MODELLOOP_ALLOWED_HOSTS", "").split(",") if h.strip()
        ),
        audit_key=env.get("MODELLOOP_AUDIT_KEY") or None,
        audit_key_file=Path(env.get("MODELLOOP_AUDIT_KEY_FILE") or home / "audit.key")
        .expanduser()
        .absolute(),
        audit_checkpoints=_checkpoints(env.get("MODELLOOP_AUDIT_CHECKPOINTS"), home),
    )


def _checkpoints(value: str | None, home: Path) -> Path | None:
    if value is None or not value.strip():
        return home / "audit-checkpoints.jsonl"
    return None if value.strip().lower() == "off" else Path(value).expanduser().absolute()


def _heartbeat_seconds(value: str | None) -> float:
    if value is None or not value.strip():
        return 30.0
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < 86_400:  # NaN fails too
        raise InvalidArgument(
            f"MODELLOOP_HEARTBEAT_SECONDS={value!r}: give seconds between heartbeats, e.g. 30 "
            "(0 turns heartbeats off)"
        )
    return seconds
