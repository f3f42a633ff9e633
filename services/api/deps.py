"""What the api routes depend on: the service object (settings, ClickHouse, answer cache) and the
query parameters, as ``Annotated`` aliases so that route bodies stay a few lines.

Every enumerated parameter is checked against its allow-list here, with a message naming the parameter,
the value and what is allowed (``platform: unknown platform 'myspace'; allowed: …``); the JSON error
handler of ``services.common.web`` turns these into ``422 {"error": {"code", "message"}}``. Values never
reach SQL as text: routes pass the parsed values to ``services.api.queries``, which binds them.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import anyio
from anyio import CapacityLimiter
from clickhouse_connect.driver.client import Client
from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from services.api import queries
from services.api.cache import AnswerCache
from services.api.exports import ExportFormat
from services.api.models import case_insensitive
from services.api.paging import CURSOR_PATTERN, decode_cursor
from services.api.queries import Metric, RankBy, Scope
from services.api.strata import STRATA_DOC, Stratum
from services.common.clickhouse import make_client, query_limits
from services.common.events import (
    DEPARTEMENT_CODE_PATTERN,
    ENTITY_ID_PATTERN,
    EVENT_ID_PATTERN,
    FOREIGN_CODE_PATTERN,
    REGION_CODE_PATTERN,
    TIMESTAMP_PATTERN,
    check_entity_id,
    parse_timestamp,
)
from services.common.names import Category, Platform, Window, normalise_platform
from services.common.reference.parsers import PANEL_NAME_PATTERN
from services.common.settings import Settings
from services.common.tokens import Scope as TokenScope
from services.common.tokens import TokenVerifier
from services.common.web import ApiError

T = TypeVar("T")
E = TypeVar("E", bound=StrEnum)

# Queries running at once against ClickHouse from one api process; more wait their turn. Matches the
# connection pool of clickhouse-connect (8), so no connection is opened only to be thrown away.
CLICKHOUSE_CONCURRENCY = 8
# Threads ClickHouse gives one api query (max_threads). The api's queries read at most a few million
# rows and answer a few hundred: spreading one over several threads costs more (start-up, merging of
# partial states) than it saves (bench/api.py; figures in docs/DEVELOPING.md, "Benchmarks"), and it
# leaves no core to the requests running beside it. Concurrent requests get parallelism instead.
THREADS_PER_QUERY = 1


class ClickHouse:
    """The process's ClickHouse client: one, shared by the worker threads.

    clickhouse-connect's HTTP client is safe to share between threads as long as it has no session id
    (a ClickHouse session runs one query at a time), hence ``autogenerate_session_id=False``. One shared
    client answers as many queries a second as one client per thread (docs/DEVELOPING.md, "Benchmarks")
    and costs one handshake and one pool.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Client | None = None
        self._lock = threading.Lock()

    def client(self) -> Client:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    client = make_client(
                        self._settings,
                        autogenerate_session_id=False,
                        connect_timeout=5,
                        send_receive_timeout=60,
                        # Answers are a few kilobytes: compressing them would only cost CPU on both sides.
                        compress=False,
                    )
                    client.set_client_setting("max_threads", str(THREADS_PER_QUERY))
                    # Time, memory and answer-size limits of every api query (Settings.api_query_*).
                    for name, value in query_limits(self._settings).items():
                        client.set_client_setting(name, value)
                    self._client = client
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class Api:
    """The api service's shared objects, built once by the app factory."""

    def __init__(self, settings: Settings, cache: AnswerCache | None = None) -> None:
        self.settings = settings
        self.db = settings.clickhouse_database
        self.staleness = timedelta(days=settings.staleness_days)
        self.clickhouse = ClickHouse(settings)
        self.limiter = CapacityLimiter(CLICKHOUSE_CONCURRENCY)
        self.cache = cache or AnswerCache(self.limiter)
        self.verifier = TokenVerifier(settings, lambda: make_client(settings))

    def client(self) -> Client:
        return self.clickhouse.client()

    async def cached(self, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()`` (in a worker thread) or its answer of less than a second ago (see cache.py)."""
        return await self.cache.get(key, compute)

    async def run(self, compute: Callable[[], T]) -> T:
        """``compute()`` in a worker thread, uncached."""
        return await anyio.to_thread.run_sync(compute, limiter=self.limiter)

    def check_scope(self, scope: Scope) -> None:
        """Refuse a panel that has no members (a typo would otherwise read as "0 present out of 0"):
        a well-formed name that names no panel is a 404, as an unknown id in a path."""
        if scope.panel and not queries.panel_exists(self.client(), self.db, scope.panel):
            known = queries.panel_names(self.client(), self.db)
            raise ApiError(
                404,
                "not_found",
                f"panel: unknown panel {scope.panel!r}; known panels: {', '.join(known) or 'none yet'}",
            )


async def get_api(request: Request) -> Api:
    # async: a sync dependency would cost every request a hop through the thread pool.
    api: Api = request.app.state.api
    return api


ApiDep = Annotated[Api, Depends(get_api)]

_bearer = HTTPBearer(auto_error=False, description="A token with the alerts:write or admin scope")
_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True, slots=True)
class Caller:
    """Who calls a route that changes something: ``name`` is the token's id (``brm_<8 hex>``, its public
    part) or ``bootstrap``; ``owner`` what owns the webhooks it makes (the token's SHA-256); ``admin``
    whether it has the admin scope (it then sees every token's webhooks)."""

    name: str
    owner: str
    admin: bool


async def alerts_caller(
    api: ApiDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Caller:
    """The caller, when the bearer token has the alerts:write or admin scope; 401 without a valid token
    (saying so when it has expired), 403 without the scope."""
    if credentials is None:
        raise ApiError(
            401, "unauthorized", "a bearer token with the alerts:write scope is needed", _UNAUTHORIZED
        )
    found = await api.verifier.check(credentials.credentials)
    if not found.valid:
        raise ApiError(401, "unauthorized", found.refusal, _UNAUTHORIZED)
    if not found.allows(TokenScope.ALERTS_WRITE):
        raise ApiError(403, "forbidden", "this token has neither the alerts:write nor the admin scope")
    return Caller(found.token_id, found.owner, found.is_admin)


async def alerts_writer(caller: Annotated[Caller, Depends(alerts_caller)]) -> str:
    """Who is calling (the token's public prefix, or ``bootstrap``): :func:`alerts_caller`'s name."""
    return caller.name


AlertsCaller = Annotated[Caller, Depends(alerts_caller)]
AlertsWriter = Annotated[str, Depends(alerts_writer)]

# The forms of the ids of alert delivery: alerts and incidents (UUIDv5, or any event id), and the
# silences and webhooks the api creates (UUIDv4, lower-case).
EVENT_ID_RE = re.compile(EVENT_ID_PATTERN)
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def path_id(value: str, form: re.Pattern[str], what: str) -> str:
    """``value`` when it has the form of a ``what`` id; otherwise a 404 (it cannot name one)."""
    if not form.fullmatch(value):
        raise ApiError(404, "not_found", f"unknown {what} {value[:140]!r}")
    return value


# An entity named in a path (GET /v1/entities/{entity_id}, …/peers): either case.
EntityIdPath = Annotated[
    str,
    Path(
        description="KIND:code (either case)",
        json_schema_extra={"pattern": case_insensitive(ENTITY_ID_PATTERN)},
    ),
]


def entity_id_of(value: str) -> str:
    """``value`` as the registry spells entity ids (upper case); a 404 when it cannot name one."""
    try:
        return check_entity_id(value.strip().upper())
    except ValueError as exc:
        raise ApiError(404, "not_found", f"unknown entity: {exc}") from None


def now() -> datetime:
    return datetime.now(UTC)


# --- Parameter parsing. PydanticCustomError keeps the message as written (no "Value error, " prefix).


def _invalid(message: str) -> PydanticCustomError:
    return PydanticCustomError("invalid_parameter", message.replace("{", "{{").replace("}", "}}"))


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise _invalid("must be a single text value")
    return value.strip()


def choice(enum: type[E], what: str) -> Callable[[object], E]:
    allowed = ", ".join(e.value for e in enum)

    def parse(value: object) -> E:
        if isinstance(value, enum):
            return value
        text = _text(value)
        try:
            return enum(text)
        except ValueError:
            raise _invalid(f"unknown {what} {text!r}; allowed: {allowed}") from None

    return parse


def _platform(value: object) -> Platform:
    if isinstance(value, Platform):
        return value
    try:
        return normalise_platform(_text(value).lower())
    except ValueError as exc:
        raise _invalid(str(exc)) from None


def _platforms(value: object) -> list[Platform]:
    items = value if isinstance(value, list | tuple) else [value]
    out: list[Platform] = []
    for item in items:
        for part in _text(item).split(","):
            if part.strip():
                platform = _platform(part)
                if platform not in out:
                    out.append(platform)
    if not out:
        raise _invalid("name at least one platform, e.g. facebook,x")
    return out


def _instant(value: object) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        return parse_timestamp(_text(value))
    except ValueError as exc:
        raise _invalid(str(exc)) from None


def _until_now(value: object) -> datetime | None:
    """An instant that figures are read *as of*: one after now reads as now (figures exist up to now;
    the answer's ``at`` says which instant was used)."""
    moment = _instant(value)
    return None if moment is None else min(moment, now())


# What the OpenAPI declares for each kind of parameter, exactly what the parsers accept: client
# generators and schemathesis read these (tests/integration/api/test_schemathesis.py).
def text_schema(pattern: str, **extra: Any) -> Callable[[dict[str, Any]], None]:
    """``json_schema_extra`` of an optional text parameter: a string of ``pattern`` (anchored), not
    ``anyOf [string, null]`` (a query parameter is absent or text, never null)."""

    def update(schema: dict[str, Any]) -> None:
        schema.pop("anyOf", None)
        schema.pop("format", None)
        schema.update({"type": "string", "pattern": pattern, **extra})

    return update


def nullable_choice(schema: dict[str, Any]) -> None:
    """``json_schema_extra`` of an optional enumerated parameter: the enum alone, without ``null``."""
    any_of = schema.pop("anyOf", None)
    if any_of:
        schema.update(next(s for s in any_of if s.get("type") != "null"))


def _code(kind: str, pattern: str, example: str) -> Callable[[object], str | None]:
    code_re, foreign_re = re.compile(pattern), re.compile(FOREIGN_CODE_PATTERN)

    def parse(value: object) -> str | None:
        if value is None:
            return None
        text = _text(value).upper().removeprefix(f"{kind}:")
        if not (code_re.fullmatch(text) or foreign_re.fullmatch(text)):
            raise _invalid(f"{value!r} is not a code (e.g. {example} or {kind}:{example})")
        return text

    return parse


def _code_pattern(kind: str, pattern: str) -> str:
    """What ``_code(kind, pattern, …)`` accepts (either case, ``KIND:`` optional)."""
    return case_insensitive(f"^(?:{kind}:)?(?:{pattern[1:-1]}|{FOREIGN_CODE_PATTERN[1:-1]})$")


def _panel(value: object) -> str | None:
    if value is None:
        return None
    text = _text(value)
    if not re.fullmatch(PANEL_NAME_PATTERN, text):
        raise _invalid(f"{text!r} is not a panel name (letters, digits, '.', '_' or '-', at most 64)")
    return text


_PLATFORM_DOC = f"One of {', '.join(Platform)}; `twitter` is accepted as `x`."
_INSTANT_DOC = "RFC 3339 instant with an offset, in 2000-2099 (2013-05-15T00:00:00Z)."
_AT_DOC = _INSTANT_DOC + " Absent: now, from the live tables (answers at most 1 s old); after now: now."

PlatformQuery = Annotated[
    Platform, BeforeValidator(_platform), Query(description=_PLATFORM_DOC, examples=["facebook"])
]
OptionalPlatformQuery = Annotated[
    Platform | None,
    BeforeValidator(_platform),
    Query(
        description=_PLATFORM_DOC + " Absent: every platform.",
        examples=["facebook"],
        json_schema_extra=nullable_choice,
    ),
]
PlatformsQuery = Annotated[
    list[Platform],
    BeforeValidator(_platforms),
    Query(
        description="Comma-separated platforms (facebook,x), or the parameter repeated.",
        examples=["facebook,x"],
    ),
]
CategoryQuery = Annotated[
    Category | None,
    BeforeValidator(choice(Category, "category")),
    Query(
        description="commune, departement, region or epci; absent: every category.",
        examples=["commune"],
        json_schema_extra=nullable_choice,
    ),
]
AtQuery = Annotated[
    datetime | None,
    BeforeValidator(_until_now),
    Query(description=_AT_DOC, json_schema_extra=text_schema(TIMESTAMP_PATTERN)),
]
FromQuery = Annotated[
    datetime | None,
    BeforeValidator(_instant),
    Query(
        alias="from",
        description=_INSTANT_DOC + " Included.",
        json_schema_extra=text_schema(TIMESTAMP_PATTERN),
    ),
]


def _cursor(value: object) -> str | None:
    if value is None:
        return None
    text = _text(value)
    try:
        decode_cursor(text)
    except ValueError as exc:
        raise _invalid(str(exc)) from None
    return text


CursorQuery = Annotated[
    str | None,
    BeforeValidator(_cursor),
    Query(
        description="`next` of the previous page, as it is.",
        json_schema_extra=text_schema(CURSOR_PATTERN),
    ),
]
SinceQuery = Annotated[
    datetime | None,
    BeforeValidator(_instant),
    Query(
        description=_INSTANT_DOC + " Only what was detected at or after it.",
        json_schema_extra=text_schema(TIMESTAMP_PATTERN),
    ),
]
ToQuery = Annotated[
    datetime | None,
    BeforeValidator(_until_now),
    Query(
        alias="to",
        description=_INSTANT_DOC + " Absent or after now: now.",
        json_schema_extra=text_schema(TIMESTAMP_PATTERN),
    ),
]
PanelQuery = Annotated[
    str | None,
    BeforeValidator(_panel),
    Query(
        description="A named panel (imported); absent: every entity of the category; a name that "
        "names no panel: 404.",
        examples=["barometre2013"],
        json_schema_extra=text_schema(PANEL_NAME_PATTERN),
    ),
]
RegionQuery = Annotated[
    str | None,
    BeforeValidator(_code("REG", REGION_CODE_PATTERN, "84")),
    Query(
        description="Only entities of this région (code, e.g. 84, or REG:84).",
        examples=["84"],
        json_schema_extra=text_schema(_code_pattern("REG", REGION_CODE_PATTERN)),
    ),
]
DepartementQuery = Annotated[
    str | None,
    BeforeValidator(_code("DEP", DEPARTEMENT_CODE_PATTERN, "38")),
    Query(
        description="Only entities of this département (code, e.g. 38 or 2A, or DEP:38).",
        examples=["38"],
        json_schema_extra=text_schema(_code_pattern("DEP", DEPARTEMENT_CODE_PATTERN)),
    ),
]
WindowQuery = Annotated[
    Window, BeforeValidator(choice(Window, "window")), Query(description="Growth window.")
]
MetricQuery = Annotated[
    Metric,
    BeforeValidator(choice(Metric, "metric")),
    Query(description="growth_abs, growth_pct, per_1000_inhabitants or followers."),
]
RankByQuery = Annotated[
    RankBy,
    BeforeValidator(choice(RankBy, "by")),
    Query(description="entity (accounts of an entity on the platform summed) or account."),
]
FormatQuery = Annotated[
    ExportFormat | None,
    BeforeValidator(choice(ExportFormat, "format")),
    Query(
        description="json (default), csv or parquet; or ask with the Accept header.",
        json_schema_extra=nullable_choice,
    ),
]


StratumQuery = Annotated[
    Stratum | None,
    BeforeValidator(choice(Stratum, "stratum")),
    Query(description=STRATA_DOC, examples=["commune_lt_3500"], json_schema_extra=nullable_choice),
]


def stratum_category(category: Category | None, stratum: Stratum | None) -> Category | None:
    """The category of a figure asked with ``stratum``: the stratum's own (422 when ``category`` names
    another one)."""
    if stratum is None:
        return category
    if category is not None and category is not stratum.category:
        raise ApiError(
            422,
            "invalid_request",
            f"stratum: {stratum.value!r} is a stratum of category {stratum.category.value}, "
            f"not {category.value}",
        )
    return stratum.category


def scope_of(
    category: Category | None,
    panel: str | None,
    region: str | None = None,
    departement: str | None = None,
    stratum: Stratum | None = None,
) -> Scope:
    return Scope(category, panel, region, departement, stratum)


def platforms_key(platforms: Sequence[Platform]) -> tuple[str, ...]:
    return tuple(p.value for p in platforms)


@dataclass(frozen=True, slots=True)
class Figure:
    """The parameters of a figure over a scope, every one optional: ``platform`` (absent: every one),
    ``category``, ``at`` and ``panel``. Hashable: with the route's name, it is the answer's cache key."""

    platform: Platform | None
    category: Category | None
    at: datetime | None
    panel: str | None

    @property
    def scope(self) -> Scope:
        return scope_of(self.category, self.panel)


async def figure(
    platform: OptionalPlatformQuery = None,
    category: CategoryQuery = None,
    at: AtQuery = None,
    panel: PanelQuery = None,
) -> Figure:
    # async: a sync dependency would cost every request a hop through the thread pool.
    return Figure(platform, category, at, panel)


FigureQuery = Annotated[Figure, Depends(figure)]
