"""The barometer of a month as open data: a Frictionless Data Package (datapackage.json and four CSV
files) in the form French public data is published on data.gouv.fr.

Shared by ``GET /v1/exports/opendata?month=YYYY-MM`` (a zip) and ``barometre export opendata --month
YYYY-MM --out DIR`` (a folder). The resources, each with its Table Schema inline (snake_case field names
as in the API's JSON and CSV answers, French titles and descriptions, types, formats, constraints and a
``primaryKey``, and the metadata schema.data.gouv.fr asks of a schema: ``sources``, ``contributors``,
``created``, ``version``, ``licenses``, ``countryCode``):

* ``presence.csv``: each entity and platform with an account present (active) at some time up to the
  month's end (``at``), whether it is present then (docs/SCORING.md) and its followers then;
* ``rankings.csv``: the month's growth rankings (top 5 by ``growth_abs`` and by ``growth_pct`` over 30
  days, per category and platform), exactly the monthly report's (services/api/routes/reports.py);
* ``scores.csv``: the average good-practice score per category and platform, as in the report;
* ``coverage.csv``: per category and platform, how much of the world the figures see
  (services/api/coverage.py), as of ``at``.

Figures are as of the month's last millisecond, or now for the current month (``partial``): the
report's instants, so each figure equals the report's and the other routes' with that ``at``.
A month without observations gives a valid package whose resources hold no rows (coverage still lists
the registry's entities, all without account).

Simulated and real data never mix (docs/CONTRACT.md): a row is ``simulated`` when an account it counts is
the simulator's (registered with origin ``simulator``, or observed unregistered through snapshots whose
``source`` is ``simulator``); the package says ``simulated: true`` (and its title and description say
"données simulées") when any row is.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import anyio
from clickhouse_connect.driver.client import Client

from services.api import coverage as coverage_queries
from services.api import queries
from services.api.deps import Api, now
from services.api.exports import ColumnType, to_csv
from services.api.models import ReportRanking, ReportScore
from services.api.queries import DATETIME, Metric, Scope
from services.api.routes import reports
from services.common.events import (
    DEPARTEMENT_CODE_PATTERN,
    ENTITY_ID_PATTERN,
    EPCI_CODE_PATTERN,
    FOREIGN_CODE_PATTERN,
    REGION_CODE_PATTERN,
    format_timestamp,
)
from services.common.names import SCORE_FORMULA, AccountOrigin, Category, Platform, SourceKind, Table
from services.common.settings import Settings

# The version of the package's format: its schemas change only with a new version.
VERSION = "1.0.0"
SCHEMAS_CREATED = "2026-12-07"  # when version 1.0.0 of the schemas was written
PACKAGE_FILE = "datapackage.json"
MEDIA_TYPE = "application/zip"

# An INSEE code of a commune (2A/2B for Corsica), a département or a région (services/common/events.py).
INSEE_CODE_PATTERN = "^(?:[0-9]{5}|2[AB][0-9]{3}|[0-9]{2,3}|2[AB])$"


def _or_foreign(pattern: str) -> str:
    """``pattern`` or a foreign code (BE-BRU): what an imported entity's département or région may be."""
    return f"^(?:{pattern[1:-1]}|{FOREIGN_CODE_PATTERN[1:-1]})$"


LICENSE = {
    "name": "etalab-2.0",
    "title": "Licence Ouverte / Open Licence version 2.0",
    "path": "https://www.etalab.gouv.fr/licence-ouverte-open-licence/",
}
SOURCES = [
    {
        "title": "Code officiel géographique, INSEE",
        "path": "https://www.insee.fr/fr/information/2560452",
        "description": "Collectivités (communes, départements, régions), leurs codes et leurs populations "
        "municipales. Source : INSEE, Code officiel géographique, publié sous la Licence Ouverte / Open "
        "Licence version 2.0 (Etalab).",
        "license": LICENSE,
    },
    {
        "title": "@etalab/decoupage-administratif 6.0.0",
        "path": "https://github.com/etalab/decoupage-administratif",
        "description": "Le Code officiel géographique et les EPCI sous forme de fichiers JSON (© Etalab, "
        "licence MIT), dont le référentiel des collectivités de barometre est dérivé.",
        "license": {"name": "MIT", "title": "MIT License", "path": "https://opensource.org/license/mit"},
    },
    {
        "title": "Observations de barometre",
        "description": "Relevés des comptes officiels des collectivités sur les réseaux sociaux "
        "(abonnés, publications), importés, poussés, relevés par les pollers ou simulés.",
    },
]
CONTRIBUTORS = [{"title": "barometre", "role": "author"}]

