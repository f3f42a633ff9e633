"""X poller: public figures of X accounts from the X API v2 user lookup, 100 accounts per request, and,
where the access allows it (``x_read_posts``), their last 30 days of posts.

Audience: ``GET {x_api_url}/2/users/by?usernames=a,b`` (accounts registered by username, the lower-cased
handle) or ``GET /2/users?ids=1,2`` (accounts registered by their numeric user id, X's stable id:
``x:783214``), with ``user.fields=public_metrics,username,id,created_at,protected``, answers
``{"data": [{"id", "username", "protected", "public_metrics": {"followers_count", "following_count",
"tweet_count", "listed_count"}}], "errors": [...]}``. Accounts X cannot show are not in ``data`` but in
``errors``, inside a 200:

- ``"title": "Not Found Error"`` (``resource_type`` user) → a ``not_found`` failure: a deleted account, a
  renamed one and a typo look alike, and a typo must not raise an "account gone" alert;
- ``"title": "Forbidden"``, ``"detail": "User has been suspended: [name]."`` → a ``suspended`` snapshot.

An account with a user id recorded at verification (``AccountRef.platform_id``) whose username X no
longer knows, or now gives to another account, is asked by that id: found, it was renamed (a snapshot
with its new handle, listed in ``PollResult.renamed``); not found by id either, it is gone (a
``deleted`` snapshot, listed in ``PollResult.gone``).

Usernames are 1 to 15 letters, digits or underscores: anything else is refused locally
(``unsupported``), since one malformed name makes X refuse the whole batch with a 400. A batch refused
anyway is split in halves until the culprit is alone. An id part made only of digits is read as a user
id, as the contract's stable-id form says; a username made only of digits must therefore be
registered by its user id.

Activity (``x_read_posts``): ``GET /2/users/:id/tweets?start_time=<observed_at - 30 days>&max_results=100
&tweet.fields=public_metrics,created_at,in_reply_to_user_id,referenced_tweets``, following
``meta.next_token`` (sent back as ``pagination_token``), gives:

- ``posts_30d``: the account's own posts, threads included (replies to itself), retweets and replies to
  others left out;
- ``interactions_30d``: likes + replies + retweets + quotes on those posts (``public_metrics``);
- ``replies_30d``: the account's replies to other accounts.

Protected accounts are not read (X refuses their posts to an app). A timeline refused with a 403 (an
access tier without it) turns activity off for the rest of the poll, with a warning; a timeline that
fails otherwise leaves the account's audience snapshot without activity, never with made-up zeros.

Credentials and limits: an app-only Bearer token (``BAROMETRE_X_BEARER_TOKEN``) in the Authorization
header. X sends ``x-rate-limit-limit/-remaining/-reset`` (reset in epoch seconds, no Retry-After) on
every answer: requests stop at zero until the reset, per endpoint. 401 or 403 stops polling with a
message; a 429 "usage cap" or a 402 "credits depleted" pauses X polling for
``x_usage_cap_pause_seconds``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

import httpx

from services.common.events import parse_timestamp
from services.common.names import AccountStatus, Platform
from services.common.settings import Settings
from services.ingest.sources.pollers.base import (
    AccountRef,
    Poller,
    PollResult,
    api_url,
    bearer,
    chunks,
)
from services.ingest.sources.pollers.errors import FailureReason, RequestFailed, StopPolling
from services.ingest.sources.pollers.http import DETAIL_LENGTH, Outcome, Retry, host_key, json_object
from services.ingest.sources.pollers.ratelimit import parse_reset, parse_retry_after

log = logging.getLogger(__name__)

# GET /2/users/by and GET /2/users take at most 100 usernames or ids (X API v2 reference, "User lookup").
MAX_USERS_PER_REQUEST = 100
USER_FIELDS = "public_metrics,username,id,created_at,protected"
TWEET_FIELDS = "public_metrics,created_at,in_reply_to_user_id,referenced_tweets"
# GET /2/users/:id/tweets: 5 to 100 posts a page, and no deeper than the 3,200 most recent posts.
TIMELINE_PAGE_SIZE = 100
MAX_TIMELINE_PAGES = 32
ACTIVITY_WINDOW = timedelta(days=30)

USERNAME = re.compile(r"[A-Za-z0-9_]{1,15}")
USER_ID = re.compile(r"[0-9]{1,19}")

_NOT_FOUND_TITLE = "Not Found Error"
_FORBIDDEN_TITLE = "Forbidden"
_USAGE_CAPPED = "usage-capped"


@dataclass(frozen=True)
class Activity:
    """An account's last 30 days on X, as the contract's ``*_30d`` fields count them."""

    posts: int
    interactions: int
    replies: int


def activity_of(
    tweets: Iterable[Mapping[str, Any]], user_id: str, since: datetime, until: datetime
) -> Activity:
    """Count ``tweets`` (a timeline's ``data``) posted in [since, until] by the account ``user_id``.

    Retweets are not the account's posts (their metrics are the original's); a reply to another account
    is a reply, a reply to itself (a thread) a post. Raises ValueError for a post without its
    ``created_at`` or its counts: a partial sum would read as a real figure.
    """
    posts = interactions = replies = 0
    for tweet in tweets:
        created = tweet.get("created_at")
        if not isinstance(created, str):
            raise ValueError(f"post {tweet.get('id')!r} has no created_at")
        when = parse_timestamp(created)
        if not since <= when <= until:
            continue
        references = tweet.get("referenced_tweets") or []
        if any(isinstance(r, dict) and r.get("type") == "retweeted" for r in references):
            continue
        replied_to = tweet.get("in_reply_to_user_id")
        if replied_to is not None and str(replied_to) != user_id:
            replies += 1
            continue
        metrics = tweet.get("public_metrics")
        counts = [
            metrics.get(name) if isinstance(metrics, dict) else None
            for name in ("like_count", "reply_count", "retweet_count", "quote_count")
        ]
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
            raise ValueError(f"post {tweet.get('id')!r} has no valid public_metrics")
        posts += 1
        interactions += sum(c for c in counts if isinstance(c, int))
    return Activity(posts=posts, interactions=interactions, replies=replies)


def _stable_id(ref: AccountRef) -> str | None:
    """The X user id recorded for ``ref`` at verification, when it looks like one."""
    return ref.platform_id if ref.platform_id and USER_ID.fullmatch(ref.platform_id) else None


def _asked(ref: AccountRef, by_stable_id: bool) -> str:
    """What X is asked about ``ref``: its stable id, or its registered username or id."""
    stable = _stable_id(ref)
    return stable if by_stable_id and stable is not None else ref.lookup


def _describe(response: httpx.Response) -> str:
    """``HTTP 401 Unauthorized: Unauthorized: <detail>`` from an X problem body (title, detail)."""
    text = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
    body = json_object(response)
    if body is None:
        return f"{text}: {response.text.strip()[:DETAIL_LENGTH]}" if response.text.strip() else text
    parts = [str(body[name]) for name in ("title", "detail") if body.get(name)]
    if not parts and isinstance(body.get("errors"), list):  # the v1.1 shape: {"errors": [{"message"}]}
        parts = [str(e.get("message")) for e in body["errors"] if isinstance(e, dict) and e.get("message")]
    return f"{text}: {': '.join(parts)[:DETAIL_LENGTH]}" if parts else text


class XPoller(Poller):
    """Followers, following and posts of X accounts, from the X API v2; their activity on request."""

    name = "x"
    platform = Platform.X
    label = "X"
    follow_redirects = False  # the Bearer token must not follow a redirect elsewhere
    rate_limit_prefixes = ("x-rate-limit-",)  # X's own family, on every answer
    # For the scheduler: accounts per request, and requests per window (seconds). X API v2 rate limits
    # (docs.x.com, "Rate limits"; user lookup migration guide): GET /2/users/by and GET /2/users allow
    # 300 requests per 15 minutes per app with an app-only token. The timeline (GET /2/users/:id/tweets)
    # has its own bucket, 10,000 per 15 minutes per app (1,500 on older Pro plans): one request an
    # account when x_read_posts is on.
    batch_size: ClassVar[int] = MAX_USERS_PER_REQUEST
    rate_budget: ClassVar[tuple[int, float]] = (300, 900.0)

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        token = self._credential(
            settings.x_bearer_token, "an X API v2 app-only Bearer token", "BAROMETRE_X_BEARER_TOKEN"
        )
        super().__init__(settings, **kwargs)
        self._base = api_url(settings.x_api_url, "2")
        host = host_key(self._base)
        # X counts each endpoint's requests apart: a spent timeline budget must not stop user lookups.
        self._users_key = f"{host} users"
        self._timeline_key = f"{host} timeline"
        self._auth = bearer(token)
        self._read_posts = settings.x_read_posts
        self._cap_pause = settings.x_usage_cap_pause_seconds

    async def _poll(self, accounts: Sequence[AccountRef], now: datetime, result: PollResult) -> None:
        by_id: list[AccountRef] = []
        by_name: list[AccountRef] = []
        for ref in accounts:
            if USER_ID.fullmatch(ref.lookup):
                by_id.append(ref)
            elif USERNAME.fullmatch(ref.lookup):
                by_name.append(ref)
            else:
                result.fail(
                    ref,
                    FailureReason.UNSUPPORTED,
                    f"{ref.lookup!r} is not an X username (1 to 15 letters, digits or underscores)",
                )
        users: list[tuple[AccountRef, dict[str, Any]]] = []
        again: list[AccountRef] = []
        for batch in chunks(by_name, MAX_USERS_PER_REQUEST):
            users += await self._lookup(batch, "usernames", now, result, again)
        for batch in chunks(by_id, MAX_USERS_PER_REQUEST):
            users += await self._lookup(batch, "ids", now, result, again)
        # Accounts whose username X no longer knows, or now gives to another account: asked by the user
        # id recorded at verification, which tells a rename from a disappearance.
        for batch in chunks(again, MAX_USERS_PER_REQUEST):
            users += await self._lookup(batch, "ids", now, result, None)
        for ref, user in users:
            activity = await self._activity(ref, user, now) if self._read_posts else None
            self._record_user(result, ref, now, user, activity)

    async def _lookup(
        self,
        batch: Sequence[AccountRef],
        parameter: str,
        now: datetime,
        result: PollResult,
        again: list[AccountRef] | None,
    ) -> list[tuple[AccountRef, dict[str, Any]]]:
        """The user objects found for ``batch``; every other account of it gets its failure or snapshot,
        or goes to ``again`` to be asked by its stable id. ``again`` is None when ``batch`` is asked by
        the stable ids themselves (``AccountRef.platform_id``)."""
        by_stable_id = again is None
        asked = {ref.account_id: _asked(ref, by_stable_id) for ref in batch}
        path = "users/by" if parameter == "usernames" else "users"
        try:
            response = await self._request(
                f"{self._base}/{path}",
                key=self._users_key,
                params={parameter: ",".join(asked.values()), "user.fields": USER_FIELDS},
                headers=self._auth,
                accept=(400,),
            )
        except RequestFailed as exc:
            for ref in batch:
                result.fail(ref, exc.reason, exc.detail)
            return []
        if response.status_code == 400:
            if len(batch) > 1:
                middle = len(batch) // 2
                return await self._lookup(batch[:middle], parameter, now, result, again) + await self._lookup(
                    batch[middle:], parameter, now, result, again
                )
            result.fail(batch[0], FailureReason.HTTP_ERROR, _describe(response))
            return []
        body = json_object(response)
        data = body.get("data", []) if body is not None else None
        errors = body.get("errors", []) if body is not None else None
        if not isinstance(data, list) or not isinstance(errors, list):
            for ref in batch:
                result.fail(ref, FailureReason.INVALID_RESPONSE, f"GET /2/{path}: no 'data' or 'errors' list")
            return []
        field = "username" if parameter == "usernames" else "id"
        found = {str(u.get(field, "")).lower(): u for u in data if isinstance(u, dict)}
        problems = {
            str(e.get("value") or e.get("resource_id") or "").lower(): e
            for e in errors
            if isinstance(e, dict)
        }
        users: list[tuple[AccountRef, dict[str, Any]]] = []
        for ref in batch:
            value = asked[ref.account_id]
            user = found.get(value)
            stable = _stable_id(ref)
            if user is not None:
                if again is not None and stable is not None and str(user.get("id")) != stable:
                    again.append(ref)  # the username now belongs to another account
                    continue
                username = user.get("username")
                if by_stable_id and isinstance(username, str) and username.lower() != ref.lookup:
                    result.renamed.append((ref.account_id, username))
                users.append((ref, user))
                continue
            problem = problems.get(value)
            title = str(problem.get("title", "")) if problem else ""
            detail = str(problem.get("detail", "")) if problem else ""
            if title == _FORBIDDEN_TITLE and "suspended" in detail.lower():
                self._record_gone(result, ref, now, AccountStatus.SUSPENDED)
            elif problem is not None and title != _NOT_FOUND_TITLE:
                result.fail(ref, FailureReason.HTTP_ERROR, f"{title}: {detail}" if detail else title)
            elif again is not None and stable is not None and stable != value:
                again.append(ref)
            elif stable is not None and stable == value:
                # Not found by the stable id recorded at verification: the account no longer exists.
                self._record_gone(result, ref, now, AccountStatus.DELETED)
                result.gone.append(ref.account_id)
            else:
                result.fail(ref, FailureReason.NOT_FOUND, detail or "the account is missing from X's answer")
        return users

    def _record_user(
        self,
        result: PollResult,
        ref: AccountRef,
        now: datetime,
        user: dict[str, Any],
        activity: Activity | None,
    ) -> None:
        metrics = user.get("public_metrics")
        if not isinstance(metrics, dict):
            result.fail(
                ref, FailureReason.INVALID_RESPONSE, "X's answer has no public_metrics for the account"
            )
            return
        username = user.get("username")
        self._record(
            result,
            ref,
            now,
            followers=metrics.get("followers_count"),
            following=metrics.get("following_count"),
            posts_total=metrics.get("tweet_count"),
            posts_30d=activity.posts if activity else None,
            interactions_30d=activity.interactions if activity else None,
            replies_30d=activity.replies if activity else None,
            handle=username if isinstance(username, str) else None,
        )

    async def _activity(self, ref: AccountRef, user: dict[str, Any], now: datetime) -> Activity | None:
        """The account's last 30 days, or None when they cannot be read (said in the log)."""
        user_id = str(user.get("id", ""))
        if user.get("protected") is True or not USER_ID.fullmatch(user_id):
            return None
        since = now - ACTIVITY_WINDOW
        params: dict[str, str] = {
            "start_time": since.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "max_results": str(TIMELINE_PAGE_SIZE),
            "tweet.fields": TWEET_FIELDS,
        }
        tweets: list[Mapping[str, Any]] = []
        try:
            for _ in range(MAX_TIMELINE_PAGES):
                response = await self._request(
                    f"{self._base}/users/{user_id}/tweets",
                    key=self._timeline_key,
                    params=params,
                    headers=self._auth,
                    accept=(403,),
                )
                if response.status_code == 403:
                    log.warning(
                        "x: the timeline is refused (%s); posts are not read for the rest of this poll",
                        _describe(response),
                    )
                    self._read_posts = False
                    return None
                body = json_object(response)
                data = body.get("data", []) if body is not None else None
                meta = body.get("meta", {}) if body is not None else None
                if not isinstance(data, list) or not isinstance(meta, dict):
                    raise ValueError("the timeline has no 'data' list or 'meta' object")
                tweets += [t for t in data if isinstance(t, dict)]
                token = meta.get("next_token")
                if not isinstance(token, str) or not token:
                    break
                params["pagination_token"] = token
            return activity_of(tweets, user_id, since, now)
        except (RequestFailed, ValueError) as exc:
            log.warning("x: the posts of %s could not be read: %s", ref.account_id, exc)
            return None

    def _classify(self, response: httpx.Response) -> Outcome:
        status = response.status_code
        if 200 <= status < 300:
            return None
        detail = _describe(response)
        body = json_object(response) or {}
        if status == httpx.codes.TOO_MANY_REQUESTS and _USAGE_CAPPED in str(body.get("type", "")):
            return Retry(
                FailureReason.QUOTA_EXCEEDED, f"X usage cap reached ({detail})", delay=self._cap_pause
            )
        if status == httpx.codes.PAYMENT_REQUIRED:
            return Retry(
                FailureReason.QUOTA_EXCEEDED,
                f"X reports the developer account's credits spent ({detail}); add credits in the X "
                "developer console",
                delay=self._cap_pause,
            )
        if status == httpx.codes.TOO_MANY_REQUESTS:
            now = self._clock()
            reset = parse_reset(response.headers.get("x-rate-limit-reset"), now)
            delay = (
                max(0.0, (reset - now).total_seconds())
                if reset is not None
                else parse_retry_after(response.headers.get("Retry-After"), now)
            )
            return Retry(FailureReason.RATE_LIMITED, detail, delay=delay)
        if status == httpx.codes.UNAUTHORIZED:
            raise StopPolling(
                FailureReason.UNAUTHORIZED,
                f"X refused the Bearer token ({detail}); set BAROMETRE_X_BEARER_TOKEN to the app-only "
                "Bearer token of an X developer app",
            )
        if status == httpx.codes.FORBIDDEN:
            raise StopPolling(
                FailureReason.UNAUTHORIZED,
                f"X refused access ({detail}); the app must belong to a Project with X API v2 access "
                "to user lookup",
            )
        return super()._classify(response)
