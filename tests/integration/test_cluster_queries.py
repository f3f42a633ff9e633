"""The api's queries on the cluster schema: the DDL `barometre migrate` generates for a cluster
(services/common/migrations/cluster.py), run on chDB behind a one-shard cluster, answers every query
exactly as the single-server schema with the same rows does.

What chDB cannot do, and is therefore changed here (docs/OPERATIONS.md, "A ClickHouse cluster"):
``ON CLUSTER`` is stripped (chDB runs no DDL worker), and ``Replicated…MergeTree(path, replica, args)``
becomes ``…MergeTree(args)`` (chDB has no Keeper, and with one it never activates a replica). The
Distributed tables, their sharding keys, the local tables and the clients' cluster settings are as
generated. A second cluster of two shards on this one node shows why the clients need
``distributed_product_mode='global'``.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.api import coverage as cov
from services.api import queries as q
from services.api.queries import Metric, RankBy, Scope
from services.common import migrations
from services.common.clickhouse import CLUSTER_SETTINGS
from services.common.names import Category, Platform, Window

pytestmark = [pytest.mark.clickhouse, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """<clickhouse>
  <tcp_port>{tcp}</tcp_port>
  <macros><shard>01</shard><replica>r1</replica></macros>
  <remote_servers>
    <barometre>
      <shard><internal_replication>true</internal_replication>
        <replica><host>127.0.0.1</host><port>{tcp}</port></replica></shard>
    </barometre>
    <two_on_one_node>
      <shard><replica><host>127.0.0.1</host><port>{tcp}</port></replica></shard>
      <shard><replica><host>localhost</host><port>{tcp}</port></replica></shard>
    </two_on_one_node>
  </remote_servers>
