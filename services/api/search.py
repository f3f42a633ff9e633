"""Finding an entity by name, INSEE code (SIREN for an EPCI) or postal code (docs/CONTRACT.md, "Search").

An in-process index of the registry in ClickHouse (shipped and imported entities) with each commune's
postal codes from the shipped extras, rebuilt when the registry has changed (checked every
:data:`CHECK_S` seconds). Names are compared folded: accents and case removed, ligatures spelt out
(œ → oe), every run of other characters (hyphens, apostrophes, spaces) one space; so ``saint etienne``
finds Saint-Étienne and ``ile d yeu`` L'Île-d'Yeu.

Matches are ranked by how well they match, then by population (larger first), then by name and id:
1. ``code``: the query is the entity's code, its id, or one of its postal codes;
2. ``name``: the folded query is the folded name;
3. ``prefix``: the name starts with it;
4. ``word``: a word of the name starts with it (``etienne`` → Saint-Étienne);
5. ``code_prefix``: a code or postal code starts with it (at least 2 characters: ``380`` → the Isère's
   communes);
6. ``substring``: the name contains it anywhere.
"""

from __future__ import annotations

import bisect
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from clickhouse_connect.driver.client import Client

from services.common.names import Table
from services.common.reference.extras import extras_by_id

CHECK_S = 5.0
_LIGATURES = str.maketrans({"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE", "ß": "ss"})
_WORD = re.compile(r"[a-z0-9]+")


class Match(StrEnum):
    CODE = "code"
    NAME = "name"
    PREFIX = "prefix"
    WORD = "word"
    CODE_PREFIX = "code_prefix"
    SUBSTRING = "substring"


_TIER = {m: i for i, m in enumerate(Match)}


def fold(text: str) -> str:
    """``text`` without accents, case and punctuation: lower-case ASCII words joined by one space."""
    bare = unicodedata.normalize("NFKD", text.translate(_LIGATURES)).encode("ascii", "ignore").decode()
    return " ".join(_WORD.findall(bare.lower()))


@dataclass(frozen=True, slots=True)
class Indexed:
    entity_id: str
    name: str
    category: str
    population: int | None
    departement: str | None
    region: str | None
    postal_codes: tuple[str, ...]
    folded: str  # fold(name)
    codes: tuple[str, ...]  # upper-case: its code, its id, its postal codes


@dataclass(frozen=True, slots=True)
class Found:
    entity: Indexed
    match: Match


class Catalogue:
    """Indexed entities and sorted keys to find them: exact and prefix look-ups are bisections; only a
    substring needs a scan (of one joined string, in C), and only when the better tiers fall short."""

    def __init__(self, entries: list[Indexed]) -> None:
        self.entries = entries
        # (key, position): folded names; every word start of a folded name (its rest); every code.
        self.names = sorted((e.folded, i) for i, e in enumerate(entries))
        self.words = sorted(
            (e.folded[m.start() :], i) for i, e in enumerate(entries) for m in _WORD.finditer(e.folded)
        )
        self.codes = sorted((code, i) for i, e in enumerate(entries) for code in e.codes)
        # Every folded name on a line of its own, and where each line starts.
        self.text = "\n".join(e.folded for e in entries)
        self.starts: list[int] = []
        offset = 0
        for e in entries:
            self.starts.append(offset)
            offset += len(e.folded) + 1


def _prefixed(keys: list[tuple[str, int]], prefix: str) -> list[int]:
    lo = bisect.bisect_left(keys, (prefix, -1))
    out = []
    for key, i in keys[lo:]:
        if not key.startswith(prefix):
            break
        out.append(i)
    return out


def _substring(catalogue: Catalogue, folded: str) -> set[int]:
    out: set[int] = set()
    at = catalogue.text.find(folded)
    while at >= 0:
        out.add(bisect.bisect_right(catalogue.starts, at) - 1)
        at = catalogue.text.find(folded, at + 1)
    return out


