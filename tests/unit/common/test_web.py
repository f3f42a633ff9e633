"""The shared HTTP behaviour of every service: JSON errors, operational routes, metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.testclient import TestClient

from services.common import web


def make_app(checks: dict[str, web.ReadinessCheck]) -> FastAPI:
    app = FastAPI()
    router = APIRouter()  # as the services do: routes come from included routers

    @router.get("/things/{thing_id}")
    async def thing(thing_id: int) -> dict[str, int]:
        if thing_id == 0:
            raise HTTPException(404, "no thing 0")
        if thing_id == 13:
            raise RuntimeError("secret internals")
        return {"thing_id": thing_id}

    app.include_router(router)
    web.install(app, "testsvc", checks, timeout=0.2)
    return app


async def ok() -> None:
    return None


async def broken() -> None:
    raise ConnectionRefusedError("connection refused")


async def slow() -> None:
    await asyncio.sleep(5)


def test_healthz_and_ready_when_every_check_passes() -> None:
    client = TestClient(make_app({"a": ok}))
    assert client.get("/healthz").json() == {"status": "ok", "service": "testsvc"}
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["checks"] == {"a": "ok"}


def test_not_ready_names_the_failing_dependency() -> None:
    client = TestClient(make_app({"kafka": broken, "clickhouse": slow, "ok": ok}))
    r = client.get("/readyz")
    assert r.status_code == 503
    checks = r.json()["checks"]
    assert checks["ok"] == "ok"
    assert "connection refused" in checks["kafka"]
    assert "no answer within 0.2s" in checks["clickhouse"]


def test_errors_are_json_with_code_and_message() -> None:
    client = TestClient(make_app({}), raise_server_exceptions=False)
    r = client.get("/things/0")
    assert r.status_code == 404
    assert r.json() == {"error": {"code": "not_found", "message": "no thing 0"}}
    r = client.get("/things/abc")
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_request"
    assert "thing_id" in r.json()["error"]["message"]
    r = client.get("/nowhere")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = client.get("/things/13")
    assert r.status_code == 500
    assert "secret" not in r.text and "Traceback" not in r.text


def test_metrics_count_requests_by_route_template() -> None:
    client = TestClient(make_app({}))
    client.get("/things/5")
    client.get("/things/6")
    text = client.get("/metrics").text
    line = next(
        ln
        for ln in text.splitlines()
        if ln.startswith("barometre_http_requests_total{")
        and 'service="testsvc"' in ln
        and 'route="/things/{thing_id}"' in ln
        and 'status="200"' in ln
    )
    assert float(line.rsplit(" ", 1)[1]) >= 2
