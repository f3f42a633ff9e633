"""`barometre import` as a user runs it: good rows go in, every bad row is reported with its line
number and reason, the exit status says whether any row was bad."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.common.clickhouse import make_client
from services.common.settings import Settings
from tests.integration.ingest.helpers import consume_all

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]


def barometre(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(
        BAROMETRE_CLICKHOUSE_URL=settings.clickhouse_url,
        BAROMETRE_CLICKHOUSE_DATABASE=settings.clickhouse_database,
        BAROMETRE_KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
        BAROMETRE_KAFKA_TOPIC_PREFIX=settings.kafka_topic_prefix,
        BAROMETRE_KAFKA_PARTITIONS=str(settings.kafka_partitions),
    )
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def line(account: str, followers: object, when: str = "2012-03-01T12:00:00+01:00", **extra: object) -> str:
    return json.dumps(
        {
            "account_id": account,
            "platform": "facebook",
            "entity_id": "COM:38185",
            "observed_at": when,
            "followers": followers,
            **extra,
        }
    )


def test_snapshots_jsonl_with_bad_lines(app_settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "snaps.jsonl"
    path.write_text(
        "\n".join(
            [
                line("facebook:grenoble", 100),
                line("facebook:grenoble", -1, "2012-04-01T12:00:00+02:00"),  # line 2: negative
                "",
                "{not json",  # line 4
                line("facebook:grenoble", 120, "2012-04-01T12:00:00+02:00"),
                line("facebook:grenoble", 130, "2012-05-01T12:00:00+02:00", entity_id="COM:00000"),  # line 6
            ]
        )
        + "\n"
    )
    out = barometre(app_settings, "import", "snapshots", str(path), "--no-progress")
    assert out.returncode == 1, out.stderr
    assert f"{path}:2: followers" in out.stderr
    assert f"{path}:4: not valid JSON" in out.stderr
    assert f"{path}:6: unknown entity_id 'COM:00000'" in out.stderr
    assert "5 lines, 2 published, 3 refused" in out.stdout
    got = sorted((v["observed_at"], v["followers"], v["source"]) for _, v in consume_all(app_settings, 2))
    assert got == [("2012-03-01T11:00:00Z", 100, "import"), ("2012-04-01T10:00:00Z", 120, "import")]


def test_snapshots_csv_gz_all_good(app_settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "snaps.csv.gz"
    rows = ["account_id,platform,entity_id,observed_at,followers,posts_30d,status"]
    rows += [f"x:dep38,twitter,DEP:38,2013-0{m}-01T00:00:00Z,{1000 + m},,active" for m in range(1, 6)]
    path.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))
    out = barometre(app_settings, "import", "snapshots", str(path), "--no-progress")
    assert out.returncode == 0, out.stderr
    values = [v for _, v in consume_all(app_settings, 5)]
    assert sorted(v["followers"] for v in values) == [1001, 1002, 1003, 1004, 1005]
    assert all(v["platform"] == "x" and "posts_30d" not in v for v in values)


def test_reference_files(app_settings: Settings, tmp_path: Path) -> None:
    entities = tmp_path / "entities.csv"
    entities.write_text(
        "entity_id,name,category,population,departement,region\n"
        "REG:22,Picardie,region,1900000,,22\n"
        "COM:38185,Grenoble (renommée),commune,158000,38,84\n"
        "BAD:1,Nowhere,,,,\n"
    )
    out = barometre(app_settings, "import", "entities", str(entities))
    assert out.returncode == 1 and f"{entities}:4:" in out.stderr, out.stderr
    assert "2 imported, 1 refused" in out.stdout

    accounts = tmp_path / "accounts.csv"
    accounts.write_text(
        "entity_id,platform,handle\nREG:22,facebook,PicardieRegion\nCOM:38185,twitter,@VilledeGrenoble\n"
    )
    out = barometre(app_settings, "import", "accounts", str(accounts))
    assert out.returncode == 0, out.stderr

    panel = tmp_path / "panel.csv"
    panel.write_text("entity_id\nCOM:38185\nREG:22\nCOM:99999\n")
    out = barometre(app_settings, "import", "panel", str(panel), "--panel", "etude2013")
    assert out.returncode == 1 and f"{panel}:4:" in out.stderr

    ch = make_client(app_settings)
    db = app_settings.clickhouse_database
    assert (
        ch.command(f"SELECT name FROM {db}.entities FINAL WHERE entity_id = 'COM:38185'")
        == "Grenoble (renommée)"
    )
    assert ch.command(f"SELECT count() FROM {db}.entities FINAL WHERE entity_id = 'REG:22'") == 1
    accounts_rows = ch.query(
        f"SELECT account_id, entity_id FROM {db}.accounts FINAL ORDER BY account_id"
    ).result_rows
    assert accounts_rows == [("facebook:picardieregion", "REG:22"), ("x:villedegrenoble", "COM:38185")]
    members = ch.query(f"SELECT panel, entity_id FROM {db}.panels FINAL ORDER BY entity_id").result_rows
    assert members == [("etude2013", "COM:38185"), ("etude2013", "REG:22")]
    ch.close()

    # A snapshot of a registered account, without entity_id, is now accepted by an import.
    snaps = tmp_path / "s.jsonl"
    snaps.write_text(
        json.dumps(
            {
                "account_id": "twitter:VilledeGrenoble",
                "platform": "twitter",
                "observed_at": "2013-01-01T00:00:00Z",
                "followers": 5,
            }
        )
        + "\n"
    )
    out = barometre(app_settings, "import", "snapshots", str(snaps), "--no-progress")
    assert out.returncode == 0, out.stderr
    [(key, value)] = consume_all(app_settings, 1)
    assert key == "x:villedegrenoble" and value["entity_id"] == "COM:38185"
