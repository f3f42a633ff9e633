"""``barometre status``: a running stack summed up in a terminal (or as JSON, ``--json``).

Each part is asked on its own, at the same time, with a short time limit, so that a part that is down
shows as "unreachable" without hiding the others:

* the services: ``/healthz`` and ``/readyz`` of api, ingest, scoring and poller at their configured
  ``BAROMETRE_<SERVICE>_HOST``/``_PORT`` (a ``0.0.0.0`` host is asked on 127.0.0.1);
* scoring: the consumer group's lag on the snapshots topic, read from Kafka (services/common/lag.py, as
  ``GET /v1/status``), and its rate: the api's (over its last minute) when the api answers, else two
  readings one second apart;
* ClickHouse (``unreachable`` when it does not answer, ``error`` when it refuses: no database yet, a
  missing grant): the latest snapshot observed (``account_latest``), the open alerts (not acknowledged, not
  inhibited by an incident: ``GET /v1/alerts?status=open``), and the coverage of every platform (what
  ``GET /v1/coverage`` counts: entities with an account observed, stale, never observed).

The exit code is 0 when every part answers and every service is ready, 1 otherwise.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from services.common.settings import Settings

SERVICES = ("api", "ingest", "scoring", "poller")
HTTP_TIMEOUT_S = 2.0
KAFKA_TIMEOUT_S = 3.0
CLICKHOUSE_TIMEOUT_S = 5.0
RATE_SAMPLE_S = 1.0


def service_url(settings: Settings, service: str) -> str:
    host = str(getattr(settings, f"{service}_host"))
    port = int(getattr(settings, f"{service}_port"))
    if host in ("0.0.0.0", "", "::"):  # noqa: S104  # listening everywhere: ask locally
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _unreachable(exc: BaseException) -> dict[str, Any]:
    name = type(exc).__name__
    text = (str(exc).strip().splitlines() or [""])[0].removeprefix(f"{name}: ")
    if "Connection refused" in text or "NewConnectionError" in text:
        text = "connection refused"
    return {"state": "unreachable", "detail": f"{name}: {text[:160]}" if text else name}


def check_service(settings: Settings, service: str) -> dict[str, Any]:
    """``ready``, ``not_ready`` (with the failing checks) or ``unreachable``."""
    url = service_url(settings, service)
    try:
        with httpx.Client(timeout=HTTP_TIMEOUT_S) as client:
            health = client.get(f"{url}/healthz")
            if health.status_code != 200:
                return {
                    "url": url,
                    "state": "unreachable",
                    "detail": f"/healthz answered {health.status_code}",
                }
            ready = client.get(f"{url}/readyz")
    except httpx.HTTPError as exc:
        return {"url": url, **_unreachable(exc)}
    try:
        checks = dict(ready.json().get("checks") or {})
    except ValueError:
        checks = {}
    if ready.status_code == 200:
        return {"url": url, "state": "ready", "checks": checks}
    failing = {k: v for k, v in checks.items() if v != "ok"}
    detail = "; ".join(f"{k}: {v}" for k, v in failing.items()) or f"/readyz answered {ready.status_code}"
    return {"url": url, "state": "not_ready", "detail": detail, "checks": checks}


def check_scoring(settings: Settings, api_rate: Callable[[], float | None]) -> dict[str, Any]:
    """The scoring group's lag (Kafka) and rate; ``unreachable`` when Kafka does not answer."""
    from kafka.errors import KafkaError

    from services.common.kafka import admin_client
    from services.common.lag import Progress, read_lag

    try:
        admin = admin_client(settings, "barometre-status", KAFKA_TIMEOUT_S)
    except (KafkaError, OSError) as exc:
        return _unreachable(exc)
    try:
        lag = read_lag(admin, settings)
        rate, source = api_rate(), "api"
        if rate is None:
            progress = Progress()
            progress.add(lag)
            time.sleep(RATE_SAMPLE_S)
            lag = read_lag(admin, settings)
            progress.add(lag)
            rate, source = progress.rate(), "sampled"
    except (KafkaError, OSError) as exc:
        return _unreachable(exc)
    finally:
        admin.close()
    eta = None if rate is None or rate <= 0 else lag.behind / rate
    return {
        "state": "ok",
        "events_received": lag.end,
        "events_scored": lag.committed,
        "events_behind": lag.behind,
        "partitions": lag.partitions,
        "group_known": lag.group_known,
        "rate_per_s": None if rate is None else round(max(rate, 0.0), 1),
        "rate_from": source if rate is not None else None,
        "seconds_to_catch_up": 0.0 if lag.behind == 0 else (None if eta is None else round(eta, 1)),
        "provisional": lag.behind > settings.scoring_provisional_events,
    }


