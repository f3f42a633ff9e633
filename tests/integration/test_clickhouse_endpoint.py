"""The local ClickHouse endpoint behaves like ClickHouse's HTTP interface for clickhouse-connect and curl.

Each test states one behaviour that services (clickhouse-connect, default settings) or people (curl, as in
ClickHouse's HTTP documentation) rely on.
"""

from __future__ import annotations

import datetime as dt
import gzip
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import clickhouse_connect
import pandas as pd
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError
from clickhouse_connect.driver.external import ExternalData

from infra.clickhouse import ClickHouseEndpoint

pytestmark = pytest.mark.clickhouse

RESTART_PORT = 18124
AUTH_PORT = 18125


def curl(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run curl, returning status line, headers and body in stdout (``-i``)."""
    return subprocess.run(
        ["curl", "-sS", "-i", *args], input=data, capture_output=True, check=True, timeout=30
    )


def split_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body


@pytest.fixture
def table(ch_client: Any, ch_database: str) -> str:
    name = f"{ch_database}.events"
    ch_client.command(
        f"CREATE TABLE {name} (id UInt64, name String, ts DateTime64(3, 'UTC'), value Float64) "
        "ENGINE = MergeTree ORDER BY id"
    )
    return name


# ----------------------------------------------------------------------------------------------------
# clickhouse-connect
# ----------------------------------------------------------------------------------------------------


def test_client_connects_with_defaults_and_reports_server(ch_client: Any) -> None:
    assert ch_client.server_version.startswith("26.")
    assert ch_client.compression  # response compression negotiated, as with a real server
    assert ch_client.query("SELECT 1 + 1").result_rows == [(2,)]


def test_query_query_df_and_arrow(ch_client: Any) -> None:
    result = ch_client.query("SELECT number AS n, toString(number) AS s FROM numbers(5)")
    assert result.column_names == ("n", "s")
    assert result.result_rows == [(i, str(i)) for i in range(5)]
    df = ch_client.query_df("SELECT number AS n, number * 2 AS m FROM numbers(3)")
    assert list(df.columns) == ["n", "m"]
    assert df["m"].tolist() == [0, 2, 4]
    arrow = ch_client.query_arrow("SELECT number AS n FROM numbers(4)")
    assert arrow.column("n").to_pylist() == [0, 1, 2, 3]


def test_insert_100k_rows_native_compressed_reads_back_exactly(ch_client: Any, table: str) -> None:
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    rows = [(i, f"name-{i}", start + dt.timedelta(seconds=i), i * 0.5) for i in range(100_000)]
    summary = ch_client.insert(table, rows, column_names=["id", "name", "ts", "value"])
    assert summary.written_rows == 100_000
    count, id_sum, value_sum, names = ch_client.query(
        f"SELECT count(), sum(id), sum(value), uniqExact(name) FROM {table}"
    ).result_rows[0]
    assert (count, id_sum, value_sum, names) == (100_000, 4_999_950_000, 2_499_975_000.0, 100_000)
    last = ch_client.query(f"SELECT ts FROM {table} WHERE id = 99999").result_rows[0][0]
    assert last.replace(tzinfo=dt.UTC) == start + dt.timedelta(seconds=99_999)


def test_insert_df(ch_client: Any, table: str) -> None:
    df = pd.DataFrame(
        {
            "id": [1, 2, 3],
            "name": ["a", "b", "c"],
            "ts": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"], utc=True),
            "value": [1.5, 2.5, 3.5],
        }
    )
    ch_client.insert_df(table, df)
    assert ch_client.query(f"SELECT sum(id), sum(value) FROM {table}").result_rows == [(6, 7.5)]


def test_command(ch_client: Any, ch_database: str) -> None:
    assert ch_client.command("SELECT 42") == 42
    assert ch_client.command("SELECT 'a', 'b'") == ["a", "b"]
    summary = ch_client.command(f"CREATE TABLE {ch_database}.t (x UInt8) ENGINE = Memory")
    assert not isinstance(summary, (int, str, list))  # a QuerySummary, as for a DDL on a real server
    ch_client.command(f"INSERT INTO {ch_database}.t VALUES (1), (2)")
    assert ch_client.command(f"SELECT count() FROM {ch_database}.t") == 2


def test_parameters_client_side_and_server_side(ch_client: Any) -> None:
    client_side = ch_client.query("SELECT %(x)s + 1, %(s)s", parameters={"x": 41, "s": "it's"})
    assert client_side.result_rows == [(42, "it's")]
    server_side = ch_client.query(
        "SELECT {x:UInt32} + 1, {s:String}, {a:Array(String)}",
        parameters={"x": 41, "s": "l'a", "a": ["p", "q"]},
    )
    assert server_side.result_rows == [(42, "l'a", ["p", "q"])]
    # Large bound values make clickhouse-connect switch to a multipart/form-data request.
    ids = list(range(20_000))
    big = ch_client.query(
        "SELECT count() FROM numbers(100000) WHERE number IN {ids:Array(UInt64)}", {"ids": ids}
    )
    assert big.result_rows == [(20_000,)]


def test_a_parameter_longer_than_a_server_takes_is_refused_external_data_is_not(ch_client: Any) -> None:
    """A ClickHouse server's form parser refuses a field past http_max_field_value_size (128 KiB by
    default, "Field value too long"); the endpoint does too, so a client relying on a longer one fails
    here and not only in production. External data (a file part) has no such limit."""
    keys = [f"facebook:COM:{n:05d}" for n in range(10_000)]  # about 240 kB as an array literal
    with pytest.raises(DatabaseError) as info:
        ch_client.query("SELECT count() FROM numbers(1) WHERE 'x' IN {keys:Array(String)}", {"keys": keys})
    assert info.value.code == 1000
    assert "Field value too long" in str(info.value)
    ext = ExternalData(
        file_name="keys", data="\n".join(keys).encode(), fmt="TabSeparated", structure=["key String"]
    )
    found = ch_client.query(
        "SELECT count() FROM keys WHERE key IN ('facebook:COM:00042', 'x')", external_data=ext
    ).result_rows
    assert found == [(1,)]


def test_error_raises_database_error_with_server_code(ch_client: Any) -> None:
    with pytest.raises(DatabaseError) as info:
        ch_client.query("SELECT * FROM no_such_table_anywhere")
    assert info.value.code == 60
    assert "UNKNOWN_TABLE" in str(info.value)
    with pytest.raises(DatabaseError) as info:
        ch_client.command("SELEC 1")
    assert info.value.code == 62


def test_settings_apply_to_their_query(ch_client: Any) -> None:
    assert ch_client.query("SELECT getSetting('max_threads')", settings={"max_threads": 3}).result_rows == [
        (3,)
    ]
    default = ch_client.query("SELECT getSetting('max_threads')").result_rows[0][0]
    assert default != 3
    with pytest.raises(DatabaseError) as info:
        ch_client.query(
            "SELECT number FROM numbers(100)",
            settings={"max_result_rows": 5, "result_overflow_mode": "throw"},
        )
    assert info.value.code == 396  # TOO_MANY_ROWS_OR_BYTES


def test_session_keeps_set_and_temporary_tables_sessionless_does_not(clickhouse_url: str) -> None:
    session = clickhouse_connect.get_client(dsn=clickhouse_url, session_id=f"s-{uuid.uuid4()}")
    session.command("SET max_threads = 2")
    session.command("CREATE TEMPORARY TABLE tmp_in_session (x UInt8)")
    session.command("INSERT INTO tmp_in_session VALUES (7)")
    assert session.query("SELECT getSetting('max_threads'), (SELECT x FROM tmp_in_session)").result_rows == [
        (2, 7)
    ]
    # A per-query setting does not stick to the session.
    assert session.query("SELECT getSetting('max_threads')", settings={"max_threads": 1}).result_rows == [
        (1,)
    ]
    assert session.query("SELECT getSetting('max_threads')").result_rows == [(2,)]

    sessionless = clickhouse_connect.get_client(dsn=clickhouse_url, autogenerate_session_id=False)
    sessionless.command("SET max_threads = 1")
    assert sessionless.query("SELECT getSetting('max_threads')").result_rows != [(1,)]
    with pytest.raises(DatabaseError) as info:
        sessionless.query("SELECT * FROM tmp_in_session")
    assert info.value.code == 60


def test_external_data(ch_client: Any) -> None:
    ext = ExternalData(
        file_name="ext.csv", data=b"1,a\n2,b\n", fmt="CSV", structure=["id UInt32", "name String"]
    )
    assert ch_client.query("SELECT * FROM ext ORDER BY id", external_data=ext).result_rows == [
        (1, "a"),
        (2, "b"),
    ]


def test_concurrent_inserts_and_selects_from_threads(clickhouse_url: str, table: str) -> None:
    threads, batches, batch_rows = 8, 5, 2_000
    errors: list[BaseException] = []
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)

    def work(worker: int) -> None:
        try:
            client = clickhouse_connect.get_client(dsn=clickhouse_url)
            for b in range(batches):
                base = (worker * batches + b) * batch_rows
                rows = [(base + i, f"w{worker}", start, 1.0) for i in range(batch_rows)]
                client.insert(table, rows, column_names=["id", "name", "ts", "value"])
                client.query(f"SELECT count() FROM {table} WHERE name = 'w{worker}'")
            client.close()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(120)
    assert not errors
    total = threads * batches * batch_rows
    check = clickhouse_connect.get_client(dsn=clickhouse_url)
    assert check.query(f"SELECT count(), uniqExact(id), sum(id) FROM {table}").result_rows == [
        (total, total, total * (total - 1) // 2)
    ]


def test_restart_keeps_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "ch"
    with ClickHouseEndpoint(data_dir, port=RESTART_PORT) as endpoint:
        client = clickhouse_connect.get_client(dsn=endpoint.url)
        client.command("CREATE TABLE kept (x UInt64) ENGINE = MergeTree ORDER BY x")
        client.insert("kept", [(i,) for i in range(1000)], column_names=["x"])
    assert not endpoint.is_running()
    with ClickHouseEndpoint(data_dir, port=RESTART_PORT) as endpoint:
        client = clickhouse_connect.get_client(dsn=endpoint.url)
        assert client.query("SELECT count(), sum(x) FROM kept").result_rows == [(1000, 499_500)]


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseEndpoint]:
    endpoint = ClickHouseEndpoint(
        tmp_path_factory.mktemp("secured") / "data", port=AUTH_PORT, user="barometre", password="s3cret"
    )
    with endpoint:
        yield endpoint


def test_auth_wrong_password_is_refused_right_one_works(secured: ClickHouseEndpoint) -> None:
    with pytest.raises(DatabaseError) as info:
        clickhouse_connect.get_client(
            host=secured.host, port=secured.port, username="barometre", password="bad"
        )
    assert info.value.code == 516
    client = clickhouse_connect.get_client(
        host=secured.host, port=secured.port, username="barometre", password="s3cret"
    )
    assert client.query("SELECT currentUser() != ''").result_rows == [(1,)]

    status, headers, body = split_response(curl(f"{secured.url}/?query=SELECT%201").stdout)
    assert (status, headers["x-clickhouse-exception-code"]) == (403, "516")
    assert b"AUTHENTICATION_FAILED" in body
    for args in (
        ["-u", "barometre:s3cret"],
        ["-H", "X-ClickHouse-User: barometre", "-H", "X-ClickHouse-Key: s3cret"],
    ):
        assert split_response(curl(*args, f"{secured.url}/?query=SELECT%201").stdout)[2] == b"1\n"
    assert (
        split_response(curl(f"{secured.url}/?user=barometre&password=s3cret&query=SELECT%201").stdout)[2]
        == b"1\n"
    )


# ----------------------------------------------------------------------------------------------------
# curl, as in ClickHouse's HTTP interface documentation
# ----------------------------------------------------------------------------------------------------


def test_curl_ping_and_root(clickhouse_url: str) -> None:
    assert split_response(curl(f"{clickhouse_url}/ping").stdout)[:1] == (200,)
    assert split_response(curl(f"{clickhouse_url}/ping").stdout)[2] == b"Ok.\n"
    assert split_response(curl(f"{clickhouse_url}/").stdout)[2] == b"Ok.\n"


def test_curl_query_in_url_and_in_body(clickhouse_url: str) -> None:
    status, headers, body = split_response(curl(f"{clickhouse_url}/?query=SELECT%201").stdout)
    assert (status, body) == (200, b"1\n")
    assert headers["x-clickhouse-format"] == "TabSeparated"
    assert headers["content-type"].startswith("text/tab-separated-values")
    assert headers["x-clickhouse-query-id"]
    assert headers["x-clickhouse-timezone"]
    summary = headers["x-clickhouse-summary"]
    assert '"result_rows":"1"' in summary and '"elapsed_ns":"' in summary
    body = split_response(curl(f"{clickhouse_url}/", "--data-binary", "@-", data=b"SELECT 1 + 1\n").stdout)[2]
    assert body == b"2\n"
    body = split_response(
        curl(f"{clickhouse_url}/?query=SELECT%20number%20FROM%20numbers(2)%20FORMAT%20JSONEachRow").stdout
    )[2]
    assert body == b'{"number":"0"}\n{"number":"1"}\n' or body == b'{"number":0}\n{"number":1}\n'


def test_curl_inserts_csv_jsoneachrow_tsv_and_gzip(clickhouse_url: str, ch_database: str) -> None:
    t = f"{ch_database}.t"
    post = [f"{clickhouse_url}/", "--data-binary", "@-"]
    curl(*post, data=f"CREATE TABLE {t} (a UInt32, b String) ENGINE = MergeTree ORDER BY a".encode())
    curl(
        f"{clickhouse_url}/?query=INSERT%20INTO%20{t}%20FORMAT%20CSV",
        "--data-binary",
        "@-",
        data=b"1,one\n2,two\n",
    )
    curl(*post, data=f'INSERT INTO {t} FORMAT JSONEachRow\n{{"a": 3, "b": "three"}}\n'.encode())
    curl(
        f"{clickhouse_url}/?query=INSERT%20INTO%20{t}%20FORMAT%20TSV",
        "--data-binary",
        "@-",
        data=b"4\tfour\n",
    )
    curl(
        f"{clickhouse_url}/?query=INSERT%20INTO%20{t}%20FORMAT%20CSV", "-H", "Content-Encoding: gzip",
        "--data-binary", "@-", data=gzip.compress(b"5,five\n6,six\n"),
    )  # fmt: skip
    curl(*post, data=f"INSERT INTO {t} VALUES (7, 'seven')".encode())
    body = split_response(curl(f"{clickhouse_url}/?query=SELECT%20a,b%20FROM%20{t}%20ORDER%20BY%20a").stdout)[
        2
    ]
    assert body == b"1\tone\n2\ttwo\n3\tthree\n4\tfour\n5\tfive\n6\tsix\n7\tseven\n"


def test_curl_error_has_code_header_status_and_body(clickhouse_url: str) -> None:
    status, headers, body = split_response(
        curl(f"{clickhouse_url}/?query=SELECT%20*%20FROM%20nope_nope").stdout
    )
    assert status == 404
    assert headers["x-clickhouse-exception-code"] == "60"
    assert body.startswith(b"Code: 60. DB::Exception: ")
    assert b"(UNKNOWN_TABLE) (version 26." in body
    status, headers, _ = split_response(curl(f"{clickhouse_url}/", "--data-binary", "SELEC 1").stdout)
    assert (status, headers["x-clickhouse-exception-code"]) == (400, "62")
    status, headers, _ = split_response(
        curl(f"{clickhouse_url}/", "--data-binary", "SELECT 1; SELECT 2").stdout
    )
    assert (status, headers["x-clickhouse-exception-code"]) == (400, "62")  # multi-statements are refused


def test_curl_get_is_readonly(clickhouse_url: str, ch_database: str) -> None:
    status, headers, _ = split_response(
        curl(
            f"{clickhouse_url}/?query=CREATE%20TABLE%20{ch_database}.x%20(a%20UInt8)%20ENGINE%3DMemory"
        ).stdout
    )
    assert (status, headers["x-clickhouse-exception-code"]) == (500, "164")


def test_curl_compressed_response(clickhouse_url: str) -> None:
    out = curl(
        "--compressed", "-H", "Accept-Encoding: gzip",
        f"{clickhouse_url}/?enable_http_compression=1&query=SELECT%20number%20FROM%20numbers(3)",
    ).stdout  # fmt: skip
    _, headers, body = split_response(out)
    assert headers.get("content-encoding") == "gzip"
    assert body == b"0\n1\n2\n"  # curl --compressed decoded it


def test_binary_formats_via_raw_insert(ch_client: Any, ch_database: str) -> None:
    t = f"{ch_database}.rb"
    ch_client.command(f"CREATE TABLE {t} (a UInt32, s String) ENGINE = Memory")
    row_binary = (5).to_bytes(4, "little") + bytes([3]) + b"abc"
    ch_client.raw_insert(t, ["a", "s"], insert_block=row_binary, fmt="RowBinary")
    with_types = ch_client.raw_query("SELECT 6::UInt32 AS a, 'def' AS s FORMAT RowBinaryWithNamesAndTypes")
    ch_client.raw_insert(t, None, insert_block=with_types, fmt="RowBinaryWithNamesAndTypes")
    parquet = ch_client.raw_query("SELECT 7::UInt32 AS a, 'ghi' AS s FORMAT Parquet")
    ch_client.raw_insert(t, ["a", "s"], insert_block=parquet, fmt="Parquet")
    assert ch_client.query(f"SELECT a, s FROM {t} ORDER BY a").result_rows == [
        (5, "abc"),
        (6, "def"),
        (7, "ghi"),
    ]


def test_native_block_compression_of_the_body(clickhouse_url: str, ch_database: str) -> None:
    """``decompress=1``: ClickHouse's own compressed blocks (checksum, method, sizes, payload)."""
    import lz4.block
    import zstandard

    def block(method: int, payload: bytes, raw: bytes) -> bytes:
        header = bytes([method]) + (len(payload) + 9).to_bytes(4, "little") + len(raw).to_bytes(4, "little")
        return bytes(16) + header + payload  # checksums are not verified by the endpoint

    t = f"{ch_database}.blocks"
    curl(f"{clickhouse_url}/", "--data-binary", f"CREATE TABLE {t} (a UInt8, b String) ENGINE = Memory")
    body = block(0x82, lz4.block.compress(b"1,x\n", store_size=False), b"1,x\n")
    body += block(0x90, zstandard.ZstdCompressor().compress(b"2,y\n"), b"2,y\n")
    curl(
        f"{clickhouse_url}/?decompress=1&query=INSERT%20INTO%20{t}%20FORMAT%20CSV",
        "--data-binary",
        "@-",
        data=body,
    )
    out = curl(f"{clickhouse_url}/?query=SELECT%20*%20FROM%20{t}%20ORDER%20BY%20a").stdout
    assert split_response(out)[2] == b"1\tx\n2\ty\n"


