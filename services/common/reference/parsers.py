"""Reading the user's CSV import files: entities, accounts and panel membership (CONTRACT.md, "Files").

Each parser yields ``(line_number, record)`` for a good row and ``(line_number, RowError)`` for a bad
one, and goes on after a bad row, so that the command line can import the good rows and report every bad
one. Line numbers are those an editor shows (the header is line 1). Nothing here writes anything.

What is accepted, beyond the contract's column lists:
- a header row is required; column names are matched case-insensitively and in any order; unknown
  columns are refused (a misspelt optional column would otherwise be silently ignored);
- UTF-8, with or without a byte-order mark; a row that is not UTF-8 is reported on its own line;
- comma-separated, or semicolon-separated when the header has semicolons and no comma (what a
  French-locale spreadsheet writes);
- blank lines are skipped; spaces around values are trimmed; an empty cell is an absent value;
- a row repeating an earlier one's key is refused, naming the earlier line: which should win is the
  user's decision, not ours.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from services.common.events import (
    DEPARTEMENT_CODE_PATTERN,
    FOREIGN_CODE_PATTERN,
    REGION_CODE_PATTERN,
    check_entity_id,
    normalise_account_id,
)
from services.common.links import Link, LinkError, looks_like_url, parse_link
from services.common.names import DEFAULT_PANEL, Category, Platform, normalise_platform
from services.common.reference.entities import COLUMNS as ENTITY_COLUMNS
from services.common.reference.entities import Entity

T = TypeVar("T")

Source = str | Path | Iterable[str]
"""A path (``str`` or ``Path``), or the lines of a file (an open text file, a list of strings)."""

# ``state`` and ``sources`` are what `barometre discover --out` adds for review; accepted and ignored, so
# that the reviewed file imports as it is (an imported account is a person's word: verified).
ACCOUNT_COLUMNS = ("entity_id", "platform", "handle", "account_id", "url", "state", "sources")
# A required entry that is a tuple is satisfied by any one of its columns: a url column alone is enough.
ACCOUNT_REQUIRED: tuple[str | tuple[str, ...], ...] = ("entity_id", "platform", ("handle", "url"))
PANEL_COLUMNS = ("entity_id", "panel")
PANEL_REQUIRED = ("entity_id",)

# Panel names travel in URLs (?panel=) and in file names: keep them plain.
PANEL_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_PANEL_NAME_RE = re.compile(PANEL_NAME_PATTERN)
_DEPARTEMENT_CODE_RE = re.compile(DEPARTEMENT_CODE_PATTERN)
_REGION_CODE_RE = re.compile(REGION_CODE_PATTERN)
_FOREIGN_CODE_RE = re.compile(FOREIGN_CODE_PATTERN)
_POPULATION_RE = re.compile("^[0-9]{1,10}$")


@dataclass(frozen=True, slots=True)
class RowError:
    """Why a row was refused."""

    message: str


@dataclass(frozen=True, slots=True)
class AccountRecord:
    """An official account of an entity, from an accounts file.

    ``platform_id`` is the stable id a link in the row carries (a Facebook page id from
    ``profile.php?id=``, a YouTube channel id, a Bluesky DID), else None.
    """

    entity_id: str
    platform: Platform
    account_id: str
    handle: str | None
    url: str | None
    platform_id: str | None = None


@dataclass(frozen=True, slots=True)
class PanelMember:
    """One entity's membership of one panel, from a panel file."""

    entity_id: str
    panel: str


ParsedRow = tuple[int, T | RowError]


def collect(rows: Iterable[ParsedRow[T]]) -> tuple[list[tuple[int, T]], list[tuple[int, str]]]:
    """Split parsed rows into good records and ``(line, reason)`` errors, both in file order."""
    good: list[tuple[int, T]] = []
    bad: list[tuple[int, str]] = []
    for line, item in rows:
        if isinstance(item, RowError):
            bad.append((line, item.message))
        else:
            good.append((line, item))
    return good, bad


