"""Local ClickHouse endpoint: ClickHouse's HTTP interface served over an embedded chDB engine.

This module is responsible for everything between an HTTP request written for a real ClickHouse server
(by clickhouse-connect, curl, or anything else speaking ClickHouse's HTTP protocol) and the ClickHouse
engine that chDB embeds in this process. It also holds :class:`ClickHouseEndpoint`, the launcher that
runs the endpoint as a child process (``python -m infra.clickhouse serve``).

Design
------
* **One process owns the data directory.** chDB refuses a second process on the same directory, so the
  endpoint process opens it once (an "anchor" connection kept for the whole life of the process) and
  every service reaches it over plain ``http://`` exactly as it would reach a ClickHouse server.
* **HTTP layer**: the standard library's ``ThreadingHTTPServer`` (a thread per client connection, HTTP/1.1
  keep-alive, chunked request bodies, ``Expect: 100-continue``). chDB releases the GIL while a query runs,
  so request parsing, body decompression and response compression of other connections proceed while the
  engine works. Measured with ``bench/clickhouse_endpoint.py``, it meets the latency and throughput targets;
  an asyncio server would add an executor hop per query for no gain.
* **Connections = ClickHouse sessions.** A chDB connection on the shared data directory is a ClickHouse
  session context of its own (settings, current database, temporary tables), and queries on different
  connections run in parallel inside the engine. So:

  - a request without ``session_id`` runs on a fresh connection that is closed afterwards, exactly like
    ClickHouse's per-request session: ``SET``/``USE``/temporary tables do not outlive the request;
  - a request with ``session_id`` runs on that session's own long-lived connection, so ``SET``, ``USE``
    and ``CREATE TEMPORARY TABLE`` persist across requests of the session, as in ClickHouse. Sessions expire
    after ``session_timeout`` seconds idle (default 60, at most 3600), honour ``session_check=1`` and
    ``close_session=1``, and a second concurrent request on a busy session gets ``SESSION_IS_LOCKED`` (373).
    URL settings apply to their request only: they are applied lazily (only the ones that differ from what
    the connection already has) and reverted to the session's own values when a later request omits them.

  Access to one connection is serialised by its session lock; nothing else is shared between requests.
* **Inserts** ``INSERT INTO t [(cols)] [SETTINGS ...] FORMAT <fmt>`` followed by data (in the body, or after
  the statement when the whole thing is in the body) are split where ClickHouse's parser splits them and run
  as one query, ``INSERT INTO t [(cols)] FROM INFILE '/dev/fd/N' [SETTINGS ...] FORMAT <fmt>``, reading the
  raw bytes from a pipe: any input format the engine knows (Native, RowBinary*, JSONEachRow, CSV*, TSV*,
  Parquet, ...) is parsed by the engine itself, with no temporary file and no re-encoding, and a block the
  table refuses (CHECK constraint, MATERIALIZED/DEFAULT expression or materialized view that throws) gets
  the engine's error and is not stored. (chDB's streaming insert, ``send_insert``/``insert_append``/
  ``insert_done``, is not used: in chDB 4.4 it reports success for such a block and stores none of it.)
  ``INSERT ... VALUES`` and ``INSERT ... SELECT`` are plain queries.
* **Request bodies** may be compressed with ``Content-Encoding`` gzip, deflate, br (if ``brotli`` is
  installed), xz, zstd, lz4 (concatenated frames, as clickhouse-connect sends them), bz2, and additionally
  framed with ClickHouse's native block compression (``decompress=1``; checksums are not verified).
* **Responses** are compressed when the client sends ``Accept-Encoding`` and ``enable_http_compression=1``,
  choosing the method in ClickHouse's order of preference (zstd, br, lz4, gzip, deflate, xz, bz2).
  ``compress=1`` (ClickHouse's native block compression of the result) is refused with NOT_IMPLEMENTED,
  because it needs CityHash128 checksums that no installed package provides.
* **Limits**: a URL parameter or multipart form field longer than a server's default
  ``http_max_field_value_size`` (128 KiB) is refused as a server refuses it ("Field value too long", code
  1000); external data (file parts) is not limited. A server's limit can be raised in a user profile;
  this endpoint's cannot, so that a client relying on it fails here first.
* **Errors** are sent the way ClickHouse sends them: HTTP status from ClickHouse's own code-to-status table,
  ``X-ClickHouse-Exception-Code`` header and a ``Code: N. DB::Exception: ... (NAME) (version V)`` body.

Not emulated: progress headers (``send_progress_in_http_headers`` is accepted and ignored), streaming of
results while the query runs (results are buffered, like ``wait_end_of_query=1``), ``client_protocol_version``
(ignored, so clickhouse-connect reads Native blocks without block info), roles, quotas and users other than
the one configured. Query parameters are bound by the engine itself (``{name:Type}``), except inside the
statement part of an ``INSERT ... FORMAT`` with inline data, which is not given any.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import bz2
import contextlib
import email.parser
import email.policy
import fcntl
import importlib
import itertools
import json
import logging
import lzma
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
import weakref
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import lz4.block
import lz4.frame
import zstandard

log = logging.getLogger("barometre.clickhouse")

DEFAULT_USER = "default"

# ClickHouse error codes this module raises itself (the engine's own errors carry their code).
POCO_EXCEPTION = 1000
STD_EXCEPTION = 1001
NOT_IMPLEMENTED = 48
SYNTAX_ERROR = 62
UNKNOWN_COMPRESSION_METHOD = 89
UNKNOWN_SETTING = 115
READONLY = 164
CANNOT_DECOMPRESS = 271
SESSION_NOT_FOUND = 372
QUERY_IS_TOO_LARGE = 229
SESSION_IS_LOCKED = 373
INVALID_SESSION_TIMEOUT = 374
HTTP_LENGTH_REQUIRED = 381
AUTHENTICATION_FAILED = 516
ABORTED = 236
UNKNOWN_TYPE_OF_QUERY = 78

_ERROR_NAMES = {
    POCO_EXCEPTION: "POCO_EXCEPTION",
    STD_EXCEPTION: "STD_EXCEPTION",
    NOT_IMPLEMENTED: "NOT_IMPLEMENTED",
    SYNTAX_ERROR: "SYNTAX_ERROR",
    UNKNOWN_COMPRESSION_METHOD: "UNKNOWN_COMPRESSION_METHOD",
    UNKNOWN_SETTING: "UNKNOWN_SETTING",
    READONLY: "READONLY",
    CANNOT_DECOMPRESS: "CANNOT_DECOMPRESS",
    SESSION_NOT_FOUND: "SESSION_NOT_FOUND",
    QUERY_IS_TOO_LARGE: "QUERY_IS_TOO_LARGE",
    SESSION_IS_LOCKED: "SESSION_IS_LOCKED",
    INVALID_SESSION_TIMEOUT: "INVALID_SESSION_TIMEOUT",
    HTTP_LENGTH_REQUIRED: "HTTP_LENGTH_REQUIRED",
    AUTHENTICATION_FAILED: "AUTHENTICATION_FAILED",
    ABORTED: "ABORTED",
}

# ClickHouse's exceptionCodeToHTTPStatus (src/Server/HTTP/exceptionCodeToHTTPStatus.cpp), keyed by the
# error's symbolic name because that is what the engine's messages carry.
_STATUS_BY_NAME: dict[str, int] = {
    "REQUIRED_PASSWORD": 401,
    **dict.fromkeys(
        ("UNKNOWN_USER", "WRONG_PASSWORD", "AUTHENTICATION_FAILED", "SET_NON_GRANTED_ROLE", "ACCESS_DENIED"),
        403,
    ),
    **dict.fromkeys(
        (
            "BAD_ARGUMENTS",
            "CANNOT_COMPILE_REGEXP",
            "CANNOT_PARSE_TEXT",
            "CANNOT_PARSE_ESCAPE_SEQUENCE",
            "CANNOT_PARSE_QUOTED_STRING",
            "CANNOT_PARSE_DATE",
            "CANNOT_PARSE_DATETIME",
            "CANNOT_PARSE_NUMBER",
            "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING",
            "CANNOT_PARSE_IPV4",
            "CANNOT_PARSE_IPV6",
            "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
            "CANNOT_PARSE_UUID",
            "DUPLICATE_COLUMN",
            "ILLEGAL_COLUMN",
            "UNKNOWN_ELEMENT_IN_AST",
            "UNKNOWN_TYPE_OF_AST_NODE",
            "THERE_IS_NO_COLUMN",
            "TOO_DEEP_AST",
            "TOO_BIG_AST",
            "UNEXPECTED_AST_STRUCTURE",
            "SYNTAX_ERROR",
            "INCORRECT_DATA",
            "TYPE_MISMATCH",
            "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
        ),
        400,
    ),
    **dict.fromkeys(
        (
            "UNKNOWN_TABLE",
            "UNKNOWN_FUNCTION",
            "UNKNOWN_IDENTIFIER",
            "UNKNOWN_TYPE",
            "UNKNOWN_STORAGE",
            "UNKNOWN_DATABASE",
            "UNKNOWN_SETTING",
            "UNKNOWN_DIRECTION_OF_SORTING",
            "UNKNOWN_AGGREGATE_FUNCTION",
            "UNKNOWN_FORMAT",
            "UNKNOWN_DATABASE_ENGINE",
            "UNKNOWN_TYPE_OF_QUERY",
            "UNKNOWN_ROLE",
        ),
        404,
    ),
    "QUERY_IS_TOO_LARGE": 413,
    "NOT_IMPLEMENTED": 501,
    "SOCKET_TIMEOUT": 503,
    "CANNOT_OPEN_FILE": 503,
    "CANNOT_SCHEDULE_TASK": 503,
    "HTTP_LENGTH_REQUIRED": 411,
    "TIMEOUT_EXCEEDED": 408,
    "UNSUPPORTED_MEDIA_TYPE": 415,
}

# URL parameters that are not settings (ClickHouse's HTTPHandler reserved_param_names).
_RESERVED_PARAMS = frozenset(
    {
        "query",
        "compress",
        "decompress",
        "user",
        "password",
        "quota_key",
        "query_id",
        "stacktrace",
        "role",
        "buffer_size",
        "wait_end_of_query",
        "session_id",
        "session_timeout",
        "session_check",
        "client_protocol_version",
        "close_session",
        "database",
        "default_format",
    }
)
# Settings that only steer ClickHouse's HTTP layer: this module honours the ones it implements and does not
# pass any of them to the engine, where they would do nothing.
_HTTP_LAYER_SETTINGS = frozenset(
    {
        "enable_http_compression",
        "http_zlib_compression_level",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "cancel_http_readonly_queries_on_client_close",
        "http_wait_end_of_query",
        "http_response_buffer_size",
        "add_http_cors_header",
        "http_write_exception_in_output_format",
        "http_native_compression_disable_checksumming_on_decompress",
    }
)
_SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# chDB ships some defaults that differ from clickhouse-server's; every connection is opened with the server's
# values so that code written against this endpoint behaves the same on a real server.
_SERVER_DEFAULTS = {
    "date_time_input_format": "basic",
    "implicit_select": "0",
    "enable_http_compression": "0",
    "allow_introspection_functions": "0",
}

KEEP_ALIVE_TIMEOUT = 30
# The most bytes a request body may have, as sent and once decompressed (Content-Encoding, decompress=1):
# a small compressed body cannot unfold into more memory than this. BAROMETRE_CLICKHOUSE_MAX_BODY_BYTES
# sets it for `serve`. (A server streams bodies; this endpoint holds one in memory.)
MAX_BODY_BYTES = 1024**3
MAX_BODY_BYTES_ENV = "BAROMETRE_CLICKHOUSE_MAX_BODY_BYTES"
_READ_CHUNK = 1 << 20
HTTP_MAX_FIELD_VALUE_SIZE = 128 * 1024  # the server's default http_max_field_value_size
_SESSION_TIMEOUT_DEFAULT = 60
_SESSION_TIMEOUT_MAX = 3600


class ClickHouseError(Exception):
    """An error reported to the client the way ClickHouse reports it (code, symbolic name, message)."""

    def __init__(self, code: int, message: str, name: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.name = name or _ERROR_NAMES.get(code, "UNKNOWN_EXCEPTION")
        self.message = message

    @property
    def http_status(self) -> int:
        return _STATUS_BY_NAME.get(self.name, 500)

    def body(self, version: str) -> str:
        text = self.message.rstrip()
        if not text.endswith("."):
            text += "."
        return f"Code: {self.code}. DB::Exception: {text} ({self.name}) (version {version})"


_PREFIX_RE = re.compile(r"(?:Code: (\d+)\. (?:DB::Exception: )?)+")
_NAME_RE = re.compile(r"\(([A-Z][A-Z0-9_]+)\)")


def engine_error(exc: BaseException) -> ClickHouseError:
    """Turn an exception raised by chDB into a ClickHouseError carrying the engine's code and name.

    chDB nests messages ("Code: 73. DB::Exception: Code: 73. DB::Exception: ... (NAME) (version V). (NAME)");
    the innermost text is kept so that the client sees what clickhouse-server would send.
    """
    text = str(exc).strip()
    m = _PREFIX_RE.match(text)
    if not m:
        return ClickHouseError(STD_EXCEPTION, f"std::exception. {text}")
    code = int(m.group(1))
    rest = text[m.end() :]
    names = _NAME_RE.findall(rest)
    name = names[-1] if names else None
    if name is not None:
        cut = rest.find(f" ({name})")
        if cut >= 0:
            rest = rest[:cut]
    return ClickHouseError(code, rest.strip(), name)


# ----------------------------------------------------------------------------------------------------
# SQL scanning: just enough of ClickHouse's lexer to split INSERT statements from their data, find FORMAT
# clauses and refuse multi-statements, without ever decoding the (possibly binary) data part.
# ----------------------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(
    rb"""
    (?P<ws>\s+)
  | (?P<lc>--[^\n]*|\#[^\n]*)
  | (?P<bc>/\*)
  | (?P<string>'(?:[^'\\]|\\.|'')*'?)
  | (?P<ident>"(?:[^"\\]|\\.|"")*"?|`(?:[^`\\]|\\.|``)*`?)
  | (?P<heredoc>\$[A-Za-z0-9_]*\$)
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<number>[0-9][A-Za-z0-9_.]*)
  | (?P<punct>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_OPEN = frozenset(b"([{")
_CLOSE = frozenset(b")]}")


@dataclass(frozen=True)
class _Token:
    kind: str
    start: int
    end: int
    depth: int
    text: bytes


def _tokens(sql: bytes) -> Iterator[_Token]:
    """Yield the significant tokens of ``sql`` (comments and whitespace skipped), with bracket depth."""
    pos, n, depth = 0, len(sql), 0
    while pos < n:
        m = _TOKEN_RE.match(sql, pos)
        if m is None:  # pragma: no cover - the pattern matches any byte
            return
        kind = m.lastgroup or "punct"
        end = m.end()
        if kind == "bc":
            # ClickHouse allows nested block comments.
            level, end = 1, pos + 2
            while level and end < n:
                if sql.startswith(b"/*", end):
                    level, end = level + 1, end + 2
                elif sql.startswith(b"*/", end):
                    level, end = level - 1, end + 2
                else:
                    end += 1
        elif kind == "heredoc":
            close = sql.find(m.group(0), end)
            end = n if close < 0 else close + len(m.group(0))
            yield _Token("string", pos, end, depth, sql[pos:end])
        elif kind in ("ws", "lc"):
            pass
        elif kind == "punct":
            c = sql[pos]
            if c in _CLOSE:
                depth = max(0, depth - 1)
            yield _Token(kind, pos, end, depth, sql[pos:end])
            if c in _OPEN:
                depth += 1
        else:
            yield _Token(kind, pos, end, depth, sql[pos:end])
        pos = end


def _name_of(tok: _Token) -> str:
    if tok.kind == "ident":
        return tok.text[1:-1].decode("utf-8", "replace")
    return tok.text.decode("utf-8", "replace")


@dataclass
class Statement:
    """What the endpoint needs to know about a query before handing it to the engine."""

    kind: str = ""  # upper-case leading keyword ("SELECT", "INSERT", ...)
    output_format: str | None = None  # FORMAT clause of a statement that returns a result
    insert_format: str | None = None  # FORMAT of an INSERT whose data follows the statement
    head_end: int = 0  # end of the INSERT statement text, FORMAT clause excluded
    settings_at: int | None = None  # where the INSERT's own SETTINGS clause begins, if it has one
    data_start: int = 0  # where the INSERT's data begins
    second_statement_at: int | None = None
    into_outfile: bool = False  # SELECT ... INTO OUTFILE: refused over HTTP, as by ClickHouse
    from_infile: bool = False  # INSERT ... FROM INFILE: refused over HTTP, as by ClickHouse


_RESULT_KINDS = frozenset(
    {"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "CHECK", "VALUES"}
)


def analyze(sql: bytes) -> Statement:
    """Scan the statement at the start of ``sql`` (see :class:`Statement`)."""
    st = Statement()
    toks = _tokens(sql)
    first = next(toks, None)
    if first is None:
        return st
    if first.kind == "punct" and first.text == b"(":
        st.kind = "SELECT"
    elif first.kind == "word":
        st.kind = first.text.decode().upper()
    if st.kind == "INSERT" and _analyze_insert(sql, toks, st) != "SELECT":
        # Past FORMAT <name> or VALUES comes data, not SQL: it is not scanned (it may be large, or binary).
        return st
    # A FORMAT clause is "FORMAT <name>" at bracket depth 0, followed by nothing, ';' or SETTINGS; this keeps
    # a column or function called "format" from being taken for one.
    candidate: str | None = None
    after_candidate = 0
    prev: _Token | None = None
    for tok in toks:
        if tok.depth == 0 and tok.kind == "punct" and tok.text == b";":
            rest = next(toks, None)
            if rest is not None:
                st.second_statement_at = rest.start
            break
        if candidate is not None:
            after_candidate += 1
            if after_candidate == 1 and not (tok.kind == "word" and tok.text.upper() == b"SETTINGS"):
                candidate = None
        if (
            tok.kind == "word"
            and tok.text.upper() == b"OUTFILE"
            and prev is not None
            and prev.kind == "word"
            and prev.text.upper() == b"INTO"
        ):
            st.into_outfile = True
        if (
            st.kind != "INSERT"
            and tok.depth == 0
            and tok.kind in ("word", "ident")
            and prev is not None
            and prev.depth == 0
            and prev.kind == "word"
            and prev.text.upper() == b"FORMAT"
        ):
            candidate, after_candidate = _name_of(tok), 0
        prev = tok
    st.output_format = candidate
    return st


def _analyze_insert(sql: bytes, toks: Iterator[_Token], st: Statement) -> str:
    """Find what follows the target of an INSERT: "FORMAT" (then record the format and where its inline data
    starts), "VALUES", "SELECT" (also for WITH), or "" if nothing recognisable."""
    name_done = False
    expect_name = True
    function_depth: int | None = None
    prev_upper = b""
    for tok in toks:
        upper = tok.text.upper() if tok.kind == "word" else b""
        prev_upper, before = upper, prev_upper
        if expect_name:
            if upper in (b"INTO", b"TABLE"):
                continue
            if upper == b"FUNCTION":
                function_depth = 0
                continue
            if tok.kind in ("word", "ident"):
                expect_name = False
                continue
        if function_depth is not None and not name_done:
            # INSERT INTO FUNCTION f(...): the target ends with the closing bracket of its arguments.
            if tok.kind == "punct" and tok.text == b")" and tok.depth == 0:
                name_done = True
            continue
        if not name_done:
            if tok.kind == "punct" and tok.text == b".":
                expect_name = True
                continue
            name_done = True
        if tok.depth != 0 or tok.kind != "word":
            continue
        if upper == b"SETTINGS" and st.settings_at is None:
            st.settings_at = tok.start
        if upper == b"INFILE" and before == b"FROM":
            st.from_infile = True
        if upper == b"FORMAT":
            fmt = next(toks, None)
            if fmt is None or fmt.kind not in ("word", "ident"):
                return ""
            data = fmt.end
            if data < len(sql) and sql[data] == 0x3B:  # ';'
                raise ClickHouseError(
                    SYNTAX_ERROR,
                    "You have excessive ';' symbol before data for INSERT. Note that there is no ';' just "
                    "after "
                    "format name, you need to put at least one whitespace symbol before the data",
                )
            while data < len(sql) and sql[data] in b" \t\f":
                data += 1
            if data < len(sql) and sql[data] == 0x0D:
                data += 1
            if data < len(sql) and sql[data] == 0x0A:
                data += 1
            st.insert_format = _name_of(fmt)
            st.head_end = tok.start
            st.data_start = data
            return "FORMAT"
        if upper == b"VALUES":
            return "VALUES"
        if upper in (b"SELECT", b"WITH"):
            return "SELECT"
    return ""


# ----------------------------------------------------------------------------------------------------
# Body codecs
# ----------------------------------------------------------------------------------------------------

try:  # brotli is optional: clickhouse-connect only offers "br" when it is installed
    import brotli as _brotli  # type: ignore[import-not-found, unused-ignore]
except ImportError:  # pragma: no cover - depends on the environment
    _brotli = None


def too_large(limit: int, what: str = "request body") -> ClickHouseError:
    return ClickHouseError(
        QUERY_IS_TOO_LARGE, f"The {what} is larger than this endpoint accepts ({limit:,} bytes at most)"
    )


def _bounded(make: Any, data: bytes, limit: int, multi: bool = True) -> bytes:
    """Decompress ``data`` with decompressors from ``make()`` (zlib, bz2, lzma, lz4.frame: the same
    ``decompress(data, max_length)`` / ``eof`` / ``unused_data`` API), one after another over
    concatenated streams when ``multi``, never producing more than ``limit`` + 1 bytes."""
    out: list[bytes] = []
    total = 0
    while True:
        dec = make()
        chunk: bytes = dec.decompress(data, limit - total + 1)
        total += len(chunk)
        if total > limit:
            raise too_large(limit, "decompressed request body")
        out.append(chunk)
        if not dec.eof:
            raise ClickHouseError(CANNOT_DECOMPRESS, "Cannot decompress: truncated compressed data")
        data = dec.unused_data
        if not multi or not data:
            return b"".join(out)


def _lz4_frames(data: bytes, limit: int = MAX_BODY_BYTES) -> bytes:
    # clickhouse-connect compresses each insert block as a separate LZ4 frame; lz4.frame.decompress would
    # stop after the first one.
    return _bounded(lz4.frame.LZ4FrameDecompressor, data, limit)


def _zstd_frames(data: bytes, limit: int = MAX_BODY_BYTES) -> bytes:
    reader = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True)
    out: list[bytes] = []
    total = 0
    while chunk := reader.read(_READ_CHUNK):
        total += len(chunk)
        if total > limit:
            raise too_large(limit, "decompressed request body")
        out.append(chunk)
    return b"".join(out)


def _inflate(data: bytes, limit: int = MAX_BODY_BYTES) -> bytes:
    try:
        return _bounded(zlib.decompressobj, data, limit, multi=False)
    except zlib.error:  # raw deflate, as some clients send it
        return _bounded(lambda: zlib.decompressobj(-zlib.MAX_WBITS), data, limit, multi=False)


def decode_content(data: bytes, encoding: str, limit: int = MAX_BODY_BYTES) -> bytes:
    """Undo the request's ``Content-Encoding`` (ClickHouse's chooseCompressionMethod names), producing
    at most ``limit`` bytes (QUERY_IS_TOO_LARGE beyond: a small body cannot unfold without bound)."""
    method = encoding.strip().lower()
    if method in ("", "none", "identity"):
        return data
    try:
        if method in ("gzip", "x-gzip"):
            return _bounded(lambda: zlib.decompressobj(16 + zlib.MAX_WBITS), data, limit)
        if method in ("deflate", "zlib"):
            return _inflate(data, limit)
        if method in ("zstd", "zst"):
            return _zstd_frames(data, limit)
        if method == "lz4":
            return _lz4_frames(data, limit)
        if method in ("xz", "lzma"):
            return _bounded(lzma.LZMADecompressor, data, limit)
        if method in ("bz2", "bzip2"):
            return _bounded(bz2.BZ2Decompressor, data, limit)
        if method in ("br", "brotli") and _brotli is not None:
            out = _brotli.decompress(data)  # no output bound in brotli's API: checked after the fact
            if len(out) > limit:
                raise too_large(limit, "decompressed request body")
            return out  # type: ignore[no-any-return]
    except ClickHouseError:
        raise
    except Exception as exc:
        raise ClickHouseError(CANNOT_DECOMPRESS, f"Cannot decompress request body ({method}): {exc}") from exc
    raise ClickHouseError(
        NOT_IMPLEMENTED,
        f"Unknown compression method '{encoding}'. Supported by this endpoint: 'none', 'gzip', 'deflate', "
        f"'xz', 'zstd', 'lz4', 'bz2'{', br' if _brotli is not None else ''}",
    )


def decode_native_blocks(data: bytes, limit: int = MAX_BODY_BYTES) -> bytes:
    """Undo ClickHouse's native block compression (``decompress=1``).

    Each block is a 16-byte CityHash128 checksum, a method byte, the compressed size (header included) and the
    decompressed size as little-endian UInt32, then the payload. Checksums are not verified: no installed
    package implements CityHash128 v1.0.2 (ClickHouse itself can skip them, see
    http_native_compression_disable_checksumming_on_decompress). The declared decompressed sizes may add
    up to ``limit`` bytes at most, and no block unfolds past its declared size.
    """
    out: list[bytes] = []
    pos, n, total = 0, len(data), 0
    while pos < n:
        if pos + 25 > n:
            raise ClickHouseError(CANNOT_DECOMPRESS, "Cannot decompress: truncated compressed block header")
        method = data[pos + 16]
        size_compressed = int.from_bytes(data[pos + 17 : pos + 21], "little")
        size_decompressed = int.from_bytes(data[pos + 21 : pos + 25], "little")
        total += size_decompressed
        if total > limit:
            raise too_large(limit, "decompressed request body")
        payload = data[pos + 25 : pos + 16 + size_compressed]
        if size_compressed < 9 or len(payload) != size_compressed - 9:
            raise ClickHouseError(CANNOT_DECOMPRESS, "Cannot decompress: truncated compressed block")
        try:
            if method == 0x82:
                out.append(lz4.block.decompress(payload, uncompressed_size=size_decompressed))
            elif method == 0x90:
                out.append(
                    zstandard.ZstdDecompressor().decompress(payload, max_output_size=size_decompressed)
                )
            elif method == 0x02:
                out.append(payload)
            else:
                raise ClickHouseError(
                    UNKNOWN_COMPRESSION_METHOD, f"Unknown compression method in block: 0x{method:02x}"
                )
        except ClickHouseError:
            raise
        except Exception as exc:
            raise ClickHouseError(CANNOT_DECOMPRESS, f"Cannot decompress block: {exc}") from exc
        pos += 16 + size_compressed
    return b"".join(out)


def choose_response_encoding(accept: str) -> str | None:
    """ClickHouse's chooseHTTPCompressionMethod: substring tests in its order of preference."""
    for method in ("zstd", "br", "lz4", "gzip", "deflate", "xz", "bz2"):
        if method in accept and (method != "br" or _brotli is not None):
            return method
    return None


def encode_content(data: bytes, method: str, level: int) -> bytes:
    """Compress a response body as one stream (one frame for lz4/zstd, as clickhouse-connect expects)."""
    if method == "zstd":
        out: bytes = zstandard.ZstdCompressor(level=max(1, min(level, 19))).compress(data)
        return out
    if method == "lz4":
        return lz4.frame.compress(data)  # type: ignore[no-any-return]
    if method == "gzip":
        comp = zlib.compressobj(max(1, min(level, 9)), zlib.DEFLATED, 31)
        return comp.compress(data) + comp.flush()
    if method == "deflate":
        return zlib.compress(data, max(1, min(level, 9)))
    if method == "xz":
        return lzma.compress(data)
    if method == "bz2":
        return bz2.compress(data)
    if method == "br" and _brotli is not None:
        return _brotli.compress(data)  # type: ignore[no-any-return]
    return data


def content_type_for(fmt: str) -> str:
    """Content-Type that ClickHouse's output formats declare."""
    f = fmt.lower()
    if f.startswith(("csv",)):
        return f"text/csv; charset=UTF-8; header={'present' if 'withnames' in f else 'absent'}"
    if f.startswith(("tabseparated", "tsv")):
        return "text/tab-separated-values; charset=UTF-8"
    if f.startswith(("json", "ndjson")) or f == "jsonl":
        return "application/json; charset=UTF-8"
    if f in ("xml",):
        return "application/xml; charset=UTF-8"
    if f == "markdown":
        return "text/markdown; charset=UTF-8"
    if f.startswith(
        (
            "native",
            "rowbinary",
            "parquet",
            "arrow",
            "orc",
            "avro",
            "msgpack",
            "protobuf",
            "capnproto",
            "bsoneachrow",
            "npy",
            "rawblob",
        )
    ):
        return "application/octet-stream"
    return "text/plain; charset=UTF-8"


def quote_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


# ----------------------------------------------------------------------------------------------------
# Engine: chDB connections and sessions
# ----------------------------------------------------------------------------------------------------


@dataclass
class QueryOutcome:
    """The engine's answer to one query."""

    body: bytes = b""
    read_rows: int = 0
    read_bytes: int = 0
    written_rows: int = 0
    written_bytes: int = 0
    result_rows: int = 0
    result_bytes: int = 0
    elapsed_ns: int = 0


@dataclass
class _Session:
    """A ClickHouse session: one chDB connection plus what this module tracks about its state."""

    session_id: str
    conn: Any
    timeout: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_used: float = field(default_factory=time.monotonic)
    # Settings the session itself has (its SET statements and the connection defaults): what URL settings
    # are reverted to.
    own_settings: dict[str, str] = field(default_factory=dict)
    own_database: str = "default"
    # URL settings of the previous request still applied to the connection (lazily reverted).
    applied: dict[str, str] = field(default_factory=dict)
    current_database: str = "default"
    closed: bool = False


class Engine:
    """Owns the chDB data directory: the anchor connection, per-request connections and named sessions."""

    def __init__(self, data_dir: Path) -> None:
        # Imported here, not at module level: only the endpoint process loads the engine. (Through importlib
        # because chDB's type stubs do not declare connect().)
        _chdb: Any = importlib.import_module("chdb._chdb")
        self._chdb = _chdb
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir.resolve()
        options = "&".join(f"{k}={v}" for k, v in _SERVER_DEFAULTS.items())
        self._conn_string = f"{self.data_dir}?{options}"
        # The anchor keeps the embedded server (and the directory lock) alive between requests.
        self._anchor = _chdb.connect(self._conn_string)
        row = self._anchor.query("SELECT version(), timezone()", "TabSeparated").bytes().decode().strip()
        self.version, self.timezone = row.split("\t")
        self._sessions: dict[str, _Session] = {}
        self._sessions_lock = threading.Lock()
        self._last_sweep = time.monotonic()
        self._inflight = 0
        self._idle = threading.Condition()
        self._closing = False

    # -- lifecycle ----------------------------------------

    @contextlib.contextmanager
    def request_scope(self) -> Iterator[None]:
        """Count a request in flight so that close() waits for it before shutting the engine down."""
        with self._idle:
            if self._closing:
                raise ClickHouseError(ABORTED, "Server is shutting down")
            self._inflight += 1
        try:
            yield
        finally:
            with self._idle:
                self._inflight -= 1
                self._idle.notify_all()

    def close(self, timeout: float = 10.0) -> None:
        """Refuse new queries, wait for running ones, close every connection and release the directory."""
        with self._idle:
            self._closing = True
            deadline = time.monotonic() + timeout
            while self._inflight and time.monotonic() < deadline:
                self._idle.wait(max(0.0, deadline - time.monotonic()))
        with self._sessions_lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for s in sessions:
            self.discard(s.conn)
        self.discard(self._anchor)

    @staticmethod
    def discard(conn: Any) -> None:
        with contextlib.suppress(Exception):
            conn.close()

    def connect(self) -> Any:
        return self._chdb.connect(self._conn_string)

    # -- sessions ----------------------------------------

    def _sweep(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep < 1.0:
            return
        self._last_sweep = now
        expired = [
            s for s in self._sessions.values() if not s.lock.locked() and now - s.last_used > s.timeout
        ]
        for s in expired:
            del self._sessions[s.session_id]
            s.closed = True
            self.discard(s.conn)

    def acquire_session(self, session_id: str, timeout: float, check: bool) -> _Session:
        """Return the session, locked for the caller; create it unless ``check``."""
        with self._sessions_lock:
            self._sweep()
            s = self._sessions.get(session_id)
            if s is None:
                if check:
                    raise ClickHouseError(SESSION_NOT_FOUND, f"Session {session_id} not found")
                conn = self.connect()
                s = _Session(session_id, conn, timeout)
                s.own_settings = self._changed_settings(conn)
                self._sessions[session_id] = s
            if not s.lock.acquire(blocking=False):
                raise ClickHouseError(
                    SESSION_IS_LOCKED, f"Session {session_id} is locked by a concurrent client"
                )
            s.timeout = timeout
            return s

    def release_session(self, s: _Session, close: bool) -> None:
        s.last_used = time.monotonic()
        if close:
            with self._sessions_lock:
                if self._sessions.get(s.session_id) is s:
                    del self._sessions[s.session_id]
            s.closed = True
            self.discard(s.conn)
        s.lock.release()

    @staticmethod
    def _changed_settings(conn: Any) -> dict[str, str]:
        raw = conn.query(
            "SELECT name, value FROM system.settings WHERE changed", "JSONCompactEachRow"
        ).bytes()
        return {name: value for name, value in (json.loads(line) for line in raw.splitlines() if line)}

    def sync_session_state(self, s: _Session) -> None:
        """Record the session's own settings and database after a statement that may have changed them."""
        s.own_settings = self._changed_settings(s.conn)
        s.own_database = s.conn.query("SELECT currentDatabase()", "TabSeparated").bytes().decode().strip()
        s.current_database = s.own_database
        s.applied = {}

    def revert_url_state(self, s: _Session) -> None:
        """Put the session connection back to the session's own settings and database."""
        self.apply_session_state(s, {}, None)

    def apply_session_state(self, s: _Session, settings: Mapping[str, str], database: str | None) -> None:
        """Make the session connection run the next query with these URL settings and database.

        Only differences with what the connection already has are sent, so a client that sends the same
        settings with every request (clickhouse-connect does) pays for them once per session.
        """
        changes: list[str] = []
        for k, v in settings.items():
            if s.applied.get(k) != v:
                changes.append(f"{k} = {quote_literal(v)}")
        for k in s.applied:
            if k not in settings:
                own = s.own_settings.get(k)
                changes.append(f"{k} = {quote_literal(own)}" if own is not None else f"{k} = DEFAULT")
        if changes:
            try:
                s.conn.query("SET " + ", ".join(changes), "TabSeparated")
            except Exception as exc:
                # Part of the SET may have been applied: go back to a known state before reporting.
                self._resync_after_failed_set(s, list(settings) + list(s.applied))
                raise engine_error(exc) from exc
            s.applied = dict(settings)
        wanted = database or s.own_database
        if wanted != s.current_database:
            try:
                s.conn.query(f"USE {quote_identifier(wanted)}", "TabSeparated")
            except Exception as exc:
                raise engine_error(exc) from exc
            s.current_database = wanted

    def _resync_after_failed_set(self, s: _Session, keys: list[str]) -> None:
        for k in keys:
            own = s.own_settings.get(k)
            with contextlib.suppress(Exception):
                s.conn.query(f"SET {k} = {quote_literal(own)}" if own is not None else f"SET {k} = DEFAULT")
        s.applied = {}

    # -- queries ----------------------------------------

    def run_query(self, conn: Any, sql: str, fmt: str, params: Mapping[str, str]) -> QueryOutcome:
        t0 = time.perf_counter_ns()
        try:
            res = conn.query(sql, fmt, params=dict(params))
        except Exception as exc:
            raise engine_error(exc) from exc
        body = res.bytes()
        return QueryOutcome(
            body=body,
            read_rows=res.storage_rows_read(),
            read_bytes=res.storage_bytes_read(),
            written_rows=res.rows_written(),
            written_bytes=res.bytes_written(),
            result_rows=res.rows_read(),
            result_bytes=len(body),
            elapsed_ns=time.perf_counter_ns() - t0,
        )

    def run_insert(
        self, conn: Any, target: str, fmt: str, data: bytes, settings_clause: str = ""
    ) -> QueryOutcome:
        """Insert ``data`` (encoded in ``fmt``) into ``target`` (``INSERT INTO t [(cols)]``) as one query.

        The engine reads the data from a pipe (``INSERT ... FROM INFILE '/dev/fd/N'``) that a thread fills,
        so its input format parses the raw bytes, with no temporary file and no re-encoding. Not chDB's
        streaming insert (``send_insert``/``insert_append``/``insert_done``): that one reports success, and
        stores nothing, when the table refuses the block (a CHECK constraint, a MATERIALIZED or DEFAULT
        expression, a materialized view that throws), where a query reports the engine's error. (Nor
        ``query()`` with the data inline: it stops at the first NUL byte of binary data.)
        """
        t0 = time.perf_counter_ns()
        read_fd, write_fd = os.pipe()
        stop = threading.Event()
        feeder: threading.Thread | None = None
        if len(data) <= _pipe_capacity(write_fd):
            _feed_pipe(write_fd, data, stop)  # it all fits in the pipe: no thread needed
        else:
            feeder = threading.Thread(
                target=_feed_pipe, args=(write_fd, data, stop), name="insert-feed", daemon=True
            )
            feeder.start()
        sql = (
            f"{target.rstrip()} FROM INFILE {quote_literal(f'/dev/fd/{read_fd}')} COMPRESSION 'none' "
            f"{settings_clause.strip()} FORMAT {quote_identifier(fmt)}"
        )
        try:
            res = conn.query(sql, "TabSeparated")
        except Exception as exc:
            raise engine_error(exc) from exc
        finally:
            stop.set()
            if feeder is None:
                os.close(read_fd)
            else:
                _drain_pipe(read_fd, feeder)
        rows, nbytes = res.rows_written(), res.bytes_written()
        return QueryOutcome(
            read_rows=rows,
            read_bytes=nbytes,
            written_rows=rows,
            written_bytes=nbytes,
            elapsed_ns=time.perf_counter_ns() - t0,
        )


_PIPE_CHUNK = 1 << 20


def _pipe_capacity(fd: int) -> int:
    """Grow the pipe to 1 MiB where the OS allows it (Linux; fewer, larger writes) and return its capacity,
    0 if unknown."""
    if not hasattr(fcntl, "F_SETPIPE_SZ"):
        return 0
    try:
        return int(fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_CHUNK))
    except OSError:  # above the user's pipe quota: the default size
        return int(fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ))


