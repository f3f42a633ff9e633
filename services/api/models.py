"""The response bodies of the API (docs/CONTRACT.md, "HTTP API"), as pydantic models: what
``/openapi.json`` documents, with an example each. Instants are written in RFC 3339, UTC, ``Z``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Generic, Literal, TypeVar

from fastapi.responses import Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, PlainSerializer

from services.api.coverage import Origin, Summary
from services.api.queries import Metric, MinBase, RankBy
from services.api.strata import Stratum
from services.common.events import format_timestamp
from services.common.names import SCORE_FORMULA, Category, Platform, Window


def _aware(moment: datetime) -> datetime:
    # clickhouse-connect gives DateTime64(3, 'UTC') columns as naive datetimes: they are UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


Instant = Annotated[
    datetime, AfterValidator(_aware), PlainSerializer(format_timestamp, return_type=str, when_used="json")
]


def _example(example: dict[str, JsonValue], *, by_alias: bool = False) -> ConfigDict:
    # by_alias: fields with an alias ("from") are written by it, and may be given by their name.
    return ConfigDict(
        json_schema_extra={"examples": [example]}, validate_by_name=by_alias, serialize_by_alias=by_alias
    )


def case_insensitive(pattern: str) -> str:
    """``pattern`` (the ECMA-262/Python subset of services.common.events) matching either case: what a
    parser that upper- or lower-cases its input before matching accepts, for JSON Schema (no flags)."""
    out, in_class, i = [], False, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if c == "[" and not in_class:
            in_class = True
        elif c == "]" and in_class:
            in_class = False
        elif in_class and c.isalpha() and pattern[i + 1 : i + 2] == "-" and pattern[i + 2 : i + 3].isalpha():
            lo, hi = c, pattern[i + 2]
            out.append(f"{lo.lower()}-{hi.lower()}{lo.upper()}-{hi.upper()}")
            i += 3
            continue
        elif c.isalpha():
            both = c.lower() + c.upper()
            out.append(both if in_class else f"[{both}]")
            i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


class ErrorDetail(BaseModel):
    code: str = Field(description="Machine-readable: invalid_request, not_found, service_unavailable…")
    message: str = Field(description="What was wrong, for a human.")


class ErrorBody(BaseModel):
    """Every error: ``{"error": {"code", "message"}}``, never a stack trace."""

    model_config = _example(
        {
            "error": {
                "code": "invalid_request",
                "message": "platform: unknown platform 'myspace'; allowed: facebook, x, instagram, …",
            }
        }
    )
    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    422: {"model": ErrorBody, "description": "A parameter is missing or invalid (the message says which)."},
    503: {"model": ErrorBody, "description": "ClickHouse does not answer; retry after a few seconds."},
}
NOT_FOUND: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorBody, "description": "No such id."},
}


def links(status: int, **targets: tuple[str, dict[str, str]]) -> dict[int | str, dict[str, object]]:
    """OpenAPI links of the ``status`` answer: name -> (operationId, {parameter: runtime expression}).
    Client generators and schemathesis's stateful phase follow them (a created silence to its expiry,
    a listed alert to its detail and acknowledgement...)."""
    return {
        status: {
            "links": {
                name: {"operationId": operation, "parameters": parameters}
                for name, (operation, parameters) in targets.items()
            }
        }
    }


PANEL_NOT_FOUND: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorBody, "description": "`panel` names no panel (the message lists the known ones)."},
}
BODY_ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorBody, "description": "The body is not JSON."},
}


# --- Coverage.


class FigureCoverage(BaseModel):
    """How much of a figure's scope barometre sees (docs/CONTRACT.md, "Coverage")."""

    observed: int = Field(description="Entities in scope with a known account observed within the window")
    stale: int = Field(description="Entities in scope whose known accounts were observed, none within it")
    missing: int = Field(description="Entities in scope with no known account, or none ever observed")
    simulated: bool = Field(description="Whether simulated data (the simulator's accounts) are in the figure")

    @classmethod
    def of(cls, summary: Summary) -> FigureCoverage:
        return cls(
            observed=summary.observed,
            stale=summary.stale,
            missing=summary.missing,
            simulated=summary.simulated,
        )