# --- The three files.


def parse_entities_csv(source: Source) -> Iterator[ParsedRow[Entity]]:
    """Entities to add to or override in the registry.

    Columns ``entity_id,name,category,population,departement,region``; ``entity_id`` and ``name`` required.

    ``category`` may be empty or absent (it follows from the entity_id's kind); ``departement`` and ``region``
    take a code or an id (``38`` or ``DEP:38``). A département row's ``departement`` defaults to its own
    code, and a région row's ``region`` likewise, as in the shipped registry.
    """
    first_line: dict[str, int] = {}
    for line, row in _read(source, ENTITY_COLUMNS, ("entity_id", "name")):
        if isinstance(row, RowError):
            yield line, row
            continue
        try:
            entity = _entity(row)
        except ValueError as exc:
            yield line, RowError(str(exc))
            continue
        duplicate = _duplicate(first_line, entity.entity_id, line, "entity_id")
        yield line, duplicate or entity


def parse_accounts_csv(
    source: Source, known_entities: Container[str] | None = None
) -> Iterator[ParsedRow[AccountRecord]]:
    """Official accounts: ``entity_id,platform,handle[,account_id][,url]`` (a ``url`` column may stand in
    for ``handle``).

    ``handle`` and ``url`` are read by :func:`~services.common.links.parse_link`: a pasted link
    (``https://www.facebook.com/VilledeGrenoble`` in the handle column) gives the handle
    (``VilledeGrenoble``), the account and the canonical URL; a plain handle is kept as written. Without
    an ``account_id`` the account is the stable id a link carries (``facebook:123456789`` from
    ``profile.php?id=123456789``), else the handle lower-cased (``x:villedegrenoble``); an explicit
    ``account_id`` wins. A handle and a url naming different accounts are refused. With
    ``known_entities``, a row whose entity is not in it is refused.
    """
    first_line: dict[str, int] = {}
    for line, row in _read(source, ACCOUNT_COLUMNS, ACCOUNT_REQUIRED):
        if isinstance(row, RowError):
            yield line, row
            continue
        try:
            record = _account(row, known_entities)
        except ValueError as exc:
            yield line, RowError(str(exc))
            continue
        duplicate = _duplicate(first_line, record.account_id, line, "account_id")
        yield line, duplicate or record


def parse_panel_csv(
    source: Source, default_panel: str = DEFAULT_PANEL, known_entities: Container[str] | None = None
) -> Iterator[ParsedRow[PanelMember]]:
    """Panel membership: ``entity_id[,panel]``; a row without a panel belongs to ``default_panel``."""
    _check_panel_name(default_panel)
    first_line: dict[str, int] = {}
    for line, row in _read(source, PANEL_COLUMNS, PANEL_REQUIRED):
        if isinstance(row, RowError):
            yield line, row
            continue
        try:
            member = PanelMember(
                entity_id=_known(_required(row, "entity_id", check_entity_id), known_entities),
                panel=_check_panel_name(row.get("panel") or default_panel),
            )
        except ValueError as exc:
            yield line, RowError(str(exc))
            continue
        key = f"{member.panel} {member.entity_id}"
        duplicate = _duplicate(first_line, key, line, "membership")
        yield line, duplicate or member


# --- Rows to records.


def _entity(row: dict[str, str]) -> Entity:
    entity_id = _required(row, "entity_id", check_entity_id)
    kind_category = Category.of_entity_id(entity_id)
    code = entity_id.partition(":")[2]
    category_text = row.get("category", "")
    if category_text:
        try:
            category = Category(category_text)
        except ValueError:
            raise ValueError(f"unknown category {category_text!r}; allowed: {', '.join(Category)}") from None
        if category is not kind_category:
            raise ValueError(
                f"category {category.value!r} does not match {entity_id} (a {kind_category.value})"
            )
    departement = _territory(row.get("departement", ""), "departement", "DEP", _DEPARTEMENT_CODE_RE)
    region = _territory(row.get("region", ""), "region", "REG", _REGION_CODE_RE)
    if kind_category is Category.DEPARTEMENT:
        departement = _own_code(departement, code, "departement", entity_id)
    if kind_category is Category.REGION:
        region = _own_code(region, code, "region", entity_id)
    return Entity(
        entity_id=entity_id,
        name=_required(row, "name", str),
        category=kind_category,
        population=_population(row.get("population", "")),
        departement=departement,
        region=region,
    )


