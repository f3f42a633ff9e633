"""Webhook subscriptions: where the dispatcher (services/api/webhooks.py) POSTs alerts, and what became
of each delivery. Every route needs a token with alerts:write or admin: a subscription's URL may hold
a receiver's own credentials. Secrets are shown once, in the answer that creates the subscription.

A subscription belongs to the token that created it (``owner``, the token's SHA-256): a token lists,
deletes and reads the deliveries of its own only; another token's answers 404 as an unknown one would
(its existence is not confirmed). A token with the admin scope sees and deletes every one, those made
before owners were recorded (owner '') included."""

from __future__ import annotations

import secrets
import uuid
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Query
from fastapi.responses import Response

from services.api import alert_store, egress
from services.api.alert_models import DeliveriesOut, WebhookCreated, WebhookIn, WebhookOut, WebhooksOut, to_ms
from services.api.deps import UUID_RE, AlertsCaller, ApiDep, Caller, now, path_id
from services.api.models import BODY_ERRORS, ERROR_RESPONSES, NOT_FOUND, links
from services.api.routes.alerts import AUTH_RESPONSES
from services.common.web import ApiError

router = APIRouter(prefix="/v1/webhooks", tags=["alerts"])

MAX_LIMIT = 1_000
RESPONSES = {**ERROR_RESPONSES, **AUTH_RESPONSES}


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("secret", "owner")}


def _owner(caller: Caller) -> str | None:
    """Whose subscriptions ``caller`` sees: its own, or every one (None) with the admin scope."""
    return None if caller.admin else caller.owner


def _json(body: str, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type="application/json")


@router.post(
    "",
    status_code=201,
    response_model=WebhookCreated,
    responses={
        **RESPONSES,
        **BODY_ERRORS,
        **links(
            201,
            ListDeliveries=(
                "list_deliveries_v1_webhooks__subscription_id__deliveries_get",
                {"subscription_id": "$response.body#/subscription_id"},
            ),
            DeleteWebhook=(
                "delete_webhook_v1_webhooks__subscription_id__delete",
                {"subscription_id": "$response.body#/subscription_id"},
            ),
        ),
    },
    summary="Subscribe a URL to alerts",
    description="The dispatcher POSTs every matching alert (Alert v1 JSON) to `url`, signed with "
    "`secret` (header `X-Barometre-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "
    '"<t>.<body>")>`). Without `secret`, one is generated; either way this answer is the only one '
    "that shows it. Empty filters match everything; `min_severity` defaults to info. A URL whose host "
    "is a loopback, private, link-local, multicast, reserved or metadata IP address is refused (422); "
    "a host name is checked at each delivery.",
)
async def create_webhook(api: ApiDep, caller: AlertsCaller, body: WebhookIn) -> Response:
    # Only an IP literal can be judged now (a name may resolve elsewhere, or fail for a while): the
    # dispatcher checks every address a name resolves to at each delivery.
    host = httpx.URL(body.url).raw_host.decode("ascii")
    reason = egress.refused_literal(host, egress.parse_networks(api.settings.webhook_allow_networks))
    if reason is not None:
        raise ApiError(422, "invalid_request", f"url: {host} is not an address webhooks may reach ({reason})")
    row = {
        "subscription_id": str(uuid.uuid4()), "url": body.url,
        "secret": body.secret or "whsec_" + secrets.token_urlsafe(32),
        "types": [t.value for t in body.types], "platforms": [p.value for p in body.platforms],
        "entity_ids": body.entity_ids, "min_severity": body.min_severity.value,
        "description": body.description, "created_by": caller.name, "created_at": to_ms(now()),
        "owner": caller.owner,
    }  # fmt: skip
    await api.run(lambda: alert_store.insert_subscription(api.client(), api.db, row))
    return _json(WebhookCreated.model_validate(row).model_dump_json(), 201)  # the owner is not a field


@router.get(
    "",
    response_model=WebhooksOut,
    responses=RESPONSES,
    summary="Webhook subscriptions (no secrets)",
    description="The calling token's own subscriptions; every one for a token with the admin scope.",
)
async def list_webhooks(api: ApiDep, caller: AlertsCaller) -> Response:
    rows = await api.run(lambda: alert_store.list_subscriptions(api.client(), api.db, _owner(caller)))
    return _json(WebhooksOut(items=[WebhookOut.model_validate(_public(r)) for r in rows]).model_dump_json())


@router.delete(
    "/{subscription_id}",
    status_code=204,
    responses={**RESPONSES, **NOT_FOUND},
    summary="Delete a subscription (deliveries under way finish)",
    description="Only the calling token's own subscription (another token's answers 404), or any one "
    "with the admin scope.",
)
async def delete_webhook(api: ApiDep, caller: AlertsCaller, subscription_id: str) -> Response:
    subscription_id = path_id(subscription_id, UUID_RE, "webhook")

    def compute() -> None:
        row = alert_store.get_subscription(api.client(), api.db, subscription_id, _owner(caller))
        if row is None:
            raise ApiError(404, "not_found", f"unknown webhook {subscription_id!r}")
        alert_store.insert_subscription(api.client(), api.db, row, deleted=True)

    await api.run(compute)
    return Response(status_code=204)


@router.get(
    "/{subscription_id}/deliveries",
    response_model=DeliveriesOut,
    responses={**RESPONSES, **NOT_FOUND},
    summary="What became of each alert sent to a subscription, the latest first",
    description="Only for the calling token's own subscription (another token's answers 404), or any "
    "one with the admin scope.",
)
async def list_deliveries(
    api: ApiDep,
    caller: AlertsCaller,
    subscription_id: str,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> Response:
    subscription_id = path_id(subscription_id, UUID_RE, "webhook")

    def compute() -> DeliveriesOut:
        if alert_store.get_subscription(api.client(), api.db, subscription_id, _owner(caller)) is None:
            raise ApiError(404, "not_found", f"unknown webhook {subscription_id!r}")
        rows = alert_store.list_deliveries(api.client(), api.db, subscription_id, limit)
        return DeliveriesOut.model_validate({"subscription_id": subscription_id, "items": rows})

    return _json((await api.run(compute)).model_dump_json())