_STRATUM_DOC = 'The stratum asked for (docs/SCORING.md, "Strata"); null: every entity of the category'
_COVERAGE_DOC = "How many entities in scope the figure sees (observed + stale + missing = total)"


class CoverageCounts(BaseModel):
    with_account: int = Field(description="Entities with a known account")
    observed: int = Field(description="Entities with a known account observed within the staleness window")
    stale: int = Field(description="Entities whose known accounts were observed, none within the window")
    never_observed: int = Field(description="Entities with known accounts, none ever observed")
    accounts: int = Field(
        description="Known accounts: registered, not deleted, rejected or gone; or observed"
    )
    accounts_observed: int = Field(description="Known accounts observed within the window")
    accounts_stale: int = Field(description="Known accounts observed, last before the window")
    accounts_never_observed: int
    accounts_failing: int | None = Field(
        description="Known accounts whose last poll attempts failed (poll_state); null as of a past instant"
    )


class OriginCoverage(CoverageCounts):
    """The counts over the accounts of one origin only (an entity may count under several)."""

    origin: Origin = Field(description="How the accounts came in; unregistered: observed, never registered")


class FailureExample(BaseModel):
    account_id: str
    entity_id: str
    at: Instant | None = Field(description="The last attempt")
    detail: str = Field(description="The last error, as the poller recorded it")
    failures: int = Field(description="Attempts in a row that failed")


class FailureReason(BaseModel):
    reason: str = Field(description="The poller's failure reason (not_found, rate_limited, …)")
    accounts: int = Field(description="Failing accounts whose last failure had this reason")
    examples: list[FailureExample] = Field(description="The latest few, newest first")


class CoverageRow(CoverageCounts):
    """The coverage of one platform and one category."""

    platform: Platform
    category: Category
    entities: int = Field(description="Entities in scope (the panel, or every entity of the category)")
    without_account: int = Field(description="Entities in scope with no known account")
    by_origin: list[OriginCoverage] = Field(description="The same counts per origin present")
    failures: list[FailureReason] | None = Field(
        description="The most common reasons of failing accounts, most accounts first; "
        "null as of a past instant"
    )


class CoverageOut(BaseModel):
    """How much of the world barometre sees, per platform and category (docs/CONTRACT.md, "Coverage")."""

    model_config = _example(
        {
            "platform": "facebook",
            "category": "commune",
            "panel": None,
            "at": "2026-03-01T00:00:00Z",
            "staleness_days": 45,
            "simulated": False,
            "sources": ["import", "discover"],
            "items": [
                {
                    "platform": "facebook",
                    "category": "commune",
                    "entities": 34875,
                    "without_account": 22044,
                    "with_account": 12831,
                    "observed": 12011,
                    "stale": 650,
                    "never_observed": 170,
                    "accounts": 13102,
                    "accounts_observed": 12240,
                    "accounts_stale": 680,
                    "accounts_never_observed": 182,
                    "accounts_failing": 31,
                    "by_origin": [
                        {"origin": "import", "with_account": 210, "observed": 209, "stale": 1,
                         "never_observed": 0, "accounts": 214, "accounts_observed": 213, "accounts_stale": 1,
                         "accounts_never_observed": 0, "accounts_failing": 0},
                        {"origin": "discover", "with_account": 12640, "observed": 11820, "stale": 650,
                         "never_observed": 170, "accounts": 12888, "accounts_observed": 12027,
                         "accounts_stale": 679, "accounts_never_observed": 182, "accounts_failing": 31},
                    ],
                    "failures": [
                        {"reason": "not_found", "accounts": 25, "examples": [
                            {"account_id": "facebook:villedexemple", "entity_id": "COM:99999",
                             "at": "2026-02-28T23:10:00Z", "detail": "404: page not found", "failures": 4}
                        ]},
                        {"reason": "rate_limited", "accounts": 6, "examples": []},
                    ],
                }
            ],
        }
    )  # fmt: skip
    platform: Platform | None = Field(description="null: every platform")
    category: Category | None = Field(description="null: every category")
    panel: str | None = Field(description="null: the whole registry (of each category)")
    at: Instant = Field(description="The instant of the counts (now when not asked for)")
    staleness_days: int = Field(description="The staleness window: observed means within it, up to at")
    simulated: bool = Field(
        description="Whether simulated data are in scope: an account of origin simulator, or an "
        "unregistered account observed through the simulator's snapshots"
    )
    sources: list[Origin] = Field(description="The origins of the known accounts in scope")
    items: list[CoverageRow] = Field(description="One per platform and category asked for")


