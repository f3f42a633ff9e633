"""The webhook signature: how barometre signs what it POSTs, and how a receiver checks it.

Every webhook request carries ``X-Barometre-Signature: t=<unix seconds>,v1=<hex>`` where ``<hex>`` is
HMAC-SHA256, keyed with the subscription's secret, of ``f"{t}.{body}"`` (the raw request body, as bytes).
Signing the time with the body lets a receiver refuse a replayed request: it checks that ``t`` is
within a few minutes of its own clock. The scheme is Stripe's; a receiver may find several ``v1=``
values (a future secret rotation) and accepts the request when any of them matches.

:func:`verify_signature` needs only the standard library: receivers may copy it as it is.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Barometre-Signature"
DEFAULT_TOLERANCE_S = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``f"{timestamp}.{body}"`` keyed with ``secret``."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int) -> str:
    """The value of the ``X-Barometre-Signature`` header for ``body`` sent at ``timestamp``."""
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify_signature(
    secret: str,
    header: str,
    body: bytes,
    tolerance: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """Whether ``header`` (the ``X-Barometre-Signature`` value) signs ``body`` (the raw request bytes)
    with ``secret``, at a time within ``tolerance`` seconds of ``now`` (default: this machine's clock).

    Receivers: compute it on the body exactly as received, before parsing the JSON.
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)
