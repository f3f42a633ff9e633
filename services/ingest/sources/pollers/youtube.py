"""YouTube poller: channel statistics from the YouTube Data API v3, up to 50 channels per request.

``GET {youtube_api_url}/youtube/v3/channels?part=statistics&id=UC...,UC...`` answers
``{"items": [{"id": "UC...", "statistics": {"subscriberCount": "1234", "hiddenSubscriberCount": false,
"videoCount": "56", "viewCount": "..."}}]}``: counts are strings, followers are ``subscriberCount``
(which YouTube rounds to three significant figures), posts are ``videoCount``. Accounts registered by
handle (``youtube:@ville``, no channel id known) are asked one by one with ``forHandle``, the only
handle lookup the API has. The key (``BAROMETRE_YOUTUBE_API_KEY``) is sent in the ``X-Goog-Api-Key``
header rather than the URL, so it never appears in logged URLs. Each request costs 1 quota unit.

Outcomes:

- a channel missing from ``items`` → a ``not_found`` failure (the API says nothing more: a deleted
  or terminated channel and a typo look alike);
- ``hiddenSubscriberCount: true`` → a ``hidden`` failure: the channel exists but shows no audience,
  and a made-up 0 would read as a collapse;
- 403 ``quotaExceeded``: the project's daily quota is spent; requests stop until it resets at
  midnight Pacific time (or for ``youtube_quota_pause_seconds``), so the rest of the poll fails at
  once with ``quota_exceeded`` and later polls too until then, without spending requests;
- 403 ``rateLimitExceeded`` / ``userRateLimitExceeded`` (too many requests per minute): retried with
  back-off, as Google's guidance says;
- a refused key (400 ``keyInvalid``, 403 ``forbidden``, ``accessNotConfigured``...): polling stops with
  a message saying what to fix.

Renames and gone channels: ``platform_id`` is the channel id recorded at verification. A channel
registered by handle that ``forHandle`` no longer finds (or finds as another channel) is asked by id:
found, it was renamed (a normal snapshot with its new handle, ``snippet.customUrl``, listed in
``PollResult.renamed``); not found by id either, it is gone (a ``deleted`` snapshot, listed in
``PollResult.gone``). A channel registered by its id and missing from the answer is gone when that id
is the recorded ``platform_id``. Without a recorded id a missing channel stays ``not_found``.

Activity (``poll_activity``): the channels call also asks ``contentDetails`` (same request, same
unit) for the uploads playlist (``contentDetails.relatedPlaylists.uploads``); ``playlistItems.list?
part=contentDetails&playlistId=UU...&maxResults=50`` lists the uploads newest first, paged with
``pageToken`` until one is older than 30 days (at most ``poll_activity_max_pages`` pages); private and
deleted videos (no ``videoPublishedAt``) are left out. ``videos.list?part=statistics&id=...`` (50 ids a
call, the videos of several channels together) gives each video's ``likeCount + commentCount``, the
interactions. Replies are left out: the channel's answers to comments are only found through
``commentThreads.list`` for every video (a unit each), which the daily quota cannot afford. A failed
activity request keeps the audience snapshot without the activity figures, and is logged; a quota
spent during activity stops it for the batch, and the next channels call stops the poll.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, timezone, tzinfo
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from services.common.names import AccountStatus, Platform
from services.common.settings import Settings
from services.ingest.sources.pollers.activity import (
    Activity,
    ActivityError,
    Post,
    count,
    figures_of,
    in_window,
    parse_count,
    parse_time,
    reached_window_start,
)
from services.ingest.sources.pollers.base import AccountRef, Poller, PollResult, api_url, chunks
from services.ingest.sources.pollers.errors import FailureReason, Interrupted, RequestFailed, StopPolling
from services.ingest.sources.pollers.http import Outcome, Retry, describe_response, host_key, json_object

log = logging.getLogger(__name__)

MAX_IDS_PER_REQUEST = 50  # channels.list and videos.list ids a call; playlistItems.list items a page
CHANNEL_ID = re.compile(r"UC[0-9A-Za-z_-]{22}")

_QUOTA_REASONS = frozenset({"quotaExceeded", "dailyLimitExceeded"})
_RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED"})
_KEY_REASONS = frozenset({"keyInvalid", "keyExpired", "API_KEY_INVALID", "API_KEY_EXPIRED"})


def _pacific() -> tzinfo:
    try:
        return ZoneInfo("America/Los_Angeles")
    except ZoneInfoNotFoundError:
        # Without a time-zone database, Pacific Standard Time: in summer the pause ends an hour after
        # the real reset, which costs an hour of polling, never a refused request.
        return timezone(timedelta(hours=-8), "PST")


def next_quota_reset(now: datetime) -> datetime:
    """The next midnight in Pacific time after ``now``: when YouTube's daily quotas reset."""
    zone = _pacific()
    local = now.astimezone(zone)
    midnight = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=zone)
    return midnight.astimezone(UTC)


