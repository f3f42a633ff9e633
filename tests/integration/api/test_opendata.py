"""GET /v1/exports/opendata and `barometre export opendata` on the seeded data (seed.py): the package of
May 2013 is a valid Frictionless Data Package (checked by the `frictionless` library, 0 errors) whose
figures are the report's; simulated data are marked; an empty month is a valid empty package; a CSV
that breaks its schema makes the check fail."""

from __future__ import annotations

import csv
import io
import json
import shutil
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import frictionless
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from services.api import opendata
from services.api.routes import reports
from services.cli import main
from services.common.clickhouse import make_client
from services.common.names import AccountOrigin, Category, Platform
from services.common.reference import AccountRecord, Entity
from services.common.registry import user_version, write_accounts, write_entities
from tests.integration.api.seed import MAY, Seeded, snapshot, write
from tests.integration.api.test_openapi import spec

pytestmark = pytest.mark.clickhouse

CSVS = ("presence.csv", "rankings.csv", "scores.csv", "coverage.csv")


def package(api: TestClient, month: str, folder: Path) -> dict[str, Any]:
    """GET the package of ``month``, unzip it into ``folder``; its descriptor."""
    r = api.get("/v1/exports/opendata", params={"month": month})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    assert r.headers["content-disposition"] == f'attachment; filename="barometre-opendata-{month}.zip"'
    with zipfile.ZipFile(io.BytesIO(r.content)) as archive:
        assert sorted(archive.namelist()) == sorted(["datapackage.json", *CSVS])
        archive.extractall(folder)
    descriptor: dict[str, Any] = json.loads((folder / "datapackage.json").read_text())
    return descriptor


def rows(folder: Path, name: str) -> list[dict[str, str]]:
    with (folder / name).open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def check(folder: Path) -> frictionless.Report:
    return frictionless.validate(str(folder / "datapackage.json"))


def errors(report: frictionless.Report) -> list[Any]:
    return report.flatten(["rowNumber", "fieldName", "type", "note"])


def test_package_is_valid_and_holds_the_report(api: TestClient, seeded: Seeded, tmp_path: Path) -> None:
    descriptor = package(api, "2013-05", tmp_path)
    report = check(tmp_path)
    assert report.valid, errors(report)
    assert report.stats["errors"] == 0
    # 11 ranked rows: the report's growth_pct rankings count only a base of 1,000 followers and 2,000
    # inhabitants (docs/SCORING.md, "Minimum base of relative rankings"), and so does the package.
    assert [t.stats.get("rows", 0) for t in report.tasks] == [7, 11, 36, 36]

    assert descriptor["profile"] == "tabular-data-package"
    assert (descriptor["month"], descriptor["at"], descriptor["partial"]) == (
        "2013-05", "2013-05-31T23:59:59.999000Z", False,
    )  # fmt: skip
    assert descriptor["simulated"] is False
    assert "simulées" not in descriptor["title"]
    assert descriptor["licenses"][0]["name"] == "etalab-2.0"
    assert descriptor["sources"][0]["title"] == "Code officiel géographique, INSEE"
    for resource in descriptor["resources"]:
        schema = resource["schema"]
        assert schema["primaryKey"] and schema["version"] == opendata.VERSION
        assert {"sources", "contributors", "created", "licenses"} <= set(schema)
        assert all(f["description"] and f["title"] for f in schema["fields"])
        assert "simulated" in [f["name"] for f in schema["fields"]]

    presence = {(r["entity_id"], r["platform"]): r for r in rows(tmp_path, "presence.csv")}
    # Marseille's account was deleted on 2013-05-10: observed, not present; Grenoble's two accounts are.
    assert presence["COM:38185", "facebook"] | {} == {
        "month": "2013-05", "entity_id": "COM:38185", "code_insee": "38185", "siren": "", "name": "Grenoble",
        "category": "commune", "departement": "38", "region": "84",
        "population": presence["COM:38185", "facebook"]["population"], "platform": "facebook",
        "accounts": "2", "accounts_present": "2", "present": "true", "followers": "1400",
        "simulated": "false",
    }  # fmt: skip
    assert (presence["COM:13055", "facebook"]["present"], presence["COM:13055", "facebook"]["accounts"]) == (
        "false",
        "1",
    )
    assert presence["DEP:38", "facebook"]["code_insee"] == "38"
    assert {r["simulated"] for r in presence.values()} == {"false"}

    # The rankings, scores and coverage are the report's (and /v1/coverage's) at the same instant.
    body = api.get("/v1/reports/barometer", params={"month": "2013-05"}).json()
    expected = [
        (r["category"], r["platform"], r["metric"], str(i["rank"]), i["entity_id"], i["value"])
        for r in body["rankings"]
        for i in r["items"]
    ]
    got = [
        (r["category"], r["platform"], r["metric"], r["rank"], r["entity_id"], float(r["value"]))
        for r in rows(tmp_path, "rankings.csv")
    ]
    assert got == expected and got
    scores = {(r["category"], r["platform"]): r for r in rows(tmp_path, "scores.csv")}
    for s in body["scores"]:
        row = scores[s["category"], s["platform"]]
        assert (row["score"], row["count"]) == (
            "" if s["score"] is None else str(s["score"]),
            str(s["count"]),
        )
    coverage = api.get("/v1/coverage", params={"at": "2013-05-31T23:59:59.999Z"}).json()
    cov = {(r["category"], r["platform"]): r for r in rows(tmp_path, "coverage.csv")}
    for item in coverage["items"]:
        row = cov[item["category"], item["platform"]]
        assert (row["entities"], row["observed"], row["accounts"]) == (
            str(item["entities"]), str(item["observed"]), str(item["accounts"]),
        )  # fmt: skip


