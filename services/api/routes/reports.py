"""The monthly barometer: what the 2012-2013 study published each month, for any month, as of the
month's end (its last millisecond; now for the current month), as JSON, CSV or a printable HTML page.

Every figure comes from the query functions the other routes use (services/api/queries.py), at the
same instants, so the report agrees with /v1/presence, /v1/presence/overlap, /v1/rankings and
/v1/scores asked with ``at`` = the report's ``at``. The report is computed in parts (a category's
presence, a category and platform's rankings or scores), each through the answer cache, so that the
parts run side by side within the api's ClickHouse concurrency limit.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Hashable
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response
from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from services.api import queries
from services.api.deps import Api, ApiDep, PanelQuery, choice, now, text_schema
from services.api.exports import ColumnType, ExportFormat, file_name, table_response
from services.api.models import (
    ERROR_RESPONSES,
    NOT_FOUND,
    Answer,
    BarometerReportOut,
    MinBaseOut,
    RankingItem,
    ReportOverlap,
    ReportPresence,
    ReportRanking,
    ReportScore,
)
from services.api.queries import Metric, MinBase, Scope
from services.api.routes.presence import add_months
from services.common.names import SCORE_FORMULA, Category, Platform, Window
from services.common.web import ApiError

router = APIRouter(prefix="/v1/reports", tags=["reports"])

T = TypeVar("T")

WINDOW = Window.D30
TOP = 5
OVERLAP = [Platform.FACEBOOK, Platform.X]
METRICS = (Metric.GROWTH_ABS, Metric.GROWTH_PCT)
ONE_MS = timedelta(milliseconds=1)


class ReportFormat(StrEnum):
    JSON = "json"
    CSV = "csv"
    HTML = "html"


def _invalid(message: str) -> PydanticCustomError:
    return PydanticCustomError("invalid_parameter", message.replace("{", "{{").replace("}", "}}"))


# YYYY-MM in 2000-2099 (ASCII digits only: Python's \d would take other scripts' digits too).
MONTH_PATTERN = "^20[0-9]{2}-(?:0[1-9]|1[0-2])$"


def _month(value: object) -> date:
    """``YYYY-MM`` in 2000-2099, as the month's first day (a month not begun yet is the route's 404)."""
    if isinstance(value, date):
        return value
    text = value.strip() if isinstance(value, str) else ""
    if not re.fullmatch(MONTH_PATTERN, text):
        raise _invalid(f"{value!r} is not a month; expected YYYY-MM in 2000-2099, e.g. 2013-05")
    return date(int(text[:4]), int(text[5:]), 1)


MonthQuery = Annotated[
    date,
    BeforeValidator(_month),
    Query(
        description="YYYY-MM in 2000-2099; a month that has not begun yet has no report (404).",
        examples=["2013-05"],
        json_schema_extra=text_schema(MONTH_PATTERN),
    ),
]
ReportFormatQuery = Annotated[
    ReportFormat,
    BeforeValidator(choice(ReportFormat, "format")),
    Query(description="json (default), csv (long format: one row per figure) or html (printable page)."),
]


def month_end(first: date) -> datetime:
    """The last millisecond of the month starting on ``first``."""
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    return add_months(start, 1) - ONE_MS


# --- Computing the report, in parts that each go through the answer cache.


async def _parts(api: Api, jobs: dict[Hashable, Callable[[], T]]) -> dict[Hashable, T]:
    out: dict[Hashable, T] = {}

    async def one(key: Hashable, compute: Callable[[], T]) -> None:
        out[key] = await api.cached(key, compute)

    async with anyio.create_task_group() as group:
        for key, compute in jobs.items():
            group.start_soon(one, key, compute)
    return out


def _presence(api: Api, scope: Scope, at: datetime) -> tuple[list[ReportPresence], ReportOverlap]:
    assert scope.category is not None
    client, rows = api.client(), []
    for platform in Platform:
        p = queries.presence(client, api.db, [platform], scope, at)
        rows.append(
            ReportPresence(
                category=scope.category, platform=platform, present=p.present, total=p.total, rate=p.rate
            )
        )
    both = queries.presence(client, api.db, OVERLAP, scope, at)
    overlap = ReportOverlap(
        category=scope.category, platforms=OVERLAP, present_all=both.present, total=both.total, rate=both.rate
    )
    return rows, overlap


def _rankings(api: Api, scope: Scope, platform: Platform, at: datetime) -> list[ReportRanking]:
    assert scope.category is not None
    out = []
    base = min_base(api)
    for metric in METRICS:
        ranked = queries.rankings_at(
            api.client(), api.db, platform, scope, WINDOW, metric, at, api.staleness, TOP, min_base=base
        )
        items = [RankingItem.model_validate(r, from_attributes=True) for r in ranked]
        out.append(
            ReportRanking(
                category=scope.category,
                platform=platform,
                metric=metric,
                items=items,
                min_base=MinBaseOut.of(base, metric),
            )
        )
    return out


def min_base(api: Api) -> MinBase:
    """The least base of the report's relative rankings: the server's settings, as /v1/rankings'
    default (docs/SCORING.md, "Minimum base")."""
    return MinBase(api.settings.ranking_min_followers, api.settings.ranking_min_population)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _change(score: float | None, before: float | None) -> float | None:
    return None if score is None or before is None else round(score - before, 4)


def _scores(api: Api, scope: Scope, platform: Platform, at: datetime, month: date) -> ReportScore:
    assert scope.category is not None

    def at_instant(moment: datetime) -> queries.ScoreSummary:
        return queries.scores(api.client(), api.db, platform, scope, moment, now(), api.staleness)

    current = at_instant(at)
    previous_month = at_instant(month_end(add_months_date(month, -1)))
    previous_year = at_instant(month_end(add_months_date(month, -12)))
    score = _round(current.average)
    month_before, year_before = _round(previous_month.average), _round(previous_year.average)
    return ReportScore(
        category=scope.category,
        platform=platform,
        score=score,
        count=current.count,
        score_previous_month=month_before,
        change_month=_change(score, month_before),
        score_previous_year=year_before,
        change_year=_change(score, year_before),
    )


def add_months_date(first: date, months: int) -> date:
    year, month = divmod(first.month - 1 + months, 12)
    return date(first.year + year, month + 1, 1)


async def barometer(api: Api, month: date, panel: str | None) -> BarometerReportOut:
    """The report of ``month`` over ``panel`` (every entity of each category when None)."""
    await api.run(lambda: api.check_scope(Scope(panel=panel)))
    end = month_end(month)
    current = now().replace(microsecond=0)
    is_partial = current < end
    at = current if is_partial else end
    scopes = {c: Scope(category=c, panel=panel) for c in Category}
    presence = await _parts(
        api, {("report-presence", c, panel, at): partial(_presence, api, s, at) for c, s in scopes.items()}
    )
    rankings = await _parts(
        api,
        {
            ("report-rankings", c, p, panel, at): partial(_rankings, api, s, p, at)
            for c, s in scopes.items()
            for p in Platform
        },
    )
    scores = await _parts(
        api,
        {
            ("report-scores", c, p, panel, at): partial(_scores, api, s, p, at, month)
            for c, s in scopes.items()
            for p in Platform
        },
    )
    return BarometerReportOut(
        month=f"{month:%Y-%m}",
        panel=panel,
        at=at,
        partial=is_partial,
        window=WINDOW,
        formula=SCORE_FORMULA,
        presence=[row for c in Category for row in presence[("report-presence", c, panel, at)][0]],
        overlap=[presence[("report-presence", c, panel, at)][1] for c in Category],
        rankings=[
            r for c in Category for p in Platform for r in rankings[("report-rankings", c, p, panel, at)]
        ],
        scores=[scores[("report-scores", c, p, panel, at)] for c in Category for p in Platform],
    )


# --- CSV: one row per figure.

CSV_COLUMNS = {
    "section": ColumnType.TEXT,
    "category": ColumnType.TEXT,
    "platform": ColumnType.TEXT,
    "metric": ColumnType.TEXT,
    "value": ColumnType.FLOAT,
    "rank": ColumnType.INT,
    "entity_id": ColumnType.TEXT,
    "name": ColumnType.TEXT,
    "formula": ColumnType.TEXT,
}


def csv_rows(report: BarometerReportOut) -> list[dict[str, Any]]:
    """The report in long format: ``section`` (presence, overlap, rankings, scores), ``category``,
    ``platform`` (``facebook+x`` for the overlap), ``metric`` and ``value``; rankings rows add ``rank``,
    ``entity_id`` and ``name``, score rows the ``formula``."""
    rows: list[dict[str, Any]] = []
    for p in report.presence:
        for metric in ("present", "total", "rate"):
            rows.append(
                dict(
                    section="presence",
                    category=p.category,
                    platform=p.platform,
                    metric=metric,
                    value=getattr(p, metric),
                )
            )
    for o in report.overlap:
        both = "+".join(o.platforms)
        for metric in ("present_all", "total", "rate"):
            rows.append(
                dict(
                    section="overlap",
                    category=o.category,
                    platform=both,
                    metric=metric,
                    value=getattr(o, metric),
                )
            )
    for r in report.rankings:
        for item in r.items:
            rows.append(
                dict(
                    section="rankings",
                    category=r.category,
                    platform=r.platform,
                    metric=r.metric,
                    value=item.value,
                    rank=item.rank,
                    entity_id=item.entity_id,
                    name=item.name,
                )
            )
    for s in report.scores:
        for metric in (
            "score",
            "count",
            "score_previous_month",
            "change_month",
            "score_previous_year",
            "change_year",
        ):
            rows.append(
                dict(
                    section="scores",
                    category=s.category,
                    platform=s.platform,
                    metric=metric,
                    value=getattr(s, metric),
                    formula=report.formula,
                )
            )
    return rows


# --- HTML: a printable page, in French, without external resources.

MONTHS_FR = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)
CATEGORIES_FR = {
    Category.COMMUNE: "Communes",
    Category.DEPARTEMENT: "Départements",
    Category.REGION: "Régions",
    Category.EPCI: "Intercommunalités (EPCI)",
}
PLATFORMS_FR = {
    Platform.FACEBOOK: "Facebook",
    Platform.X: "X (Twitter)",
    Platform.INSTAGRAM: "Instagram",
    Platform.YOUTUBE: "YouTube",
    Platform.LINKEDIN: "LinkedIn",
    Platform.TIKTOK: "TikTok",
    Platform.MASTODON: "Mastodon",
    Platform.BLUESKY: "Bluesky",
    Platform.THREADS: "Threads",
}
STYLE = """
body { font-family: Georgia, "Times New Roman", serif; margin: 2rem auto; max-width: 60rem; color: #222; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #888; } h3 { margin-bottom: .3rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; width: 100%; }
th, td { border: 1px solid #bbb; padding: .2rem .5rem; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #eee; } p.note { color: #555; font-size: .9rem; }
@media print {
  body { margin: 0; max-width: none; font-size: 10pt; }
  h2 { page-break-before: always; } h2:first-of-type { page-break-before: avoid; }
  table, h3 { page-break-inside: avoid; } th { background: none; }
}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _number(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    text = f"{value:,.{digits}f}".replace(",", "\u202f").replace(".", ",")
    return text


def _percent(rate: float | None) -> str:
    return "—" if rate is None else f"{_number(100 * rate, 1)}\u00a0%"


def _signed(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else ("+" if value > 0 else "") + _number(value, digits)


def _table(headers: list[str], rows: list[list[tuple[str, bool]]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="n">{_e(v)}</td>' if n else f"<td>{_e(v)}</td>" for v, n in row)
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def title(month: str) -> str:
    year, number = month.split("-")
    return f"Baromètre des collectivités sur les réseaux sociaux — {MONTHS_FR[int(number) - 1]} {year}"


def min_base_note(base: MinBaseOut) -> str:
    """The least base of a relative ranking, in French (docs/SCORING.md, "Minimum base")."""
    parts = []
    if base.followers:
        parts.append(f"au moins {_number(base.followers)} abonnés au début de la période")
    if base.population:
        parts.append(f"au moins {_number(base.population)} habitants")
    if not parts:
        return "Classement sans seuil minimal."
    return "Classement limité aux collectivités ayant " + " et ".join(parts) + "."


def render_html(report: BarometerReportOut) -> str:
    heading = title(report.month)
    at = report.at.astimezone(UTC).strftime("%d/%m/%Y %H:%M UTC")
    scope = f"panel « {report.panel} »" if report.panel else "toutes les collectivités de chaque catégorie"
    parts = [
        f"<h1>{_e(heading)}</h1>",
        f'<p class="note">Chiffres au {_e(at)}{" (mois en cours)" if report.partial else " (fin du mois)"}, '
        f"{_e(scope)}. Score de bonnes pratiques : formule {_e(report.formula)}.</p>",
        "<h2>Présence</h2>",
    ]
    for category in Category:
        rows = [
            [
                (PLATFORMS_FR[p.platform], False),
                (_number(p.present), True),
                (_number(p.total), True),
                (_percent(p.rate), True),
            ]
            for p in report.presence
            if p.category is category
        ]
        parts += [
            f"<h3>{_e(CATEGORIES_FR[category])}</h3>",
            _table(["Réseau", "Présentes", "Total", "Taux"], rows),
        ]
    parts.append("<h2>Présence à la fois sur Facebook et X</h2>")
    parts.append(
        _table(
            ["Catégorie", "Présentes sur les deux", "Total", "Part"],
            [
                [
                    (CATEGORIES_FR[o.category], False),
                    (_number(o.present_all), True),
                    (_number(o.total), True),
                    (_percent(o.rate), True),
                ]
                for o in report.overlap
            ],
        )
    )
    parts.append(f"<h2>Meilleures progressions sur {_e(report.window.value.replace('d', ' jours'))}</h2>")
    labels = {Metric.GROWTH_ABS: "en abonnés", Metric.GROWTH_PCT: "en %"}
    for category in Category:
        tables = []
        for r in report.rankings:
            if r.category is not category or not r.items:
                continue
            pct = r.metric is Metric.GROWTH_PCT
            rows = [
                [
                    (str(i.rank), True),
                    (i.name, False),
                    (_signed(i.value, 1 if pct else 0), True),
                    (_number(i.followers), True),
                ]
                for i in r.items
            ]
            tables.append(
                f"<h3>{_e(CATEGORIES_FR[category])} — {_e(PLATFORMS_FR[r.platform])}, "
                f"progression {_e(labels[r.metric])}</h3>"
            )
            tables.append(_table(["Rang", "Collectivité", "Progression", "Abonnés"], rows))
            if r.min_base is not None:
                tables.append(f'<p class="note">{_e(min_base_note(r.min_base))}</p>')
        if not tables:
            tables = [
                f"<h3>{_e(CATEGORIES_FR[category])}</h3>",
                '<p class="note">Aucune progression mesurable.</p>',
            ]
        parts += tables
    parts.append("<h2>Score de bonnes pratiques (0 à 5)</h2>")
    for category in Category:
        rows = [
            [
                (PLATFORMS_FR[s.platform], False),
                (_number(s.score, 2), True),
                (_number(s.count), True),
                (_signed(s.change_month), True),
                (_signed(s.change_year), True),
            ]
            for s in report.scores
            if s.category is category
            and (s.score, s.score_previous_month, s.score_previous_year) != (None,) * 3
        ]
        parts.append(f"<h3>{_e(CATEGORIES_FR[category])}</h3>")
        parts.append(
            _table(
                ["Réseau", "Score moyen", "Comptes notés", "Évolution sur un mois", "Évolution sur un an"],
                rows,
            )
            if rows
            else '<p class="note">Aucun score.</p>'
        )
    return (
        '<!DOCTYPE html>\n<html lang="fr"><head><meta charset="utf-8">'
        f"<title>{_e(heading)}</title><style>{STYLE}</style></head>"
        f"<body>{''.join(parts)}</body></html>\n"
    )


@router.get(
    "/barometer",
    response_model=BarometerReportOut,
    responses={
        **ERROR_RESPONSES,
        **NOT_FOUND,
        200: {
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "text/html": {"schema": {"type": "string"}},
            },
            "description": "JSON by default; CSV (one row per figure) or a printable HTML page with format.",
        },
    },
    summary="The monthly barometer",
    description="What the 2012-2013 monthly study published, for `month`, as of the month's last "
    "millisecond (now for the current month, `partial: true`): presence per category and platform, the "
    "share present on both Facebook and X, the top 5 progressions over 30 days (absolute and relative) "
    "per category and platform, and the average good-practice score with its change over the month and "
    "over the year. `format=csv` gives one row per figure (section, category, platform, metric, value; "
    "rank, entity_id, name for rankings; formula for scores); `format=html` a printable page in French.",
)
async def get_barometer(
    api: ApiDep,
    month: MonthQuery,
    panel: PanelQuery = None,
    format: ReportFormatQuery = ReportFormat.JSON,
) -> Response:
    current = now().date().replace(day=1)
    if month > current:
        raise ApiError(404, "not_found", f"no report for {month:%Y-%m} yet: the latest is {current:%Y-%m}")
    report = await barometer(api, month, panel)
    if format is ReportFormat.HTML:
        return HTMLResponse(render_html(report))
    if format is ReportFormat.CSV:
        name = file_name("barometre", report.month, panel, fmt=ExportFormat.CSV)
        return table_response(ExportFormat.CSV, CSV_COLUMNS, csv_rows(report), name)
    return Answer.of(report).response()