def api_rate(settings: Settings) -> float | None:
    """The api's own figure of the scoring rate (GET /v1/status, over its last minute), if it has one."""
    try:
        r = httpx.get(f"{service_url(settings, 'api')}/v1/status", timeout=HTTP_TIMEOUT_S)
        if r.status_code == 200:
            rate = r.json()["scoring"]["rate_per_s"]
            return None if rate is None else float(rate)
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        pass
    return None


def _clickhouse_failure(exc: Exception) -> dict[str, Any]:
    from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

    if isinstance(exc, OperationalError) or not isinstance(exc, DatabaseError):
        return _unreachable(exc)  # lost on the way: the server does not answer
    # The server answers but refuses (no database: `barometre migrate` not run; a missing grant).
    found = re.search(r"DB::Exception: (.*?)(?: \(version |$)", str(exc))
    return {"state": "error", "detail": (found.group(1) if found else str(exc))[:200]}


def check_clickhouse(settings: Settings, now: datetime) -> dict[str, Any]:
    """Last snapshot, open alerts and coverage, read from ClickHouse; ``unreachable`` when it fails."""
    from services.api import coverage
    from services.api.alert_store import AlertFilter
    from services.common.clickhouse import make_client
    from services.common.names import AlertStatus, Table

    db = settings.clickhouse_database
    try:
        client = make_client(
            settings, connect_timeout=CLICKHOUSE_TIMEOUT_S, send_receive_timeout=CLICKHOUSE_TIMEOUT_S
        )
    except Exception as exc:  # clickhouse-connect raises its own and OS errors when it cannot connect
        return _clickhouse_failure(exc)
    try:
        last, accounts = client.query(
            f"SELECT max(observed_at), count() FROM {db}.{Table.ACCOUNT_LATEST}"
        ).result_rows[0]
        conditions, params = AlertFilter(status=AlertStatus.OPEN).conditions(db)
        open_alerts = client.query(
            f"SELECT count() FROM {db}.{Table.ALERTS} FINAL WHERE {' AND '.join(conditions)}",
            parameters=params,
        ).result_rows[0][0]
        found = coverage.coverage(
            client, db, None, None, None, None, now, timedelta(days=settings.staleness_days)
        )
    except Exception as exc:  # a failed query is reported as such, not raised
        return _clickhouse_failure(exc)
    finally:
        client.close()
    platforms: dict[str, dict[str, int]] = {}
    for row in found.rows:
        p = platforms.setdefault(
            row.platform.value,
            {"entities": 0, "with_account": 0, "observed": 0, "stale": 0, "never_observed": 0, "failing": 0},
        )
        p["entities"] += row.entities
        p["with_account"] += row.known.with_account
        p["observed"] += row.known.observed
        p["stale"] += row.known.stale
        p["never_observed"] += row.known.never_observed
        p["failing"] += row.known.accounts_failing
    last_at = last.replace(tzinfo=UTC) if accounts and last is not None and last.tzinfo is None else last
    return {
        "state": "ok",
        "accounts_observed": int(accounts),
        "last_snapshot_at": last_at.isoformat().replace("+00:00", "Z") if accounts else None,
        "last_snapshot_age_s": round((now - last_at).total_seconds(), 1) if accounts else None,
        "open_alerts": int(open_alerts),
        "coverage": {
            "staleness_days": settings.staleness_days,
            "simulated": found.simulated,
            "platforms": {k: v for k, v in platforms.items() if v["with_account"]},
        },
    }