def test_simulated_data_are_marked(api: TestClient, seeded: Seeded, tmp_path: Path) -> None:
    settings = seeded.settings
    client = make_client(settings)
    record = AccountRecord("COM:69123", Platform.MASTODON, "mastodon:lyon_sim", "lyon_sim", None)
    write_accounts(
        client, settings.clickhouse_database, [record], user_version(), origin=AccountOrigin.SIMULATOR
    )
    client.close()
    # Batches 0 and 1 are the seed's (the sink skips the offsets it has written).
    # And a foreign town a user imported (no INSEE code; foreign département and région codes).
    brussels = Entity("COM:BE-21004", "Bruxelles", Category.COMMUNE, 1_200_000, "BE-BRU", "BE-BRU")
    client = make_client(settings)
    write_entities(client, settings.clickhouse_database, [brussels], source="import", version=user_version())
    client.close()
    write(
        settings,
        [[], [], [snapshot("mastodon:lyon_sim", "COM:69123", MAY, 42, source="simulator"),
                  snapshot("facebook:bruxelles", "COM:BE-21004", MAY, 900)]],
    )  # fmt: skip

    descriptor = package(api, "2013-05", tmp_path)
    report = check(tmp_path)
    assert report.valid, errors(report)
    assert descriptor["simulated"] is True
    assert "données simulées" in descriptor["title"]
    presence = {(r["entity_id"], r["platform"]): r["simulated"] for r in rows(tmp_path, "presence.csv")}
    assert presence["COM:69123", "mastodon"] == "true"
    assert presence["COM:69123", "facebook"] == "false"
    assert presence["COM:BE-21004", "facebook"] == "false"
    foreign = next(r for r in rows(tmp_path, "presence.csv") if r["entity_id"] == "COM:BE-21004")
    assert (foreign["code_insee"], foreign["siren"], foreign["departement"]) == ("", "", "BE-BRU")
    for name in ("scores.csv", "coverage.csv"):
        marked = {(r["category"], r["platform"]) for r in rows(tmp_path, name) if r["simulated"] == "true"}
        assert marked == {("commune", "mastodon")}, name