</clickhouse>
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    work = tmp_path_factory.mktemp("cluster-endpoint")
    config = work / "config.xml"
    # The tcp_port is never listened on (chDB serves no native port): it only makes 127.0.0.1 "local".
    config.write_text(CONFIG.format(tcp=_free_port()))
    port = _free_port()
    log = (work / "endpoint.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.cluster_endpoint",
            str(work / "data"),
            str(port),
            str(config),
            str(os.getpid()),
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((work / "endpoint.log").read_text(errors="replace")[-2000:]) from None
                time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


class _OneNode:
    """Passes the generated cluster DDL on to chDB: without ON CLUSTER, with plain engines."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def command(self, sql: str, **kwargs: Any) -> Any:
        sql = re.sub(r" ON CLUSTER '[^']*'", "", sql)
        sql = re.sub(r"Replicated(\w*MergeTree)\('[^']*', '[^']*'(?:, )?", r"\1(", sql)
        return self.client.command(sql, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
ENTITIES = [
    ("COM:38185", "Grenoble", "commune", 158000, "38", "84"),
    ("COM:69123", "Lyon", "commune", 520000, "69", "84"),
    ("DEP:38", "Isère", "departement", 1270000, "38", "84"),
    ("COM:75056", "Paris", "commune", 2100000, "75", "11"),
]
ACCOUNTS = [
    ("facebook:grenoble", "facebook", "COM:38185"),
    ("x:grenoble", "x", "COM:38185"),
    ("facebook:lyon", "facebook", "COM:69123"),
    ("facebook:isere", "facebook", "DEP:38"),
    ("x:isere", "x", "DEP:38"),
    ("facebook:paris", "facebook", "COM:75056"),
]
LATEST = [
    "platform",
    "account_id",
    "entity_id",
    "handle",
    "observed_at",
    "followers",
    "status",
    "before_1d",
    "before_7d",
    "before_30d",
    "before_90d",
    "before_365d",
    "posts_30d",
    "interactions_30d",
    "replies_30d",
    "automated_posts_30d",
    "score",
    "score_formula",
    "first_seen",
    "version",
]
DAILY = [
    "account_id",
    "day",
    "platform",
    "entity_id",
    "observed_at",
    "event_id",
    "followers",
    "status",
    "posts_30d",
    "interactions_30d",
    "replies_30d",
    "automated_posts_30d",
    "score",
    "version",
]
ENTITY_LATEST = [
    "platform",
    "category",
    "entity_id",
    "accounts",
    "present",
    "observed_at",
    "followers",
    "before_1d",
    "before_7d",
    "before_30d",
    "before_90d",
    "before_365d",
    "score",
    "version",
]


def _seed(c: Any, db: str) -> None:
    """Two versions of most rows (FINAL must keep the later one), forty days of daily points."""
    c.insert(
        f"{db}.entities",
        [[*e, "insee", 1] for e in ENTITIES],
        column_names=[
            "entity_id",
            "name",
            "category",
            "population",
            "departement",
            "region",
            "source",
            "version",
        ],
    )
    c.insert(
        f"{db}.accounts",
        [[a, p, e, a.split(":")[1], 0, 1] for a, p, e in ACCOUNTS],
        column_names=["account_id", "platform", "entity_id", "handle", "deleted", "version"],
    )
    c.insert(
        f"{db}.panels",
        [["etude", "COM:38185", 0, 1], ["etude", "DEP:38", 0, 1]],
        column_names=["panel", "entity_id", "removed", "version"],
    )
    daily, snapshots, latest, presence = [], [], [], []
    for i, (a, p, e) in enumerate(ACCOUNTS):
        for d in range(40):
            for v in (0, 1):
                seen = NOW - timedelta(days=d, hours=3 - 2 * v)
                followers = 1000 * (i + 1) + 37 * (40 - d) * (i % 3 + 1) + v
                event = f"ev-{a}-{d}-{v}"
                daily.append(
                    [
                        a,
                        seen.date(),
                        p,
                        e,
                        seen,
                        event,
                        followers,
                        "active",
                        10,
                        100,
                        5,
                        0,
                        0.5 + i / 20,
                        int(seen.timestamp() * 1000),
                    ]
                )
                snapshots.append([event, a, p, e, a, seen, followers, "active", "simulator"])
        for v in (1, 2):
            latest.append(
                [
                    p,
                    a,
                    e,
                    a,
                    NOW - timedelta(hours=1),
                    1000 * (i + 1) + v,
                    "active",
                    990,
                    900,
                    800,
                    700,
                    600,
                    10,
                    100,
                    5,
                    0,
                    0.5 + i / 20,
                    "v1",
                    NOW - timedelta(days=300),
                    v,
                ]
            )
        ends = NOW - timedelta(days=2) if i == 4 else NOW + timedelta(days=1000)
        presence.append([p, a, e, [NOW - timedelta(days=100)], [ends], 1])
    c.insert(f"{db}.account_daily", daily, column_names=DAILY)
    c.insert(
        f"{db}.snapshots",
        snapshots,
        column_names=[
            "event_id",
            "account_id",
            "platform",
            "entity_id",
            "handle",
            "observed_at",
            "followers",
            "status",
            "source",
        ],
    )
    c.insert(f"{db}.account_latest", latest, column_names=LATEST)
    c.insert(
        f"{db}.presence",
        presence,
        column_names=["platform", "account_id", "entity_id", "starts", "ends", "version"],
    )
    rows = []
    for p in ("facebook", "x"):
        for e in ENTITIES:
            mine = [i for i, (_, pp, ee) in enumerate(ACCOUNTS) if pp == p and ee == e[0]]
            f = sum(1000 * (i + 1) for i in mine)
            for v in (1, 2):
                rows.append(
                    [
                        p,
                        e[2],
                        e[0],
                        len(mine),
                        int(bool(mine)),
                        NOW - timedelta(hours=1),
                        f + v,
                        *[max(f - k, 0) for k in (10, 100, 200, 300, 400)],
                        0.6,
                        v,
                    ]
                )
    c.insert(f"{db}.entity_latest", rows, column_names=ENTITY_LATEST)


Call = Callable[[Any, str], Any]


def _calls() -> list[tuple[str, Call]]:
    stale = timedelta(days=45)
    calls: list[tuple[str, Call]] = []
    for n, s in enumerate([Scope(), Scope(Category.COMMUNE), Scope(panel="etude"), Scope(region="84")]):
        calls += [
            (f"presence {n}", lambda c, db, s=s: q.presence(c, db, [Platform.FACEBOOK], s, NOW)),
            (f"overlap {n}", lambda c, db, s=s: q.presence(c, db, [Platform.FACEBOOK, Platform.X], s, NOW)),
            (
                f"series {n}",
                lambda c, db, s=s: q.presence_series(
                    c, db, Platform.X, s, [NOW - timedelta(days=k) for k in range(5)]
                ),
            ),
            (f"scores {n}", lambda c, db, s=s: q.scores(c, db, None, s, None, NOW, stale)),
            (
                f"scores at {n}",
                lambda c, db, s=s: q.scores(c, db, Platform.FACEBOOK, s, NOW - timedelta(days=3), NOW, stale),
            ),
            (f"summary {n}", lambda c, db, s=s: cov.summary(c, db, [Platform.FACEBOOK], s, None, NOW, stale)),
        ]
        for m in Metric:
            for by in RankBy:
                calls += [
                    (
                        f"live {m} {by} {n}",
                        lambda c, db, s=s, m=m, by=by: q.rankings_live(
                            c, db, Platform.FACEBOOK, s, Window.D7, m, NOW, stale, 10, by=by
                        ),
                    ),
                    (
                        f"at {m} {by} {n}",
                        lambda c, db, s=s, m=m, by=by: q.rankings_at(
                            c,
                            db,
                            Platform.FACEBOOK,
                            s,
                            Window.D7,
                            m,
                            NOW - timedelta(days=2),
                            stale,
                            10,
                            by=by,
                        ),
                    ),
                ]
    return [
        *calls,
        ("entity", lambda c, db: q.entity(c, db, "COM:38185")),
        ("entity_accounts", lambda c, db: q.entity_accounts(c, db, "DEP:38", NOW, stale)),
        ("account", lambda c, db: q.account(c, db, "x:isere")),
        ("history", lambda c, db: q.history(c, db, "facebook:lyon", NOW - timedelta(days=10), NOW, 5)),
        ("panel_exists", lambda c, db: q.panel_exists(c, db, "etude")),
        ("panel_names", lambda c, db: q.panel_names(c, db)),
        ("coverage", lambda c, db: cov.coverage(c, db, None, None, None, None, NOW, stale)),
        (
            "coverage at",
            lambda c, db: cov.coverage(
                c, db, Platform.FACEBOOK, Category.COMMUNE, None, NOW - timedelta(days=5), NOW, stale
            ),
        ),
    ]


def test_api_queries_answer_the_same_on_the_cluster_schema(endpoint: int) -> None:
    import clickhouse_connect

    plain = clickhouse_connect.get_client(host="127.0.0.1", port=endpoint)
    clustered = clickhouse_connect.get_client(host="127.0.0.1", port=endpoint, settings=CLUSTER_SETTINGS)
    single, cluster = f"single_{uuid.uuid4().hex[:8]}", f"cluster_{uuid.uuid4().hex[:8]}"
    try:
        migrations.migrate(plain, single)
        migrations.migrate(_OneNode(clustered), cluster, cluster="barometre")  # type: ignore[arg-type]
        engines = dict(
            clustered.query(
                f"SELECT name, engine FROM system.tables WHERE database = '{cluster}'"
            ).result_rows
        )
        assert (
            engines["account_latest"] == "Distributed"
            and engines["account_latest_local"] == "ReplacingMergeTree"
        )
        assert engines["entities"] == "ReplacingMergeTree" and "entities_local" not in engines
        _seed(plain, single)
        _seed(clustered, cluster)
        different = []
        for name, call in _calls():
            expected, got = call(plain, single), call(clustered, cluster)
            if expected != got:
                different.append((name, expected, got))
        assert not different
    finally:
        for db in (single, cluster):
            plain.command(f"DROP DATABASE IF EXISTS {db} SYNC")
        plain.close()
        clustered.close()


def test_subqueries_over_distributed_tables_need_the_global_mode(endpoint: int) -> None:
    """ClickHouse's default refuses ``IN (SELECT … FROM distributed)`` inside a distributed query (the
    shape of queries.entity_accounts); the clients' ``distributed_product_mode='global'`` runs it."""
    import clickhouse_connect

    c = clickhouse_connect.get_client(host="127.0.0.1", port=endpoint)
    db = f"two_{uuid.uuid4().hex[:8]}"
    try:
        c.command(f"CREATE DATABASE {db}")
        c.command(
            f"CREATE TABLE {db}.t_local (entity_id String, account_id String) ENGINE = MergeTree ORDER BY account_id"
        )
        c.command(
            f"CREATE TABLE {db}.t AS {db}.t_local ENGINE = Distributed('two_on_one_node', {db}, 't_local', cityHash64(entity_id))"
        )
        sql = f"SELECT count() FROM {db}.t WHERE account_id IN (SELECT account_id FROM {db}.t WHERE entity_id = 'e1')"
        with pytest.raises(Exception, match="Double-distributed IN/JOIN subqueries is denied"):
            c.command(sql, settings={"distributed_product_mode": "deny"})
        assert c.command(sql, settings=CLUSTER_SETTINGS) == 0
    finally:
        c.command(f"DROP DATABASE IF EXISTS {db} SYNC")
        c.close()