@dataclass(frozen=True)
class Report:
    checked_at: datetime
    services: dict[str, dict[str, Any]]
    scoring: dict[str, Any]
    clickhouse: dict[str, Any]

    @property
    def ok(self) -> bool:
        return (
            all(s["state"] == "ready" for s in self.services.values())
            and self.scoring["state"] == "ok"
            and self.clickhouse["state"] == "ok"
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked_at": self.checked_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "services": self.services,
            "scoring": self.scoring,
            "clickhouse": self.clickhouse,
        }


def gather(settings: Settings) -> Report:
    """Every part of the stack, asked at the same time."""
    now = datetime.now(UTC)
    with ThreadPoolExecutor(max_workers=len(SERVICES) + 2) as pool:
        services = {name: pool.submit(check_service, settings, name) for name in SERVICES}
        scoring = pool.submit(check_scoring, settings, lambda: api_rate(settings))
        clickhouse = pool.submit(check_clickhouse, settings, now)
        return Report(
            checked_at=now,
            services={name: f.result() for name, f in services.items()},
            scoring=scoring.result(),
            clickhouse=clickhouse.result(),
        )


# --- Text


def _n(value: float) -> str:
    return f"{value:,.0f}".replace(",", " ")


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.1f} days ago"


def render(report: Report) -> str:
    """The report as lines for a terminal (plain text, no colours)."""
    out = [
        f"barometre status at {report.checked_at:%Y-%m-%d %H:%M:%S} UTC: {'ok' if report.ok else 'PROBLEMS'}"
    ]
    out.append("services")
    for name, s in report.services.items():
        state = {"ready": "ready", "not_ready": "NOT READY", "unreachable": "UNREACHABLE"}[s["state"]]
        detail = f"  {s['detail']}" if s.get("detail") else ""
        out.append(f"  {name:<8} {state:<12} {s['url']}{detail}")
    sc = report.scoring
    if sc["state"] != "ok":
        out.append(f"scoring    UNREACHABLE (Kafka: {sc['detail']})")
    elif sc["partitions"] == 0:
        out.append("scoring    no snapshots topic yet (nothing received)")
    else:
        rate = "rate unknown" if sc["rate_per_s"] is None else f"{_n(sc['rate_per_s'])} events/s"
        eta = sc["seconds_to_catch_up"]
        behind = f"{_n(sc['events_behind'])} events behind"
        tail = "" if sc["events_behind"] == 0 or eta is None else f", caught up in ~{_n(eta)} s"
        out.append(
            f"scoring    {behind} on {sc['partitions']} partitions, {rate}{tail}"
            f" ({_n(sc['events_scored'])} of {_n(sc['events_received'])} scored)"
        )
    ch = report.clickhouse
    if ch["state"] != "ok":
        out.append(f"clickhouse {ch['state'].upper()} ({ch['detail']})")
        return "\n".join(out)
    if ch["last_snapshot_at"] is None:
        out.append("last snapshot  none yet")
    else:
        out.append(f"last snapshot  {ch['last_snapshot_at']} ({_age(ch['last_snapshot_age_s'])})")
    out.append(f"open alerts    {_n(ch['open_alerts'])}")
    cov = ch["coverage"]
    platforms = cov["platforms"]
    simulated = ", simulated data in scope" if cov["simulated"] else ""
    out.append(f"coverage       entities observed within {cov['staleness_days']} days{simulated}")
    if not platforms:
        out.append("  (no registered account yet)")
    for name, p in platforms.items():
        share = p["observed"] / p["with_account"] if p["with_account"] else 0.0
        failing = f", {_n(p['failing'])} accounts failing" if p["failing"] else ""
        out.append(
            f"  {name:<10} {_n(p['observed']):>7} of {_n(p['with_account']):>7} ({share:.0%}); "
            f"{_n(p['stale'])} stale, {_n(p['never_observed'])} never{failing}"
        )
    return "\n".join(out)
