"""What every HTTP service shares: JSON errors, request metrics, and /healthz, /readyz, /metrics.

Errors follow the contract: ``{"error": {"code", "message"}}`` with the right status, never a stack trace.
Readiness runs the service's own dependency checks (Kafka, ClickHouse) with a time limit each, so a load
balancer or ``barometre run`` can tell "up" (healthz) from "able to serve" (readyz).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from services.common.limits import LimitConfig, RequestLimits
from services.common.logs import RequestIdMiddleware

log = logging.getLogger(__name__)
access_log = logging.getLogger("barometre.access")  # one DEBUG line a request (BAROMETRE_LOG_LEVEL=DEBUG)

ReadinessCheck = Callable[[], Awaitable[None]]

HTTP_REQUESTS = Counter(
    "barometre_http_requests_total",
    "HTTP requests served, by service, route template and status.",
    ["service", "route", "status"],
)
HTTP_DURATION = Histogram(
    "barometre_http_request_duration_seconds",
    "HTTP request duration, by service and route template.",
    ["service", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class ApiError(Exception):
    """An error a route raises to answer ``{"error": {"code", "message"}}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """Every error answer: ``{"error": {"code", "message"}}`` (for OpenAPI ``responses=``)."""

    error: ErrorDetail


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


def _code_for(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> str:
    """The methods some route of the request's path takes (for ``Allow`` on a 405), asked of the
    router itself, so that included routers and mounts answer as they route."""
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return ", ".join(allowed)


def _route_template(request: Request) -> str:
    # Label by template (/v1/entities/{entity_id}), never by raw path, so label cardinality stays bounded.
    # The router records the route it matched in the scope, included routers too; read after the call.
    route = request.scope.get("route")
    return str(getattr(route, "path", "unmatched"))


def install(
    app: FastAPI,
    service: str,
    checks: Mapping[str, ReadinessCheck],
    timeout: float = 2.0,
    limits: LimitConfig | None = None,
) -> None:
    """Add JSON error handlers, request metrics, the ``limits`` (services.common.limits) and the
    operational routes to ``app``."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        code = getattr(exc, "code", None)
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            # Starlette names the methods of the first route of the path only (GET and POST of one path
            # are two routes): name every method the path has, as the OpenAPI documents them.
            headers = {**(headers or {}), "Allow": _allowed_methods(request)}
        return JSONResponse(
            error_body(code if isinstance(code, str) else _code_for(exc.status_code), detail),
            status_code=exc.status_code,
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "body", "path"))
            problems.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        return JSONResponse(error_body("invalid_request", "; ".join(problems)), status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal_error", "internal error; see the service log"), 500)

    if limits is not None:
        # Added before the metrics middleware, so inside it: refused requests are counted too.
        app.add_middleware(RequestLimits, config=limits, service=service)

    @app.middleware("http")
    async def _metrics(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        start = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = _route_template(request)
            elapsed = time.perf_counter() - start
            HTTP_REQUESTS.labels(service, route, str(status)).inc()
            HTTP_DURATION.labels(service, route).observe(elapsed)
            if access_log.isEnabledFor(logging.DEBUG):
                access_log.debug(
                    "%s %s %d %.1f ms", request.method, request.url.path, status, elapsed * 1000,
                    extra={"method": request.method, "route": route, "status": status},
                )  # fmt: skip

    # Outermost of these middlewares: the id is set before anything else of the request logs.
    app.add_middleware(RequestIdMiddleware)

    @app.get("/healthz", tags=["operations"], summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get("/readyz", tags=["operations"], summary="The service's dependencies answer")
    async def readyz() -> JSONResponse:
        results: dict[str, str] = {}

        async def run(name: str, check: ReadinessCheck) -> None:
            try:
                await asyncio.wait_for(check(), timeout)
                results[name] = "ok"
            except TimeoutError:
                results[name] = f"no answer within {timeout:g}s"
            except Exception as exc:  # a failed dependency is reported, not raised
                results[name] = f"{type(exc).__name__}: {exc}"[:300]

        await asyncio.gather(*(run(n, c) for n, c in checks.items()))
        ready = all(v == "ok" for v in results.values())
        body = {"status": "ready" if ready else "not_ready", "service": service, "checks": results}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