def _account(row: dict[str, str], known_entities: Container[str] | None) -> AccountRecord:
    entity_id = _known(_required(row, "entity_id", check_entity_id), known_entities)
    platform = _required(row, "platform", normalise_platform)
    handle_text = row.get("handle") or None
    given_id = row.get("account_id")
    # A pasted link is read in both columns. A plain handle is read too, except beside an explicit
    # account_id: there it is only the display handle, kept as written (simulator files carry such).
    handle_link = None
    if handle_text is not None and (not given_id or looks_like_url(handle_text)):
        handle_link = _column_link("handle", handle_text, platform)
    url_text = row.get("url") or None
    url_link = _column_link("url", url_text, platform) if url_text is not None else None
    if handle_link is not None and url_link is not None and not _same_account(handle_link, url_link):
        raise ValueError(
            f"handle {handle_text!r} and url {url_text!r} name different accounts "
            f"({handle_link.account_id}, {url_link.account_id})"
        )
    links = [link for link in (handle_link, url_link) if link is not None]
    if given_id:
        account_id = normalise_account_id(given_id)
        prefix = account_id.partition(":")[0]
        if prefix != platform.value:
            raise ValueError(f"account_id {given_id!r} is on {prefix}, not on {platform.value}")
    elif links:
        # A stable id, when either column carries one, names the account better than a handle.
        account_id = next((link for link in links if link.platform_id is not None), links[0]).account_id
    else:
        raise ValueError("a handle, a url or an account_id is needed")
    # The display handle: as written when plain, the link's when a link was pasted, else the url's.
    pasted = handle_link is not None and looks_like_url(handle_text or "")
    handle = handle_link.handle if pasted and handle_link is not None else handle_text
    if handle is None:
        handle = next((link.handle for link in links if link.handle is not None), None)
    url = url_link.url if url_link is not None else (handle_link.url if pasted and handle_link else None)
    # The stable id a link carries, if it is the account's (an explicit account_id may name another).
    platform_id = next((link.platform_id for link in links if link.platform_id is not None), None)
    if platform_id is not None and account_id != f"{platform.value}:{platform_id}":
        platform_id = None
    return AccountRecord(entity_id, platform, account_id, handle, url, platform_id)


def _column_link(column: str, text: str, platform: Platform) -> Link:
    try:
        return parse_link(text, platform)
    except LinkError as exc:
        raise ValueError(f"{column}: {exc}") from None


def _same_account(first: Link, second: Link) -> bool:
    """False when two links certainly name different accounts; a handle and an id cannot be compared
    without asking the platform, so they are taken as one account (the id names it)."""
    if first.platform_id is not None and second.platform_id is not None:
        return first.platform_id == second.platform_id
    if first.platform_id is None and second.platform_id is None:
        return first.account_id == second.account_id
    return True


def _required(row: dict[str, str], column: str, parse: Callable[[str], T]) -> T:
    value = row.get(column, "")
    if not value:
        raise ValueError(f"{column} is empty")
    return parse(value)


def _known(entity_id: str, known_entities: Container[str] | None) -> str:
    if known_entities is not None and entity_id not in known_entities:
        raise ValueError(f"unknown entity {entity_id} (import it with an entities file first)")
    return entity_id


def _population(text: str) -> int | None:
    if not text:
        return None
    if not _POPULATION_RE.fullmatch(text):
        raise ValueError(f"population {text!r} is not a whole number of inhabitants (digits only)")
    return int(text)