def test_query_id_database_header_and_session_parameters(clickhouse_url: str, ch_database: str) -> None:
    out = curl(
        "-H",
        f"X-ClickHouse-Database: {ch_database}",
        f"{clickhouse_url}/?query=SELECT%20currentDatabase()&query_id=q-42",
    ).stdout
    status, headers, body = split_response(out)
    assert (status, body, headers["x-clickhouse-query-id"]) == (200, f"{ch_database}\n".encode(), "q-42")
    sid = f"s-{uuid.uuid4()}"
    status, headers, _ = split_response(
        curl(f"{clickhouse_url}/?session_id={sid}&session_check=1&query=SELECT%201").stdout
    )
    assert (status, headers["x-clickhouse-exception-code"]) == (404, "372") or headers[
        "x-clickhouse-exception-code"
    ] == "372"
    curl(f"{clickhouse_url}/?session_id={sid}", "--data-binary", "SET max_threads = 1")
    out = curl(
        f"{clickhouse_url}/?session_id={sid}&session_check=1&close_session=1",
        "--data-binary",
        "SELECT getSetting('max_threads')",
    ).stdout
    assert split_response(out)[2] == b"1\n"
    status, headers, _ = split_response(
        curl(f"{clickhouse_url}/?session_id={sid}&session_check=1&query=SELECT%201").stdout
    )
    assert headers["x-clickhouse-exception-code"] == "372"  # closed by close_session=1


