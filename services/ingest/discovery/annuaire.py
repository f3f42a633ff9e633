"""The Annuaire de l'administration (service-public.fr, DILA): the social links each local office lists.

Read through the Opendatasoft Explore API v2.1 of the dataset ``api-lannuaire-administration``::

    GET {annuaire_url}?select=...&where=...&order_by=id&limit=100&offset=N
    → {"total_count": 1234, "results": [{"id": "...", "nom": "Mairie - Grenoble", "siren": "213801855",
       "code_insee_commune": "38185", "pivot": "[{\\"type_service_local\\": \\"mairie\\", ...}]",
       "reseau_social": "[{\\"valeur\\": \\"https://...\\", \\"description\\": \\"\\",
                          \\"custom_dico2\\": \\"Facebook\\"}]", ...}]}

Nested fields (``pivot``, ``reseau_social``) are JSON documents inside JSON strings. Opendatasoft pages
at most 100 records (``limit``) and no further than ``offset + limit = 10000``: each office type is
asked alone (``where=pivot like "<type>" and reseau_social is not null``), and a type with more records
than one window can reach is asked again département by département
(``startswith(code_insee_commune, "<dep>")``).

Offices → entities, by the type in ``pivot`` (read exactly, the ``where`` only narrows):

- ``mairie`` → ``COM:<code_insee_commune>``; mairies annexes and déléguées (named so) are skipped:
  their pages are a quarter's, not the commune's;
- ``epci`` → ``EPCI:<siren>``;
- ``cg`` (conseil départemental) and ``cr`` (conseil régional) → the département or région of the
  commune the council sits in.

Each ``reseau_social`` entry's ``valeur`` is normalised by :func:`~services.common.links.parse_link`;
``custom_dico2`` (the network's name) is used only when the link alone does not say the platform.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from services.common.links import Link, LinkError, parse_link
from services.common.names import Category, Platform
from services.common.settings import Settings
from services.ingest.discovery.http import Fetcher
from services.ingest.discovery.model import Candidate, DiscoverySource, EntityIndex, Harvest
from services.ingest.sources.pollers.errors import RequestFailed

log = logging.getLogger(__name__)

# type_service_local → the category of the collectivité the office is.
OFFICE_TYPES: dict[str, Category] = {
    "mairie": Category.COMMUNE,
    "epci": Category.EPCI,
    "cg": Category.DEPARTEMENT,
    "cr": Category.REGION,
}

PAGE_LIMIT = 100  # Opendatasoft's maximum
WINDOW = 10_000  # offset + limit may not exceed this
SELECT = "id,nom,siren,code_insee_commune,pivot,reseau_social"

# custom_dico2 → platform, lower-cased; the directory's own spellings ("Linkedin", "Youtube", "Twitter").
NETWORK_NAMES: dict[str, Platform] = {
    "facebook": Platform.FACEBOOK,
    "twitter": Platform.X,
    "x": Platform.X,
    "x (twitter)": Platform.X,
    "instagram": Platform.INSTAGRAM,
    "youtube": Platform.YOUTUBE,
    "linkedin": Platform.LINKEDIN,
    "tiktok": Platform.TIKTOK,
    "threads": Platform.THREADS,
    "mastodon": Platform.MASTODON,
    "bluesky": Platform.BLUESKY,
}

_ANNEXE = re.compile(r"mairie\s+(d[ée]l[ée]gu[ée]e|annexe)|bureau\s+annexe|\s-\s(annexe|antenne)\s", re.I)
_INSEE = re.compile(r"^(?:[0-9]{5}|2[AB][0-9]{3})$")
_SIREN = re.compile(r"^[0-9]{9}$")


def where_clause(office_type: str, departement: str | None = None) -> str:
    """The ODSQL filter for one office type (and one département's communes)."""
    if office_type not in OFFICE_TYPES:
        raise ValueError(f"unknown office type {office_type!r}")
    clause = f'pivot like "{office_type}" and reseau_social is not null'
    if departement is not None:
        if not re.fullmatch(r"[0-9]{2,3}|2[AB]", departement):
            raise ValueError(f"not a département code: {departement!r}")
        clause += f' and startswith(code_insee_commune, "{departement}")'
    return clause


class MalformedPage(ValueError):
    """The answer is not an Explore v2.1 records page."""


def parse_page(body: Any) -> tuple[int, list[Any]]:
    """``(total_count, results)`` of a records page; MalformedPage when it is not one."""
    if not isinstance(body, dict):
        raise MalformedPage("the answer is not a JSON object")
    total, results = body.get("total_count"), body.get("results")
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        raise MalformedPage("no total_count")
    if not isinstance(results, list):
        raise MalformedPage("no results list")
    return total, results


def _json_field(record: dict[str, Any], name: str) -> Any:
    """A nested field: the dataset stores JSON documents as strings; a decoded one is taken as is."""
    raw = record.get(name)
    if raw is None or isinstance(raw, list | dict):
        return raw
    if not isinstance(raw, str):
        raise ValueError(f"{name} is neither JSON text nor JSON")
    text = raw.strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise ValueError(f"{name} is not valid JSON") from None


def office_types(record: dict[str, Any]) -> list[str]:
    """The ``type_service_local`` values of the record's ``pivot``."""
    pivot = _json_field(record, "pivot")
    items = pivot if isinstance(pivot, list) else [pivot] if isinstance(pivot, dict) else []
    return [
        str(p["type_service_local"]) for p in items if isinstance(p, dict) and p.get("type_service_local")
    ]


def entity_of_office(record: dict[str, Any], office_type: str, entities: EntityIndex) -> str | None:
    """The entity an office is, or None when the registry does not know it; ValueError when unreadable."""
    category = OFFICE_TYPES[office_type]
    if category is Category.EPCI:
        siren = str(record.get("siren") or "").strip()
        if not _SIREN.match(siren):
            raise ValueError(f"an EPCI office without a valid siren ({siren!r})")
        entity_id = f"EPCI:{siren}"
        return entity_id if entity_id in entities else None
    code = str(record.get("code_insee_commune") or "").strip().upper()
    if not _INSEE.match(code):
        raise ValueError(f"no valid code_insee_commune ({code!r})")
    commune = f"COM:{code}"
    if category is Category.COMMUNE:
        return commune if commune in entities else None
    seat_of = entities.departement if category is Category.DEPARTEMENT else entities.region
    area = seat_of.get(commune)
    if area is None:
        return None
    entity_id = f"{category.kind}:{area}"
    return entity_id if entity_id in entities else None


def social_links(record: dict[str, Any]) -> list[tuple[str, Platform | None]]:
    """``(valeur, platform named by custom_dico2)`` of each ``reseau_social`` entry."""
    value = _json_field(record, "reseau_social")
    if value is None:
        return []
    entries = value if isinstance(value, list) else [value]
    out: list[tuple[str, Platform | None]] = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("valeur"), str):
            raise ValueError("a reseau_social entry has no valeur")
        name = entry.get("custom_dico2")
        named = NETWORK_NAMES.get(name.strip().lower()) if isinstance(name, str) else None
        out.append((entry["valeur"].strip(), named))
    return out


