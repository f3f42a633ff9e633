"""schemathesis hooks of tests/integration/*/test_schemathesis.py (loaded with SCHEMATHESIS_HOOKS).

Two custom checks replace built-in ones (the runs exclude those):

- ``positive_data_acceptance``: the same check, except that a ``422`` is accepted for a schema-valid
  request when its message names one of the rules below, which JSON Schema cannot say (relations
  between parameters, instants compared with the server's clock, a host that must be public). Every
  other 4xx for a schema-valid request still fails, so a constraint the service enforces and the OpenAPI
  does not declare is still found.
- ``negative_data_rejection``: the same check, except that POST /v1/snapshots refuses bad items one by
  one (documented): a ``200`` whose ``rejected`` list is not empty is that operation's rejection; and a
  ``413`` (more items or bytes than a request may carry) is a rejection, which schemathesis does not
  count among them.
"""

from __future__ import annotations

import json
import re

import schemathesis
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

# A stratum implies its category: another category with it is refused (docs/CONTRACT.md, "Strata").
_STRATUM_CATEGORY = r"stratum: '[a-z0-9_]+' is a stratum of category [a-z]+, not [a-z]+"

# Messages of the documented rules, by operation ("METHOD /path"); a 422 passes when its message is
# made of these only (several problems are joined with "; ").
CROSS_FIELD_RULES: dict[str, str] = {
    "GET /v1/presence": _STRATUM_CATEGORY,
    "GET /v1/rankings": _STRATUM_CATEGORY,
    "GET /v1/presence/series": (
        r"from: must not be after to"
        r"|from, to, step: more than \d+ points; shorten the range or use a longer step|" + _STRATUM_CATEGORY
    ),
    "GET /v1/accounts/{account_id}/history": r"from: must be before to",
    "POST /v1/silences": (
        r"ends_at: the silence would already be over|ends_at: must be after starts_at"
        r"|a silence lasts at most \d+ days; create a new one after"
        r"|a silence needs at least one matcher: account_id, entity_id, platform or type"
        r"|give either ends_at or duration \(one of them\)|account_id '[^']*' is not on platform '[^']*'"
    ),
    # The host of a webhook URL must resolve to a public address (SSRF): no pattern can say so.
    "POST /v1/webhooks": r"url: [^;]*(?:address|resolve|host)[^;]*",
}


def _documented_rule(operation: str, message: str) -> bool:
    rule = CROSS_FIELD_RULES.get(operation)
    return rule is not None and re.fullmatch(f"(?:{rule})(?:; (?:{rule}))*", message, re.S) is not None


@schemathesis.check
def positive_data_acceptance_with_documented_rules(ctx, response, case):  # type: ignore[no-untyped-def]
    """``positive_data_acceptance``, with the 422s of CROSS_FIELD_RULES accepted."""
    if response.status_code == 422:
        try:
            message = json.loads(response.content)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = ""
        if _documented_rule(f"{case.operation.method.upper()} {case.operation.path}", message):
            return None
    return positive_data_acceptance(ctx, response, case)


# Operations that judge the items of a batch one by one, answering 200 with the refused ones listed.
PER_ITEM_REJECTION = {"POST /v1/snapshots"}


@schemathesis.check
def negative_data_rejection_per_item(ctx, response, case):  # type: ignore[no-untyped-def]
    """``negative_data_rejection``, with a per-item refusal accepted where the batch is judged per item."""
    if (
        f"{case.operation.method.upper()} {case.operation.path}" in PER_ITEM_REJECTION
        and response.status_code == 200
    ):
        try:
            rejected = json.loads(response.content)["rejected"]
        except (ValueError, KeyError, TypeError):
            rejected = []
        if rejected:
            return None
    if response.status_code == 413:
        # Too many items or bytes: refused, with the status HTTP has for it (declared on every route).
        return None
    return negative_data_rejection(ctx, response, case)