def test_readonly_in_a_session_applies_to_that_request_only(clickhouse_url: str, ch_database: str) -> None:
    sid = f"s-{uuid.uuid4()}"
    ddl = f"CREATE TABLE {ch_database}.ro (a UInt8) ENGINE = Memory"
    out = curl(f"{clickhouse_url}/?session_id={sid}&readonly=1", "--data-binary", ddl).stdout
    assert split_response(out)[1]["x-clickhouse-exception-code"] == "164"
    get = curl(
        f"{clickhouse_url}/?session_id={sid}&query=INSERT%20INTO%20{ch_database}.ro%20VALUES%20(1)"
    ).stdout
    assert split_response(get)[1]["x-clickhouse-exception-code"] == "164"
    assert split_response(curl(f"{clickhouse_url}/?session_id={sid}", "--data-binary", ddl).stdout)[0] == 200


# ----------------------------------------------------------------------------------------------------
# Inserts the table refuses (#13): an error with ClickHouse's code, and the refused block is not stored
# ----------------------------------------------------------------------------------------------------


def test_insert_violating_a_check_constraint_is_refused_and_stores_nothing(
    ch_client: Any, ch_database: str
) -> None:
    t = f"{ch_database}.checked"
    ch_client.command(
        f"CREATE TABLE {t} (a UInt32, CONSTRAINT small CHECK a < 10) ENGINE = MergeTree ORDER BY a"
    )
    with pytest.raises(DatabaseError) as info:
        ch_client.insert(t, [[1], [20]], column_names=["a"])  # Native, compressed: what services send
    assert info.value.code == 469
    assert "VIOLATED_CONSTRAINT" in str(info.value) and "small" in str(info.value)
    assert ch_client.query(f"SELECT count() FROM {t}").result_rows == [(0,)]  # the block is atomic
    ch_client.insert(t, [[1], [2]], column_names=["a"])  # the table still takes good blocks
    assert ch_client.query(f"SELECT a FROM {t} ORDER BY a").result_rows == [(1,), (2,)]