def _count(value: object) -> object:
    # The API writes 64-bit counts as strings; anything else is passed on for the model to refuse.
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


class YouTubePoller(Poller):
    """Subscribers and videos of YouTube channels, from the Data API v3."""

    name = "youtube"
    platform = Platform.YOUTUBE
    label = "YouTube"
    batch_size: ClassVar[int] = MAX_IDS_PER_REQUEST
    # The default quota: 10,000 units a day per project; channels.list costs 1.
    rate_budget: ClassVar[tuple[int, float]] = (10_000, 86_400.0)
    follow_redirects = False  # the key must not follow a redirect elsewhere

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        key = self._credential(
            settings.youtube_api_key, "a YouTube Data API v3 key", "BAROMETRE_YOUTUBE_API_KEY"
        )
        super().__init__(settings, **kwargs)
        self._url = api_url(settings.youtube_api_url, "youtube/v3/channels")
        self._key = host_key(self._url)
        self._auth = {"X-Goog-Api-Key": key}
        self._quota_pause = settings.youtube_quota_pause_seconds
        self._playlist_items_url = api_url(settings.youtube_api_url, "youtube/v3/playlistItems")
        self._videos_url = api_url(settings.youtube_api_url, "youtube/v3/videos")
        self._activity = settings.poll_activity
        self._max_pages = settings.poll_activity_max_pages

    async def _poll(self, accounts: Sequence[AccountRef], now: datetime, result: PollResult) -> None:
        by_id = [ref for ref in accounts if CHANNEL_ID.fullmatch(ref.lookup)]
        by_handle = [ref for ref in accounts if not CHANNEL_ID.fullmatch(ref.lookup)]
        for batch in chunks(by_id, MAX_IDS_PER_REQUEST):
            items = await self._channels(batch, {"id": ",".join(ref.lookup for ref in batch)}, result)
            if items is None:
                continue
            found = {str(item.get("id")): item for item in items}
            seen: list[_Seen] = []
            for ref in batch:
                item = found.get(ref.lookup)
                if item is None and ref.platform_id is not None and ref.platform_id != ref.lookup:
                    await self._poll_by_id(ref, now, result)
                elif item is None and ref.platform_id is not None:
                    # Asked by its channel id already: the stable id itself is unknown, the channel is gone.
                    self._record_gone(result, ref, now, AccountStatus.DELETED)
                    result.gone.append(ref.account_id)
                else:
                    seen.append(_Seen(ref, item))
            await self._record_channels(result, now, seen)
        for ref in by_handle:
            items = await self._channels([ref], {"forHandle": f"@{ref.lookup.removeprefix('@')}"}, result)
            if items is None:
                continue
            item = items[0] if items else None
            if ref.platform_id is not None and (item is None or str(item.get("id")) != ref.platform_id):
                # Not found by handle, or the handle now names another channel: ask by channel id.
                await self._poll_by_id(ref, now, result)
            else:
                await self._record_channels(result, now, [_Seen(ref, item)])

    async def _poll_by_id(self, ref: AccountRef, now: datetime, result: PollResult) -> None:
        """``ref``'s handle no longer names it: ask by the channel id recorded at verification.

        ``snippet`` is asked too (no extra quota: a list call costs 1 unit whatever its parts) for the
        channel's current handle, ``snippet.customUrl``.
        """
        assert ref.platform_id is not None  # only called for channels with a recorded id
        items = await self._channels([ref], {"id": ref.platform_id}, result, extra_parts=("snippet",))
        if items is None:
            return
        item = next((i for i in items if str(i.get("id")) == ref.platform_id), None)
        if item is None:
            self._record_gone(result, ref, now, AccountStatus.DELETED)
            result.gone.append(ref.account_id)
            return
        snippet = item.get("snippet")
        custom = snippet.get("customUrl") if isinstance(snippet, dict) else None
        handle = custom if isinstance(custom, str) and custom else None
        before = len(result.snapshots)
        await self._record_channels(result, now, [_Seen(ref, item, handle)])
        if handle is not None and len(result.snapshots) > before:
            old = (ref.handle or ref.lookup).removeprefix("@").lower()
            if handle.removeprefix("@").lower() != old:
                result.renamed.append((ref.account_id, handle))

    async def _channels(
        self,
        batch: Sequence[AccountRef],
        query: dict[str, str],
        result: PollResult,
        extra_parts: Sequence[str] = (),
    ) -> list[dict[str, Any]] | None:
        """The ``items`` of one channels.list request, or None after failing ``batch``.

        With activity on, ``contentDetails`` is asked too, for the uploads playlist: same request,
        same quota unit.
        """
        parts = ["statistics", *(["contentDetails"] if self._activity else []), *extra_parts]
        try:
            response = await self._request(
                self._url, key=self._key, params={"part": ",".join(parts), **query}, headers=self._auth
            )
        except RequestFailed as exc:
            for ref in batch:
                result.fail(ref, exc.reason, exc.detail)
            return None
        body = json_object(response)
        items = body.get("items", []) if body is not None else None
        if not isinstance(items, list):
            for ref in batch:
                result.fail(ref, FailureReason.INVALID_RESPONSE, "channels.list: no 'items' list")
            return None
        return [item for item in items if isinstance(item, dict)]

    async def _record_channels(self, result: PollResult, now: datetime, seen: Sequence[_Seen]) -> None:
        """Record a snapshot (or a failure) for each channel, with its activity when enabled.

        The videos of all the channels go through ``videos.list`` together, 50 ids a call, so a batch
        of quiet channels costs a few units rather than one per channel.
        """
        usable: list[tuple[_Seen, dict[str, Any]]] = []
        for entry in seen:
            statistics = self._statistics(result, entry)
            if statistics is not None:
                usable.append((entry, statistics))
        activities: dict[str, Activity] = {}
        if self._activity and usable:
            activities = await self._activities([(entry, statistics) for entry, statistics in usable], now)
        for entry, statistics in usable:
            activity = activities.get(entry.ref.account_id)
            self._record(
                result,
                entry.ref,
                now,
                followers=_count(statistics.get("subscriberCount")),
                posts_total=_count(statistics.get("videoCount")),
                handle=entry.handle,
                **figures_of(activity),
            )

    def _statistics(self, result: PollResult, entry: _Seen) -> dict[str, Any] | None:
        """The channel's statistics, or None after recording why it cannot have a snapshot."""
        ref, item = entry.ref, entry.item
        if item is None:
            result.fail(ref, FailureReason.NOT_FOUND, "YouTube returned no channel for this id or handle")
            return None
        statistics = item.get("statistics")
        if not isinstance(statistics, dict):
            result.fail(ref, FailureReason.INVALID_RESPONSE, "channels.list: no statistics for the channel")
            return None
        if statistics.get("hiddenSubscriberCount") is True:
            result.fail(ref, FailureReason.HIDDEN, "the channel hides its subscriber count")
            return None
        return statistics

    # --- Activity. Quota: playlistItems.list and videos.list cost 1 unit a call each, like
    # channels.list. A channel costs one playlistItems call per 50 uploads in its 30 days (one for
    # almost every collectivité) plus its share of the videos.list calls (50 videos a call, across
    # channels): about 1 to 2 units a channel and poll, against 1/50 for its audience alone. With the
    # default 10,000 units a day, that is some 5,000 channel polls a day with activity.

    async def _activities(
        self, channels: Sequence[tuple[_Seen, dict[str, Any]]], now: datetime
    ) -> dict[str, Activity]:
        """account_id → activity of the channels whose uploads and videos could be read."""
        uploads: dict[str, list[tuple[str, datetime]]] = {}  # account_id → (video id, published)
        complete: dict[str, bool] = {}
        stopped: str | None = None
        for entry, statistics in channels:
            ref = entry.ref
            if stopped is not None:
                break
            if _count(statistics.get("videoCount")) == 0:
                # No upload at all: nothing to ask (the uploads playlist of an empty channel is a 404).
                uploads[ref.account_id], complete[ref.account_id] = [], True
                continue
            try:
                playlist = _uploads_playlist(entry.item)
                uploads[ref.account_id], complete[ref.account_id] = await self._uploads(playlist, now)
            except (RequestFailed, ActivityError) as exc:
                detail = exc.detail if isinstance(exc, RequestFailed) else str(exc)
                log.warning("youtube: activity of %s not read, audience kept: %s", ref.account_id, detail)
            except Interrupted as exc:
                # A spent quota: no more activity this poll; the next channels call stops the poll.
                stopped = exc.message
        statistics_of: dict[str, dict[str, Any]] = {}
        video_ids = [video for listed in uploads.values() for video, _ in listed]
        failed_videos: set[str] = set()
        for start in range(0, len(video_ids) if stopped is None else 0, MAX_IDS_PER_REQUEST):
            ids = video_ids[start : start + MAX_IDS_PER_REQUEST]
            try:
                statistics_of.update(await self._video_statistics(ids))
            except (RequestFailed, ActivityError) as exc:
                failed_videos.update(ids)
                log.warning("youtube: statistics of %d videos not read: %s", len(ids), exc)
            except Interrupted as exc:
                stopped = exc.message
                break
        if stopped is not None:
            log.warning("youtube: activity not read for the rest of this batch, audience kept: %s", stopped)
            return {}
        activities: dict[str, Activity] = {}
        for account_id, listed in uploads.items():
            if any(video in failed_videos for video, _ in listed):
                log.warning("youtube: activity of %s not read, audience kept: videos.list failed", account_id)
                continue
            # A video listed but absent from videos.list was deleted or made private meanwhile: the
            # public cannot see it, so it is not counted.
            try:
                posts = [
                    Post(published, _video_interactions(statistics_of[video]))
                    for video, published in listed
                    if video in statistics_of
                ]
            except ActivityError as exc:
                log.warning("youtube: activity of %s not read, audience kept: %s", account_id, exc)
                continue
            activities[account_id] = count(posts, now, replies_known=False, complete=complete[account_id])
            if not complete[account_id]:
                log.info(
                    "youtube: %s has over %d pages of uploads in 30 days: newest counted",
                    account_id,
                    self._max_pages,
                )
        return activities

    async def _uploads(self, playlist: str, now: datetime) -> tuple[list[tuple[str, datetime]], bool]:
        """The (video id, published) of the uploads in the window, newest first, and whether the
        window was read to its start (False: stopped at the page cap)."""
        listed: list[tuple[str, datetime]] = []
        page_token: str | None = None
        for _ in range(self._max_pages):
            params = {
                "part": "contentDetails",
                "playlistId": playlist,
                "maxResults": str(MAX_IDS_PER_REQUEST),
            }
            if page_token is not None:
                params["pageToken"] = page_token
            response = await self._request(
                self._playlist_items_url, key=self._key, params=params, headers=self._auth
            )
            body = json_object(response)
            items = body.get("items") if body is not None else None
            if body is None or not isinstance(items, list):
                raise ActivityError("playlistItems.list: no 'items' list")
            moments: list[datetime] = []
            for item in items:
                details = item.get("contentDetails") if isinstance(item, dict) else None
                if not isinstance(details, dict) or not isinstance(details.get("videoId"), str):
                    raise ActivityError("playlistItems.list: an item without contentDetails.videoId")
                if details.get("videoPublishedAt") is None:
                    continue  # a private or deleted video: listed, but not public
                published = parse_time(details["videoPublishedAt"], "playlistItems.list: videoPublishedAt")
                moments.append(published)
                if in_window(published, now):
                    listed.append((details["videoId"], published))
            token = body.get("nextPageToken")
            page_token = token if isinstance(token, str) and token else None
            if not items or page_token is None or reached_window_start(moments, now):
                return listed, True
        return listed, False

    async def _video_statistics(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """video id → statistics, for the videos of ``ids`` that videos.list still returns."""
        response = await self._request(
            self._videos_url,
            key=self._key,
            # No maxResults: videos.list refuses it beside id, and answers every id it still has.
            params={"part": "statistics", "id": ",".join(ids)},
            headers=self._auth,
        )
        body = json_object(response)
        items = body.get("items") if body is not None else None
        if not isinstance(items, list):
            raise ActivityError("videos.list: no 'items' list")
        out: dict[str, dict[str, Any]] = {}
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("statistics"), dict):
                raise ActivityError("videos.list: a video without statistics")
            out[str(item.get("id"))] = item["statistics"]
        return out

    def _classify(self, response: httpx.Response) -> Outcome:
        status = response.status_code
        if 200 <= status < 300:
            return None
        reasons = _error_reasons(response)
        detail = describe_response(response)
        if reasons & _QUOTA_REASONS:
            now = self._clock()
            resume = (
                next_quota_reset(now)
                if self._quota_pause is None
                else now + timedelta(seconds=self._quota_pause)
            )
            return Retry(
                FailureReason.QUOTA_EXCEEDED,
                "YouTube Data API daily quota exceeded",
                delay=(resume - now).total_seconds(),
            )
        if reasons & _RATE_REASONS:
            return Retry(FailureReason.RATE_LIMITED, detail)
        if reasons & _KEY_REASONS or status in (401, 403):
            raise StopPolling(
                FailureReason.UNAUTHORIZED,
                f"YouTube refused the API key ({detail}); set BAROMETRE_YOUTUBE_API_KEY to a valid key "
                "of a project with the YouTube Data API v3 enabled",
            )
        return super()._classify(response)


