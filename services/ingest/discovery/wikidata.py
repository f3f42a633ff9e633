"""Wikidata: items carrying a French collectivité's code and an official account, by SPARQL.

One query per (code property, account property) pair, paged with ``LIMIT``/``OFFSET`` under a total
``ORDER BY``, so that each query stays small (well within the endpoint's 60 s limit) and pages are
stable. Queries are POSTed as a form with ``Accept: application/sparql-results+json`` and a
descriptive User-Agent (Wikimedia's User-Agent policy), one at a time (:class:`~.http.Fetcher`).

Only truthy statements are read (``wdt:``): the best-ranked values of each property, which leaves out
deprecated statements (an account the item no longer uses, a former code) and, where a value is
marked preferred, the merely normal ones.

Codes → entity ids: INSEE commune code (P374) → ``COM:<code>``, département code (P2586) →
``DEP:<code>``, région code (P2585) → ``REG:<code>``, SIREN (P1616) → ``EPCI:<siren>``, each kept only if
the registry knows it: P374 is also on former communes and arrondissements, P1616 on every legal
person. SIRENs are asked only of items without an INSEE commune code (communes have SIRENs too).

The answer is read strictly as the SPARQL 1.1 Query Results JSON Format (``head.vars``,
``results.bindings[*].<var>.{type,value,datatype,xml:lang}``): a malformed row is reported and
skipped, a malformed document fails that page, and neither stops the others.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from services.common.links import LinkError, parse_link
from services.common.names import Category, Platform
from services.common.settings import Settings
from services.ingest.discovery.http import Fetcher
from services.ingest.discovery.model import Candidate, DiscoverySource, EntityIndex, Harvest
from services.ingest.sources.pollers.errors import RequestFailed

log = logging.getLogger(__name__)

# Code property → the category of the entities it identifies.
CODE_PROPERTIES: dict[str, Category] = {
    "P374": Category.COMMUNE,  # INSEE municipality code
    "P2586": Category.DEPARTEMENT,  # INSEE department code
    "P2585": Category.REGION,  # INSEE region code
    "P1616": Category.EPCI,  # SIREN number
}

# Account property → platform.
ACCOUNT_PROPERTIES: dict[str, Platform] = {
    "P2013": Platform.FACEBOOK,  # Facebook username
    "P2002": Platform.X,  # X username
    "P2003": Platform.INSTAGRAM,  # Instagram username
    "P2397": Platform.YOUTUBE,  # YouTube channel ID
    "P4264": Platform.LINKEDIN,  # LinkedIn company or organization ID
    "P7085": Platform.TIKTOK,  # TikTok username
    "P11892": Platform.THREADS,  # Threads username
    "P4033": Platform.MASTODON,  # Mastodon address
    "P12361": Platform.BLUESKY,  # Bluesky handle
}

VARIABLES = ("item", "code", "value")
_ENTITY_IRI = re.compile(r"^https?://www\.wikidata\.org/entity/(Q[1-9][0-9]*)$")
_RDF_TYPES = {"uri", "literal", "bnode", "typed-literal"}  # typed-literal: the 2008 SPARQL JSON draft
_MAX_VALUE = 2048  # longer than any account reference; a longer value is a malformed row


def build_query(code_property: str, account_property: str, limit: int, offset: int) -> str:
    """The SPARQL of one page: items with both properties, in a total order (item, code, value)."""
    if code_property not in CODE_PROPERTIES or account_property not in ACCOUNT_PROPERTIES:
        raise ValueError(f"unknown property pair {code_property}/{account_property}")
    not_a_commune = (
        "  FILTER NOT EXISTS { ?item wdt:P374 [] . }\n"
        if CODE_PROPERTIES[code_property] is Category.EPCI
        else ""
    )
    return (
        "SELECT ?item ?code ?value WHERE {\n"
        f"  ?item wdt:{code_property} ?code ;\n"
        f"        wdt:{account_property} ?value .\n"
        f"{not_a_commune}"
        "}\n"
        "ORDER BY ?item ?code ?value\n"
        f"LIMIT {int(limit)}\n"
        f"OFFSET {int(offset)}\n"
    )


class MalformedResults(ValueError):
    """The document is not SPARQL 1.1 JSON results with the expected variables."""


@dataclass(frozen=True, slots=True)
class Row:
    """One usable binding: the item's Q-id, the code and the account value, as strings."""

    item: str
    code: str
    value: str


