"""One normaliser for every way an account is named: a pasted URL, an ``@handle``, a registry's bare id.

:func:`parse_link` turns what a user or a public registry gives into a :class:`Link`: the platform, the
display handle, the stable id the link itself carries (if any), the contract's ``account_id`` and one
canonical URL. The accounts file import, the pollers' account references and discovery all go through
it, so ``https://www.facebook.com/VilledeGrenoble``, ``facebook.com/VilledeGrenoble/about?ref=page_internal``
and the Wikidata value ``VilledeGrenoble`` are one account, ``facebook:villedegrenoble``.

Pure: no I/O. A link names an account only as far as its text says; turning a handle into a stable id
(Bluesky DID, Mastodon WebFinger) is the verifier's job, not this module's.

Rules, per platform (the id part of ``account_id``):

- the stable id when the link carries one: Facebook numeric page/profile id (``/profile.php?id=``,
  ``/pages/Name/123``, ``/people/Name/123``, ``/p/Name-123``, ``/Name-123``), YouTube channel id
  (``UC`` + 22 characters, case kept), Bluesky DID, LinkedIn numeric organisation id;
- otherwise the handle lower-cased (the contract's rule, as ``events.account_id_from_handle``);
- Mastodon: ``user@server`` lower-cased (``mastodon:ville@mastodon.social``): the form the Mastodon poller
  reads, which asks ``server`` for ``user``. Account numbers are per server, so no stable id is taken
  from a link. From ``https://server/@user`` the server is the host of the link: an account whose
  address domain differs from its web host (WebFinger delegation) is corrected by verification;
- YouTube custom URLs (``/c/Name``, ``/Name``) and legacy usernames (``/user/Name``) are taken as the
  handle ``Name``: YouTube turned custom URLs into handles in 2022; a channel id is exact, these are not.

Links that name no account (a group, an event, a post without its author, a search, a share button, a
bare domain, a short link that only the platform can expand) are refused with what to give instead.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, parse_qs, quote, unquote, urlsplit

from services.common.events import normalise_account_id
from services.common.names import Platform, normalise_platform

__all__ = ["Link", "LinkError", "looks_like_url", "parse_link"]


class LinkError(ValueError):
    """A text that names no account of the platform; the message says what was wrong and what is expected."""


@dataclass(frozen=True, slots=True)
class Link:
    """One account, as named by a link.

    ``handle`` is the display handle as the platform writes it (case kept; Bluesky handles are
    lower-case by definition; Mastodon's is ``user@server``), None when the link carries only an id.
    ``platform_id`` is a stable id carried by the link itself, else None. ``account_id`` is the
    contract's id (stable id if known, else the handle lower-cased) and is already in the form
    :func:`~services.common.events.normalise_account_id` stores. ``url`` is one canonical https URL.
    """

    platform: Platform
    handle: str | None
    platform_id: str | None
    account_id: str
    url: str


# --- What each platform's names look like.

# Facebook usernames: letters, digits and ".", not only digits (an all-digit path is an id), not
# starting or ending with ".". Page names in /pages/ and /people/ links are not usernames.
_FACEBOOK_USERNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.]{0,48}[A-Za-z0-9])?")
_NUMERIC_ID = re.compile(r"[0-9]{1,20}")  # Facebook page and profile ids, LinkedIn organisation ids
# "Name-123456789": a page without a username, written with its name; at least 6 digits so that a
# name ending in a number ("Ville-38") is not mistaken for an id.
_FACEBOOK_NAME_ID = re.compile(r".+-([0-9]{6,20})")
_X_HANDLE = re.compile(r"[A-Za-z0-9_]{1,15}")
_INSTAGRAM_HANDLE = re.compile(r"[A-Za-z0-9._]{1,30}")  # also Threads, whose names are Instagram's
_YOUTUBE_CHANNEL_ID = re.compile(r"UC[0-9A-Za-z_-]{22}")
# YouTube handles: 3-30 letters (many scripts), digits, "_", "-", "."; custom URLs and legacy usernames
# were looser, so they get a longer bound.
_YOUTUBE_HANDLE = re.compile(r"[\w.-]{3,30}")
_YOUTUBE_LEGACY_NAME = re.compile(r"[\w.-]{1,100}")
_LINKEDIN_SLUG = re.compile(r"\w[\w.-]{0,99}")
_TIKTOK_HANDLE = re.compile(r"[A-Za-z0-9_.]{2,24}")
# Mastodon: the Mastodon poller's own rules (a server name becomes the host of a request, so only a
# plain DNS name passes: no port, no credentials, no IP address).
_MASTODON_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_DNS_NAME = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]*[a-z0-9]")
# Bluesky (AT Protocol): a handle is a domain name of at least two labels whose last label does not
# start with a digit; some top-level domains are never valid handles.
_BLUESKY_HANDLE = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")
_BLUESKY_BAD_TLDS = frozenset(
    {"alt", "arpa", "example", "internal", "invalid", "local", "localhost", "onion"}
)
_DID_PLC = re.compile(r"did:plc:[a-z2-7]{24}")
_DID_WEB = re.compile(r"did:web:" + _DNS_NAME.pattern)

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
# Characters that a copy from a web page or a spreadsheet leaves around a link.
_INVISIBLE = "\u200b\u200c\u200d\u200e\u200f\u2060\ufeff"


@dataclass(frozen=True, slots=True)
class _Usernames:
    """A platform whose accounts are named by a username alone: its rule, as checked and as said in
    errors, and its profile URL (``{}`` stands for the name)."""

    platform: Platform
    pattern: re.Pattern[str]
    noun: str
    rule: str
    url: str
    example: str

    def link(self, name: str, raw: str) -> Link:
        name = name.removeprefix("@")
        if not self.pattern.fullmatch(name):
            example = self.url.format(self.example)
            raise LinkError(f"{name!r} (in {raw!r}) is not {self.noun}: {self.rule} (e.g. {example})")
        return _link(self.platform, name, None, self.url.format(quote(name)))


# One line a field would make these five rows forty lines: they are kept as written.
# fmt: off
_X = _Usernames(Platform.X, _X_HANDLE, "an X username", "1-15 letters, digits or _",
    "https://x.com/{}", "VilleGrenoble")
_INSTAGRAM = _Usernames(Platform.INSTAGRAM, _INSTAGRAM_HANDLE, "an Instagram username",
    "1-30 letters, digits, '.' or '_'", "https://www.instagram.com/{}/", "villedegrenoble")
_THREADS = _Usernames(Platform.THREADS, _INSTAGRAM_HANDLE, "a Threads username",
    "1-30 letters, digits, '.' or '_'", "https://www.threads.com/@{}", "villedegrenoble")
_TIKTOK = _Usernames(Platform.TIKTOK, _TIKTOK_HANDLE, "a TikTok username",
    "2-24 letters, digits, '.' or '_'", "https://www.tiktok.com/@{}", "villedegrenoble")
_YOUTUBE = _Usernames(Platform.YOUTUBE, _YOUTUBE_HANDLE, "a YouTube handle",
    "3-30 letters, digits, '_', '-' or '.'", "https://www.youtube.com/@{}", "VilledeGrenoble")
# fmt: on

# What to write, per platform, quoted in error messages.
EXPECTED: Mapping[Platform, str] = {
    Platform.FACEBOOK: (
        "https://www.facebook.com/<username>, https://www.facebook.com/profile.php?id=<id>, "
        "or a username or numeric id"
    ),
    Platform.X: "https://x.com/<username> or @username (1-15 letters, digits or _)",
    Platform.INSTAGRAM: "https://www.instagram.com/<username>/ or @username (1-30 letters, digits, . or _)",
    Platform.YOUTUBE: (
        "https://www.youtube.com/@<handle>, https://www.youtube.com/channel/UC…, a channel id or @handle"
    ),
    Platform.LINKEDIN: "https://www.linkedin.com/company/<name or id>/, or the name or id",
    Platform.TIKTOK: "https://www.tiktok.com/@<username> or @username (2-24 letters, digits, . or _)",
    Platform.MASTODON: "@user@server, user@server or https://server/@user",
    Platform.BLUESKY: (
        "https://bsky.app/profile/<handle or DID>, a handle (ville.bsky.social, ville.fr) or a DID"
    ),
    Platform.THREADS: "https://www.threads.com/@<username> or @username (1-30 letters, digits, . or _)",
}

# Hosts of each platform (the host itself or any subdomain: www., m., mobile., web., fr-fr., fr.).
_HOSTS: Mapping[Platform, tuple[str, ...]] = {
    Platform.FACEBOOK: ("facebook.com", "fb.com", "fb.me", "fb.watch"),
    Platform.X: ("twitter.com", "x.com"),
    Platform.INSTAGRAM: ("instagram.com", "instagr.am"),
    Platform.YOUTUBE: ("youtube.com", "youtu.be", "youtube-nocookie.com"),
    Platform.LINKEDIN: ("linkedin.com", "lnkd.in"),
    Platform.TIKTOK: ("tiktok.com",),
    Platform.THREADS: ("threads.net", "threads.com"),
    Platform.BLUESKY: ("bsky.app", "bsky.social"),
}
# The host a path without one belongs to ("pages/Name/123" given as a Facebook value).
_HOME: Mapping[Platform, str] = {
    Platform.FACEBOOK: "www.facebook.com",
    Platform.X: "x.com",
    Platform.INSTAGRAM: "www.instagram.com",
    Platform.YOUTUBE: "www.youtube.com",
    Platform.LINKEDIN: "www.linkedin.com",
    Platform.TIKTOK: "www.tiktok.com",
    Platform.THREADS: "www.threads.com",
    Platform.BLUESKY: "bsky.app",
}
# Short-link and media hosts: only the platform can tell which account they lead to.
_NOT_ACCOUNT_HOSTS: Mapping[str, str] = {
    "fb.watch": "a Facebook video link",
    "youtu.be": "a YouTube video link",
    "youtube-nocookie.com": "an embedded YouTube video",
    "lnkd.in": "a LinkedIn short link (open it and copy the page's address)",
    "vm.tiktok.com": "a TikTok short link (open it and copy the profile's address)",
    "vt.tiktok.com": "a TikTok short link (open it and copy the profile's address)",
}
# Hosts with /@name paths that are not fediverse servers, so such a link is not taken for Mastodon.
_NOT_FEDIVERSE = ("medium.com", "substack.com")


def _words(table: Mapping[str, str]) -> Mapping[str, str]:
    """``{what: "word word …"}`` turned into ``{word: what}``."""
    return {word: what for what, words in table.items() for word in words.split()}


# First path segments (lower-cased) that are a platform's own pages, not accounts, and what they are.
_FACEBOOK_RESERVED = _words(
    {
        "a group": "groups group.php",
        "an event": "events event.php",
        "a share button": "sharer.php sharer share share.php dialog plugins",
        "a video": "watch video.php videos reel reels live",
        "a photo": "photo.php photo photos media",
        "a post": "story.php permalink.php posts stories notes",
        "a hashtag": "hashtag",
        "a search": "search public directory places",
        "a Facebook page that is not an account": "home.php login login.php l.php help policies privacy "
        "legal terms settings messages notifications friends bookmarks marketplace gaming fundraisers "
        "donate ads business about recover checkpoint r.php tr ajax index.php",
    }
)
_X_RESERVED = _words(
    {
        "a page of X": "home explore notifications messages settings compose login logout signup tos "
        "privacy account download about jobs i",
        "a search": "search search-advanced",
        "a hashtag": "hashtag",
        "a share button": "share intent",
    }
)
_INSTAGRAM_RESERVED = _words(
    {
        "a post": "p reel reels tv",
        "a search": "explore",
        "a page of Instagram": "accounts direct about legal developer web challenge",
    }
)
_YOUTUBE_RESERVED = _words(
    {
        "a video": "watch shorts live embed v e clip",
        "a playlist": "playlist",
        "a search or a feed": "results hashtag feed",
        "a page of YouTube": "redirect attribution_link account premium gaming kids music t about "
        "howyoutubeworks creators ads signin logout upload post movies paid_memberships source trending "
        "index",
    }
)


# --- Entry point.


def parse_link(text: str, platform: Platform | str | None = None) -> Link:
    """The account that ``text`` names.

    ``text`` is a URL (any case, with or without scheme), an ``@handle``, or, when ``platform`` is given,
    a bare handle or id as a registry writes it. With ``platform``, a link to another platform is an
    error; without it, the platform is read from the link. Raises :class:`LinkError`.
    """
    expected = _platform_argument(platform)
    if not isinstance(text, str):
        raise LinkError(f"a link must be text, not {type(text).__name__}")
    raw = unicodedata.normalize("NFC", text.strip().strip(_INVISIBLE).strip())
    if not raw:
        raise LinkError("empty link: give a URL (https://www.facebook.com/VilledeGrenoble) or a handle")
    if any(char.isspace() for char in raw):
        raise LinkError(f"{raw!r} contains spaces: give one URL or one handle")
    parts = _url_parts(raw, expected)
    if parts is None:
        return _parse_bare(raw, expected)
    return _parse_url(parts, raw, expected)


def looks_like_url(text: str) -> bool:
    """Whether ``text`` is written as a web address (scheme, ``//`` or a path) rather than a bare handle."""
    stripped = text.strip().strip(_INVISIBLE).strip()
    return bool(_SCHEME.match(stripped)) or stripped.startswith("//") or "/" in stripped


def _platform_argument(platform: Platform | str | None) -> Platform | None:
    if platform is None or isinstance(platform, Platform):
        return platform
    try:
        return normalise_platform(platform.strip().lower())
    except ValueError as exc:
        raise LinkError(str(exc)) from None


# --- URLs.


def _url_parts(raw: str, expected: Platform | None) -> SplitResult | None:
    """The parts of ``raw`` if it is written as a URL, None if it is a bare handle or id."""
    lower = raw.lower()
    if lower.startswith("at://"):  # an AT Protocol URI: Bluesky's own way of naming an account
        return None
    if _SCHEME.match(raw):
        if not lower.startswith(("http://", "https://")):
            raise LinkError(f"{raw!r} is not an http(s) address")
        return _split(raw)
    if raw.startswith("//"):
        return _split("https:" + raw)
    if expected is Platform.FACEBOOK and lower.startswith("profile.php?"):  # a path without its host
        return _split(f"https://{_HOME[expected]}/{raw}")
    if "/" in raw:
        first = raw.split("/", 1)[0]
        if "." in first and "@" not in first:  # "www.facebook.com/Ville", "mastodon.social/@ville"
            return _split("https://" + raw)
        if expected is not None and expected in _HOME and first:
            # A path without its host, as some registries write them ("pages/Name/123").
            return _split(f"https://{_HOME[expected]}/{raw}")
        raise LinkError(f"{raw!r} is neither a URL nor a handle")
    host = lower.split("?", 1)[0].split("#", 1)[0]
    if "@" in host:  # @handle, user@server
        return None
    if _host_platform(host) is not None and not (
        expected is Platform.BLUESKY and host.endswith(".bsky.social")
    ):
        return _split("https://" + raw)  # "facebook.com": a bare domain, refused by _parse_url
    return None


def _split(url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError as exc:
        raise LinkError(f"{url!r} is not a valid URL: {exc}") from None
    return parts


def _on(host: str, *domains: str) -> bool:
    """Whether ``host`` is one of ``domains`` or a subdomain of one."""
    return any(host == domain or host.endswith("." + domain) for domain in domains)


def _host_platform(host: str) -> Platform | None:
    return next((platform for platform, domains in _HOSTS.items() if _on(host, *domains)), None)


def _segments(path: str) -> list[str]:
    return [unquote(segment) for segment in path.split("/") if segment]


def _parse_url(parts: SplitResult, raw: str, expected: Platform | None) -> Link:
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise LinkError(f"{raw!r} has no host")
    found = _host_platform(host)
    for short, what in _NOT_ACCOUNT_HOSTS.items():
        if _on(host, short):
            raise LinkError(f"{raw!r} is {what}, not an account")
    segments = _segments(parts.path)
    if found is None:
        if expected is None and not _fediverse_shaped(host, segments):
            raise LinkError(
                f"{raw!r} is not a link to an account on a known platform "
                f"({', '.join(p.value for p in Platform)}; a Mastodon server's https://server/@user)"
            )
        if expected not in (None, Platform.MASTODON):
            assert expected is not None
            raise LinkError(f"{raw!r} is not a {expected.value} link: expected {EXPECTED[expected]}")
        return _mastodon_url(parts, host, segments, raw)
    if expected is not None and found is not expected:
        raise LinkError(f"{raw!r} is a {found.value} link, not a {expected.value} one")
    if parts.port is not None:
        raise LinkError(f"{raw!r} names a port: expected {EXPECTED[found]}")
    query = parse_qs(parts.query)
    # The old "#!" addresses (facebook.com/#!/Ville, twitter.com/#!/Ville) keep the path in the fragment.
    if parts.fragment.startswith("!/"):
        bang = urlsplit("https://host" + parts.fragment[1:])
        segments, query = _segments(bang.path), parse_qs(bang.query)
    if not segments and not (found is Platform.BLUESKY and host.endswith(".bsky.social")):
        if found is Platform.X and "screen_name" in query:
            segments = ["intent", "user"]  # twitter.com/?screen_name=…, an old share form
        else:
            raise LinkError(
                f"{raw!r} is the platform's home page, not an account: expected {EXPECTED[found]}"
            )
    return _URL_PARSERS[found](host, segments, query, raw)


Query = dict[str, list[str]]
UrlParser = Callable[[str, list[str], Query, str], Link]


def _fediverse_shaped(host: str, segments: list[str]) -> bool:
    if _on(host, *_NOT_FEDIVERSE):
        return False
    if segments[:1] == ["web"]:  # Mastodon's web app: /web/@user
        segments = segments[1:]
    return len(segments) >= 1 and segments[0].startswith("@") and len(segments[0]) > 1


def _reserved(first: str, reserved: Mapping[str, str], raw: str, platform: Platform) -> None:
    what = reserved.get(first.lower())
    if what is not None:
        raise LinkError(f"{raw!r} is {what}, not an account: expected {EXPECTED[platform]}")


def _facebook_url(host: str, segments: list[str], query: Query, raw: str) -> Link:
    first = segments[0].lower()
    if _on(host, "fb.me"):
        return _facebook_name(segments[0], raw)
    if first == "profile.php":
        ids = query.get("id", [])
        if len(ids) != 1 or not _NUMERIC_ID.fullmatch(ids[0]):
            raise LinkError(f"{raw!r} has no numeric id=: expected profile.php?id=<digits>")
        return _facebook_id(ids[0])
    if first in ("pages", "people", "p"):
        # /pages/Name/123, /pages/category/Kind/Name-123/, /people/Name/100064…/, /p/Name-100064…/
        for segment in segments[1:]:
            if _NUMERIC_ID.fullmatch(segment) and len(segment) >= 5:
                return _facebook_id(segment)
            match = _FACEBOOK_NAME_ID.fullmatch(segment)
            if match:
                return _facebook_id(match.group(1))
        raise LinkError(
            f"{raw!r} has no numeric page id: a facebook.com/{first}/ link names a page by its id "
            f"(facebook.com/{first}/Name/123456789)"
        )
    if first == "pg":
        if len(segments) < 2:
            raise LinkError(f"{raw!r} names no page: expected facebook.com/pg/<username>")
        return _facebook_name(segments[1], raw)
    _reserved(first, _FACEBOOK_RESERVED, raw, Platform.FACEBOOK)
    return _facebook_name(segments[0], raw)


def _facebook_name(name: str, raw: str) -> Link:
    """A username, an id, or a page name followed by its id (``Name-123456789``)."""
    name = name.removeprefix("@")
    if _NUMERIC_ID.fullmatch(name):
        return _facebook_id(name)
    match = _FACEBOOK_NAME_ID.fullmatch(name)
    if match:
        return _facebook_id(match.group(1))
    if not _FACEBOOK_USERNAME.fullmatch(name):
        raise LinkError(
            f"{name!r} (in {raw!r}) is not a Facebook username (letters, digits and '.', at most 50) "
            f"nor a numeric id: expected {EXPECTED[Platform.FACEBOOK]}"
        )
    return _link(Platform.FACEBOOK, name, None, f"https://www.facebook.com/{name}")


def _facebook_id(page_id: str) -> Link:
    return _link(Platform.FACEBOOK, None, page_id, f"https://www.facebook.com/profile.php?id={page_id}")


def _x_url(host: str, segments: list[str], query: Query, raw: str) -> Link:
    first = segments[0].lower()
    if first == "intent" or (first == "i" and segments[1:2] == ["user"]):
        names = query.get("screen_name", [])
        if len(names) == 1:
            return _X.link(names[0], raw)
        if query.get("user_id") or first == "i":
            raise LinkError(
                f"{raw!r} names an account by its numeric id: give its username (https://x.com/<username>)"
            )
    _reserved(first, _X_RESERVED, raw, Platform.X)
    return _X.link(segments[0], raw)


def _instagram_url(host: str, segments: list[str], query: Query, raw: str) -> Link:
    first = segments[0].lower()
    if first == "stories" and len(segments) >= 2:  # /stories/<username>/<id>: the author is named
        return _INSTAGRAM.link(segments[1], raw)
    _reserved(first, _INSTAGRAM_RESERVED, raw, Platform.INSTAGRAM)
    return _INSTAGRAM.link(segments[0], raw)


def _at_profile_url(usernames: _Usernames) -> UrlParser:
    """TikTok and Threads: a profile is ``/@<username>``, anything else is not an account."""

    def parse(host: str, segments: list[str], query: Query, raw: str) -> Link:
        if not segments[0].startswith("@"):
            raise LinkError(f"{raw!r} is not a profile: expected {EXPECTED[usernames.platform]}")
        return usernames.link(segments[0], raw)

    return parse


def _youtube_url(host: str, segments: list[str], query: Query, raw: str) -> Link:
    first = segments[0]
    lower = first.lower()
    if lower == "channel":
        if len(segments) < 2 or not _YOUTUBE_CHANNEL_ID.fullmatch(segments[1]):
            raise LinkError(f"{raw!r} has no channel id: expected youtube.com/channel/UC + 22 characters")
        return _youtube_channel(segments[1])
    if first.startswith("@"):
        return _YOUTUBE.link(first, raw)
    if lower in ("c", "user"):
        if len(segments) < 2:
            raise LinkError(f"{raw!r} names no channel: expected youtube.com/{lower}/<name>")
        return _youtube_legacy(segments[1], raw)
    _reserved(lower, _YOUTUBE_RESERVED, raw, Platform.YOUTUBE)
    return _youtube_legacy(first, raw)  # youtube.com/Name, the oldest custom URLs


def _youtube_legacy(name: str, raw: str) -> Link:
    if not _YOUTUBE_LEGACY_NAME.fullmatch(name):
        raise LinkError(
            f"{name!r} (in {raw!r}) is not a YouTube channel name: expected {EXPECTED[Platform.YOUTUBE]}"
        )
    return _link(Platform.YOUTUBE, name, None, _YOUTUBE.url.format(quote(name)))


def _youtube_channel(channel_id: str) -> Link:
    return _link(Platform.YOUTUBE, None, channel_id, f"https://www.youtube.com/channel/{channel_id}")


def _linkedin_url(host: str, segments: list[str], query: Query, raw: str) -> Link:
    kind = segments[0].lower()
    if kind in ("company", "school", "showcase"):
        if len(segments) < 2:
            raise LinkError(f"{raw!r} names no organisation: expected linkedin.com/{kind}/<name or id>/")
        return _linkedin_name(segments[1], raw, kind)
    if kind in ("in", "pub"):
        raise LinkError(
            f"{raw!r} is a personal profile: barometre follows organisation pages "
            f"(https://www.linkedin.com/company/<name>/)"
        )
    raise LinkError(f"{raw!r} is not an organisation page: expected {EXPECTED[Platform.LINKEDIN]}")


def _linkedin_name(name: str, raw: str, kind: str = "company") -> Link:
    url_of = f"https://www.linkedin.com/{kind}/{{}}/"
    if _NUMERIC_ID.fullmatch(name):
        return _link(Platform.LINKEDIN, None, name, url_of.format(name))
    if not _LINKEDIN_SLUG.fullmatch(name):
        raise LinkError(
            f"{name!r} (in {raw!r}) is not a LinkedIn page name: letters, digits, '-', '_' or '.' "
            f"(e.g. https://www.linkedin.com/company/ville-de-grenoble/)"
        )
    return _link(Platform.LINKEDIN, name, None, url_of.format(quote(name)))


def _bluesky_url(host: str, segments: list[str], query: Query, raw: str) -> Link:
    if host.endswith(".bsky.social"):  # https://ville.bsky.social: the handle written as an address
        return _bluesky_actor(host, raw)
    if segments[0].lower() != "profile" or len(segments) < 2:
        raise LinkError(f"{raw!r} is not a profile: expected {EXPECTED[Platform.BLUESKY]}")
    return _bluesky_actor(segments[1], raw)


def _bluesky_actor(actor: str, raw: str) -> Link:
    """A DID or a handle (``@`` allowed), as in ``bsky.app/profile/<actor>``."""
    actor = actor.removeprefix("@")
    if actor.lower().startswith("did:"):
        did = actor.lower()  # DIDs of both methods are lower-case; a shouting copy is still the same DID
        if not (_DID_PLC.fullmatch(did) or _DID_WEB.fullmatch(did)):
            raise LinkError(
                f"{actor!r} (in {raw!r}) is not a Bluesky DID: did:plc: + 24 characters (a-z, 2-7) "
                f"or did:web:<domain>"
            )
        return _link(Platform.BLUESKY, None, did, f"https://bsky.app/profile/{did}")
    handle = actor.lower()  # handles are case-insensitive and shown lower-cased (AT Protocol spec)
    if (
        len(handle) > 253
        or not _BLUESKY_HANDLE.fullmatch(handle)
        or handle.rsplit(".", 1)[-1] in _BLUESKY_BAD_TLDS
    ):
        raise LinkError(
            f"{actor!r} (in {raw!r}) is not a Bluesky handle: a domain name such as ville.bsky.social or "
            f"ville.fr (or a DID, did:plc:…)"
        )
    return _link(Platform.BLUESKY, handle, None, f"https://bsky.app/profile/{handle}")


def _mastodon_url(parts: SplitResult, host: str, segments: list[str], raw: str) -> Link:
    if parts.port is not None or parts.username is not None:
        raise LinkError(f"{raw!r}: a Mastodon server is a plain name, without port or credentials")
    if segments and segments[0].lower() == "web":  # the web app's own addresses, /web/@user
        segments = segments[1:]
    if segments and segments[0].startswith("@") and len(segments[0]) > 1:
        user, _, server = segments[0][1:].partition("@")  # /@user@other.server: a remote account
        return _mastodon(user, server or host, raw)
    if len(segments) >= 2 and segments[0].lower() == "users":
        return _mastodon(segments[1], host, raw)
    raise LinkError(f"{raw!r} is not a Mastodon profile: expected {EXPECTED[Platform.MASTODON]}")


def _mastodon(user: str, server: str, raw: str) -> Link:
    server = server.lower().rstrip(".")
    if not user or not server:
        raise LinkError(
            f"{raw!r} lacks its server: a Mastodon account is user@server (e.g. @ville@mastodon.social)"
        )
    if not _MASTODON_USER.fullmatch(user):
        raise LinkError(
            f"{user!r} (in {raw!r}) is not a Mastodon user name: letters, digits, '_', '.' or '-'"
        )
    if not _DNS_NAME.fullmatch(server):
        raise LinkError(
            f"{server!r} (in {raw!r}) is not a Mastodon server name: a plain domain such as mastodon.social"
        )
    if _host_platform(server) is not None:
        raise LinkError(f"{raw!r}: {server} is not a Mastodon server")
    return _link(Platform.MASTODON, f"{user}@{server}", None, f"https://{server}/@{user}")


_URL_PARSERS: Mapping[Platform, UrlParser] = {
    Platform.FACEBOOK: _facebook_url,
    Platform.X: _x_url,
    Platform.INSTAGRAM: _instagram_url,
    Platform.YOUTUBE: _youtube_url,
    Platform.LINKEDIN: _linkedin_url,
    Platform.TIKTOK: _at_profile_url(_TIKTOK),
    Platform.THREADS: _at_profile_url(_THREADS),
    Platform.BLUESKY: _bluesky_url,
}


# --- Bare handles and ids.


def _parse_bare(raw: str, expected: Platform | None) -> Link:
    lower = raw.lower()
    inferred = _bare_platform(raw, lower)
    if expected is None:
        if inferred is None:
            raise LinkError(
                f"{raw!r} is a bare handle: name its platform, or give a URL (https://x.com/VilleGrenoble)"
            )
        expected = inferred
    elif inferred is not None and inferred is not expected and lower.startswith(("acct:", "did:", "at://")):
        raise LinkError(f"{raw!r} is a {inferred.value} address, not a {expected.value} one")
    return _BARE_PARSERS[expected](raw)


def _bare_platform(raw: str, lower: str) -> Platform | None:
    """The platform a bare text names by its shape alone, if any."""
    if lower.startswith("acct:") or "@" in raw.removeprefix("@"):
        return Platform.MASTODON
    if lower.startswith(("did:", "at://")) or lower.removeprefix("@").endswith(".bsky.social"):
        return Platform.BLUESKY
    return None


def _bare_mastodon(raw: str) -> Link:
    text = raw[5:] if raw.lower().startswith("acct:") else raw
    user, _, server = text.removeprefix("@").partition("@")
    return _mastodon(user, server, raw)


def _bare_bluesky(raw: str) -> Link:
    if raw.lower().startswith("at://"):
        return _bluesky_actor(raw[5:].split("/", 1)[0], raw)
    return _bluesky_actor(raw, raw)


def _bare_youtube(raw: str) -> Link:
    return _youtube_channel(raw) if _YOUTUBE_CHANNEL_ID.fullmatch(raw) else _YOUTUBE.link(raw, raw)


_BARE_PARSERS: Mapping[Platform, Callable[[str], Link]] = {
    Platform.FACEBOOK: lambda raw: _facebook_name(raw, raw),
    Platform.X: lambda raw: _X.link(raw, raw),
    Platform.INSTAGRAM: lambda raw: _INSTAGRAM.link(raw, raw),
    Platform.YOUTUBE: _bare_youtube,
    Platform.LINKEDIN: lambda raw: _linkedin_name(raw.removeprefix("@"), raw),
    Platform.TIKTOK: lambda raw: _TIKTOK.link(raw, raw),
    Platform.THREADS: lambda raw: _THREADS.link(raw, raw),
    Platform.MASTODON: _bare_mastodon,
    Platform.BLUESKY: _bare_bluesky,
}


# --- The result.


def _link(platform: Platform, handle: str | None, platform_id: str | None, url: str) -> Link:
    if platform_id is not None:
        ident = platform_id
    else:
        assert handle is not None
        ident = handle.lower()
    account_id = f"{platform.value}:{ident}"
    try:
        stored = normalise_account_id(account_id)
    except ValueError as exc:  # too long, in practice: the handle rules keep out spaces and controls
        raise LinkError(f"{ident!r} cannot be an account id: {exc}") from None
    if stored != account_id:  # the rules above should make this unreachable; never store two forms
        raise LinkError(f"{ident!r} is not in the stored form of an account id ({stored!r})")
    return Link(platform=platform, handle=handle, platform_id=platform_id, account_id=account_id, url=url)
