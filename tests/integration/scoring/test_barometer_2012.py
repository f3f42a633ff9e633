"""End to end on the real Kafka and ClickHouse engine, with separate ingest and scoring processes:
the 2012-2013 barometer panel (50 cities, 100 départements, 26 former régions) with monthly snapshots
from March 2012 to May 2013 gives exact presence counts and exact top-3 growth rankings; the same
events imported twice, or in reverse order, give the same tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.api.queries import Scope, presence, rankings_at
from services.common.bootstrap import prepare_database
from services.common.clickhouse import make_client
from services.common.names import Category, Platform, Window
from services.common.reference import Entity, PanelMember, load_entities
from services.common.registry import user_version, write_entities, write_panel
from services.common.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.slow]

PANEL = "barometre2013"
MONTHS = [datetime(2012 + (2 + k) // 12, (2 + k) % 12 + 1, 1, 10, tzinfo=UTC) for k in range(15)]
# The 26 régions of 2012 (22 in metropolitan France, 4 overseas), by their codes of the time.
REGIONS_2012 = {
    "01": "Guadeloupe", "02": "Martinique", "03": "Guyane", "04": "La Réunion", "11": "Île-de-France",
    "21": "Champagne-Ardenne", "22": "Picardie", "23": "Haute-Normandie", "24": "Centre",
    "25": "Basse-Normandie", "26": "Bourgogne", "31": "Nord-Pas-de-Calais", "41": "Lorraine", "42": "Alsace",
    "43": "Franche-Comté", "52": "Pays de la Loire", "53": "Bretagne", "54": "Poitou-Charentes",
    "72": "Aquitaine", "73": "Midi-Pyrénées", "74": "Limousin", "82": "Rhône-Alpes", "83": "Auvergne",
    "91": "Languedoc-Roussillon", "93": "Provence-Alpes-Côte d'Azur", "94": "Corse",
}  # fmt: skip


@dataclass(frozen=True)
class Member:
    index: int  # position within its category
    entity: Entity

    # The generation rule, simple enough to compute the expected figures by hand.
    @property
    def facebook_from(self) -> int:
        return self.index % 5  # month index of the first Facebook snapshot

    @property
    def deleted_from(self) -> int | None:
        return 10 if self.index % 10 == 9 else None  # the Facebook account is deleted from month 10

    @property
    def has_x(self) -> bool:
        return self.index % 3 != 0  # an X account from month 2

    def followers(self, k: int) -> int:
        slope = (self.index * 7919 + len(self.entity.entity_id)) % 997 + 1
        return 1000 + 37 * self.index + slope * (k - self.facebook_from)

    def facebook_present(self, k: int) -> bool:
        return k >= self.facebook_from and (self.deleted_from is None or k < self.deleted_from)


def panel_members() -> dict[Category, list[Member]]:
    registry = load_entities()
    cities = sorted(
        (e for e in registry if e.category is Category.COMMUNE), key=lambda e: -(e.population or 0)
    )
    deps = (
        sorted(e for e in registry if e.category is Category.DEPARTEMENT)[:100]
        if False
        else [e for e in registry if e.category is Category.DEPARTEMENT][:100]
    )
    regions = [
        Entity(f"REG:{code}", name, Category.REGION, None, None, code) for code, name in REGIONS_2012.items()
    ]
    return {
        Category.COMMUNE: [Member(i, e) for i, e in enumerate(cities[:50])],
        Category.DEPARTEMENT: [Member(i, e) for i, e in enumerate(deps)],
        Category.REGION: [Member(i, e) for i, e in enumerate(regions)],
    }


def snapshot_lines(members: dict[Category, list[Member]]) -> list[str]:
    lines = []
    for group in members.values():
        for m in group:
            slug = m.entity.entity_id.lower().replace(":", "-")
            for k, when in enumerate(MONTHS):
                if k >= m.facebook_from:
                    deleted = m.deleted_from is not None and k >= m.deleted_from
                    lines.append(json.dumps({
                        "account_id": f"facebook:{slug}", "platform": "facebook", "entity_id": m.entity.entity_id,
                        "observed_at": when.isoformat(), "followers": 0 if deleted else m.followers(k),
                        "status": "deleted" if deleted else "active", "posts_30d": 10 + k,
                    }))  # fmt: skip
                if m.has_x and k >= 2:
                    lines.append(json.dumps({
                        "account_id": f"twitter:{slug}", "platform": "twitter", "entity_id": m.entity.entity_id,
                        "observed_at": when.isoformat(), "followers": 500 + 11 * m.index + 3 * k,
                    }))  # fmt: skip
    return lines


class Instance:
    """One barometre instance (database, topics, scoring worker process) of the test."""

    def __init__(self, base: Settings, tmp: Path, port: int) -> None:
        self.settings = base.model_copy(
            update={
                "clickhouse_database": f"t_{uuid.uuid4().hex[:12]}",
                "kafka_topic_prefix": f"t{uuid.uuid4().hex[:8]}.",
                "scoring_port": port,
                "data_dir": tmp,
            }
        )
        prepare_database(self.settings)
        self.env = dict(os.environ)
        s = self.settings
        self.env.update(
            BAROMETRE_CLICKHOUSE_URL=s.clickhouse_url,
            BAROMETRE_CLICKHOUSE_DATABASE=s.clickhouse_database,
            BAROMETRE_KAFKA_BOOTSTRAP=s.kafka_bootstrap,
            BAROMETRE_KAFKA_TOPIC_PREFIX=s.kafka_topic_prefix,
            BAROMETRE_KAFKA_PARTITIONS=str(s.kafka_partitions),
            BAROMETRE_SCORING_PORT=str(port),
            BAROMETRE_DATA_DIR=str(tmp),
            BAROMETRE_LOG_LEVEL="WARNING",
        )
        self.worker: subprocess.Popen[bytes] | None = None

    def register(self, members: dict[Category, list[Member]]) -> None:
        ch = make_client(self.settings)
        db = self.settings.clickhouse_database
        write_entities(
            ch, db, [m.entity for m in members[Category.REGION]], source="import", version=user_version()
        )
        write_panel(
            ch,
            db,
            [PanelMember(m.entity.entity_id, PANEL) for g in members.values() for m in g],
            user_version(),
        )
        ch.close()

    def start_worker(self) -> None:
        log = (self.settings.data_dir / "scoring.log").open("wb")
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "services.scoring"], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )

    def import_wait(self, path: Path) -> None:
        out = subprocess.run(
            [sys.executable, "-m", "services.cli", "import", "snapshots", str(path), "--wait", "--no-progress"],
            env=self.env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr[-3000:] + self.log_tail()
        assert "visible through the API" in out.stdout

    def log_tail(self) -> str:
        path = self.settings.data_dir / "scoring.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        if self.worker and self.worker.poll() is None:
            self.worker.terminate()
            try:
                self.worker.wait(30)
            except subprocess.TimeoutExpired:
                self.worker.kill()

    def tables(self) -> dict[str, list[tuple[Any, ...]]]:
        """The content of the worker's tables, version columns left out, in a stable order."""
        ch = make_client(self.settings)
        db = self.settings.clickhouse_database
        queries = {
            "snapshots": f"SELECT * FROM {db}.snapshots FINAL ORDER BY account_id, observed_at",
            "account_daily": f"SELECT * EXCEPT version FROM {db}.account_daily FINAL ORDER BY account_id, day",
            "account_latest": f"SELECT * EXCEPT version FROM {db}.account_latest FINAL ORDER BY account_id",
            "presence": f"SELECT * EXCEPT version FROM {db}.presence FINAL ORDER BY account_id",
            "snapshot_rows": f"SELECT count() FROM {db}.snapshots FINAL",
        }
        out = {name: ch.query(sql).result_rows for name, sql in queries.items()}
        ch.close()
        return out