MONTHS_FR = reports.MONTHS_FR
CATEGORIES = [c.value for c in Category]
PLATFORMS = [p.value for p in Platform]


# --- Table Schemas.


def _field(name: str, kind: str, title: str, description: str, **extra: Any) -> dict[str, Any]:
    field: dict[str, Any] = {"name": name, "type": kind, "title": title, "description": description}
    constraints = {
        k: extra.pop(k) for k in ("required", "enum", "pattern", "minimum", "maximum") if k in extra
    }
    if constraints:
        field["constraints"] = constraints
    field.update(extra)
    return field


def _month_field() -> dict[str, Any]:
    return _field(
        "month", "yearmonth", "Mois", "Mois du baromètre (AAAA-MM).", required=True, example="2013-05"
    )


def _category_field() -> dict[str, Any]:
    return _field(
        "category",
        "string",
        "Catégorie",
        "Catégorie de collectivité : commune, departement, region ou epci (intercommunalité).",
        required=True,
        enum=CATEGORIES,
        example="commune",
    )


def _platform_field() -> dict[str, Any]:
    return _field(
        "platform",
        "string",
        "Réseau social",
        "Réseau social (x pour X, anciennement Twitter).",
        required=True,
        enum=PLATFORMS,
        example="facebook",
    )


def _entity_fields() -> list[dict[str, Any]]:
    return [
        _field(
            "entity_id",
            "string",
            "Identifiant de la collectivité",
            "COM:<code INSEE> (commune), DEP:<code> (département), REG:<code> (région) ou EPCI:<SIREN> "
            "(intercommunalité) ; une collectivité étrangère importée a un code préfixé de son pays "
            "(COM:BE-21004).",
            required=True,
            pattern=ENTITY_ID_PATTERN,
            example="COM:38185",
        ),
        _field(
            "code_insee",
            "string",
            "Code INSEE",
            "Code officiel géographique de la commune, du département ou de la région (vide pour une "
            "intercommunalité ou une collectivité étrangère).",
            pattern=INSEE_CODE_PATTERN,
            example="38185",
        ),
        _field(
            "siren",
            "string",
            "SIREN",
            "Numéro SIREN de l'intercommunalité (vide pour les autres collectivités).",
            pattern=EPCI_CODE_PATTERN,
            example="200040715",
        ),
        _field("name", "string", "Nom", "Nom de la collectivité.", required=True, example="Grenoble"),
    ]


def _simulated_field(what: str) -> dict[str, Any]:
    return _field(
        "simulated",
        "boolean",
        "Données simulées",
        f"true si {what} compte des données simulées (comptes inventés par le simulateur de barometre, "
        "jamais relevés sur les réseaux) ; false si les données sont réelles.",
        required=True,
        trueValues=["true"],
        falseValues=["false"],
    )


def _count(name: str, title: str, description: str, **extra: Any) -> dict[str, Any]:
    return _field(name, "integer", title, description, required=True, minimum=0, **extra)


def _schema(
    name: str, title: str, description: str, fields: list[dict[str, Any]], key: list[str]
) -> dict[str, Any]:
    """A Table Schema with the metadata schema.data.gouv.fr gives its schemas."""
    return {
        "name": name,
        "title": title,
        "description": description,
        "countryCode": "FR",
        "version": VERSION,
        "contributors": CONTRIBUTORS,
        "licenses": [LICENSE],
        "sources": SOURCES,
        "fields": fields,
        "primaryKey": key,
        "missingValues": [""],
    }