def test_insert_failing_a_materialized_expression_or_a_view_is_refused(
    ch_client: Any, ch_database: str
) -> None:
    d = ch_database
    ch_client.command(
        f"CREATE TABLE {d}.mat (a UInt32, ok UInt8 MATERIALIZED throwIf(a > 10, 'a too big')) "
        "ENGINE = MergeTree ORDER BY a"
    )
    with pytest.raises(DatabaseError) as info:
        ch_client.insert(f"{d}.mat", [[1], [20]], column_names=["a"])
    assert info.value.code == 395 and "a too big" in str(info.value)
    assert ch_client.query(f"SELECT count() FROM {d}.mat").result_rows == [(0,)]
    ch_client.command(f"CREATE TABLE {d}.src (a UInt32) ENGINE = MergeTree ORDER BY a")
    ch_client.command(f"CREATE TABLE {d}.dst (a UInt32) ENGINE = MergeTree ORDER BY a")
    ch_client.command(
        f"CREATE MATERIALIZED VIEW {d}.mv TO {d}.dst AS SELECT a + throwIf(a > 10, 'view refuses') AS a "
        f"FROM {d}.src"
    )
    with pytest.raises(DatabaseError) as info:
        ch_client.insert(f"{d}.src", [[1], [20]], column_names=["a"])
    assert info.value.code == 395 and "view refuses" in str(info.value)
    assert ch_client.query(f"SELECT count() FROM {d}.dst").result_rows == [(0,)]


