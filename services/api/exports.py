"""Tables out of the API as files: CSV or Parquet, for rankings, presence series and account history.

The format is chosen by the ``format`` query parameter (``json``, ``csv``, ``parquet``), else by the
``Accept`` header (``text/csv``, ``application/vnd.apache.parquet``), else JSON. A file answer carries
its ``Content-Type`` and a ``Content-Disposition: attachment`` with a file name that says what it holds.

CSV: UTF-8, comma-separated, a header row, instants in RFC 3339 (UTC, ``Z``), an empty cell for an
absent value; a text cell that a spreadsheet would take for a formula (starting with ``= + - @``, tab or
carriage return) starts with a single quote (OWASP's advice against CSV injection). Parquet: one row
group, typed columns (int64, float64, string, timestamp[ms, UTC]), nulls for absent values.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from fastapi.responses import Response

from services.common.events import format_timestamp


class ExportFormat(StrEnum):
    JSON = "json"
    CSV = "csv"
    PARQUET = "parquet"


class ColumnType(StrEnum):
    INT = "int"
    FLOAT = "float"
    TEXT = "text"
    INSTANT = "instant"
    BOOL = "bool"


MEDIA_TYPES = {
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.PARQUET: "application/vnd.apache.parquet",
}
# Media types a client may send in Accept for each format (the second is Parquet's older name).
_ACCEPTED = {
    ExportFormat.PARQUET: ("application/vnd.apache.parquet", "application/x-parquet"),
    ExportFormat.CSV: ("text/csv",),
}
FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
        },
        "description": "JSON by default; CSV or Parquet with format=csv|parquet or the Accept header.",
    }
}


def negotiate(requested: ExportFormat | None, accept: str | None) -> ExportFormat:
    """The format asked for by the ``format`` parameter, else by ``Accept``, else JSON."""
    if requested is not None:
        return requested
    if accept:
        types = [part.split(";")[0].strip().lower() for part in accept.split(",")]
        for fmt, names in _ACCEPTED.items():
            if any(name in types for name in names):
                return fmt
    return ExportFormat.JSON


def file_name(*parts: object, fmt: ExportFormat) -> str:
    """``rankings_facebook_commune_30d.csv``: the parts, made safe for a file name."""
    text = "_".join(_part(p) for p in parts if p is not None and p != "")
    return f"{re.sub(r'[^A-Za-z0-9._-]+', '-', text)}.{fmt.value}"


def _part(value: object) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y%m%dT%H%M%SZ")
    if isinstance(value, StrEnum):
        return value.value
    return str(value)


def table_response(
    fmt: ExportFormat,
    columns: Mapping[str, ColumnType],
    rows: Iterable[Mapping[str, Any]],
    filename: str,
) -> Response:
    """``rows`` (dicts keyed by column name) as a CSV or Parquet file answer."""
    rows = list(rows)
    if fmt is ExportFormat.CSV:
        body = to_csv(columns, rows)
    elif fmt is ExportFormat.PARQUET:
        body = to_parquet(columns, rows)
    else:
        raise ValueError(f"{fmt} is not a file format")
    return Response(
        content=body,
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


# A text cell starting with one of these is a formula to a spreadsheet (OWASP, "CSV Injection"): it is
# written with a leading single quote, which spreadsheets show as text. Numbers are never text here, so
# -3.5 stays a number.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> object:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, StrEnum):
        value = value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def to_csv(columns: Mapping[str, ColumnType], rows: Sequence[Mapping[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(name)) for name in columns])
    return out.getvalue().encode()


def to_parquet(columns: Mapping[str, ColumnType], rows: Sequence[Mapping[str, Any]]) -> bytes:
    import pyarrow as pa  # only file exports need it
    import pyarrow.parquet as pq

    types = {
        ColumnType.INT: pa.int64(),
        ColumnType.FLOAT: pa.float64(),
        ColumnType.TEXT: pa.string(),
        ColumnType.INSTANT: pa.timestamp("ms", tz="UTC"),
        ColumnType.BOOL: pa.bool_(),
    }
    schema = pa.schema([(name, types[kind]) for name, kind in columns.items()])
    data = {
        name: [v.value if isinstance(v := row.get(name), StrEnum) else v for row in rows] for name in columns
    }
    table = pa.Table.from_pydict(data, schema=schema)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()