def parse_results(body: Any, variables: Sequence[str] = VARIABLES) -> tuple[list[Row], list[str], int]:
    """``(rows, problems, bindings)`` of a SPARQL JSON results document.

    ``bindings`` counts every binding, good or bad (the page is full when it reaches the LIMIT).
    Raises :class:`MalformedResults` when the document itself is unusable.
    """
    if not isinstance(body, dict):
        raise MalformedResults("the answer is not a JSON object")
    head = body.get("head")
    if not isinstance(head, dict) or not isinstance(head.get("vars"), list):
        raise MalformedResults("no head.vars list")
    missing = [name for name in variables if name not in head["vars"]]
    if missing:
        raise MalformedResults(f"head.vars lacks {', '.join(missing)}")
    results = body.get("results")
    if not isinstance(results, dict) or not isinstance(results.get("bindings"), list):
        raise MalformedResults("no results.bindings list")
    rows: list[Row] = []
    problems: list[str] = []
    for index, binding in enumerate(results["bindings"]):
        try:
            rows.append(_row(binding))
        except ValueError as exc:
            problems.append(f"binding {index}: {exc}")
    return rows, problems, len(results["bindings"])


def _term(binding: dict[str, Any], name: str) -> dict[str, Any]:
    term = binding.get(name)
    if not isinstance(term, dict):
        raise ValueError(f"?{name} is missing")
    kind, value = term.get("type"), term.get("value")
    if kind not in _RDF_TYPES:
        raise ValueError(f"?{name} has no valid RDF term type ({kind!r})")
    if not isinstance(value, str):
        raise ValueError(f"?{name} has no string value")
    for extra in ("datatype", "xml:lang"):
        if extra in term and not isinstance(term[extra], str):
            raise ValueError(f"?{name} has a non-string {extra}")
    return term


def _row(binding: Any) -> Row:
    if not isinstance(binding, dict):
        raise ValueError("not a JSON object")
    item = _term(binding, "item")
    match = _ENTITY_IRI.match(item["value"]) if item["type"] == "uri" else None
    if match is None:
        raise ValueError(f"?item {item['value']!r} is not a Wikidata item IRI")
    code, value = _term(binding, "code"), _term(binding, "value")
    for name, term in (("code", code), ("value", value)):
        if term["type"] not in ("literal", "typed-literal"):
            raise ValueError(f"?{name} is a {term['type']}, not a literal")
        text = term["value"].strip()
        if not text or len(text) > _MAX_VALUE:
            raise ValueError(f"?{name} is empty or too long")
    return Row(item=match.group(1), code=code["value"].strip(), value=value["value"].strip())


def entity_of(category: Category, code: str) -> str:
    """The entity id a code names (not checked against the registry)."""
    return f"{category.kind}:{code.upper() if category is Category.DEPARTEMENT else code}"


def rows_to_candidates(
    rows: Sequence[Row], code_property: str, account_property: str, entities: EntityIndex, harvest: Harvest
) -> None:
    """Add the candidates of ``rows`` to ``harvest``: unknown entities counted, bad links reported."""
    category = CODE_PROPERTIES[code_property]
    platform = ACCOUNT_PROPERTIES[account_property]
    for row in rows:
        entity_id = entity_of(category, row.code)
        if entity_id not in entities:
            harvest.skipped[f"{category.value} code not in the registry"] += 1
            continue
        try:
            link = parse_link(row.value, platform)
        except LinkError as exc:
            harvest.issue(row.item, f"{account_property} {row.value!r}: {exc}")
            continue
        harvest.candidates.append(
            Candidate(DiscoverySource.WIKIDATA, entity_id, link, given=row.value, reference=row.item)
        )


async def harvest_wikidata(fetcher: Fetcher, settings: Settings, entities: EntityIndex) -> Harvest:
    """Every (code, account) statement Wikidata holds for the registry's entities."""
    harvest = Harvest(DiscoverySource.WIKIDATA)
    size = settings.discovery_sparql_page_size
    for code_property in CODE_PROPERTIES:
        for account_property in ACCOUNT_PROPERTIES:
            offset = 0
            while True:
                query = build_query(code_property, account_property, size, offset)
                reference = f"{code_property}/{account_property} offset {offset}"
                harvest.requests += 1
                try:
                    response = await fetcher.post_form(
                        settings.wikidata_sparql_url,
                        {"query": query},
                        headers={"Accept": "application/sparql-results+json"},
                    )
                except RequestFailed as exc:
                    # This pair's remaining pages are lost for this run; the other pairs go on.
                    harvest.issue(reference, f"query failed: {exc.detail}")
                    harvest.failed = f"some Wikidata queries failed ({exc.detail})"
                    break
                try:
                    rows, problems, bindings = parse_results(json.loads(response.content))
                except (ValueError, MalformedResults) as exc:
                    harvest.issue(reference, f"unusable answer: {exc}")
                    harvest.failed = "some Wikidata answers were unusable"
                    break
                for problem in problems:
                    harvest.issue(reference, problem)
                rows_to_candidates(rows, code_property, account_property, entities, harvest)
                if bindings < size:
                    break
                offset += size
    log.info("wikidata: %d candidates in %d queries", len(harvest.candidates), harvest.requests)
    return harvest
