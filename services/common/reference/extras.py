"""What the shipped registry knows beyond an entities file's columns: each commune's postal codes and each
EPCI's legal nature (métropole, communauté urbaine, d'agglomération, de communes).

``registry/entity_extras.csv.gz`` is written by ``scripts/build_reference.py`` from the same source as
``entities.csv.gz`` (etalab's decoupage-administratif: ``codesPostaux`` of communes.json, ``type`` of
epci.json), so that an entities file keeps the columns users import while search (postal codes) and
strata (EPCI natures) have what they need. Entities a user imports have no extras: no postal code to be
found by, and an imported EPCI has no nature (it belongs to no EPCI stratum).
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

from services.common.reference.entities import REGISTRY_DIR

EXTRAS_FILE = REGISTRY_DIR / "entity_extras.csv.gz"
EXTRAS_COLUMNS = ("entity_id", "epci_kind", "postal_codes")


class EpciKind(StrEnum):
    """An EPCI's legal nature (CGCT L5217-1, L5215-1, L5216-1, L5214-1). The source's ``MET69`` (the
    Métropole de Lyon, a collectivité with special status) and ``METRO`` are both ``metropole``."""

    METROPOLE = "metropole"
    COMMUNAUTE_URBAINE = "communaute_urbaine"
    COMMUNAUTE_AGGLOMERATION = "communaute_agglomeration"
    COMMUNAUTE_COMMUNES = "communaute_communes"


# epci.json's ``type`` → EpciKind.
SOURCE_EPCI_KINDS = {
    "METRO": EpciKind.METROPOLE,
    "MET69": EpciKind.METROPOLE,
    "CU": EpciKind.COMMUNAUTE_URBAINE,
    "CA": EpciKind.COMMUNAUTE_AGGLOMERATION,
    "CC": EpciKind.COMMUNAUTE_COMMUNES,
}


@dataclass(frozen=True, slots=True)
class EntityExtras:
    """``epci_kind`` for an EPCI, ``postal_codes`` (sorted, may be empty) for a commune."""

    entity_id: str
    epci_kind: EpciKind | None = None
    postal_codes: tuple[str, ...] = ()


def encode_extras(extras: Iterable[EntityExtras]) -> bytes:
    """Gzip-compressed CSV sorted by entity_id, postal codes space-separated, mtime 0 (same input, same
    bytes)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(EXTRAS_COLUMNS)
    for row in sorted(extras, key=lambda e: e.entity_id):
        writer.writerow(
            (row.entity_id, row.epci_kind.value if row.epci_kind else "", " ".join(sorted(row.postal_codes)))
        )
    return gzip.compress(text.getvalue().encode("utf-8"), compresslevel=9, mtime=0)


def decode_extras(data: bytes) -> tuple[EntityExtras, ...]:
    reader = csv.reader(gzip.decompress(data).decode("utf-8").splitlines())
    header = next(reader)
    if tuple(header) != EXTRAS_COLUMNS:
        raise ValueError(f"unexpected extras header {header!r}, expected {EXTRAS_COLUMNS!r}")
    return tuple(
        EntityExtras(entity_id, EpciKind(kind) if kind else None, tuple(codes.split()))
        for entity_id, kind, codes in reader
    )


@lru_cache(maxsize=4)
def _by_id(path: Path) -> Mapping[str, EntityExtras]:
    return MappingProxyType({row.entity_id: row for row in decode_extras(path.read_bytes())})


def extras_by_id(path: Path | None = None) -> Mapping[str, EntityExtras]:
    """The shipped extras by entity_id, read once per process and path."""
    return _by_id(path or EXTRAS_FILE)


@lru_cache(maxsize=8)
def epci_ids(kind: EpciKind, path: Path | None = None) -> tuple[str, ...]:
    """The ids of the shipped EPCI of nature ``kind``, sorted."""
    return tuple(sorted(e.entity_id for e in extras_by_id(path).values() if e.epci_kind is kind))