def _feed_pipe(fd: int, data: bytes, stop: threading.Event) -> None:
    """Write ``data`` to the pipe ``fd`` until done, the reader is gone, or ``stop``; then close it."""
    view = memoryview(data)
    try:
        while view and not stop.is_set():
            view = view[os.write(fd, view[:_PIPE_CHUNK]) :]
    except BrokenPipeError:
        pass  # the engine stopped reading (it refused the data): the query reports why
    finally:
        os.close(fd)


def _drain_pipe(read_fd: int, feeder: threading.Thread) -> None:
    """Once the query is over, empty the pipe until its feeder has stopped, then close our end.

    The feeder may be blocked writing data the engine will never read (the query failed, or the engine
    stopped early); reading what is left unblocks it, and it stops at its next chunk."""
    os.set_blocking(read_fd, False)
    try:
        while feeder.is_alive():
            try:
                if not os.read(read_fd, _PIPE_CHUNK):
                    break  # end of file: the feeder closed its end
            except BlockingIOError:
                feeder.join(0.001)
        feeder.join()
    finally:
        os.close(read_fd)


# ----------------------------------------------------------------------------------------------------
# Request processing (independent of the HTTP server library)
# ----------------------------------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    params: list[tuple[str, str]]
    headers: Mapping[str, str]  # lower-case names
    body: bytes


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class _ExternalTable:
    name: str
    structure: str
    fmt: str
    data: bytes


