"""Fixtures of the dashboard's browser tests: Debian's Chromium driven by Python Playwright, and the real
api application served by uvicorn over a seeded test database.

* ``browser`` (session): headless Chromium (``/usr/bin/chromium``; Playwright's own browsers are never
  downloaded). Without it, or without the ``playwright`` package, the tests are skipped with the reason,
  except under ``CI=true``, where they fail: CI must run them.
* ``dashboard`` (function): the api application of ``create_app`` on the ``app_settings`` database, seeded
  with :mod:`tests.browser.seed`, served on a free port of 18820-18839 in a thread.
* ``page``: a fresh browser context (fr-FR, Europe/Paris) and page that records console errors and
  uncaught exceptions; a test calls ``assert_no_console_errors`` when it is done.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from services.common.settings import REPO_ROOT, Settings
from tests.browser.seed import World

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
# Headless, no sandbox (containers, root), nothing that talks to the network on its own. Playwright
# gives every launch a fresh temporary profile (its own --user-data-dir, removed at close).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PORTS = range(18820, 18840)
ARTIFACTS = REPO_ROOT / "test-artifacts"


def _unavailable(reason: str) -> None:
    """Skip with ``reason``, or fail under CI, which must run the browser tests."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the browser tests must run)", pytrace=False)
    pytest.skip(reason)


# Module, not session: Playwright's sync API keeps an event loop running in this thread until it stops,
# which would break every later test that calls asyncio.run().
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright Python package is missing (pip install playwright)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True, timeout=60_000
        )
        try:
            yield chromium
        finally:
            chromium.close()


def _bind_test_port() -> socket.socket:
    """A listening socket on the first free port of the browser tests' range."""
    for port in PORTS:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        sock.listen(128)
        return sock
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1} for the dashboard tests")


@dataclass
class Dashboard:
    """A running api application and the data behind it."""

    url: str
    settings: Settings
    world: World
    routes: set[str] = field(default_factory=set)

    def api(self, path: str, **params: str) -> httpx.Response:
        return httpx.get(self.url + path, params=params, timeout=10)


@pytest.fixture
def dashboard(app_settings: Settings) -> Iterator[Dashboard]:
    import uvicorn

    from services.api.app import create_app

    world = World(app_settings)
    world.seed()
    app = create_app(app_settings)
    sock = _bind_test_port()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the api application did not start")
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        for path in ("/", "/static/dashboard.js"):
            if httpx.get(url + path, timeout=10).status_code != 200:
                pytest.fail(
                    f"GET {path} does not answer: the dashboard is not wired into services/api/app.py "
                    "(create_app must call app.include_router(dashboard.router) and dashboard.mount(app))",
                    pytrace=False,
                )
        openapi = httpx.get(url + "/openapi.json", timeout=10).json()
        yield Dashboard(url, app_settings, world, set(openapi.get("paths", {})))
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


@dataclass
class Recorded:
    """What a page said in its console, and the exceptions it did not catch."""

    errors: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        assert not self.errors, "errors in the browser console:\n" + "\n".join(self.errors)


@pytest.fixture
def console() -> Recorded:
    return Recorded()


@pytest.fixture
def page(browser: Browser, console: Recorded) -> Iterator[Page]:
    context = browser.new_context(
        locale="fr-FR", timezone_id="Europe/Paris", viewport={"width": 1400, "height": 900}
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.on(
        "console",
        lambda m: console.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda e: console.errors.append(f"uncaught: {e}"))
    try:
        yield page
    finally:
        context.close()


def save_screenshot(page: Page, name: str) -> Path:
    """A full-page screenshot under test-artifacts/ (git-ignored), kept for people to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True, animations="disabled")
    return path