# --- Presence.


class PresenceOut(BaseModel):
    """Entities in scope present on a platform at an instant, out of all entities in scope."""

    model_config = _example(
        {
            "platform": "facebook",
            "category": "commune",
            "panel": None,
            "at": "2026-03-01T00:00:00Z",
            "present": 10234,
            "total": 34875,
            "rate": 0.2934,
            "coverage": {"observed": 12011, "stale": 820, "missing": 22044, "simulated": False},
        }
    )
    platform: Platform
    category: Category | None = Field(description="null: every category")
    stratum: Stratum | None = Field(None, description=_STRATUM_DOC)
    panel: str | None = Field(description="null: the whole registry (of the category)")
    at: Instant = Field(description="The instant of the figure (now when not asked for)")
    present: int
    total: int = Field(description="Entities in scope: the denominator")
    rate: float | None = Field(description="present / total; null when total is 0")
    coverage: FigureCoverage = Field(description=_COVERAGE_DOC)


class PresencePoint(BaseModel):
    at: Instant
    present: int
    total: int = Field(description="Entities in scope: the denominator")
    rate: float | None = Field(
        description="present / total; null when total is 0 or when the point is not observed (no data, "
        "which is not 0 %)"
    )
    observed: bool = Field(
        description="Whether barometre had observed the platform in scope by `at`: false before the first "
        "active snapshot of any account in scope on the platform (then `rate` is null and `present` 0)"
    )


class PresenceSeriesOut(BaseModel):
    """Presence at regular instants from ``from`` to ``to`` (both included when on the step)."""

    model_config = _example(
        {
            "platform": "facebook",
            "category": "region",
            "panel": "barometre2013",
            "step": "month",
            "points": [
                {"at": "2012-12-01T00:00:00Z", "present": 0, "total": 26, "rate": None, "observed": False},
                {"at": "2013-01-01T00:00:00Z", "present": 20, "total": 26, "rate": 0.7692, "observed": True},
                {"at": "2013-02-01T00:00:00Z", "present": 21, "total": 26, "rate": 0.8077, "observed": True},
            ],
        }
    )
    platform: Platform
    category: Category | None
    stratum: Stratum | None = Field(None, description=_STRATUM_DOC)
    panel: str | None
    step: Literal["month", "week", "day"]
    points: list[PresencePoint]


class OverlapOut(BaseModel):
    """Entities present on every one of ``platforms`` at once."""

    model_config = _example(
        {
            "platforms": ["facebook", "x"],
            "category": "departement",
            "panel": None,
            "at": "2026-03-01T00:00:00Z",
            "present_all": 88,
            "total": 101,
            "rate": 0.8713,
            "coverage": {"observed": 92, "stale": 3, "missing": 6, "simulated": False},
        }
    )
    platforms: list[Platform]
    category: Category | None
    panel: str | None
    at: Instant
    present_all: int
    total: int
    rate: float | None
    coverage: FigureCoverage = Field(
        description=_COVERAGE_DOC + "; an entity counts as covered as on its least covered platform"
    )


# --- Rankings.


