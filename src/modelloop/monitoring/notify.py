"""Telling people: alert transitions go to the log at once and to webhooks until delivered.

An alert is stored before anyone is told (in the window's transaction), so a webhook that is
down loses nothing: the alert stays pending (``notified`` differs from ``state``) and every run
and scheduler tick tries again, until ``GIVE_UP_AFTER`` rounds have failed. Firing and resolving
are each delivered once; further breaches of a firing alert only update it (deduplication).
Prometheus sees alerts and the newest values through the server's ``/metrics``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from modelloop.monitoring.store import FIRING, Alert

if TYPE_CHECKING:
    from modelloop.monitoring.monitor import Monitor
    from modelloop.monitoring.store import ResultStore
    from modelloop.monitoring.windows import WindowResult

log = logging.getLogger("modelloop.monitoring.notify")

GIVE_UP_AFTER = 10
_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.ERROR}


def log_transitions(results: list[WindowResult]) -> None:
    """One log line per alert that fired or resolved in these results."""
    for result in results:
        for change in result.alerts:
            level = _LEVELS.get(change["severity"], logging.WARNING)
            if change["state"] != FIRING:
                level = logging.INFO
            log.log(
                level,
                "alert %s: monitor %s rule %s (%s %s, value %.6g in window %s)",
                change["state"],
                result.monitor,
                change["rule"],
                change["metric"],
                change["condition"],
                change["value"],
                result.window,
            )


def notify_pending(
    monitor: Monitor, store: ResultStore, allowed_networks: Sequence[str] = ()
) -> list[Alert]:
    """Deliver the monitor's undelivered alert states to its webhooks (which may reach the
    private ``allowed_networks``); returns the alerts that are delivered now (or need no
    delivery: a monitor without webhooks)."""
    from modelloop.monitoring.webhooks import deliver, parse_networks

    networks = parse_networks(allowed_networks)
    done = []
    for alert in store.pending_alerts(monitor.name):
        if not monitor.webhooks:
            store.mark_notified(alert.alert_id, alert.state, [])
            done.append(alert)
            continue
        payload = alert_payload(monitor, alert)
        attempts = [deliver(url, payload, allowed_networks=networks) for url in monitor.webhooks]
        records = [
            {"url": d.url, "ok": d.ok, "status": d.status, "error": d.error} for d in attempts
        ]
        rounds = _rounds(alert) + 1
        delivered = all(d.ok for d in attempts)
        if not delivered and rounds >= GIVE_UP_AFTER:
            log.error(
                "alert %s of monitor %s: giving up on webhooks after %d rounds: %s",
                alert.alert_id,
                monitor.name,
                rounds,
                "; ".join(f"{d.url}: {d.error or d.status}" for d in attempts if not d.ok),
            )
        state = alert.state if delivered or rounds >= GIVE_UP_AFTER else None
        store.mark_notified(
            alert.alert_id, state, [{"round": rounds, "state": alert.state, "targets": records}]
        )
        if delivered:
            done.append(alert)
    return done


def alert_payload(monitor: Monitor, alert: Alert) -> dict[str, Any]:
    """What a webhook receives: the event, a sentence for chat tools, and the alert itself."""
    verb = "fired" if alert.state == FIRING else "resolved"
    text = (
        f"[{alert.severity}] {monitor.name} ({monitor.deployment}): {alert.rule} {verb}: "
        f"{alert.metric} = {alert.value:.6g} ({alert.condition})"
    )
    return {
        "event": f"alert.{alert.state}",
        "text": text,
        "monitor": monitor.name,
        "deployment": monitor.deployment,
        "alert": alert.to_dict() | {"deliveries": None},
    }


def _rounds(alert: Alert) -> int:
    """Failed delivery rounds of the alert's current state so far."""
    last = alert.deliveries[0] if alert.deliveries else {}
    return int(last.get("round", 0)) if last.get("state") == alert.state else 0
