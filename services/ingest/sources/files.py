"""Snapshot files: JSON Lines or CSV (the contract's column names), read as a stream.

Lines come out one at a time with their 1-based line number, so a file of any size is read in constant
memory and every bad line can be reported where it is. A ``.gz`` file is read through gzip. In CSV an
empty cell means the field is absent, and count columns are read as integers.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from services.ingest.fastpath import COUNTS
from services.ingest.validation import Rejection

# AccountSnapshot fields that are integers: CSV cells are text, JSON counts are numbers.
COUNT_FIELDS = frozenset(COUNTS)


def open_binary(path: Path) -> IO[bytes]:
    raw = path.open("rb")
    if path.suffix == ".gz":
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]  # GzipFile is a binary IO
    return raw


def detect_format(path: Path) -> str:
    """``jsonl`` or ``csv``, from the name, else from the first non-blank byte."""
    name = path.name.removesuffix(".gz").lower()
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if name.endswith(".csv"):
        return "csv"
    with open_binary(path) as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return "jsonl" if head.startswith(b"{") else "csv"


def _cell(name: str, value: str) -> object:
    if name in COUNT_FIELDS and value.isdigit():
        return int(value)
    return value  # anything else goes to validation as written, which says what is wrong


def read_snapshots(
    stream: IO[bytes], fmt: str
) -> Iterator[tuple[int, bytes | dict[str, object] | Rejection]]:
    """(line number, item) for each non-blank line; an item is JSON bytes, a CSV row dict, or a Rejection."""
    if fmt == "jsonl":
        for number, line in enumerate(stream, start=1):
            if line.strip():
                yield number, line
        return
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="strict", newline="")
    reader = csv.reader(text)
    try:
        header = next(reader)
    except StopIteration:
        return
    except UnicodeDecodeError as exc:
        yield 1, Rejection(1, f"not UTF-8: {exc}")
        return
    header = [h.strip() for h in header]
    start = reader.line_num
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except (UnicodeDecodeError, csv.Error) as exc:
            # A broken line stops a CSV reader: report it, and what follows cannot be trusted to align.
            yield reader.line_num + 1, Rejection(reader.line_num + 1, f"unreadable CSV: {exc}")
            return
        # A quoted cell may span lines: the row starts on the line after the previous row ended.
        number, start = start + 1, reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            yield number, Rejection(number, f"{len(row)} cells where the header has {len(header)}")
            continue
        yield number, {k: _cell(k, v) for k, v in zip(header, row, strict=True) if v != ""}