PRESENCE_SCHEMA = _schema(
    "barometre-presence",
    "Présence des collectivités sur les réseaux sociaux, par collectivité et par réseau",
    "Une ligne par collectivité et réseau où un compte officiel de la collectivité a été présent (actif) "
    "au plus tard à la fin du mois : présence à cet instant (un compte actif, docs/SCORING.md) et abonnés.",
    [
        _month_field(),
        *_entity_fields(),
        _category_field(),
        _field(
            "departement",
            "string",
            "Département",
            "Code INSEE du département de la collectivité (vide pour une région) ; pour une collectivité "
            "étrangère importée, un code préfixé de son pays (BE-BRU).",
            pattern=_or_foreign(DEPARTEMENT_CODE_PATTERN),
            example="38",
        ),
        _field(
            "region",
            "string",
            "Région",
            "Code INSEE de la région de la collectivité ; pour une collectivité étrangère importée, un "
            "code préfixé de son pays (BE-BRU).",
            pattern=_or_foreign(REGION_CODE_PATTERN),
            example="84",
        ),
        _field(
            "population",
            "integer",
            "Population",
            "Population municipale (INSEE) ; pour un département, une région ou une intercommunalité, la "
            "somme de celles de ses communes.",
            minimum=0,
        ),
        _platform_field(),
        _count(
            "accounts",
            "Comptes",
            "Comptes officiels de la collectivité sur ce réseau présents au moins une fois au plus tard à "
            "la fin du mois.",
        ),
        _count("accounts_present", "Comptes présents", "Parmi eux, les comptes présents à la fin du mois."),
        _field(
            "present",
            "boolean",
            "Présente",
            "true si la collectivité est présente sur ce réseau à la fin du mois (au moins un compte "
            "présent).",
            required=True,
            trueValues=["true"],
            falseValues=["false"],
        ),
        _field(
            "followers",
            "integer",
            "Abonnés",
            "Abonnés de ses comptes sur ce réseau à la fin du mois (dernier relevé de chacun dans les 45 "
            "jours précédents) ; vide sans relevé dans cette fenêtre.",
            minimum=0,
        ),
        _simulated_field("la ligne"),
    ],
    ["month", "entity_id", "platform"],
)
RANKINGS_SCHEMA = _schema(
    "barometre-classements",
    "Meilleures progressions du mois, par catégorie et par réseau",
    "Les 5 collectivités de chaque catégorie qui ont gagné le plus d'abonnés sur chaque réseau en 30 jours "
    "à la fin du mois, en nombre (growth_abs) et en pourcentage (growth_pct).",
    [
        _month_field(),
        _category_field(),
        _platform_field(),
        _field(
            "metric",
            "string",
            "Mesure",
            "growth_abs : abonnés gagnés ; growth_pct : progression en pourcentage.",
            required=True,
            enum=[m.value for m in reports.METRICS],
        ),
        _field(
            "window",
            "string",
            "Période",
            "Durée sur laquelle la progression est mesurée (30d : 30 jours).",
            required=True,
            enum=[reports.WINDOW.value],
        ),
        _field(
            "rank", "integer", "Rang", "Rang dans le classement (1 : la meilleure).", required=True, minimum=1
        ),
        *_entity_fields(),
        _field(
            "value",
            "number",
            "Progression",
            "Abonnés gagnés (growth_abs) ou progression en % (growth_pct) sur la période.",
            required=True,
        ),
        _count("followers", "Abonnés", "Abonnés à la fin du mois."),
        _field(
            "followers_before",
            "integer",
            "Abonnés en début de période",
            "Abonnés 30 jours avant la fin du mois.",
            minimum=0,
        ),
        _simulated_field("la ligne"),
    ],
    ["month", "category", "platform", "metric", "rank"],
)
SCORES_SCHEMA = _schema(
    "barometre-scores",
    "Score de bonnes pratiques, par catégorie et par réseau",
    "Score moyen de bonnes pratiques (0 à 5, docs/SCORING.md) des comptes notés à la fin du mois, et son "
    "évolution sur un mois et sur un an.",
    [
        _month_field(),
        _category_field(),
        _platform_field(),
        _field(
            "score",
            "number",
            "Score moyen",
            "Score moyen (0 à 5) ; vide sans compte noté.",
            minimum=0,
            maximum=5,
        ),
        _count("count", "Comptes notés", "Comptes qui ont un score à la fin du mois."),
        _field(
            "score_previous_month",
            "number",
            "Score du mois précédent",
            "Score moyen à la fin du mois précédent.",
            minimum=0,
            maximum=5,
        ),
        _field("change_month", "number", "Évolution sur un mois", "score - score_previous_month."),
        _field(
            "score_previous_year",
            "number",
            "Score un an avant",
            "Score moyen à la fin du même mois un an avant.",
            minimum=0,
            maximum=5,
        ),
        _field("change_year", "number", "Évolution sur un an", "score - score_previous_year."),
        _field(
            "formula",
            "string",
            "Formule",
            "Version de la formule du score (docs/SCORING.md).",
            required=True,
            enum=[SCORE_FORMULA],
        ),
        _simulated_field("la ligne"),
    ],
    ["month", "category", "platform"],
)
COVERAGE_SCHEMA = _schema(
    "barometre-couverture",
    "Couverture des chiffres, par catégorie et par réseau",
    "Ce que les chiffres voient à la fin du mois : collectivités du référentiel, celles qui ont un compte "
    "connu, observé dans les 45 jours, observé plus tôt seulement (périmé), jamais observé ; les mêmes "
    "comptes par compte.",
    [
        _month_field(),
        _category_field(),
        _platform_field(),
        _count("entities", "Collectivités", "Collectivités de la catégorie dans le référentiel."),
        _count("without_account", "Sans compte", "Collectivités sans compte connu sur ce réseau."),
        _count(
            "with_account", "Avec un compte", "Collectivités avec au moins un compte connu sur ce réseau."
        ),
        _count("observed", "Observées", "Collectivités dont un compte a été observé dans les 45 jours."),
        _count("stale", "Périmées", "Collectivités observées, mais pas dans les 45 jours."),
        _count(
            "never_observed", "Jamais observées", "Collectivités dont aucun compte n'a jamais été observé."
        ),
        _count("accounts", "Comptes", "Comptes connus."),
        _count("accounts_observed", "Comptes observés", "Comptes observés dans les 45 jours."),
        _count("accounts_stale", "Comptes périmés", "Comptes observés, mais pas dans les 45 jours."),
        _count("accounts_never_observed", "Comptes jamais observés", "Comptes jamais observés."),
        _simulated_field("la ligne"),
    ],
    ["month", "category", "platform"],
)