class RankingItem(BaseModel):
    rank: int = Field(description="Position, from 1; ties are ordered by id")
    entity_id: str
    name: str
    value: float = Field(description="The metric's value")
    followers: int = Field(description="Followers at the end of the window (summed over accounts)")
    followers_before: int | None = Field(
        description="Followers one window earlier; null for the followers and per_1000_inhabitants metrics"
    )


class MinBaseOut(BaseModel):
    """The least base a row needs to be ranked by a relative metric (docs/SCORING.md, "Minimum base");
    a field is null when the metric applies no such minimum, 0 when it was lifted (``min_followers=0``,
    ``min_population=0``)."""

    followers: int | None = Field(
        description="growth_pct: followers at the window's start (followers_before) at least this; "
        "null for per_1000_inhabitants"
    )
    population: int | None = Field(
        description="Inhabitants at least this: growth_pct leaves out entities with a known population "
        "below it (those without one are kept), per_1000_inhabitants every entity below it"
    )

    @classmethod
    def of(cls, base: MinBase, metric: Metric) -> MinBaseOut | None:
        """What ``metric`` applies of ``base``; None for the metrics that apply none."""
        followers, population = base.applied(metric)
        if followers is None and population is None:
            return None
        return cls(followers=followers, population=population)


_MIN_BASE_DOC = (
    "The least base of a relative ranking, stated with the answer: growth_pct ranks only rows with at "
    "least `followers` at the window's start and (when known) `population` inhabitants, "
    "per_1000_inhabitants only entities of at least `population` inhabitants; null for growth_abs and "
    "followers, which apply none"
)


class AccountRankingItem(RankingItem):
    account_id: str
    handle: str | None


class RankingsOut(BaseModel):
    """The top of a ranking. ``at`` is null for a live ranking."""

    model_config = _example(
        {
            "platform": "facebook",
            "category": "commune",
            "window": "30d",
            "metric": "growth_abs",
            "by": "entity",
            "at": None,
            "items": [
                {
                    "rank": 1,
                    "entity_id": "COM:38185",
                    "name": "Grenoble",
                    "value": 1520.0,
                    "followers": 98210,
                    "followers_before": 96690,
                }
            ],
            "coverage": {"observed": 12011, "stale": 820, "missing": 22044, "simulated": False},
            "min_base": None,
        }
    )
    platform: Platform
    category: Category | None
    stratum: Stratum | None = Field(None, description=_STRATUM_DOC)
    window: Window
    metric: Metric
    by: RankBy
    at: Instant | None
    items: list[AccountRankingItem] | list[RankingItem]
    min_base: MinBaseOut | None = Field(description=_MIN_BASE_DOC)
    coverage: FigureCoverage = Field(
        description=_COVERAGE_DOC + " (every entity of the scope, not only the items listed)"
    )


# --- Scores.


class ScoresOut(BaseModel):
    """The good-practice score (0 to 5) averaged over the accounts in scope that have one."""

    model_config = _example(
        {
            "platform": "facebook",
            "category": "commune",
            "panel": None,
            "at": None,
            "score": 2.71,
            "count": 10512,
            "formula": SCORE_FORMULA,
        }
    )
    platform: Platform | None = Field(description="null: every platform")
    category: Category | None
    panel: str | None
    at: Instant | None = Field(description="null: live (accounts observed within the staleness window)")
    score: float | None = Field(description="Average score, 0 to 5; null when no account has one")
    count: int = Field(description="Accounts with a score")
    formula: str = Field(description="Version of the score formula (docs/SCORING.md)")


# --- Monthly barometer report.


class ReportPresence(BaseModel):
    category: Category
    platform: Platform
    present: int
    total: int = Field(description="Entities of the category (in the panel): the denominator")
    rate: float | None = Field(description="present / total; null when total is 0")


class ReportOverlap(BaseModel):
    category: Category
    platforms: list[Platform] = Field(description="facebook and x")
    present_all: int = Field(description="Entities present on both at once")
    total: int
    rate: float | None