def record_candidates(record: Any, office_type: str, entities: EntityIndex, harvest: Harvest) -> None:
    """Add the candidates of one record to ``harvest`` (or count why it was left out, or report it)."""
    if not isinstance(record, dict):
        harvest.issue("?", "a record is not a JSON object")
        return
    reference = str(record.get("id") or "").strip()
    if not reference:
        harvest.issue("?", "a record without an id")
        return
    try:
        if office_type not in office_types(record):
            harvest.skipped[f"not a {office_type} office"] += 1
            return
        if office_type == "mairie" and _ANNEXE.search(str(record.get("nom") or "")):
            harvest.skipped["mairie annexe or déléguée"] += 1
            return
        entity_id = entity_of_office(record, office_type, entities)
        links = social_links(record)
    except ValueError as exc:
        harvest.issue(reference, str(exc))
        return
    if entity_id is None:
        harvest.skipped[f"{OFFICE_TYPES[office_type].value} not in the registry"] += 1
        return
    for given, named in links:
        if not given:
            continue
        try:
            link = _parse(given, named)
        except LinkError as exc:
            harvest.issue(reference, f"reseau_social {given!r}: {exc}")
            continue
        if link is None:
            harvest.skipped["network barometre does not follow"] += 1
            continue
        harvest.candidates.append(Candidate(DiscoverySource.ANNUAIRE, entity_id, link, given, reference))


def _parse(given: str, named: Platform | None) -> Link | None:
    """The link of ``given``: by its own form first; by the network's name when the form says nothing."""
    try:
        return parse_link(given)
    except LinkError:
        if named is None:
            if given.lower().startswith(("http://", "https://")):
                return None  # a URL of a network barometre does not follow (Pinterest, Snapchat...)
            raise
        return parse_link(given, named)


async def _pages(
    fetcher: Fetcher, settings: Settings, where: str, harvest: Harvest
) -> tuple[int | None, list[Any]]:
    """Records of one ``where``, page by page within the window; (total_count, records)."""
    records: list[Any] = []
    total: int | None = None
    offset = 0
    while offset + PAGE_LIMIT <= WINDOW:
        harvest.requests += 1
        params = {
            "select": SELECT,
            "where": where,
            "order_by": "id",
            "limit": str(PAGE_LIMIT),
            "offset": str(offset),
        }
        try:
            response = await fetcher.get(
                settings.annuaire_url, params=params, headers={"Accept": "application/json"}
            )
            total, results = parse_page(json.loads(response.content))
        except RequestFailed as exc:
            harvest.issue(where, f"request failed at offset {offset}: {exc.detail}")
            harvest.failed = f"some annuaire pages could not be read ({exc.detail})"
            break
        except ValueError as exc:
            harvest.issue(where, f"unusable page at offset {offset}: {exc}")
            harvest.failed = "some annuaire pages were unusable"
            break
        records.extend(results)
        offset += PAGE_LIMIT
        if offset >= total or not results:
            break
    return total, records


async def harvest_annuaire(fetcher: Fetcher, settings: Settings, entities: EntityIndex) -> Harvest:
    """The social links of every mairie, EPCI, conseil départemental and régional the directory lists."""
    harvest = Harvest(DiscoverySource.ANNUAIRE)
    departements = sorted(e.partition(":")[2] for e in entities.known if e.startswith("DEP:"))
    for office_type in OFFICE_TYPES:
        total, records = await _pages(fetcher, settings, where_clause(office_type), harvest)
        if total is not None and total > WINDOW:
            # More than one window can reach: ask again, one département's communes at a time.
            records = []
            for departement in departements:
                _, part = await _pages(fetcher, settings, where_clause(office_type, departement), harvest)
                records.extend(part)
        for record in records:
            record_candidates(record, office_type, entities, harvest)
    log.info("annuaire: %d candidates in %d requests", len(harvest.candidates), harvest.requests)
    return harvest