def _territory(text: str, column: str, kind: str, code_re: re.Pattern[str]) -> str | None:
    if not text:
        return None
    code = text.removeprefix(f"{kind}:")
    if not (code_re.fullmatch(code) or _FOREIGN_CODE_RE.fullmatch(code)):
        raise ValueError(f"{column} {text!r} is not a {column} code (e.g. {'2A' if kind == 'DEP' else '84'})")
    return code


def _own_code(given: str | None, code: str, column: str, entity_id: str) -> str:
    if given is not None and given != code:
        raise ValueError(f"{column} {given!r} of {entity_id} should be its own code {code!r}")
    return code


def _check_panel_name(name: str) -> str:
    if not _PANEL_NAME_RE.fullmatch(name):
        raise ValueError(f"panel name {name!r} must be letters, digits, '.', '_' or '-' (at most 64)")
    return name


def _duplicate(first_line: dict[str, int], key: str, line: int, what: str) -> RowError | None:
    if key in first_line:
        return RowError(f"duplicate {what} {key} (first on line {first_line[key]})")
    first_line[key] = line
    return None


# --- Lines to rows.


def _read(
    source: Source, columns: tuple[str, ...], required: tuple[str | tuple[str, ...], ...]
) -> Iterator[tuple[int, dict[str, str] | RowError]]:
    """Rows as ``{column: trimmed value}`` with their first line number, or the reason they are unusable."""
    if isinstance(source, str | Path):
        # surrogateescape: a byte that is not UTF-8 survives to be reported on its own line.
        with open(source, encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
            yield from _read_lines(handle, columns, required)
    else:
        yield from _read_lines(source, columns, required)


def _read_lines(
    lines: Iterable[str], columns: tuple[str, ...], required: tuple[str | tuple[str, ...], ...]
) -> Iterator[tuple[int, dict[str, str] | RowError]]:
    iterator = iter(lines)
    header_line = ""
    skipped = 0
    for text in iterator:  # the first non-blank line is the header
        text = text.removeprefix("\ufeff") if skipped == 0 else text
        if text.strip():
            header_line = text
            break
        skipped += 1
    if not header_line:
        yield 1, RowError(f"empty file: the first line must name the columns ({','.join(columns)})")
        return
    delimiter = ";" if ";" in header_line and "," not in header_line else ","
    reader = csv.reader(_chain(header_line, iterator), delimiter=delimiter)
    header_at = skipped + 1
    header = [name.strip().lower() for name in next(reader)]
    problem = _check_header(header, columns, required)
    if problem:
        yield header_at, RowError(problem)
        return
    previous_end = reader.line_num
    while True:
        start = header_at + previous_end  # the physical line where the next record begins
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, RowError(f"unreadable CSV, the rest of the file is ignored: {exc}")
            return
        previous_end = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if any(_is_undecodable(cell) for cell in cells):
            yield start, RowError("not UTF-8 text: save the file as UTF-8")
            continue
        if len(cells) != len(header):
            yield start, RowError(f"{len(cells)} values for {len(header)} columns ({','.join(header)})")
            continue
        yield start, {name: cell.strip() for name, cell in zip(header, cells, strict=True)}


def _check_header(
    header: list[str], columns: tuple[str, ...], required: tuple[str | tuple[str, ...], ...]
) -> str | None:
    unknown = [name for name in header if name not in columns]
    if unknown:
        return (
            f"unknown column(s) {', '.join(map(repr, unknown))}: the first line must name the columns, "
            f"among {','.join(columns)}"
        )
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        return f"column(s) named twice: {', '.join(duplicated)}"
    alternatives = [(entry,) if isinstance(entry, str) else entry for entry in required]
    missing = [" or ".join(names) for names in alternatives if not any(name in header for name in names)]
    if missing:
        return f"missing column(s) {', '.join(missing)}: the header must name {','.join(columns)}"
    return None


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def _is_undecodable(text: str) -> bool:
    return any("\udc80" <= char <= "\udcff" for char in text)