def test_curl_insert_refused_by_a_constraint_gets_code_header_and_body(
    clickhouse_url: str, ch_database: str
) -> None:
    t = f"{ch_database}.checked"
    post = [f"{clickhouse_url}/", "--data-binary", "@-"]
    curl(
        *post,
        data=f"CREATE TABLE {t} (a UInt32, CONSTRAINT small CHECK a < 10) ENGINE = MergeTree ORDER BY a".encode(),
    )
    # A body larger than a pipe holds, refused near its end, and SETTINGS in the statement.
    data = b"1\n" * 1_500_000 + b"20\n"
    status, headers, body = split_response(
        curl(
            f"{clickhouse_url}/?query=INSERT%20INTO%20{t}%20SETTINGS%20max_insert_block_size%3D1000000%20FORMAT%20CSV",
            "-H", "Expect:", "--data-binary", "@-", data=data,
        ).stdout
    )  # fmt: skip
    assert (status, headers["x-clickhouse-exception-code"]) == (500, "469")
    assert body.startswith(b"Code: 469. DB::Exception: Constraint `small`")
    assert b"(VIOLATED_CONSTRAINT) (version 26." in body
    status, _, _ = split_response(
        curl(
            *post, data=f"INSERT INTO {t} SETTINGS max_insert_block_size=10 FORMAT CSV\n3\n4\n".encode()
        ).stdout
    )
    assert status == 200
    body = split_response(curl(f"{clickhouse_url}/?query=SELECT%20count()%20FROM%20{t}").stdout)[2]
    assert body == b"2\n"
    # A large body for a table that does not exist: the engine never reads it; the answer still comes.
    status, headers, _ = split_response(
        curl(
            f"{clickhouse_url}/?query=INSERT%20INTO%20{ch_database}.nope%20FORMAT%20CSV",
            "-H", "Expect:", "--data-binary", "@-", data=data,
        ).stdout
    )  # fmt: skip
    assert (status, headers["x-clickhouse-exception-code"]) == (404, "60")


def test_curl_insert_from_infile_is_refused(clickhouse_url: str, ch_database: str) -> None:
    """The engine would read a file on the server's disk: ClickHouse's HTTP interface refuses it."""
    t = f"{ch_database}.lines"
    curl(f"{clickhouse_url}/", "--data-binary", f"CREATE TABLE {t} (s String) ENGINE = MergeTree ORDER BY s")
    for sql in (
        f"INSERT INTO {t} FROM INFILE '/etc/hostname' FORMAT LineAsString",
        f"INSERT INTO {t} FROM INFILE '/etc/hostname' COMPRESSION 'none'",
    ):
        status, headers, body = split_response(curl(f"{clickhouse_url}/", "--data-binary", sql).stdout)
        assert (status, headers["x-clickhouse-exception-code"]) == (404, "78"), body
    body = split_response(curl(f"{clickhouse_url}/?query=SELECT%20count()%20FROM%20{t}").stdout)[2]
    assert body == b"0\n"