@dataclass(frozen=True, slots=True)
class _Seen:
    """A channel asked about: its ``channels.list`` item (None when YouTube returned none), and the
    handle to record when the answer tells a new one (a rename)."""

    ref: AccountRef
    item: dict[str, Any] | None
    handle: str | None = None


def _uploads_playlist(item: dict[str, Any] | None) -> str:
    """The channel's uploads playlist id (``contentDetails.relatedPlaylists.uploads``)."""
    details = item.get("contentDetails") if item is not None else None
    related = details.get("relatedPlaylists") if isinstance(details, dict) else None
    uploads = related.get("uploads") if isinstance(related, dict) else None
    if not isinstance(uploads, str) or not uploads:
        raise ActivityError("channels.list: no contentDetails.relatedPlaylists.uploads")
    return uploads


def _video_interactions(statistics: dict[str, Any]) -> int:
    """likeCount + commentCount; a hidden like count or disabled comments are absent, counted 0."""
    return parse_count(statistics.get("likeCount"), "videos.list: likeCount") + parse_count(
        statistics.get("commentCount"), "videos.list: commentCount"
    )


def _error_reasons(response: httpx.Response) -> set[str]:
    """The ``reason`` of each item of a Google API error: ``errors`` (legacy) and ``details`` (AIP-193)."""
    body = json_object(response)
    error = body.get("error") if body is not None else None
    if not isinstance(error, dict):
        return set()
    reasons: set[str] = set()
    for group in ("errors", "details"):
        items = error.get(group)
        if isinstance(items, list):
            reasons.update(
                str(item["reason"]) for item in items if isinstance(item, dict) and "reason" in item
            )
    return reasons
