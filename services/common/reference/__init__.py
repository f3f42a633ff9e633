"""Reference data: the registry of entities (communes, départements, régions, EPCI) shipped with
barometre, and the parsers of the user's import files that add to it.

- :func:`load_entities` / :func:`entities_by_id`: the shipped registry (``registry/entities.csv.gz``,
  derived from INSEE's Code officiel géographique by ``scripts/build_reference.py``), cached.
- :func:`parse_entities_csv`, :func:`parse_accounts_csv`, :func:`parse_panel_csv`: the CSV files of
  ``barometre import``, row by row, bad rows reported with their line number.
"""

from services.common.reference.entities import (
    COLUMNS,
    ENTITIES_FILE,
    REGISTRY_DIR,
    Entity,
    entities_by_id,
    load_entities,
)
from services.common.reference.parsers import (
    AccountRecord,
    PanelMember,
    ParsedRow,
    RowError,
    collect,
    parse_accounts_csv,
    parse_entities_csv,
    parse_panel_csv,
)

__all__ = [
    "COLUMNS",
    "ENTITIES_FILE",
    "REGISTRY_DIR",
    "AccountRecord",
    "Entity",
    "PanelMember",
    "ParsedRow",
    "RowError",
    "collect",
    "entities_by_id",
    "load_entities",
    "parse_accounts_csv",
    "parse_entities_csv",
    "parse_panel_csv",
]