# resource name -> (file, schema); the CSV columns are the schema's fields, in order.
RESOURCES: dict[str, tuple[str, dict[str, Any]]] = {
    "presence": ("presence.csv", PRESENCE_SCHEMA),
    "rankings": ("rankings.csv", RANKINGS_SCHEMA),
    "scores": ("scores.csv", SCORES_SCHEMA),
    "coverage": ("coverage.csv", COVERAGE_SCHEMA),
}
_TYPES = {"integer": ColumnType.INT, "number": ColumnType.FLOAT, "boolean": ColumnType.BOOL}


def columns(schema: Mapping[str, Any]) -> dict[str, ColumnType]:
    return {f["name"]: _TYPES.get(f["type"], ColumnType.TEXT) for f in schema["fields"]}


# --- The figures.


def codes(entity_id: str) -> dict[str, str | None]:
    """``code_insee`` and ``siren`` of an entity id (None where it has none)."""
    kind, _, code = entity_id.partition(":")
    if "-" in code:  # a foreign entity (COM:BE-21004)
        return {"code_insee": None, "siren": None}
    if kind == Category.EPCI.kind:
        return {"code_insee": None, "siren": code}
    return {"code_insee": code, "siren": None}


def entity_presence(client: Client, db: str, at: datetime) -> list[dict[str, Any]]:
    """Each entity and platform with an account whose presence began at or before ``at``: its accounts,
    those present at ``at``, and the entity's registry row."""
    sql = f"""
        SELECT p.entity_id, p.platform, e.name, e.category, e.departement, e.region, e.population,
               count() AS n, countIf(p.present_then) AS n_present
        FROM (
            SELECT entity_id, platform,
                   arrayExists((s, e) -> s <= {{at:{DATETIME}}} AND {{at:{DATETIME}}} < e, starts, ends)
                     AS present_then
            FROM {db}.{Table.PRESENCE} FINAL
            WHERE arrayExists(s -> s <= {{at:{DATETIME}}}, starts)
        ) AS p
        INNER JOIN (
            SELECT entity_id, name, category, departement, region, population FROM {db}.{Table.ENTITIES} FINAL
        ) AS e ON e.entity_id = p.entity_id
        GROUP BY p.entity_id, p.platform, e.name, e.category, e.departement, e.region, e.population
        ORDER BY p.entity_id, p.platform
    """
    return [
        {
            "entity_id": str(r[0]),
            "platform": str(r[1]),
            "name": str(r[2]),
            "category": str(r[3]),
            "departement": r[4],
            "region": r[5],
            "population": r[6],
            "accounts": int(r[7]),
            "accounts_present": int(r[8]),
            "present": int(r[8]) > 0,
        }
        for r in client.query(sql, parameters={"at": at}).result_rows
    ]