class ReportRanking(BaseModel):
    category: Category
    platform: Platform
    metric: Metric = Field(description="growth_abs or growth_pct, over 30 days up to the month's end")
    items: list[RankingItem] = Field(description="The top 5 (fewer when fewer entities have a value)")
    min_base: MinBaseOut | None = Field(description=_MIN_BASE_DOC)


class ReportScore(BaseModel):
    category: Category
    platform: Platform
    score: float | None = Field(description="Average score at the month's end, 0 to 5")
    count: int = Field(description="Accounts with a score at the month's end")
    score_previous_month: float | None = Field(description="At the end of the previous month")
    change_month: float | None = Field(description="score - score_previous_month; null if either is")
    score_previous_year: float | None = Field(description="At the end of the same month a year before")
    change_year: float | None = Field(description="score - score_previous_year; null if either is")


class BarometerReportOut(BaseModel):
    """What the 2012-2013 monthly barometer published, for one month, as of the month's end."""

    model_config = _example(
        {
            "month": "2013-05",
            "panel": "barometre2013",
            "at": "2013-05-31T23:59:59.999000Z",
            "partial": False,
            "window": "30d",
            "formula": SCORE_FORMULA,
            "presence": [
                {"category": "commune", "platform": "facebook", "present": 3, "total": 4, "rate": 0.75}
            ],
            "overlap": [
                {"category": "commune", "platforms": ["facebook", "x"], "present_all": 1, "total": 4,
                 "rate": 0.25}
            ],
            "rankings": [
                {
                    "category": "commune",
                    "platform": "facebook",
                    "metric": "growth_abs",
                    "items": [
                        {"rank": 1, "entity_id": "COM:38185", "name": "Grenoble", "value": 400.0,
                         "followers": 1400, "followers_before": 1000}
                    ],
                    "min_base": None,
                },
                {
                    "category": "commune",
                    "platform": "facebook",
                    "metric": "growth_pct",
                    "items": [
                        {"rank": 1, "entity_id": "COM:38185", "name": "Grenoble", "value": 40.0,
                         "followers": 1400, "followers_before": 1000}
                    ],
                    "min_base": {"followers": 1000, "population": 2000},
                },
            ],
            "scores": [
                {"category": "commune", "platform": "instagram", "score": 3.0, "count": 2,
                 "score_previous_month": 3.125, "change_month": -0.125, "score_previous_year": None,
                 "change_year": None}
            ],
        }
    )  # fmt: skip
    month: str = Field(description="YYYY-MM")
    panel: str | None = Field(description="null: every entity of each category")
    at: Instant = Field(description="The month's last millisecond (now for the current month)")
    partial: bool = Field(description="true for the current month: figures as of now, not its end")
    window: Window = Field(description="The growth window of the rankings")
    formula: str = Field(description="Version of the score formula (docs/SCORING.md)")
    presence: list[ReportPresence] = Field(description="Per category and platform")
    overlap: list[ReportOverlap] = Field(description="Per category: present on both Facebook and X")
    rankings: list[ReportRanking] = Field(description="Per category, platform and metric")
    scores: list[ReportScore] = Field(description="Per category and platform")


# --- Entities and accounts.


class EntityAccount(BaseModel):
    account_id: str
    handle: str | None
    registered: bool = Field(description="Registered by an accounts import")
    observed_at: Instant | None = Field(description="Latest daily point; null when never observed")
    followers: int | None
    status: str | None = Field(description="active, deleted or suspended, as last observed")
    fresh: bool = Field(description="Observed within the staleness window: counts in live figures")
    present: bool = Field(description="Present now (docs/SCORING.md, Presence)")
    score: float | None = Field(description="Good-practice score at the latest point, 0 to 5")
    formula: str | None
    posts_30d: int | None
    followers_before: dict[Window, int | None] = Field(
        description="Followers in force one window before the latest point, by window"
    )


