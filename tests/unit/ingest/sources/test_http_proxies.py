"""The pollers' proxies: read from the environment once, decided per host (NO_PROXY honoured)."""

from __future__ import annotations

import pytest

from services.ingest.sources.pollers.http import Proxies


def test_the_environment_decides_per_scheme_and_host(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,internal.example")
    proxies = Proxies()
    assert (
        proxies.for_url("http://mastodon.example/api/v1/accounts/lookup?acct=x")
        == "http://proxy.example:3128"
    )
    assert proxies.for_url("http://127.0.0.1:8123/?query=1") is None
    assert proxies.for_url("http://api.internal.example/x") is None  # a NO_PROXY domain covers its subdomains
    assert proxies.for_url("https://graph.facebook.com/v25.0/") is None  # no HTTPS proxy set
    monkeypatch.setenv("HTTPS_PROXY", "http://other.example:3128")
    assert proxies.for_url("https://graph.facebook.com/v25.0/") is None  # read once, when made


def test_without_proxies_nothing_is_proxied(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert Proxies().for_url("https://public.api.bsky.app/xrpc/app.bsky.actor.getProfiles") is None
