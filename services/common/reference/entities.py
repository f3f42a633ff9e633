"""The shipped entity registry: the :class:`Entity` record and the compact file it is stored in.

``registry/entities.csv.gz`` is written by ``scripts/build_reference.py`` from INSEE's Code officiel
géographique (see ``registry/README.md``); this module reads it, fast and once per process, and writes
it byte-identically for the same input.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

from services.common.names import Category

REGISTRY_DIR = Path(__file__).resolve().with_name("registry")
ENTITIES_FILE = REGISTRY_DIR / "entities.csv.gz"

# The columns of the registry file, which are also those of a user's entities CSV (CONTRACT.md, "Files").
COLUMNS = ("entity_id", "name", "category", "population", "departement", "region")


@dataclass(frozen=True, slots=True)
class Entity:
    """One collectivité. ``departement`` and ``region`` are bare codes (``"38"``, ``"84"``), not ids.

    ``population`` is INSEE's population municipale, None when unknown. A département's own code is its
    ``departement``, a région's its ``region``, so filtering by territory needs no special case.
    """

    entity_id: str
    name: str
    category: Category
    population: int | None
    departement: str | None
    region: str | None


def sort_key(entity: Entity) -> tuple[int, str]:
    """The registry's order: by category (as declared), then by entity id."""
    return _CATEGORY_ORDER[entity.category], entity.entity_id


_CATEGORY_ORDER = {category: index for index, category in enumerate(Category)}


def encode_entities(entities: Iterable[Entity]) -> bytes:
    """The gzip-compressed CSV of ``entities``, sorted, with mtime 0: the same input gives the same bytes."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(COLUMNS)
    for entity in sorted(entities, key=sort_key):
        writer.writerow(
            (
                entity.entity_id,
                entity.name,
                entity.category.value,
                "" if entity.population is None else entity.population,
                entity.departement or "",
                entity.region or "",
            )
        )
    # mtime=0 and no file name in the header: nothing but the content decides the bytes.
    return gzip.compress(text.getvalue().encode("utf-8"), compresslevel=9, mtime=0)


def decode_entities(data: bytes) -> tuple[Entity, ...]:
    """Read a file written by :func:`encode_entities` (trusted: the unit tests validate the shipped one)."""
    lines = gzip.decompress(data).decode("utf-8").splitlines()
    reader = csv.reader(lines)
    header = next(reader)
    if tuple(header) != COLUMNS:
        raise ValueError(f"unexpected registry header {header!r}, expected {COLUMNS!r}")
    categories = {category.value: category for category in Category}
    return tuple(
        Entity(
            entity_id,
            name,
            categories[category],
            int(population) if population else None,
            departement or None,
            region or None,
        )
        for entity_id, name, category, population, departement, region in reader
    )


@lru_cache(maxsize=4)
def _load(path: Path) -> tuple[Entity, ...]:
    return decode_entities(path.read_bytes())


def load_entities(path: Path | None = None) -> list[Entity]:
    """Every entity of the registry, in registry order. Read once per process and path, then cached."""
    return list(_load(path or ENTITIES_FILE))


@lru_cache(maxsize=4)
def _by_id(path: Path) -> Mapping[str, Entity]:
    return MappingProxyType({entity.entity_id: entity for entity in _load(path)})


def entities_by_id(path: Path | None = None) -> Mapping[str, Entity]:
    """The registry as a read-only mapping from entity_id, cached like :func:`load_entities`."""
    return _by_id(path or ENTITIES_FILE)