class EntityIndex:
    """The searchable registry of one database. ``version`` answers cheaply what identifies the
    registry's content (rows and latest version); ``load`` reads its rows (entity_id, name, category,
    population, departement, region). The index is rebuilt when the version has changed, checked at
    most every ``check_s`` seconds: an import is found within that time."""

    def __init__(
        self,
        version: Callable[[], Hashable],
        load: Callable[[], Sequence[Sequence[object]]],
        check_s: float = CHECK_S,
    ) -> None:
        self._version = version
        self._load = load
        self._check_s = check_s
        self._lock = threading.Lock()
        self._catalogue = Catalogue([])
        self._built_for: Hashable = None
        self._checked_at = float("-inf")

    def catalogue(self) -> Catalogue:
        if time.monotonic() - self._checked_at > self._check_s:
            with self._lock:
                if time.monotonic() - self._checked_at > self._check_s:
                    version = self._version()
                    if version != self._built_for:
                        self._catalogue = Catalogue(build(self._load()))
                        self._built_for = version
                    self._checked_at = time.monotonic()
        return self._catalogue

    def search(self, query: str, limit: int, category: str | None = None) -> list[Found]:
        return search(self.catalogue(), query, limit, category)


def build(rows: Sequence[Sequence[object]]) -> list[Indexed]:
    extras = extras_by_id()
    out = []
    for entity_id, name, category, population, departement, region in rows:
        eid, text = str(entity_id), str(name)
        postal = extras[eid].postal_codes if eid in extras else ()
        folded = fold(text)
        out.append(
            Indexed(
                eid,
                text,
                str(category),
                None if population is None else int(str(population)),
                None if departement is None else str(departement),
                None if region is None else str(region),
                postal,
                folded,
                (eid.partition(":")[2], eid, *postal),
            )
        )
    return out


def registry_version(client: Client, db: str) -> Hashable:
    """What changes whenever an entity is added or replaced: rows and the latest version."""
    rows, version = client.query(f"SELECT count(), max(version) FROM {db}.{Table.ENTITIES}").result_rows[0]
    return int(rows), int(version)


def load_rows(client: Client, db: str) -> Sequence[Sequence[object]]:
    """Every entity of the registry (shipped and imported, the latest version of each)."""
    return client.query(
        f"SELECT entity_id, name, category, population, departement, region FROM {db}.{Table.ENTITIES} FINAL"
    ).result_rows


def search(catalogue: Catalogue, query: str, limit: int, category: str | None = None) -> list[Found]:
    """The best ``limit`` matches of ``query`` (see the module's docstring for the order)."""
    code = query.strip().upper()
    folded = fold(query)
    entries = catalogue.entries
    seen: set[int] = set()
    found: list[Found] = []

    def tier(match: Match, positions: Iterable[int]) -> None:
        group = [
            i
            for i in set(positions)
            if i not in seen and (category is None or entries[i].category == category)
        ]
        group.sort(key=lambda i: (-(entries[i].population or -1), entries[i].folded, entries[i].entity_id))
        seen.update(group)
        found.extend(Found(entries[i], match) for i in group)

    if code:
        tier(Match.CODE, (i for key, i in _exact(catalogue.codes, code)))
    if folded:
        named = _prefixed(catalogue.names, folded)
        tier(Match.NAME, (i for i in named if entries[i].folded == folded))
        tier(Match.PREFIX, named)
        if len(found) < limit:
            tier(Match.WORD, _prefixed(catalogue.words, folded))
    if len(found) < limit and len(code) >= 2:
        tier(Match.CODE_PREFIX, _prefixed(catalogue.codes, code))
    if len(found) < limit and folded:
        tier(Match.SUBSTRING, _substring(catalogue, folded))
    return found[:limit]


def _exact(keys: list[tuple[str, int]], key: str) -> list[tuple[str, int]]:
    lo = bisect.bisect_left(keys, (key, -1))
    hi = bisect.bisect_right(keys, (key, len(keys) + 1))
    return keys[lo:hi]
