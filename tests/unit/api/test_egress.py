"""Where webhooks may go (services/api/egress.py) and how the dispatcher goes there: addresses refused
(IPv4, IPv6, IPv4 inside IPv6, metadata), the allow setting, a name refused when any of its addresses
is, the connection made to the address checked with the Host header kept, the answer's body read up
to a cap, and failures described in our own words, never the receiver's."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import re
import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from services.api import egress
from services.api.webhooks import (
    NOT_ALLOWED,
    Dispatcher,
    Subscription,
    describe_error,
    host_header,
    pinned_url,
    read_capped,
)
from services.common.settings import Settings
from tests.fixtures.replay import LocalService, Reply

LOCAL = egress.parse_networks("127.0.0.0/8")


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "shared"),
        ("169.254.169.254", "metadata"),
        ("169.254.1.1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "private"),  # reserved 240/4: ipaddress files it under private first
        ("255.255.255.255", "private"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("fd00:ec2::254", "metadata"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback (IPv4 127.0.0.1 inside ::ffff:7f00:1)"),
        ("::ffff:10.0.0.1", "private (IPv4 10.0.0.1 inside ::ffff:a00:1)"),
        ("::ffff:169.254.169.254", "metadata"),
        ("64:ff9b::a00:1", "private (IPv4 10.0.0.1 inside 64:ff9b::a00:1)"),
        ("64:ff9b::7f00:1", "loopback (IPv4 127.0.0.1 inside 64:ff9b::7f00:1)"),
        ("64:ff9b:1::1", "local NAT64"),
        ("2002:7f00:1::", "loopback (IPv4 127.0.0.1 inside 2002:7f00:1::)"),
        ("2002:a9fe:a9fe::", "metadata"),
        ("::7f00:1", "reserved"),  # IPv4-compatible (deprecated)
    ],
)
def test_refused_addresses(address: str, reason: str) -> None:
    assert egress.classify(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "93.184.215.14", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808",
                "2002:808:808::1", "2a01:e0a::1"],
)  # fmt: skip
def test_public_addresses(address: str) -> None:
    assert egress.classify(ipaddress.ip_address(address)) is None


def test_allowed_networks() -> None:
    allowed = egress.parse_networks(" 127.0.0.0/8, fd12:3456::/32 ,10.9.0.0/16")
    assert len(allowed) == 3
    for address in ("127.0.0.1", "::ffff:127.0.0.1", "fd12:3456::7", "10.9.1.1", "8.8.8.8"):
        assert egress.classify(ipaddress.ip_address(address), allowed) is None, address
    for address in ("::1", "10.8.0.1", "192.168.0.1", "fd12:3457::1"):
        assert egress.classify(ipaddress.ip_address(address), allowed) is not None, address
    # Metadata addresses are never let through.
    everything = egress.parse_networks("0.0.0.0/0,::/0")
    assert egress.classify(ipaddress.ip_address("169.254.169.254"), everything) == "metadata"
    assert egress.classify(ipaddress.ip_address("fd00:ec2::254"), everything) == "metadata"
    assert egress.parse_networks("") == ()
    with pytest.raises(ValueError, match=re.escape("'10.0.0.1/8' is not a network")):
        egress.parse_networks("10.0.0.1/8")  # host bits set: a typo, not a network
    with pytest.raises(ValueError, match="'localhost' is not a network"):
        egress.parse_networks("127.0.0.0/8,localhost")


def test_the_setting_is_checked_at_start() -> None:
    assert Settings(webhook_allow_networks="127.0.0.0/8,::1/128").webhook_allow_networks
    with pytest.raises(ValidationError, match="'nope' is not a network"):
        Settings(webhook_allow_networks="nope")


@pytest.mark.parametrize(
    ("host", "refused"),
    [
        ("127.0.0.1", True),
        ("[::1]", True),
        ("127.1", True),  # forms the system resolver reads as 127.0.0.1
        ("0x7f000001", True),
        ("2130706433", True),
        ("0177.0.0.1", True),
        ("10.0.0.1", True),
        ("8.8.8.8", False),
        ("example.org", False),  # names are checked at delivery
        ("deadbeef", False),
        ("cafe.example", False),
    ],
)
def test_literals(host: str, refused: bool) -> None:
    assert (egress.refused_literal(host) is not None) is refused
    assert egress.refused_literal("127.0.0.1", LOCAL) is None


def fake_resolver(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> list[str]:
    """``socket.getaddrinfo`` answering ``answers`` (the loop's resolver calls it in a thread); returns
    the names asked, in order."""
    asked: list[str] = []

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        asked.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in answers[host]
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def test_a_name_is_refused_when_any_address_is(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_resolver(monkeypatch, {
        "public.test": ["93.184.215.14", "2606:4700::1111"], "mixed.test": ["93.184.215.14", "10.0.0.7"],
        "zoned.test": ["fe80::1%eth0"], "local.test": ["127.0.0.1"],
    })  # fmt: skip

    async def scenario() -> None:
        assert await egress.resolve_checked("public.test", 443) == ipaddress.ip_address("93.184.215.14")
        with pytest.raises(egress.DestinationRefused, match=re.escape("10.0.0.7 is private")):
            await egress.resolve_checked("mixed.test", 443)
        with pytest.raises(egress.DestinationRefused, match=re.escape("fe80::1 is link-local")):
            await egress.resolve_checked("zoned.test", 443)
        with pytest.raises(egress.DestinationRefused, match=re.escape("127.0.0.1 is loopback")):
            await egress.resolve_checked("local.test", 80)
        assert await egress.resolve_checked("local.test", 80, LOCAL) == ipaddress.ip_address("127.0.0.1")
        with pytest.raises(socket.gaierror):
            await egress.resolve_checked("unknown.test", 80)

    asyncio.run(scenario())


def test_urls_pinned_to_the_checked_address() -> None:
    url = httpx.URL("https://user:pw@Example.org:8443/a?b=1")
    assert (
        str(pinned_url(url, ipaddress.ip_address("93.184.215.14")))
        == "https://user:pw@93.184.215.14:8443/a?b=1"
    )
    assert host_header(url) == "example.org:8443"
    url = httpx.URL("http://[2606:4700::1111]/hook")
    assert str(pinned_url(url, ipaddress.ip_address("2606:4700::1111"))) == "http://[2606:4700::1111]/hook"
    assert host_header(url) == "[2606:4700::1111]"
    assert host_header(httpx.URL("https://bücher.example/x")) == "xn--bcher-kva.example"


def refused_error() -> BaseException:
    """A connection refused as httpx raises it: httpx.ConnectError from httpcore from anyio's OSError
    from an exception group of the OS errors."""
    try:
        try:
            raise OSError("All connection attempts failed") from ExceptionGroup(
                "", [ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed ('10.0.0.1', 80)")]
            )
        except OSError as exc:
            raise httpx.ConnectError("All connection attempts failed") from exc
    except httpx.ConnectError as exc:
        return exc


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (refused_error(), "connection refused"),
        (httpx.ReadTimeout("timed out"), "timed out"),
        (TimeoutError(), "timed out"),
        (egress.DestinationRefused("10.0.0.1 is private"), NOT_ALLOWED),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "host name not resolved"),
        (httpx.RemoteProtocolError("illegal header line: b'SECRET-FROM-THE-INSIDE'"), "invalid HTTP answer"),
        (httpx.ReadError("peer said: internal page content"), "connection lost"),
        (OSError(errno.EHOSTUNREACH, "No route to host"), "host unreachable"),
        (httpx.InvalidURL("Invalid port: 'x'"), "invalid URL"),
    ],
)
def test_errors_in_our_own_words(error: BaseException, text: str) -> None:
    assert describe_error(error) == text


def dispatcher(**settings: Any) -> Dispatcher:
    def no_database() -> Any:
        raise AssertionError("not used")

    d = Dispatcher(Settings(webhook_timeout_s=5.0, **settings), no_database)
    d._http = httpx.AsyncClient(follow_redirects=False, limits=httpx.Limits(max_keepalive_connections=0))
    return d


def attempt(d: Dispatcher, url: str) -> tuple[int | None, str, float | None]:
    async def scenario() -> tuple[int | None, str, float | None]:
        try:
            return await d._attempt(Subscription("s1", url, "k" * 16), "a1", b"{}", 1)
        finally:
            assert d._http is not None
            await d._http.aclose()

    return asyncio.run(scenario())


def test_the_dispatcher_refuses_loopback_unless_allowed(local_service: LocalService) -> None:
    local_service.script("/hook", Reply(204))
    assert attempt(dispatcher(), local_service.url + "/hook") == (None, NOT_ALLOWED, None)
    assert local_service.seen("/hook") == []
    assert attempt(dispatcher(webhook_allow_networks="127.0.0.0/8"), local_service.url + "/hook") == (
        204, "", None,
    )  # fmt: skip
    assert len(local_service.seen("/hook")) == 1


def test_the_dispatcher_connects_to_the_address_it_checked(
    local_service: LocalService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name is resolved once per attempt and the connection goes to that address (``receiver.test``
    exists only in this resolver), with the name in the Host header."""
    port = httpx.URL(local_service.url).port
    asked = fake_resolver(monkeypatch, {"receiver.test": ["127.0.0.1"], "inside.test": ["10.0.0.5"]})
    local_service.script("/hook", Reply(500, {"error": "SELECT * FROM secrets: 42 rows"}))
    d = dispatcher(webhook_allow_networks="127.0.0.0/8")
    assert attempt(d, f"http://receiver.test:{port}/hook") == (500, "HTTP 500", None)
    assert asked == ["receiver.test"]
    [seen] = local_service.seen("/hook")
    assert seen.headers["Host"] == f"receiver.test:{port}"
    assert attempt(dispatcher(webhook_allow_networks="127.0.0.0/8"), f"http://inside.test:{port}/hook") == (
        None, NOT_ALLOWED, None,
    )  # fmt: skip
    assert attempt(dispatcher(), f"http://nowhere.test:{port}/hook") == (None, "host name not resolved", None)


def test_redirects_are_not_followed(local_service: LocalService) -> None:
    local_service.script(
        "/hook", Reply(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
    )
    d = dispatcher(webhook_allow_networks="127.0.0.0/8")
    assert attempt(d, local_service.url + "/hook") == (302, "HTTP 302", None)


def test_only_a_capped_part_of_the_answer_is_read() -> None:
    sent: list[int] = []

    async def chunks() -> Any:
        for _ in range(1000):
            sent.append(1024)
            yield b"x" * 1024

    async def scenario(make: Callable[[], httpx.Response]) -> int:
        response = make()
        try:
            return await read_capped(response, 4096)
        finally:
            await response.aclose()

    read = asyncio.run(scenario(lambda: httpx.Response(200, content=chunks())))
    assert read == 4096
    assert len(sent) == 4  # the rest was never pulled from the receiver
