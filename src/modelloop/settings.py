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
- ``MODELLOOP_ALLOWED_HOSTS``: comma-separated ``Host`` names (``host`` or ``host:port``, ``*``
  for any) a server, its UI and serving answer to besides ``localhost``, ``127.0.0.1`` and
  ``::1``; other names are refused (DNS rebinding). Default: none, except that a server which
  requires a token answers to any name unless this is set (see ``modelloop.server.hosts``)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


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
    webhook_allowed_networks: tuple[str, ...] = ()  # CIDRs webhooks may reach though private
    allowed_hosts: tuple[str, ...] = ()  # Host names served besides loopback ("*": any)

    @property
    def is_remote(self) -> bool:
        """True when the SDK should talk to a server instead of the local store."""
        return self.tracking_uri is not None


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
        webhook_allowed_networks=tuple(
            n.strip()
            for n in env.get("MODELLOOP_WEBHOOK_ALLOWED_NETWORKS", "").split(",")
            if n.strip()
        ),
        allowed_hosts=tuple(
            h.strip() for h in env.get("MODELLOOP_ALLOWED_HOSTS", "").split(",") if h.strip()
        ),
    )
