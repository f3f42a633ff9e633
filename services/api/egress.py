"""Which addresses the webhook dispatcher may connect to (no SSRF).

A webhook URL is chosen by a client of the api, so a delivery must not reach what only the api's own
network can reach: loopback (the local ClickHouse endpoint runs POST bodies as statements), private,
shared, link-local, multicast, reserved and unspecified ranges, and cloud metadata addresses. IPv4
carried in IPv6 (IPv4-mapped ``::ffff:a.b.c.d``, 6to4 ``2002::/16``, NAT64 ``64:ff9b::/96``) is judged
as the IPv4 address it carries; the local-use NAT64 prefix ``64:ff9b:1::/48`` is refused.
``webhook_allow_networks`` (e.g. ``127.0.0.0/8`` for tests) lets chosen networks through.

:func:`classify` and :func:`parse_networks` are pure; :func:`resolve_checked` resolves a host name (in
the loop's resolver thread) and refuses it when ANY of its addresses is refused, so the caller connects
to an address that was checked (a second resolution could answer something else: DNS rebinding).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Cloud metadata services (AWS, GCP, Azure, OpenStack: 169.254.169.254; AWS over IPv6: fd00:ec2::254).
# Both are in refused ranges anyway; named so the reason says what they are, and refused even when an
# allowed network covers them.
METADATA = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # the well-known prefix: the IPv4 address in the last 32 bits
LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")  # a site's own translator (RFC 8215)
SHARED = ipaddress.IPv4Network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)


class DestinationRefused(Exception):
    """A webhook destination resolves to an address it may not reach."""


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """Comma-separated networks (``127.0.0.0/8, ::1/128``; a bare address is a /32 or /128).

    Raises ValueError naming the bad item."""
    networks: list[IPNetwork] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=True))
        except ValueError as exc:
            raise ValueError(f"{item!r} is not a network ({exc})") from None
    return tuple(networks)


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (IPv4-mapped, 6to4, NAT64), or None."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _category(address: IPAddress) -> str | None:
    if address in METADATA:
        return "metadata"
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("local NAT64", isinstance(address, ipaddress.IPv6Address) and address in LOCAL_NAT64),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("shared", isinstance(address, ipaddress.IPv4Address) and address in SHARED),
        ("site-local", isinstance(address, ipaddress.IPv6Address) and address.is_site_local),
        ("not global", not address.is_global),
    )
    return next((name for name, refused in checks if refused), None)


def classify(address: IPAddress, allowed: Sequence[IPNetwork] = ()) -> str | None:
    """Why ``address`` is refused (``loopback``, ``private``, ``metadata``…), or None when it may be
    reached. An address in an ``allowed`` network is reached (metadata addresses never are)."""
    inner = embedded_ipv4(address)
    candidates = [address] if inner is None else [address, inner]
    if any(c in METADATA for c in candidates):
        return "metadata"
    if any(c in net for c in candidates for net in allowed if c.version == net.version):
        return None
    if inner is not None:
        reason = _category(inner)
        if reason is not None:
            return f"{reason} (IPv4 {inner} inside {address})"
        # An IPv6 prefix that only carries IPv4 (6to4, NAT64, mapped) is judged by what it carries.
        return None
    return _category(address)


def literal(host: str) -> IPAddress | None:
    """``host`` as an IP address when it is one (brackets allowed), else None (a name). The IPv4 forms
    the system resolver also reads as addresses (``127.1``, ``0x7f000001``, ``2130706433``) count."""
    text = host.strip("[]")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if re.fullmatch(r"[0-9a-fA-FxX.]+", text):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


def refused_literal(host: str, allowed: Sequence[IPNetwork] = ()) -> str | None:
    """Why a URL host that is an IP literal is refused; None for names and allowed addresses."""
    address = literal(host)
    return None if address is None else classify(address, allowed)


def check_all(addresses: Iterable[IPAddress], allowed: Sequence[IPNetwork] = ()) -> IPAddress:
    """The first of ``addresses`` when none is refused; DestinationRefused otherwise (one refused
    address refuses the name: the resolver could hand it to the next connection)."""
    ordered = list(dict.fromkeys(addresses))
    if not ordered:
        raise DestinationRefused("no address")
    for address in ordered:
        reason = classify(address, allowed)
        if reason is not None:
            raise DestinationRefused(f"{address} is {reason}")
    return ordered[0]


async def resolve_checked(host: str, port: int, allowed: Sequence[IPNetwork] = ()) -> IPAddress:
    """The address to connect to for ``host``: every address it resolves to checked.

    Raises DestinationRefused, or OSError (socket.gaierror) when the name does not resolve."""
    address = literal(host)
    if address is not None:
        return check_all([address], allowed)
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    # sockaddr[0] may carry an IPv6 zone (fe80::1%eth0): the zone is not part of the address.
    return check_all((ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in infos), allowed)
