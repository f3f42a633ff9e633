"""What the scoring worker's web pages answer, as data (``services.scoring.app`` serves them).

``/healthz``: the process answers. ``/readyz``: 200 when nothing is being retried and the tables are
recovered, else 503, with a check per dependency saying what fails (from the worker's :class:`Health`).
``/metrics``: Prometheus' text format.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.common.retry import Health, Retrying


def healthz() -> dict[str, str]:
    return {"status": "ok", "service": "scoring"}


def readiness(health: Health, *, recovering: bool) -> tuple[dict[str, Any], int]:
    """The body and status of ``/readyz``: ``recovering`` while the tables are read back from their
    changelogs (nothing is consumed until then)."""

    def first(*what: Retrying) -> str:
        return next((detail for w in what if (detail := health.get(w))), "ok")

    checks = {
        "clickhouse": first(Retrying.CLICKHOUSE_WRITES, Retrying.CLICKHOUSE_READS),
        "kafka": first(Retrying.KAFKA_SENDS, Retrying.CHANGELOG),
        "state": "recovering" if recovering else "ok",
        "batches": first(Retrying.BATCHES),
        "alerts": first(Retrying.ALERT_WRITES, Retrying.ALERT_READS),
    }
    ready = all(state == "ok" for state in checks.values())
    body = {"status": "ready" if ready else "not_ready", "service": "scoring", "checks": checks}
    return body, 200 if ready else 503


def metrics() -> tuple[bytes, dict[str, str]]:
    """The body and headers of ``/metrics``. aiohttp refuses a charset inside content_type: the full
    Prometheus type goes in the header."""
    return generate_latest(), {"Content-Type": CONTENT_TYPE_LATEST}