def simulated_pairs(client: Client, db: str, at: datetime) -> set[tuple[str, str, str]]:
    """(entity_id, platform, category) of every entity and platform with a simulated account: registered
    with origin ``simulator``, or unregistered and observed up to ``at`` through simulator snapshots (a
    lookup by the snapshots' key of the few unregistered accounts, as coverage does)."""
    sql = f"""
        SELECT DISTINCT s_entity, s_platform, e.category FROM (
            SELECT argMax(entity_id, version) AS s_entity, argMax(platform, version) AS s_platform
            FROM {db}.{Table.ACCOUNTS}
            GROUP BY account_id
            HAVING argMax(origin, version) = {{simulator:String}}
            UNION ALL
            SELECT DISTINCT entity_id AS s_entity, toString(platform) AS s_platform
            FROM {db}.{Table.SNAPSHOTS}
            WHERE account_id IN (
                SELECT account_id FROM {db}.{Table.ACCOUNT_LATEST} FINAL
                WHERE account_id NOT IN (SELECT account_id FROM {db}.{Table.ACCOUNTS})
                  AND first_seen <= {{at:{DATETIME}}}
            ) AND source = {{source:String}} AND observed_at <= {{at:{DATETIME}}}
        ) AS s
        INNER JOIN (SELECT entity_id, category FROM {db}.{Table.ENTITIES} FINAL) AS e
            ON e.entity_id = s.s_entity
    """
    params = {"at": at, "simulator": AccountOrigin.SIMULATOR.value, "source": SourceKind.SIMULATOR.value}
    return {(str(r[0]), str(r[1]), str(r[2])) for r in client.query(sql, parameters=params).result_rows}


def any_point(client: Client, db: str, since: datetime, at: datetime, staleness: timedelta) -> bool:
    """Whether a daily point was observed in ``(since - staleness, at]``: the widest window the report's
    rankings and scores read for a month whose end is ``at`` (``since``: the end of the month a year
    before)."""
    sql = f"SELECT count() FROM (SELECT 1 {queries._daily_points(db, 'since')} LIMIT 1)"
    params = {"since": since, "at": at, "staleness": int(staleness.total_seconds() * 1000)}
    return int(client.query(sql, parameters=params).result_rows[0][0]) > 0


def followers_at(
    client: Client, db: str, platform: Platform, at: datetime, staleness: timedelta
) -> dict[str, int]:
    """Each entity's followers on ``platform`` at ``at`` (the ``followers`` ranking of /v1/rankings)."""
    ranked = queries.rankings_at(
        client, db, platform, Scope(), reports.WINDOW, Metric.FOLLOWERS, at, staleness, 10_000_000
    )
    return {r.entity_id: r.followers for r in ranked}


@dataclass(frozen=True)
class Package:
    """A built data package: its descriptor and the CSV files it names."""

    descriptor: dict[str, Any]
    files: dict[str, bytes]  # file name -> content, datapackage.json excepted

    def descriptor_bytes(self) -> bytes:
        return (json.dumps(self.descriptor, ensure_ascii=False, indent=2) + "\n").encode()

    def to_zip(self) -> bytes:
        """datapackage.json and the CSV files at the root of a zip."""
        sink = io.BytesIO()
        with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(PACKAGE_FILE, self.descriptor_bytes())
            for name, content in self.files.items():
                archive.writestr(name, content)
        return sink.getvalue()

    def write(self, folder: Path) -> list[Path]:
        """datapackage.json and the CSV files into ``folder`` (created if needed); the paths written."""
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for name, content in [(PACKAGE_FILE, self.descriptor_bytes()), *self.files.items()]:
            path = folder / name
            path.write_bytes(content)
            written.append(path)
        return written


def file_stem(month: date) -> str:
    return f"barometre-opendata-{month:%Y-%m}"