class EntityPlatform(BaseModel):
    platform: Platform
    present: bool
    followers: int | None = Field(description="Sum over the fresh accounts; null when none is fresh")
    score: float | None = Field(description="Average score of the fresh accounts that have one")
    accounts: list[EntityAccount]


class EntityOut(BaseModel):
    """A collectivité, its accounts per platform with their latest figures, presence now and score."""

    model_config = _example(
        {
            "entity_id": "COM:38185",
            "name": "Grenoble",
            "category": "commune",
            "population": 156389,
            "departement": "38",
            "region": "84",
            "source": "insee",
            "present_on": ["facebook"],
            "score": 3.1,
            "formula": SCORE_FORMULA,
            "platforms": [
                {
                    "platform": "facebook",
                    "present": True,
                    "followers": 98210,
                    "score": 3.1,
                    "accounts": [
                        {
                            "account_id": "facebook:123456",
                            "handle": "villedegrenoble",
                            "registered": True,
                            "observed_at": "2026-03-01T06:00:00Z",
                            "followers": 98210,
                            "status": "active",
                            "fresh": True,
                            "present": True,
                            "score": 3.1,
                            "formula": SCORE_FORMULA,
                            "posts_30d": 41,
                            "followers_before": {"1d": 98150, "7d": 97990, "30d": 96690, "90d": None},
                        }
                    ],
                }
            ],
        }
    )
    entity_id: str
    name: str
    category: str
    population: int | None
    departement: str | None
    region: str | None
    source: str = Field(description="insee (the shipped registry) or import")
    present_on: list[Platform] = Field(description="Platforms the entity is present on now")
    score: float | None = Field(description="Average score of its fresh accounts that have one")
    formula: str
    platforms: list[EntityPlatform]


class Snapshot(BaseModel):
    observed_at: Instant
    event_id: str
    followers: int
    following: int | None
    posts_total: int | None
    posts_30d: int | None
    interactions_30d: int | None
    replies_30d: int | None
    automated_posts_30d: int | None
    status: str
    source: str


class HistoryOut(BaseModel):
    """Raw snapshots of one account observed in ``[from, to)``, newest first, at most ``limit``."""

    model_config = _example(
        {
            "account_id": "facebook:123456",
            "platform": "facebook",
            "entity_id": "COM:38185",
            "handle": "villedegrenoble",
            "from": "2026-01-01T00:00:00Z",
            "to": "2026-03-01T00:00:00Z",
            "order": "newest_first",
            "truncated": False,
            "items": [
                {
                    "observed_at": "2026-02-28T06:00:00Z",
                    "event_id": "4f7a0c0e-4b8e-5d43-9a57-0d6c1b0b6a21",
                    "followers": 98150,
                    "following": None,
                    "posts_total": 5120,
                    "posts_30d": 40,
                    "interactions_30d": 31000,
                    "replies_30d": 12,
                    "automated_posts_30d": 0,
                    "status": "active",
                    "source": "poller:facebook",
                }
            ],
        },
        by_alias=True,
    )
    account_id: str
    platform: Platform
    entity_id: str
    handle: str | None
    from_: Instant | None = Field(alias="from", description="null: from the first snapshot")
    to: Instant | None = Field(description="null: up to now (exclusive bound)")
    order: Literal["newest_first"] = "newest_first"
    truncated: bool = Field(
        description="More snapshots than limit in the range: ask again with to = the "
        "oldest observed_at returned"
    )
    items: list[Snapshot]


M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Answer(Generic[M]):
    """A response body and its JSON, serialised once where it is computed (a worker thread): the answer
    cache hands out the bytes as they are, so a cached answer costs no serialisation."""

    model: M
    json: bytes

    @classmethod
    def of(cls, model: M) -> Answer[M]:
        return cls(model, model.model_dump_json().encode())

    def response(self) -> Response:
        """The JSON answer (routes return it as is, so FastAPI does not validate and serialise the model
        a second time; the route's response_model still documents it)."""
        return Response(self.json, media_type="application/json")