def test_empty_current_bad_and_future_months(api: TestClient, seeded: Seeded, tmp_path: Path) -> None:
    descriptor = package(api, "2001-01", tmp_path)
    report = check(tmp_path)
    assert report.valid, errors(report)
    assert [t.stats.get("rows", 0) for t in report.tasks] == [0, 0, 36, 36]
    assert descriptor["simulated"] is False
    # Coverage reads the registry as it is now: the two registered accounts are known, never observed.
    coverage = rows(tmp_path, "coverage.csv")
    assert {(r["observed"], r["stale"], r["accounts_observed"]) for r in coverage} == {("0", "0", "0")}
    assert sum(int(r["accounts_never_observed"]) for r in coverage) == 2
    assert {r["score"] for r in rows(tmp_path, "scores.csv")} == {""}

    # Without a daily point in any window the report's rankings and scores read, they are not computed:
    # the last 2013 points (2013-05-10) are within 45 days of a year before the end of 2014-05 only.
    client, db, staleness = (
        make_client(seeded.settings),
        seeded.settings.clickhouse_database,
        timedelta(days=45),
    )
    for month, observed in (("2001-01", False), ("2013-05", True), ("2014-05", True), ("2014-07", False)):
        first = opendata.parse_month(month)
        since = reports.month_end(reports.add_months_date(first, -12))
        assert opendata.any_point(client, db, since, reports.month_end(first), staleness) is observed, month
    client.close()

    # The current month: as of now, partial.
    month = f"{datetime.now(UTC):%Y-%m}"
    descriptor = package(api, month, tmp_path / "current")
    assert descriptor["partial"] is True
    report = check(tmp_path / "current")
    assert report.valid, errors(report)

    # A malformed month is a 422, a month not begun yet a 404.
    for month in ("2013-13", "13-05", "2013-5", "\uff12\uff10\uff11\uff13-05", ""):
        r = api.get("/v1/exports/opendata", params={"month": month})
        assert r.status_code == 422, (month, r.text)
        assert r.json()["error"]["code"] == "invalid_request"
        assert "month" in r.json()["error"]["message"]
    r = api.get("/v1/exports/opendata")
    assert r.status_code == 422
    r = api.get("/v1/exports/opendata", params={"month": "2099-12"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


# (file, column, value written in the first row, the error frictionless must report)
BREAKAGES = [
    ("presence.csv", "present", "maybe", "type-error"),
    ("presence.csv", "code_insee", "3818", "constraint-error"),
    ("presence.csv", "platform", "myspace", "constraint-error"),
    ("rankings.csv", "rank", "0", "constraint-error"),
    ("scores.csv", "score", "5.5", "constraint-error"),
    ("coverage.csv", "observed", "", "constraint-error"),
    ("coverage.csv", "platform", "x", "primary-key"),  # (2013-05, commune, x) twice
]


def test_the_check_fails_on_a_csv_that_breaks_its_schema(
    api: TestClient, seeded: Seeded, tmp_path: Path
) -> None:
    good = tmp_path / "good"
    package(api, "2013-05", good)
    for number, (file, column, value, error) in enumerate(BREAKAGES):
        folder = tmp_path / str(number)
        shutil.copytree(good, folder)
        table = rows(folder, file)
        table[0][column] = value
        with (folder / file).open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(table[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(table)
        report = check(folder)
        assert not report.valid, (file, column)
        # A row error (the primary key) names no field.
        field = None if error == "primary-key" else column
        assert [(e[1], e[2]) for e in errors(report)] == [(field, error)], (file, column)


def test_openapi_declares_a_zip() -> None:
    operation = spec()["paths"]["/v1/exports/opendata"]["get"]
    assert list(operation["responses"]["200"]["content"]) == ["application/zip"]
    assert operation["responses"]["200"]["content"]["application/zip"]["schema"] == {
        "type": "string", "format": "binary",
    }  # fmt: skip
    (month,) = operation["parameters"]
    assert (month["name"], month["required"], month["schema"]["pattern"]) == (
        "month", True, "^20[0-9]{2}-(?:0[1-9]|1[0-2])$",
    )  # fmt: skip
    assert {"404", "422"} <= set(operation["responses"])


def test_cli_writes_the_same_package(seeded: Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAROMETRE_CLICKHOUSE_URL", seeded.settings.clickhouse_url)
    monkeypatch.setenv("BAROMETRE_CLICKHOUSE_DATABASE", seeded.settings.clickhouse_database)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["export", "opendata", "--month", "2013-05", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(["datapackage.json", *CSVS])
    report = check(out)
    assert report.valid, errors(report)
    assert len(rows(out, "presence.csv")) == 7
    bad = CliRunner().invoke(main, ["export", "opendata", "--month", "2013-13", "--out", str(out)])
    assert bad.exit_code == 2 and "not a month" in bad.output