async def build(api: Api, month: date) -> Package:
    """The package of ``month`` (a month already begun), over every entity of the registry."""
    end = reports.month_end(month)
    current = now().replace(microsecond=0)
    is_partial = current < end
    at = current if is_partial else end
    label = f"{month:%Y-%m}"
    scopes = {c: Scope(category=c) for c in Category}
    # The report's parts, under the report's cache keys (services/api/routes/reports.py); none when no
    # daily point lies in any window they read (a month before any observation): they would all be empty.
    since = reports.month_end(reports.add_months_date(month, -12))
    observed = await api.cached(
        ("opendata-observed", since, at), partial(any_point, api.client(), api.db, since, at, api.staleness)
    )
    rankings: dict[Hashable, list[ReportRanking]] = {}
    scores: dict[Hashable, ReportScore] = {}
    if observed:
        rankings = await reports._parts(
            api,
            {
                ("report-rankings", c, p, None, at): partial(reports._rankings, api, s, p, at)
                for c, s in scopes.items()
                for p in Platform
            },
        )
        scores = await reports._parts(
            api,
            {
                ("report-scores", c, p, None, at): partial(reports._scores, api, s, p, at, month)
                for c, s in scopes.items()
                for p in Platform
            },
        )
    else:
        for c in Category:
            for p in Platform:
                rankings[("report-rankings", c, p, None, at)] = []
                scores[("report-scores", c, p, None, at)] = ReportScore(
                    category=c,
                    platform=p,
                    score=None,
                    count=0,
                    score_previous_month=None,
                    change_month=None,
                    score_previous_year=None,
                    change_year=None,
                )
    jobs: dict[Hashable, Any] = {
        ("opendata-presence", at): partial(entity_presence, api.client(), api.db, at),
        ("opendata-simulated", at): partial(simulated_pairs, api.client(), api.db, at),
        ("opendata-coverage", at): partial(
            coverage_queries.coverage, api.client(), api.db, None, None, None, at, current, api.staleness
        ),
        **{
            ("opendata-followers", p, at): partial(followers_at, api.client(), api.db, p, at, api.staleness)
            for p in Platform
        },
    }
    found = await reports._parts(api, jobs)
    simulated: set[tuple[str, str, str]] = found[("opendata-simulated", at)]
    by_pair = {(e, p) for e, p, _ in simulated}
    by_group = {(c, p) for _, p, c in simulated}

    presence_rows = []
    for row in found[("opendata-presence", at)]:
        followers = found[("opendata-followers", Platform(row["platform"]), at)]
        presence_rows.append(
            {
                **row,
                **codes(row["entity_id"]),
                "month": label,
                "followers": followers.get(row["entity_id"]),
                "simulated": (row["entity_id"], row["platform"]) in by_pair,
            }
        )
    ranking_rows = [
        {
            "month": label,
            "category": r.category.value,
            "platform": r.platform.value,
            "metric": r.metric.value,
            "window": reports.WINDOW.value,
            "rank": item.rank,
            "entity_id": item.entity_id,
            **codes(item.entity_id),
            "name": item.name,
            "value": item.value,
            "followers": item.followers,
            "followers_before": item.followers_before,
            "simulated": (item.entity_id, r.platform.value) in by_pair,
        }
        for c in Category
        for p in Platform
        for r in rankings[("report-rankings", c, p, None, at)]
        for item in r.items
    ]
    score_rows = []
    for c in Category:
        for p in Platform:
            s = scores[("report-scores", c, p, None, at)]
            score_rows.append(
                {
                    "month": label,
                    "category": c.value,
                    "platform": p.value,
                    "score": s.score,
                    "count": s.count,
                    "score_previous_month": s.score_previous_month,
                    "change_month": s.change_month,
                    "score_previous_year": s.score_previous_year,
                    "change_year": s.change_year,
                    "formula": SCORE_FORMULA,
                    "simulated": (c.value, p.value) in by_group,
                }
            )
    coverage_found: coverage_queries.Coverage = found[("opendata-coverage", at)]
    coverage_rows = [
        {
            "month": label,
            "category": row.category.value,
            "platform": row.platform.value,
            "entities": row.entities,
            "without_account": row.without_account,
            "with_account": row.known.with_account,
            "observed": row.known.observed,
            "stale": row.known.stale,
            "never_observed": row.known.never_observed,
            "accounts": row.known.accounts,
            "accounts_observed": row.known.accounts_observed,
            "accounts_stale": row.known.accounts_stale,
            "accounts_never_observed": row.known.accounts_never_observed,
            "simulated": (row.category.value, row.platform.value) in by_group,
        }
        for row in sorted(
            coverage_found.rows, key=lambda r: (CATEGORIES.index(r.category), PLATFORMS.index(r.platform))
        )
    ]
    tables = {
        "presence": presence_rows,
        "rankings": ranking_rows,
        "scores": score_rows,
        "coverage": coverage_rows,
    }
    is_simulated = bool(simulated) or coverage_found.simulated
    return assemble(month, at, is_partial, is_simulated, tables, api.settings.staleness_days)


