"""The poller interface: which accounts to poll (:class:`AccountRef`), what a poll returns
(:class:`PollResult`), and :class:`Poller`, the base every platform poller extends.

The base owns what all platforms share, so each platform module is only about its API:

- HTTP (:class:`~services.ingest.sources.pollers.http.RetryingClient`): one ``httpx.AsyncClient`` per
  poller, with timeouts and a User-Agent, and ``_request``, the one way a poller sends a request: it
  waits for the rate limiter, reads the response's rate-limit headers (``_observe``), decides whether
  the response is usable, worth retrying or a failure (``_classify``), and retries with exponential
  back-off and jitter on 429, 408, 5xx, timeouts and connection errors, a bounded number of times.
  Other 4xx are never retried: asking again will not make a missing account appear;
- :meth:`Poller.poll`, which turns an interruption (refused token, spent quota, a pause longer than a
  poll may wait) into a failure for every account not polled yet, so nothing is silently left out
  and what was polled before the interruption is kept;
- building snapshots through :class:`~services.common.events.AccountSnapshot`, so every figure is
  validated by the contract, and a platform answer that breaks it is a reported failure;
- reading a poller's credential (``Poller._credential``: a missing one is a :class:`PollerConfigError`
  naming the variable to set, raised before any client is built) and its API root (:func:`api_url`).

Clock, sleep and the random source of the jitter are injected, so tests run without waiting.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Unpack

from pydantic import SecretStr, ValidationError

from services.common.events import (
    AccountSnapshot,
    account_id_from_handle,
    check_entity_id,
    describe_validation_error,
    normalise_account_id,
)
from services.common.links import Link, LinkError, looks_like_url, parse_link
from services.common.names import AccountStatus, Platform, SourceKind, normalise_platform
from services.common.settings import Settings
from services.ingest.sources.pollers.activity import Activity, ActivityError
from services.ingest.sources.pollers.errors import (
    FailureReason,
    Interrupted,
    PollerConfigError,
    RequestFailed,
)
from services.ingest.sources.pollers.http import ClientOptions, RetryingClient, RetryPolicy

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AccountRef:
    """One registered account to poll.

    ``lookup`` is what the platform's API is asked for: the id part of ``account_id``, which is the
    platform's stable id when one is known (a Bluesky DID, a Facebook page id, a YouTube channel id)
    and otherwise the lower-cased handle (contract, "Account"). Snapshots always carry ``account_id``
    as registered, even when the platform answers with a stable id, so an account's history is never
    split between two ids.

    ``platform_id`` is the stable id recorded when the account was verified (Bluesky DID, Mastodon
    account id on its own server, Facebook page id, YouTube channel id), None when unknown. When the
    platform does not know ``lookup`` any more, the poller asks by ``platform_id``: found, the account
    was renamed (same ``account_id``, new handle); not found either, it is gone. Without it, a missing
    account stays a ``not_found`` failure: a typo must not raise an "account gone" alert.
    """

    account_id: str
    platform: Platform
    lookup: str
    entity_id: str | None = None
    handle: str | None = None
    platform_id: str | None = None

    @classmethod
    def create(
        cls,
        platform: Platform | str,
        *,
        account_id: str | None = None,
        handle: str | None = None,
        entity_id: str | None = None,
        platform_id: str | None = None,
    ) -> AccountRef:
        """A reference from the accounts file's columns; ``account_id`` wins over ``handle``.

        A ``handle`` may be a link (``https://www.facebook.com/VilledeGrenoble``): it is read by
        :func:`~services.common.links.parse_link`, which gives the handle and, without ``account_id``,
        the account (``facebook:villedegrenoble``; the stable id when the link carries one).

        Raises ValueError (with the contract's message) for an unknown platform, a malformed id, an
        ``account_id`` of another platform, a link that names no account of the platform, or neither an
        id nor a handle.
        """
        resolved = platform if isinstance(platform, Platform) else normalise_platform(platform)
        handle = (handle.strip() or None) if handle is not None else None
        link: Link | None = None
        if handle is not None and looks_like_url(handle):
            # A link given as the handle names its account as the accounts file reads it
            # (services/common/links.py); a bad link is a LinkError, a ValueError.
            link = parse_link(handle, resolved)
            handle = link.handle
        elif handle is not None:
            try:
                link = parse_link(handle, resolved)
            except LinkError:
                # A plain handle the normaliser refuses keeps the contract's plain rule, so that the
                # platform's poller reports it (unsupported, not found) instead of it vanishing here.
                link = None
        if account_id:
            normalised = normalise_account_id(account_id)
            if normalised.partition(":")[0] != resolved.value:
                raise ValueError(f"account_id {account_id!r} is not a {resolved.value} account")
        elif link is not None:
            normalised = link.account_id
        elif handle:
            normalised = account_id_from_handle(resolved, handle)
        else:
            raise ValueError("an account needs an account_id or a handle")
        if entity_id is not None:
            check_entity_id(entity_id)
        return cls(
            account_id=normalised,
            platform=resolved,
            lookup=normalised.partition(":")[2],
            entity_id=entity_id,
            handle=handle,
            platform_id=(platform_id.strip() or None) if platform_id else None,
        )


@dataclass(frozen=True, slots=True)
class PollFailure:
    """An account that could not be polled, and why (``detail`` is for people: logs, the CLI)."""

    account_id: str
    platform: Platform
    reason: FailureReason
    detail: str


@dataclass
class PollResult:
    """What one poll of one platform produced: snapshots, and a failure for every other account.

    Every account handed to :meth:`Poller.poll` ends up in exactly one of the two lists. ``stopped``
    says why the poller stopped early (refused token, spent quota), in words meant for the operator.

    Two lists tell the caller what to change in the registry, both confirmed by the account's stable
    id (``AccountRef.platform_id``): ``renamed`` holds ``(account_id, new handle)`` of accounts found
    under a new handle (their snapshot is in ``snapshots``, same ``account_id``), ``gone`` the
    ``account_id`` of accounts the platform no longer knows even by stable id (their snapshot has
    status ``deleted``, which the scoring worker turns into an ``account_gone`` alert): the caller sets
    their state to ``gone``.
    """

    platform: Platform
    source: str | None  # poller:<name>; None when no poller could take the platform's accounts
    snapshots: list[AccountSnapshot] = field(default_factory=list)
    failures: list[PollFailure] = field(default_factory=list)
    stopped: str | None = None
    renamed: list[tuple[str, str]] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)

    def fail(self, ref: AccountRef, reason: FailureReason, detail: str) -> None:
        """Record that ``ref`` could not be polled."""
        self.failures.append(PollFailure(ref.account_id, ref.platform, reason, detail))

    def answered(self) -> set[str]:
        """Account ids that already have a snapshot or a failure."""
        return {s.account_id for s in self.snapshots} | {f.account_id for f in self.failures}


class Poller(RetryingClient, abc.ABC):
    """Reads the public figures of accounts on one platform; subclasses implement :meth:`_poll`.

    A poller owns an HTTP client: use it as an async context manager, or call :meth:`aclose`. It sends
    its requests with :meth:`~services.ingest.sources.pollers.http.RetryingClient._request`, under the
    ``poller_*`` settings (timeout, attempts, back-off, longest wait).

    Every platform poller declares what the scheduler (``services/ingest/polling``) needs to pace it:
    ``batch_size``, the accounts one request reads, and ``rate_budget``, ``(requests, window seconds)``:
    the platform's documented limit per key (per app, token, IP or server).
    """

    name: ClassVar[str]
    platform: ClassVar[Platform]
    label: ClassVar[str]  # the platform's name in messages for the operator: "YouTube"
    batch_size: ClassVar[int]
    rate_budget: ClassVar[tuple[int, float]]

    def __init__(self, settings: Settings, **options: Unpack[ClientOptions]) -> None:
        super().__init__(
            timeout=settings.poller_timeout_seconds,
            headers={"User-Agent": settings.poller_user_agent, "Accept": "application/json"},
            max_wait=settings.poller_max_wait_seconds,
            policy=RetryPolicy(
                max_attempts=settings.poller_max_attempts,
                base_delay=settings.poller_backoff_seconds,
                max_delay=settings.poller_backoff_max_seconds,
            ),
            **options,
        )

    @classmethod
    def _credential(cls, secret: SecretStr | None, needs: str, variable: str) -> str:
        """The value of the secret setting the poller cannot run without.

        Raises :class:`PollerConfigError` ("the <label> poller needs <needs>: set <variable>") when it is
        unset or empty; pollers call it before building their client, so a poller that cannot run opens
        none.
        """
        value = secret_value(secret)
        if not value:
            raise PollerConfigError(f"the {cls.label} poller needs {needs}: set {variable}")
        return value

    @property
    def source(self) -> str:
        """The ``source`` of this poller's snapshots: ``poller:<name>``."""
        return f"{SourceKind.POLLER.value}:{self.name}"

    async def poll(self, accounts: Sequence[AccountRef], now: datetime) -> PollResult:
        """Poll ``accounts``; every one comes back as a snapshot or a failure, never as an exception.

        A poller that cannot go on (refused credentials, a spent quota, a bug) stops early: the accounts
        it did not reach fail with the reason, ``stopped`` says why, and what was read is kept.

        ``now`` is the snapshots' ``observed_at``: the instant of this polling round, so one round's
        snapshots line up and a round published twice yields the same event ids.
        """
        if now.tzinfo is None:
            raise ValueError("now must be an aware datetime")
        result = PollResult(platform=self.platform, source=self.source)
        refs: list[AccountRef] = []
        seen: set[str] = set()
        for ref in accounts:
            if ref.account_id in seen:
                continue  # one observation per account and instant: a duplicate would be the same event
            seen.add(ref.account_id)
            if ref.platform is not self.platform:
                result.fail(ref, FailureReason.UNSUPPORTED, f"not a {self.platform.value} account")
            else:
                refs.append(ref)
        reason, detail = FailureReason.INTERNAL_ERROR, "the poller gave no answer for this account"
        try:
            await self._poll(refs, now, result)
        except Interrupted as exc:
            log.error("%s poller stopped: %s", self.name, exc.message)
            result.stopped = exc.message
            reason, detail = exc.reason, exc.message
        except Exception:
            # A bug, not the platform: the snapshots already read are kept, the rest is reported.
            log.exception("%s poller failed", self.name)
            result.stopped = f"the {self.name} poller failed (see the log)"
            reason, detail = FailureReason.INTERNAL_ERROR, result.stopped
        answered = result.answered()
        for ref in refs:
            if ref.account_id not in answered:
                result.fail(ref, reason, detail)
        # A rename or a disappearance is reported only with the snapshot that shows it (a snapshot the
        # contract refused is a failure instead), so the registry never changes on an unpublished fact.
        published = {s.account_id for s in result.snapshots}
        result.renamed = [(account_id, new) for account_id, new in result.renamed if account_id in published]
        result.gone = [account_id for account_id in result.gone if account_id in published]
        for account_id, new in result.renamed:
            log.info("%s: %s was renamed %s (confirmed by its stable id)", self.name, account_id, new)
        for account_id in result.gone:
            log.warning("%s: %s is gone (not found by handle nor by its stable id)", self.name, account_id)
        return result

    @abc.abstractmethod
    async def _poll(self, accounts: Sequence[AccountRef], now: datetime, result: PollResult) -> None:
        """Add a snapshot or a failure to ``result`` for each of ``accounts`` (all of this platform).

        May raise :class:`Interrupted`: the accounts not answered yet then fail with its reason.
        """

    # --- Activity.

    async def _activity_or_none(self, ref: AccountRef, reading: Awaitable[Activity]) -> Activity | None:
        """The 30-day activity ``reading`` reads for ``ref``, or None (logged) when it cannot be read.

        A failed request, a malformed item or an interruption costs the activity figures, never the
        audience already read: the snapshot goes without them. After an interruption (a pause, a
        spent quota) the poller's next request meets the same and stops the poll if it must.
        """
        try:
            return await reading
        except (RequestFailed, ActivityError) as exc:
            detail = exc.detail if isinstance(exc, RequestFailed) else str(exc)
        except Interrupted as exc:
            detail = exc.message
        log.warning("%s: activity of %s not read, audience kept: %s", self.name, ref.account_id, detail)
        return None

    # --- Snapshots.

    def _record(
        self,
        result: PollResult,
        ref: AccountRef,
        now: datetime,
        *,
        followers: object,
        following: object = None,
        posts_total: object = None,
        posts_30d: object = None,
        interactions_30d: object = None,
        replies_30d: object = None,
        automated_posts_30d: object = None,
        status: AccountStatus = AccountStatus.ACTIVE,
        handle: str | None = None,
    ) -> None:
        """Add the snapshot of ``ref`` to ``result``, validated by the contract's model.

        The ``*_30d`` figures are the account's activity over the 30 days before ``now`` (its posts,
        the interactions on them, its replies to its public), which the good-practice score needs;
        pollers pass them where the platform's API gives them, and leave them out (None) otherwise.

        Figures are passed as the platform sent them: a string, a negative or a missing count is the
        model's to refuse, and becomes an ``invalid_response`` failure rather than a wrong figure.
        """
        data: dict[str, object] = {
            "account_id": ref.account_id,
            "platform": self.platform.value,
            "observed_at": now,
            "followers": followers,
            "status": status.value,
            "source": self.source,
        }
        optional = {
            "entity_id": ref.entity_id,
            "handle": handle or ref.handle,
            "following": following,
            "posts_total": posts_total,
            "posts_30d": posts_30d,
            "interactions_30d": interactions_30d,
            "replies_30d": replies_30d,
            "automated_posts_30d": automated_posts_30d,
        }
        data.update({name: value for name, value in optional.items() if value is not None})
        try:
            snapshot = AccountSnapshot.model_validate(data)
        except ValidationError as exc:
            result.fail(ref, FailureReason.INVALID_RESPONSE, describe_validation_error(exc))
        else:
            result.snapshots.append(snapshot)

    def _record_gone(
        self,
        result: PollResult,
        ref: AccountRef,
        now: datetime,
        status: AccountStatus,
        handle: str | None = None,
    ) -> None:
        """A snapshot saying the platform reports the account ``deleted`` or ``suspended``.

        Its figures are 0 because the platform shows no audience for it any more; ``status`` is what
        tells the alerts (``account_gone``) and presence that the account is gone.
        """
        self._record(result, ref, now, followers=0, status=status, handle=handle)


def chunks(items: Sequence[AccountRef], size: int) -> list[Sequence[AccountRef]]:
    """``items`` in consecutive batches of at most ``size``."""
    return [items[i : i + size] for i in range(0, len(items), size)]


def secret_value(secret: SecretStr | None) -> str:
    """The value of a secret setting, "" when it is unset."""
    return secret.get_secret_value() if secret is not None else ""


def bearer(token: str) -> dict[str, str]:
    """The header sending ``token`` as a Bearer token: in a header, so it never shows in a logged URL."""
    return {"Authorization": f"Bearer {token}"}


def api_url(base: str, *path: str) -> str:
    """``base`` (a URL setting, trailing slash or not) followed by the parts of ``path``."""
    return "/".join([base.rstrip("/"), *(part.strip("/") for part in path)])
