"""Reviewing accounts: what ``barometre accounts show`` prints, and ``barometre accounts reject``.

An account can be shown or rejected once it is registered or merely named by a source: a conflicting
account is not registered, yet a person must be able to look at it and reject the wrong one, which
settles the conflict on the next discovery run.
"""

from __future__ import annotations

from clickhouse_connect.driver.client import Client

from services.common import accounts as store
from services.common.accounts import AccountRow
from services.common.events import normalise_account_id
from services.common.links import LinkError, parse_link
from services.common.names import AccountOrigin, AccountState
from services.common.registry import user_version


class RejectError(ValueError):
    """The account cannot be rejected (unknown, or the text names no account)."""


def resolve_account_id(text: str) -> str:
    """The stored account id ``text`` names: an account id (``x:Grenoble``) or a link."""
    try:
        return normalise_account_id(text.strip())
    except ValueError:
        try:
            return parse_link(text).account_id
        except LinkError as exc:
            raise RejectError(f"{text!r} is neither an account id (platform:id) nor a link: {exc}") from None


def _row_text(row: AccountRow) -> list[str]:
    fields = [
        ("account_id", row.account_id),
        ("platform", row.platform),
        ("entity_id", row.entity_id),
        ("handle", row.handle),
        ("url", row.url),
        ("origin", row.origin),
        ("state", row.state + (" (deleted)" if row.deleted else "")),
        ("state_reason", row.state_reason or None),
        ("platform_id", row.platform_id),
        ("discovered_at", row.discovered_at.isoformat() if row.discovered_at else None),
        ("verified_at", row.verified_at.isoformat() if row.verified_at else None),
    ]
    return [f"{name}: {value}" for name, value in fields if value is not None]


def describe(client: Client, db: str, text: str) -> str | None:
    """The account's row, its provenance and its conflicts, as text; None when nothing names it."""
    account_id = resolve_account_id(text)
    row = store.read_account(client, db, account_id)
    sources = store.read_sources(client, db, account_id)
    if row is None and not sources:
        return None
    lines = _row_text(row) if row is not None else [f"account_id: {account_id}", "not registered"]
    lines.append("sources:" if sources else "sources: none (not named by a public registry)")
    for s in sources:
        lines.append(
            f"  {s.source} for {s.entity_id}: {s.url or s.handle} (ref {s.reference or '-'}; "
            f"first seen {s.first_seen.isoformat()}, last seen {s.last_seen.isoformat()})"
        )
    conflicts: list[str] = []
    entities = sorted({s.entity_id for s in sources})
    if len(entities) > 1:
        conflicts.append(f"named for several entities: {', '.join(entities)}")
    if row is not None and entities and any(e != row.entity_id for e in entities):
        elsewhere = ", ".join(e for e in entities if e != row.entity_id)
        conflicts.append(f"registered for {row.entity_id}, named by sources for {elsewhere}")
    platform = row.platform if row is not None else (sources[0].platform if sources else "")
    for entity_id in entities:
        others = sorted(
            {
                s.account_id
                for s in store.read_sources_for_entity_platform(client, db, entity_id, platform)
                if s.account_id != account_id
            }
        )
        if others:
            conflicts.append(f"{entity_id} is also named with {', '.join(others)} on {platform}")
    lines.append("conflicts:" if conflicts else "conflicts: none")
    lines.extend(f"  {c}" for c in conflicts)
    return "\n".join(lines)


def reject_account(client: Client, db: str, text: str, reason: str) -> AccountRow:
    """Reject the account ``text`` names, registered or only named by a source (then registered rejected)."""
    if not reason.strip():
        raise RejectError("a reason is needed")
    account_id = resolve_account_id(text)
    version = user_version()
    try:
        return store.reject(client, db, account_id, reason.strip(), version)
    except KeyError:
        pass
    sources = store.read_sources(client, db, account_id)
    if not sources:
        raise RejectError(f"no account {account_id!r} is registered or named by a source")
    first = sources[0]
    # Registered as rejected, so that discovery keeps it out; the entity is the first source's.
    row = AccountRow(
        account_id=account_id,
        platform=first.platform,
        entity_id=first.entity_id,
        handle=first.handle,
        url=None,
        origin=AccountOrigin.DISCOVER.value,
        state=AccountState.REJECTED.value,
        discovered_at=min(s.first_seen for s in sources),
        state_reason=reason.strip(),
    )
    store.write_accounts(client, db, [row], version)
    return row