@pytest.fixture
def instances(app_settings: Settings, tmp_path: Path) -> Iterator[list[Instance]]:
    made: list[Instance] = []

    def make() -> Instance:
        inst = Instance(app_settings, tmp_path / f"i{len(made)}", 18702 + len(made))
        inst.settings.data_dir.mkdir(parents=True)
        made.append(inst)
        return inst

    yield [make(), make()]
    for inst in made:
        inst.stop()


def expected_presence(members: list[Member], at: datetime, platform: str) -> int:
    k = max(i for i, m in enumerate(MONTHS) if m <= at)
    if at - MONTHS[k] >= timedelta(days=45):
        return 0
    if platform == "facebook":
        return sum(m.facebook_present(k) for m in members)
    return sum(m.has_x and k >= 2 for m in members)


def test_2012_2013_panel(instances: list[Instance], tmp_path: Path) -> None:
    members = panel_members()
    lines = snapshot_lines(members)
    forward, backward = tmp_path / "forward.jsonl", tmp_path / "backward.jsonl"
    forward.write_text("\n".join(lines) + "\n")
    backward.write_text("\n".join(reversed(lines)) + "\n")

    first, second = instances
    for inst in instances:
        inst.register(members)
        inst.start_worker()
    first.import_wait(forward)
    second.import_wait(backward)

    ch = make_client(first.settings)
    db = first.settings.clickhouse_database
    staleness = timedelta(days=first.settings.staleness_days)
    for at in [datetime(2012, 3, 15, tzinfo=UTC), datetime(2012, 6, 20, tzinfo=UTC),
               datetime(2013, 1, 1, tzinfo=UTC), datetime(2013, 5, 31, tzinfo=UTC),
               datetime(2013, 7, 1, tzinfo=UTC)]:  # fmt: skip
        for category, group in members.items():
            for platform in (Platform.FACEBOOK, Platform.X):
                got = presence(ch, db, [platform], Scope(category, panel=PANEL), at)
                assert got.total == len(group)
                assert got.present == expected_presence(group, at, platform.value), (at, category, platform)

    at = datetime(2013, 5, 15, tzinfo=UTC)
    for category, group in members.items():
        for metric in ("growth_abs", "growth_pct"):
            got = rankings_at(ch, db, Platform.FACEBOOK, Scope(category, panel=PANEL), Window.D30, metric, at,
                              staleness, 3)  # fmt: skip
            values = []
            for m in group:
                if m.facebook_present(14) and m.facebook_present(13):
                    now, before = m.followers(14), m.followers(13)
                    value = now - before if metric == "growth_abs" else 100 * (now - before) / before
                    values.append((-value, m.entity.entity_id))
            expected = [entity_id for _, entity_id in sorted(values)[:3]]
            assert [r.entity_id for r in got] == expected, (category, metric)
    ch.close()

    # The same events again: nothing changes.
    before = first.tables()
    first.import_wait(forward)
    assert first.tables() == before
    # In reverse order, in another instance: the same tables.
    assert second.tables() == before