def assemble(
    month: date,
    at: datetime,
    is_partial: bool,
    simulated: bool,
    tables: Mapping[str, list[dict[str, Any]]],
    staleness_days: int,
) -> Package:
    """The descriptor and CSV files of the package, from each resource's rows (dicts keyed by field)."""
    files: dict[str, bytes] = {}
    resources = []
    for name, (path, schema) in RESOURCES.items():
        files[path] = to_csv(columns(schema), tables[name])
        resources.append(
            {
                "name": name,
                "path": path,
                "profile": "tabular-data-resource",
                "title": schema["title"],
                "description": schema["description"],
                "format": "csv",
                "mediatype": "text/csv",
                "encoding": "utf-8",
                "dialect": {"delimiter": ",", "header": True, "lineTerminator": "\n"},
                "schema": {**schema, "created": SCHEMAS_CREATED},
            }
        )
    heading = reports.title(f"{month:%Y-%m}")
    description = (
        f"Baromètre des collectivités territoriales sur les réseaux sociaux, chiffres au "
        f"{at.astimezone(UTC):%d/%m/%Y %H:%M} UTC ({'mois en cours' if is_partial else 'fin du mois'}) : "
        "présence par collectivité et par réseau, meilleures progressions, score de bonnes pratiques et "
        f"couverture (fenêtre de fraîcheur : {staleness_days} jours)."
    )
    if simulated:
        heading += " (données simulées)"
        description += (
            " ATTENTION : ces chiffres comptent des données simulées (comptes inventés par le simulateur de "
            "barometre) ; la colonne simulated dit quelles lignes."
        )
    descriptor = {
        "profile": "tabular-data-package",
        "name": file_stem(month),
        "id": f"barometre-collectivites-reseaux-sociaux/{month:%Y-%m}",
        "title": heading,
        "description": description,
        "version": VERSION,
        "created": format_timestamp(now().replace(microsecond=0)),
        "keywords": ["collectivités territoriales", "réseaux sociaux", "communes", "baromètre"],
        "countryCode": "FR",
        "licenses": [LICENSE],
        "sources": SOURCES,
        "contributors": CONTRIBUTORS,
        # barometre's own properties (a Data Package may carry others).
        "month": f"{month:%Y-%m}",
        "at": format_timestamp(at),
        "partial": is_partial,
        "simulated": simulated,
        "staleness_days": staleness_days,
        "resources": resources,
    }
    return Package(descriptor, files)


# --- The command line: `barometre export opendata --month YYYY-MM --out DIR`.


def parse_month(text: str) -> date:
    """``YYYY-MM`` in 2000-2099 that has begun; ValueError saying what is wrong otherwise."""
    if not re.fullmatch(reports.MONTH_PATTERN, text.strip()):
        raise ValueError(f"{text!r} is not a month; expected YYYY-MM in 2000-2099, e.g. 2013-05")
    month = date(int(text.strip()[:4]), int(text.strip()[5:]), 1)
    current = now().date().replace(day=1)
    if month > current:
        raise ValueError(f"no data for {month:%Y-%m} yet: the latest month is {current:%Y-%m}")
    return month


def write_folder(settings: Settings, month: date, out: Path) -> list[Path]:
    """Build the package of ``month`` against the configured ClickHouse and write it into ``out``."""
    api = Api(settings)
    try:
        package = anyio.run(build, api, month)
    finally:
        api.clickhouse.close()
    return package.write(out)