def _param(params: list[tuple[str, str]], name: str, default: str | None = None) -> str | None:
    for k, v in params:
        if k == name:
            return v
    return default


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("1", "true", "yes", "on")


class Handler:
    """Answers ClickHouse HTTP requests against an :class:`Engine`."""

    def __init__(
        self,
        engine: Engine,
        user: str = DEFAULT_USER,
        password: str = "",
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.engine = engine
        self.user = user
        self.password = password
        self.max_body_bytes = max_body_bytes
        self.display_name = socket.gethostname()

    # -- entry point ----------------------------------------

    def handle(self, req: Request) -> Response:
        path = req.path.rstrip("/") or "/"
        if path in ("/ping", "/replicas_status") and req.method in ("GET", "HEAD"):
            return self._text(200, "Ok.\n")
        if path not in ("/", "/query"):
            return self._text(
                404,
                f"There is no handle {req.path}\n\nUse / or /ping for health checks.\n"
                "Send queries from your program with POST method or GET /?query=...\n",
            )
        has_query = _param(req.params, "query") is not None
        if req.method in ("GET", "HEAD") and not has_query and not req.body:
            return self._text(200, "Ok.\n")
        query_id = (
            _param(req.params, "query_id") or req.headers.get("x-clickhouse-query-id") or str(uuid.uuid4())
        )
        try:
            with self.engine.request_scope():
                return self._execute(req, query_id)
        except ClickHouseError as err:
            return self._error(err, query_id)
        except Exception as exc:  # the client must get a ClickHouse-shaped answer whatever happened
            log.exception("unexpected error")
            return self._error(ClickHouseError(STD_EXCEPTION, f"std::exception. {exc!r}"), query_id)

    def _text(self, status: int, text: str) -> Response:
        return Response(
            status,
            [
                ("Content-Type", "text/plain; charset=UTF-8"),
                ("X-ClickHouse-Server-Display-Name", self.display_name),
            ],
            text.encode(),
        )

    def _error(self, err: ClickHouseError, query_id: str) -> Response:
        headers = [
            ("Content-Type", "text/plain; charset=UTF-8"),
            ("X-ClickHouse-Server-Display-Name", self.display_name),
            ("X-ClickHouse-Query-Id", query_id),
            ("X-ClickHouse-Exception-Code", str(err.code)),
        ]
        if err.http_status == 401:
            headers.append(("WWW-Authenticate", 'Basic realm="ClickHouse server HTTP API"'))
        return Response(err.http_status, headers, (err.body(self.engine.version) + "\n").encode())

    # -- authentication ----------------------------------------

    def _authenticate(self, req: Request) -> None:
        """Check credentials: X-ClickHouse-User/Key headers, Basic auth, or user/password parameters."""
        h_user = req.headers.get("x-clickhouse-user", "")
        h_key = req.headers.get("x-clickhouse-key", "")
        authz = req.headers.get("authorization", "")
        p_user = _param(req.params, "user")
        p_password = _param(req.params, "password")
        in_params = p_user is not None or p_password is not None
        user, password = DEFAULT_USER, ""
        if h_user or h_key:
            if authz or in_params:
                raise ClickHouseError(
                    AUTHENTICATION_FAILED,
                    "Invalid authentication: it is not allowed to use X-ClickHouse HTTP headers and other "
                    "authentication methods simultaneously",
                )
            user, password = h_user or DEFAULT_USER, h_key
        elif authz:
            if in_params:
                raise ClickHouseError(
                    AUTHENTICATION_FAILED,
                    "Invalid authentication: it is not allowed to use Authorization HTTP header and "
                    "authentication via parameters simultaneously",
                )
            scheme, _, token = authz.partition(" ")
            if scheme.lower() != "basic":
                raise ClickHouseError(
                    AUTHENTICATION_FAILED,
                    f"Invalid authentication: '{scheme}' HTTP Authorization scheme is not supported",
                )
            try:
                decoded = base64.b64decode(token.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise ClickHouseError(
                    AUTHENTICATION_FAILED, "Invalid authentication: malformed Basic credentials"
                ) from exc
            user, _, password = decoded.partition(":")
        elif in_params:
            user, password = p_user or DEFAULT_USER, p_password or ""
        user_ok = secrets.compare_digest(user.encode(), self.user.encode())
        password_ok = secrets.compare_digest(password.encode(), self.password.encode())
        if not (user_ok and password_ok):
            raise ClickHouseError(
                AUTHENTICATION_FAILED,
                f"{user}: Authentication failed: password is incorrect, or there is no user with such name",
            )

    # -- query execution ----------------------------------------

    def _execute(self, req: Request, query_id: str) -> Response:
        params = req.params
        self._authenticate(req)
        if _truthy(_param(params, "compress")):
            raise ClickHouseError(
                NOT_IMPLEMENTED,
                "compress=1 (ClickHouse native compression of the result) is not supported by this endpoint; "
                "use HTTP compression (Accept-Encoding with enable_http_compression=1)",
            )

        # The body: HTTP Content-Encoding first, then ClickHouse's own block framing.
        body = req.body
        encoding = req.headers.get("content-encoding", "")
        if encoding:
            body = decode_content(body, encoding, self.max_body_bytes)
        if _truthy(_param(params, "decompress")):
            body = decode_native_blocks(body, self.max_body_bytes)

        # multipart/form-data: the query and parameters come from form fields, files are external tables.
        form_params: list[tuple[str, str]] = []
        externals: list[_ExternalTable] = []
        content_type = req.headers.get("content-type", "")
        multipart = content_type.lower().startswith("multipart/form-data")
        if multipart:
            form_params, files = _parse_multipart(content_type, body)
            body = b""
            externals = _external_tables(files, params + form_params)

        # A server's HTML form parser refuses a longer URL parameter or form field (a file part, i.e.
        # external data, has no such limit): a client passing a large list as a query parameter fails
        # here as it would there.
        for k, v in itertools.chain(params, form_params):
            if len(v) > HTTP_MAX_FIELD_VALUE_SIZE:
                raise ClickHouseError(
                    POCO_EXCEPTION,
                    f"HTML Form Exception: Field value too long ({k}: {len(v):,} bytes, "
                    f"http_max_field_value_size is {HTTP_MAX_FIELD_VALUE_SIZE:,})",
                )

        # Split parameters into settings, query parameters and the rest, the way HTTPHandler does.
        settings: dict[str, str] = {}
        query_params: dict[str, str] = {}
        http_settings: dict[str, str] = {}
        query_parts: list[str] = []
        ext_suffixes = ("_format", "_types", "_structure")
        for k, v in params:
            if k == "query":
                query_parts.append(v)
            elif k.startswith("param_"):
                query_params.setdefault(k[6:], v)
            elif k in _RESERVED_PARAMS or not k or (multipart and k.endswith(ext_suffixes)):
                continue
            elif k in _HTTP_LAYER_SETTINGS:
                http_settings[k] = v
            elif not _SETTING_NAME.match(k):
                raise ClickHouseError(UNKNOWN_SETTING, f"Unknown setting '{k}'")
            else:
                settings[k] = v
        for k, v in form_params:
            if k == "query":
                query_parts.append(v)
            elif k.startswith("param_"):
                query_params.setdefault(k[6:], v)

        if multipart:
            sql = "".join(query_parts).encode()
        else:
            head = query_parts[0] if query_parts else ""
            sql = (head.encode() + b"\n" + body) if head else body
        if not sql or sql.isspace():  # isspace() stops at the first byte of data; strip() would copy it all
            raise ClickHouseError(SYNTAX_ERROR, "Empty query")

        database = req.headers.get("x-clickhouse-database") or _param(params, "database") or None
        default_format = (
            req.headers.get("x-clickhouse-format") or _param(params, "default_format") or "TabSeparated"
        )
        readonly_request = req.method in ("GET", "HEAD")

        st = analyze(sql)
        if st.second_statement_at is not None:
            raise ClickHouseError(
                SYNTAX_ERROR,
                "Syntax error (Multi-statements are not allowed): failed at position "
                f"{st.second_statement_at + 1}",
            )

        if st.into_outfile:
            # The engine would write the file on the server's disk; ClickHouse's HTTP handler refuses it.
            raise ClickHouseError(NOT_IMPLEMENTED, "INTO OUTFILE is not allowed")
        if st.from_infile:
            # The engine would read a file on the server's disk (and inserts use FROM INFILE themselves).
            raise ClickHouseError(
                UNKNOWN_TYPE_OF_QUERY,
                "Query has infile and was send directly to server",
                "UNKNOWN_TYPE_OF_QUERY",
            )

        session_id = _param(params, "session_id")
        if session_id:
            outcome = self._run_in_session(
                session_id,
                params,
                st,
                sql,
                settings,
                query_params,
                database,
                default_format,
                readonly_request,
                externals,
            )
        else:
            outcome = self._run_once(
                st, sql, settings, query_params, database, default_format, readonly_request, externals
            )

        return self._result(req, st, outcome, query_id, default_format, settings, http_settings)

    def _session_timeout(self, params: list[tuple[str, str]]) -> float:
        raw = _param(params, "session_timeout")
        if raw is None:
            return float(_SESSION_TIMEOUT_DEFAULT)
        if not raw.isdigit():
            raise ClickHouseError(INVALID_SESSION_TIMEOUT, f"Invalid session timeout: '{raw}'")
        if int(raw) > _SESSION_TIMEOUT_MAX:
            raise ClickHouseError(
                INVALID_SESSION_TIMEOUT,
                f"Session timeout '{raw}' is larger than max_session_timeout: {_SESSION_TIMEOUT_MAX}. "
                "Maximum session timeout could be modified in configuration file",
            )
        return float(raw)

    def _run_once(
        self,
        st: Statement,
        sql: bytes,
        settings: dict[str, str],
        query_params: dict[str, str],
        database: str | None,
        default_format: str,
        readonly_request: bool,
        externals: list[_ExternalTable],
    ) -> QueryOutcome:
        """Run a sessionless query on a fresh connection: nothing it changes outlives the request."""
        conn = self.engine.connect()
        try:
            changes = []
            if readonly_request and "readonly" not in settings:
                # ClickHouse makes GET requests readonly=2 (reads and settings changes only).
                changes.append("readonly = '2'")
            changes += [f"{k} = {quote_literal(v)}" for k, v in settings.items()]
            if changes:
                try:
                    conn.query("SET " + ", ".join(changes), "TabSeparated")
                except Exception as exc:
                    raise engine_error(exc) from exc
            if database:
                try:
                    conn.query(f"USE {quote_identifier(database)}", "TabSeparated")
                except Exception as exc:
                    raise engine_error(exc) from exc
            self._load_externals(conn, externals)
            return self._run_statement(conn, st, sql, query_params, default_format)
        finally:
            self.engine.discard(conn)

    def _run_in_session(
        self,
        session_id: str,
        params: list[tuple[str, str]],
        st: Statement,
        sql: bytes,
        settings: dict[str, str],
        query_params: dict[str, str],
        database: str | None,
        default_format: str,
        readonly_request: bool,
        externals: list[_ExternalTable],
    ) -> QueryOutcome:
        timeout = self._session_timeout(params)
        s = self.engine.acquire_session(session_id, timeout, _truthy(_param(params, "session_check")))
        close = _truthy(_param(params, "close_session"))
        try:
            # A session connection cannot be made readonly for one request and back (readonly cannot be
            # lowered once raised), so GET requests and a `readonly` URL setting are enforced with the
            # engine's own statement classifier instead.
            readonly = settings.pop("readonly", None)
            level = "2" if readonly_request and readonly in (None, "0") else readonly
            if level not in (None, "0"):
                text = sql if st.insert_format is None else sql[: st.data_start]
                cls = s.conn.classify_query(text.decode("utf-8", "replace"))["query_class"].name
                if cls in ("MUTATING", "MUTATING_GLOBAL") or (cls == "CONTROL" and level == "1"):
                    raise ClickHouseError(
                        READONLY,
                        "Cannot execute query in readonly mode. For queries over HTTP, method GET implies "
                        "readonly. You should use method POST for modifying queries",
                    )
            if st.kind in ("SET", "USE"):
                # Run the session's own state change on the session's own state, then record the result.
                self.engine.revert_url_state(s)
            else:
                self.engine.apply_session_state(s, settings, database)
            self._load_externals(s.conn, externals)
            try:
                outcome = self._run_statement(s.conn, st, sql, query_params, default_format)
            finally:
                for ext in externals:
                    with contextlib.suppress(Exception):
                        s.conn.query(f"DROP TEMPORARY TABLE IF EXISTS {quote_identifier(ext.name)}")
            if st.kind in ("SET", "USE"):
                self.engine.sync_session_state(s)
            return outcome
        finally:
            self.engine.release_session(s, close)

    def _load_externals(self, conn: Any, externals: list[_ExternalTable]) -> None:
        for ext in externals:
            try:
                conn.query(
                    f"CREATE TEMPORARY TABLE {quote_identifier(ext.name)} ({ext.structure}) ENGINE = Memory",
                    "TabSeparated",
                )
            except Exception as exc:
                raise engine_error(exc) from exc
            self.engine.run_insert(conn, f"INSERT INTO {quote_identifier(ext.name)}", ext.fmt, ext.data)

    def _run_statement(
        self, conn: Any, st: Statement, sql: bytes, query_params: dict[str, str], default_format: str
    ) -> QueryOutcome:
        if st.insert_format is not None:
            # FROM INFILE goes between the target and the statement's own SETTINGS clause.
            split = st.head_end if st.settings_at is None else st.settings_at
            target = sql[:split].decode("utf-8", "replace")
            settings_clause = sql[split : st.head_end].decode("utf-8", "replace")
            return self.engine.run_insert(
                conn, target, st.insert_format, sql[st.data_start :], settings_clause
            )
        try:
            text = sql.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ClickHouseError(
                SYNTAX_ERROR,
                f"Query is not valid UTF-8 at byte {exc.start} (binary data needs INSERT ... FORMAT)",
            ) from exc
        return self.engine.run_query(conn, text, default_format, query_params)

    def _result(
        self,
        req: Request,
        st: Statement,
        outcome: QueryOutcome,
        query_id: str,
        default_format: str,
        settings: dict[str, str],
        http_settings: dict[str, str],
    ) -> Response:
        summary = {
            "read_rows": str(outcome.read_rows),
            "read_bytes": str(outcome.read_bytes),
            "written_rows": str(outcome.written_rows),
            "written_bytes": str(outcome.written_bytes),
            "total_rows_to_read": str(outcome.read_rows),
            "result_rows": str(outcome.result_rows),
            "result_bytes": str(outcome.result_bytes),
            "elapsed_ns": str(outcome.elapsed_ns),
        }
        headers = [
            ("X-ClickHouse-Server-Display-Name", self.display_name),
            ("X-ClickHouse-Query-Id", query_id),
            ("X-ClickHouse-Timezone", settings.get("session_timezone") or self.engine.timezone),
            ("X-ClickHouse-Summary", json.dumps(summary, separators=(",", ":"))),
        ]
        body = outcome.body
        # Only statements that produce a result declare a format (clickhouse-connect relies on it to tell an
        # empty result from a command).
        if st.insert_format is None and (st.kind in _RESULT_KINDS or body):
            fmt = st.output_format or default_format
            headers.append(("Content-Type", content_type_for(fmt)))
            headers.append(("X-ClickHouse-Format", fmt))
        else:
            headers.append(("Content-Type", "text/plain; charset=UTF-8"))
        if body and _truthy(http_settings.get("enable_http_compression")):
            method = choose_response_encoding(req.headers.get("accept-encoding", ""))
            if method is not None:
                level_raw = http_settings.get("http_zlib_compression_level", "3")
                level = int(level_raw) if level_raw.lstrip("-").isdigit() else 3
                body = encode_content(body, method, level)
                headers.append(("Content-Encoding", method))
        return Response(200, headers, body)


def _parse_multipart(content_type: str, body: bytes) -> tuple[list[tuple[str, str]], list[tuple[str, bytes]]]:
    """Split a multipart/form-data body into text fields and file parts (external data)."""
    parser = email.parser.BytesParser(policy=email.policy.HTTP)
    msg = parser.parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    fields: list[tuple[str, str]] = []
    files: list[tuple[str, bytes]] = []
    if not msg.is_multipart():
        raise ClickHouseError(SYNTAX_ERROR, "Malformed multipart/form-data body")
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if part.get_filename() is not None:
            files.append((name, data))
        else:
            fields.append((name, data.decode("utf-8", "replace")))
    return fields, files


def _external_tables(files: list[tuple[str, bytes]], params: list[tuple[str, str]]) -> list[_ExternalTable]:
    tables = []
    for name, data in files:
        structure = _param(params, f"{name}_structure")
        if structure is None:
            types = _param(params, f"{name}_types")
            if types is None:
                raise ClickHouseError(
                    36,
                    f"Neither structure nor types have not been provided for external table {name}. "
                    f"Use fields {name}_structure or {name}_types to do so",
                    "BAD_ARGUMENTS",
                )
            structure = ", ".join(f"_{i + 1} {t.strip()}" for i, t in enumerate(types.split(",")))
        tables.append(
            _ExternalTable(name, structure, _param(params, f"{name}_format") or "TabSeparated", data)
        )
    return tables


# ----------------------------------------------------------------------------------------------------
# HTTP server (standard library)
# ----------------------------------------------------------------------------------------------------


class _HttpHandler(BaseHTTPRequestHandler):
    """Adapts http.server to :class:`Handler`: reads requests (chunked bodies included), writes answers."""

    protocol_version = "HTTP/1.1"
    server_version = "ClickHouse"
    sys_version = ""
    # Idle keep-alive connections are closed after this many seconds, like ClickHouse's keep_alive_timeout.
    timeout = KEEP_ALIVE_TIMEOUT
    handler: Handler  # set on the subclass built by make_server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in one write, but small replies still must not wait for Nagle.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # requests are logged by _serve, at debug level

    def _read_body(self) -> bytes:
        limit = self.handler.max_body_bytes
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            chunks = []
            total = 0
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                total += size
                if total > limit:  # counted as announced, before a byte of the chunk is read
                    raise too_large(limit)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
            return b"".join(chunks)
        length = self.headers.get("Content-Length")
        if length is not None and length.strip().isdigit() and int(length) > limit:
            raise too_large(limit)
        if length is None:
            if self.command == "POST":
                raise ClickHouseError(
                    HTTP_LENGTH_REQUIRED,
                    "The Transfer-Encoding is not chunked and there is no Content-Length header for POST "
                    "request",
                )
            return b""
        return self.rfile.read(int(length))

    def _serve(self) -> None:
        t0 = time.perf_counter()
        split = urlsplit(self.path)
        params = parse_qsl(split.query, keep_blank_values=True)
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            body = self._read_body()
        except ClickHouseError as err:
            resp = self.handler._error(err, "")
            self.close_connection = True
        except ValueError as exc:  # malformed chunked encoding or Content-Length
            resp = self.handler._error(
                ClickHouseError(STD_EXCEPTION, f"Malformed HTTP request body: {exc}"), ""
            )
            self.close_connection = True
        else:
            resp = self.handler.handle(Request(self.command, split.path, params, headers, body))
        self._send(resp)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s %s %d %dB %.1fms",
                self.command,
                split.path,
                resp.status,
                len(resp.body),
                (time.perf_counter() - t0) * 1000,
            )

    def _send(self, resp: Response) -> None:
        lines = [f"HTTP/1.1 {resp.status} {self.responses.get(resp.status, ('',))[0]}"]
        lines += [f"{k}: {v}" for k, v in resp.headers]
        lines.append(f"Content-Length: {len(resp.body)}")
        lines.append(
            "Connection: close" if self.close_connection else f"Keep-Alive: timeout={KEEP_ALIVE_TIMEOUT}"
        )
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        payload = head if self.command == "HEAD" else head + resp.body
        try:
            self.wfile.write(payload)
        except OSError:  # the client went away; nothing left to tell it
            self.close_connection = True

    do_GET = do_POST = do_HEAD = do_PUT = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Connection-level failures (resets, timeouts) are routine for a server; keep stderr for real news.
        log.debug("connection error from %s", client_address, exc_info=True)


def make_server(
    engine: Engine,
    host: str,
    port: int,
    user: str,
    password: str,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> ThreadingHTTPServer:
    handler = Handler(engine, user, password, max_body_bytes)
    handler_cls = type("BoundHttpHandler", (_HttpHandler,), {"handler": handler})
    return _Server((host, port), handler_cls)


def serve(
    data_dir: Path,
    host: str = "127.0.0.1",
    port: int = 8123,
    user: str | None = None,
    password: str | None = None,
    parent_pid: int | None = None,
    max_body_bytes: int | None = None,
) -> None:
    """Run the endpoint in the foreground until SIGTERM/SIGINT (or until ``parent_pid`` is gone).

    ``max_body_bytes`` defaults to ``BAROMETRE_CLICKHOUSE_MAX_BODY_BYTES``, else :data:`MAX_BODY_BYTES`."""
    if max_body_bytes is None:
        max_body_bytes = int(os.environ.get(MAX_BODY_BYTES_ENV) or MAX_BODY_BYTES)
    engine = Engine(data_dir)
    try:
        server = make_server(engine, host, port, user or DEFAULT_USER, password or "", max_body_bytes)
    except BaseException:
        engine.close()
        raise
    stopping = threading.Event()

    def stop(*_: object) -> None:
        if not stopping.is_set():
            stopping.set()
            # shutdown() waits for serve_forever() to return, so it must not run on the serving thread.
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if parent_pid:

        def watch_parent() -> None:
            while not stopping.wait(1.0):
                if os.getppid() != parent_pid:
                    log.info("parent process %d is gone, stopping", parent_pid)
                    stop()

        threading.Thread(target=watch_parent, name="parent-watch", daemon=True).start()
    log.info(
        "ClickHouse endpoint (chDB %s) serving %s on http://%s:%d",
        engine.version,
        engine.data_dir,
        host,
        port,
    )
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
        engine.close()
        log.info("ClickHouse endpoint stopped")


# ----------------------------------------------------------------------------------------------------
# Launcher
# ----------------------------------------------------------------------------------------------------

_RUNNING: weakref.WeakSet[ClickHouseEndpoint] = weakref.WeakSet()


def _stop_all_at_exit() -> None:
    for ep in list(_RUNNING):
        with contextlib.suppress(Exception):
            ep.stop()


atexit.register(_stop_all_at_exit)


class ClickHouseEndpoint:
    """Runs the endpoint as a child process (``python -m infra.clickhouse serve``) and waits until it answers.

    The child gets its own session (so a Ctrl-C in a terminal reaches the parent, which stops it in order),
    is stopped at interpreter exit, and stops by itself if the parent process disappears.
    """

    def __init__(
        self,
        data_dir: Path,
        host: str = "127.0.0.1",
        port: int = 8123,
        user: str | None = None,
        password: str | None = None,
        log_path: Path | None = None,
        debug: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.log_path = Path(log_path) if log_path else self.data_dir.with_name(self.data_dir.name + ".log")
        self.debug = debug
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _ping(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=1) as resp:  # noqa: S310 - our own URL
                return bool(resp.status == 200 and resp.read() == b"Ok.\n")
        except (urllib.error.URLError, OSError):
            return False

    def _log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def start(self, timeout: float = 30) -> ClickHouseEndpoint:
        if self.is_running():
            return self
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex((self.host, self.port)) == 0:
                raise RuntimeError(
                    f"cannot start ClickHouse endpoint: {self.host}:{self.port} is already in use"
                )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "infra.clickhouse",
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--parent-pid",
            str(os.getpid()),
        ]
        if self.debug:
            cmd.append("--debug")
        env = dict(os.environ)
        # The password travels in the environment, not on the command line where `ps` shows it; variables
        # inherited from the parent are replaced, so the child has exactly the credentials given here.
        env.pop("BAROMETRE_CLICKHOUSE_USER", None)
        env.pop("BAROMETRE_CLICKHOUSE_PASSWORD", None)
        if self.user:
            env["BAROMETRE_CLICKHOUSE_USER"] = self.user
        if self.password:
            env["BAROMETRE_CLICKHOUSE_PASSWORD"] = self.password
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        with open(self.log_path, "ab") as log_file:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=root,
                start_new_session=True,
            )
        _RUNNING.add(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise RuntimeError(
                    f"ClickHouse endpoint exited with code {code} during startup:\n{self._log_tail()}"
                )
            if self._ping():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"ClickHouse endpoint did not answer /ping within {timeout}s:\n{self._log_tail()}")

    def stop(self, timeout: float = 15) -> None:
        proc, self._proc = self._proc, None
        _RUNNING.discard(self)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def __enter__(self) -> ClickHouseEndpoint:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
